// The CUDA DPLR recurrence's host-side plan (kernels/cuda/dplr_plan.h): validation, the chunked
// kernels' buffer layout (aligned, disjoint, only the documented aliases), the shared-memory
// versus workspace choice on H100- and A100-sized limits, workspace sections, and the
// benchmark's compulsory byte counts. Runs without a GPU.
#include "kernels/cuda/dplr_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace radlads::cuda {
namespace {

using dplr_plan::ChunkLayout;
using dplr_plan::Plan;
using I64 = std::int64_t;

constexpr I64 kH100Smem = 232448;  // cudaDevAttrMaxSharedMemoryPerBlockOptin, sm_90
constexpr I64 kA100Smem = 166912;  // sm_80

DplrCudaConfig Chunked(I64 chunk) {
  DplrCudaConfig c;
  c.form = DplrForm::kChunked;
  c.chunk = chunk;
  return c;
}

DplrCudaConfig Recurrent(I64 ckpt) {
  DplrCudaConfig c;
  c.form = DplrForm::kRecurrent;
  c.checkpoint = ckpt;
  return c;
}

TEST(DplrCudaPlan, AcceptsThePresetShapes) {
  for (I64 d : {32, 64, 128}) {
    for (const DplrCudaDims& dims : {DplrCudaDims{8, 4096, 64, d}, DplrCudaDims{12, 512, 28, d},
                                     DplrCudaDims{1, 1, 1, d}, DplrCudaDims{3, 0, 5, d}}) {
      EXPECT_EQ(DplrCudaValidate(dims, Chunked(16)), "") << d;
      EXPECT_EQ(DplrCudaValidate(dims, Chunked(64)), "") << d;
      EXPECT_EQ(DplrCudaValidate(dims, Recurrent(16)), "") << d;
    }
  }
}

TEST(DplrCudaPlan, RejectsWithTheRuleNamed) {
  auto expect_error = [](const DplrCudaDims& d, const DplrCudaConfig& c, const std::string& n) {
    const std::string err = DplrCudaValidate(d, c);
    EXPECT_NE(err.find(n), std::string::npos) << "got: '" << err << "'";
  };
  expect_error({1, 8, 2, 48}, Chunked(16), "32, 64 or 128");
  expect_error({1, 8, 2, 256}, Recurrent(16), "32, 64 or 128");
  expect_error({1, 8, 2, 64}, Chunked(0), "chunk");
  expect_error({1, 8, 2, 64}, Chunked(65), "chunk");
  expect_error({1, 8, 2, 64}, Recurrent(0), "checkpoint");
  expect_error({-1, 8, 2, 64}, Chunked(16), ">= 0");
  // The other form's parameter is ignored.
  EXPECT_EQ(DplrCudaValidate({1, 8, 2, 64}, [] { auto c = Recurrent(16); c.chunk = 0; return c; }()),
            "");
}

// Every present buffer is 32-float aligned, inside the layout, and disjoint from the others
// except the forward's aliases (Ah = W, U = Vn).
void CheckLayout(I64 C, I64 D, bool backward) {
  const ChunkLayout l = dplr_plan::MakeChunkLayout(C, D, backward);
  const I64 cd = C * (D + 1), cc = C * C;
  std::vector<std::pair<I64, I64>> spans;  // [begin, end)
  auto add = [&](I64 off, I64 n, const char* name) {
    if (off < 0) return;
    EXPECT_EQ(off % 32, 0) << name;
    EXPECT_LE(off + n, l.floats) << name;
    spans.push_back({off, off + n});
  };
  for (auto [off, name] : {std::pair{l.q, "q"}, {l.k, "k"}, {l.a, "a"}, {l.b, "b"}, {l.gc, "gc"},
                           {l.gs, "gs"}, {l.Qh, "Qh"}, {l.Kh, "Kh"}, {l.Bh, "Bh"}, {l.W, "W"},
                           {l.dQh, "dQh"}, {l.dKh, "dKh"}, {l.dBh, "dBh"}, {l.dAh, "dAh"},
                           {l.v, "v"}, {l.Vn, "Vn"}, {l.O, "O"}, {l.dO, "dO"}, {l.dVn, "dVn"},
                           {l.dX, "dX"}, {l.dvl, "dvl"}}) {
    add(off, cd, name);
  }
  for (auto [off, name] : {std::pair{l.Aqk, "Aqk"}, {l.Aqb, "Aqb"}, {l.Aak, "Aak"},
                           {l.Aab, "Aab"}, {l.dAqk, "dAqk"}, {l.dAqb, "dAqb"}, {l.dAak, "dAak"},
                           {l.dAab, "dAab"}}) {
    add(off, cc, name);
  }
  add(l.dgt, D, "dgt");
  add(l.S, D * D, "S");
  if (backward) {
    add(l.Ah, cd, "Ah");
    add(l.U, cd, "U");
    EXPECT_GE(l.dAab, 0);
    EXPECT_GE(l.dgt, 0);
    EXPECT_EQ(l.S, -1);
    EXPECT_EQ(l.O, -1);
  } else {
    EXPECT_EQ(l.Ah, l.W);
    EXPECT_EQ(l.U, l.Vn);
    EXPECT_EQ(l.dQh, -1);
    EXPECT_EQ(l.dAab, -1);
    EXPECT_GE(l.S, 0);
    EXPECT_GE(l.O, 0);
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i) {
    EXPECT_LE(spans[i - 1].second, spans[i].first) << "overlap at C=" << C << " D=" << D;
  }
}

TEST(DplrCudaPlan, LayoutsAreAlignedAndDisjoint) {
  for (I64 C : {1, 7, 16, 32, 64}) {
    for (I64 D : {32, 64, 128}) {
      CheckLayout(C, D, false);
      CheckLayout(C, D, true);
    }
  }
}

TEST(DplrCudaPlan, SharedMemoryOrWorkspace) {
  // Chunk 16 keeps everything on chip on an H100 at every head size, forward and backward.
  for (I64 D : {32, 64, 128}) {
    const DplrCudaDims d{2, 4096, 3, D};
    const Plan f = dplr_plan::MakeForwardPlan(d, Chunked(16), kH100Smem);
    const Plan b = dplr_plan::MakeBackwardPlan(d, Chunked(16), kH100Smem);
    EXPECT_TRUE(f.use_smem) << D;
    EXPECT_TRUE(b.use_smem) << D;
    EXPECT_LE(static_cast<I64>(b.smem_bytes), kH100Smem);
    EXPECT_EQ(f.workspace_bytes, 0u) << D;
    EXPECT_EQ(f.nchunks, 256);
  }
  // D = 128's backward does not fit an A100's limit: per-block scratch in the workspace.
  const DplrCudaDims d{2, 100, 3, 128};
  const Plan a100 = dplr_plan::MakeBackwardPlan(d, Chunked(16), kA100Smem);
  EXPECT_FALSE(a100.use_smem);
  EXPECT_EQ(a100.smem_bytes, 0u);
  const Plan h100 = dplr_plan::MakeBackwardPlan(d, Chunked(16), kH100Smem);
  EXPECT_EQ(a100.workspace_bytes - h100.workspace_bytes,
            (static_cast<std::size_t>(6 * h100.layout.floats * 4) + 255) / 256 * 256);
  // Chunk 64 at D = 128 never fits.
  EXPECT_FALSE(dplr_plan::MakeForwardPlan(d, Chunked(64), kH100Smem).use_smem);
  EXPECT_GT(dplr_plan::MakeForwardPlan(d, Chunked(64), kH100Smem).workspace_bytes, 0u);
}

TEST(DplrCudaPlan, WorkspaceSections) {
  const DplrCudaDims d{2, 67, 3, 64};
  const Plan b = dplr_plan::MakeBackwardPlan(d, Chunked(16), kH100Smem);
  EXPECT_EQ(b.C, 16);
  EXPECT_EQ(b.nchunks, 5);
  EXPECT_EQ(b.states_off % 256, 0u);
  EXPECT_EQ(b.dS_off % 256, 0u);
  EXPECT_GE(b.dS_off, b.states_off + static_cast<std::size_t>(6 * 5 * 64 * 64 * 4));
  EXPECT_GE(b.workspace_bytes, b.dS_off + static_cast<std::size_t>(6 * 64 * 64 * 4));
  // The chunk shrinks to T when T is shorter.
  const Plan s = dplr_plan::MakeBackwardPlan({1, 5, 1, 32}, Chunked(16), kH100Smem);
  EXPECT_EQ(s.C, 5);
  EXPECT_EQ(s.nchunks, 1);
  // T = 0 needs nothing.
  EXPECT_EQ(dplr_plan::MakeBackwardPlan({1, 0, 1, 32}, Chunked(16), kH100Smem).workspace_bytes,
            0u);
  EXPECT_EQ(dplr_plan::MakeBackwardPlan({1, 0, 1, 32}, Recurrent(16), kH100Smem).workspace_bytes,
            0u);
  // Recurrent backward: checkpoints, one segment's states and its sa vectors, disjoint.
  const Plan r = dplr_plan::MakeBackwardPlan(d, Recurrent(16), kH100Smem);
  EXPECT_EQ(r.ckpt, 16);
  EXPECT_EQ(r.nseg, 5);
  EXPECT_GE(r.seg_off, r.ck_off + static_cast<std::size_t>(6 * 5 * 64 * 64 * 4));
  EXPECT_GE(r.sa_off, r.seg_off + static_cast<std::size_t>(6 * 17 * 64 * 64 * 4));
  EXPECT_GE(r.workspace_bytes, r.sa_off + static_cast<std::size_t>(6 * 16 * 64 * 4));
  EXPECT_EQ(dplr_plan::MakeForwardPlan(d, Recurrent(16), kH100Smem).workspace_bytes, 0u);
  const Plan r1 = dplr_plan::MakeBackwardPlan({1, 3, 1, 32}, Recurrent(16), kH100Smem);
  EXPECT_EQ(r1.ckpt, 3);
  EXPECT_EQ(r1.nseg, 1);
}

TEST(DplrCudaPlan, CompulsoryBytes) {
  // Compulsory traffic: 14D bytes per token-head forward, 40D forward + backward (bf16, no states).
  const DplrCudaDims d{8, 4096, 64, 64};
  const I64 th = 8 * 4096 * 64;
  EXPECT_EQ(dplr_plan::MinBytesForward(d, 2, false, false), 14 * 64 * th);
  EXPECT_EQ(dplr_plan::MinBytesForward(d, 2, false, false) +
                dplr_plan::MinBytesBackward(d, 2, false, false, false, false),
            40 * 64 * th);
  const I64 s = 8 * 64 * 64 * 64 * 4;
  EXPECT_EQ(dplr_plan::MinBytesForward(d, 2, true, true), 14 * 64 * th + 2 * s);
  EXPECT_EQ(dplr_plan::MinBytesBackward(d, 2, true, true, true, true),
            (13 + 6) * 64 * th * 2 + 4 * s);
}

}  // namespace
}  // namespace radlads::cuda
