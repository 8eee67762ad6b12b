// Host-side logic of the CUDA GEMM and fused head loss (kernels/cuda/gemm_shape.h,
// kernels/cuda/head_loss_plan.h): argument checks, the row-major -> column-major mapping that the
// cuBLASLt call relies on, pointer alignment, the row x vocabulary tiling and the workspace
// layout. Plain C++: runs on any machine.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/gemm_shape.h"
#include "kernels/cuda/head_loss_plan.h"
#include "kernels/gemm.h"

namespace radlads::cuda {
namespace {

TEST(CudaGemmShape, AcceptsTightAndPaddedStridesForEveryTranspose) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      GemmDims d{ta, tb, 7, 5, 3, ta ? 7 : 3, tb ? 3 : 5, 5};
      EXPECT_EQ(CheckGemmDims(d), "") << ta << tb;
      d.lda += 4;
      d.ldb += 1;
      d.ldc += 9;
      EXPECT_EQ(CheckGemmDims(d), "") << ta << tb;
    }
  }
  // Empty products are valid; strides still need >= 1.
  EXPECT_EQ(CheckGemmDims(GemmDims{false, false, 0, 0, 0, 1, 1, 1}), "");
}

TEST(CudaGemmShape, RejectsShortStridesNegativeSizesAndBadBatches) {
  EXPECT_NE(CheckGemmDims(GemmDims{false, false, 7, 5, 3, 2, 5, 5}).find("lda must be >= 3"),
            std::string::npos);
  EXPECT_NE(CheckGemmDims(GemmDims{true, false, 7, 5, 3, 3, 5, 5}).find("lda must be >= 7"),
            std::string::npos);
  EXPECT_NE(CheckGemmDims(GemmDims{false, true, 7, 5, 3, 3, 2, 5}).find("ldb must be >= 3"),
            std::string::npos);
  EXPECT_NE(CheckGemmDims(GemmDims{false, false, 7, 5, 3, 3, 4, 5}).find("ldb must be >= 5"),
            std::string::npos);
  EXPECT_NE(CheckGemmDims(GemmDims{false, false, 7, 5, 3, 3, 5, 4}).find("ldc must be >= 5"),
            std::string::npos);
  EXPECT_NE(CheckGemmDims(GemmDims{false, false, -1, 5, 3, 3, 5, 5}).find("negative"),
            std::string::npos);
  GemmDims d{false, false, 7, 5, 3, 3, 5, 5};
  d.batch = 0;
  EXPECT_NE(CheckGemmDims(d).find("batch"), std::string::npos);
  d.batch = 2;
  d.stride_b = -1;
  EXPECT_NE(CheckGemmDims(d).find("stride"), std::string::npos);
}

// A column-major GEMM evaluated on the host exactly as cuBLASLt reads its arguments: the stored
// operand X (rows x cols, leading dimension ld) at (r, c) is X[r + c * ld]; op = X or X^T.
void ColMajorGemmOnHost(const ColMajorGemm& g, const float* a, const float* b, float* c) {
  for (std::int64_t bz = 0; bz < g.batch; ++bz) {
    for (std::int64_t i = 0; i < g.m; ++i) {
      for (std::int64_t j = 0; j < g.n; ++j) {
        double acc = 0.0;
        for (std::int64_t p = 0; p < g.k; ++p) {
          const float av = g.a.trans ? a[bz * g.a.stride + p + i * g.a.ld]
                                     : a[bz * g.a.stride + i + p * g.a.ld];
          const float bv = g.b.trans ? b[bz * g.b.stride + j + p * g.b.ld]
                                     : b[bz * g.b.stride + p + j * g.b.ld];
          acc += static_cast<double>(av) * bv;
        }
        c[bz * g.c.stride + i + j * g.c.ld] = static_cast<float>(acc);
      }
    }
  }
}

// The mapping must make the column-major problem (with A' = B, B' = A) compute the row-major
// product of kernels/gemm.h, for every transpose, padded strides and a strided batch.
TEST(CudaGemmShape, ColumnMajorMappingComputesTheRowMajorProduct) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  constexpr std::int64_t kBatch = 2;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const std::int64_t m = 5, n = 4, k = 3;
      GemmDims d{ta, tb, m, n, k, (ta ? m : k) + 2, (tb ? k : n) + 1, n + 3};
      d.batch = kBatch;
      d.stride_a = (ta ? k : m) * d.lda + 5;
      d.stride_b = (tb ? n : k) * d.ldb + 2;
      d.stride_c = m * d.ldc + 1;
      ASSERT_EQ(CheckGemmDims(d), "");
      std::vector<float> a(static_cast<std::size_t>(d.stride_a * kBatch)),
          b(static_cast<std::size_t>(d.stride_b * kBatch));
      for (auto& x : a) x = nd(rng);
      for (auto& x : b) x = nd(rng);
      std::vector<float> got(static_cast<std::size_t>(d.stride_c * kBatch), 0.0f), want = got;
      const ColMajorGemm g = ToColumnMajor(d);
      EXPECT_EQ(g.m, n);
      EXPECT_EQ(g.n, m);
      EXPECT_EQ(g.a.trans, tb);
      EXPECT_EQ(g.b.trans, ta);
      EXPECT_GE(g.a.ld, g.a.rows);  // cuBLASLt's requirement on a column-major layout
      EXPECT_GE(g.b.ld, g.b.rows);
      EXPECT_GE(g.c.ld, g.c.rows);
      ColMajorGemmOnHost(g, b.data(), a.data(), got.data());
      for (std::int64_t bz = 0; bz < kBatch; ++bz)
        Gemm(ta, tb, m, n, k, 1.0f, a.data() + bz * d.stride_a, d.lda, b.data() + bz * d.stride_b,
             d.ldb, 0.0f, want.data() + bz * d.stride_c, d.ldc);
      for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5) << "ta " << ta << " tb " << tb << " i " << i;
    }
  }
}

TEST(CudaGemmShape, PointerAlignmentIsTheLargestPowerOfTwoUpToTheCap) {
  alignas(256) static unsigned char buf[1024];
  EXPECT_EQ(PointerAlignment(buf), 256u);
  EXPECT_EQ(PointerAlignment(buf + 1), 1u);
  EXPECT_EQ(PointerAlignment(buf + 2), 2u);
  EXPECT_EQ(PointerAlignment(buf + 12), 4u);
  EXPECT_EQ(PointerAlignment(buf + 48), 16u);
  EXPECT_EQ(PointerAlignment(buf + 512), 256u);
  EXPECT_EQ(PointerAlignment(buf + 512, 16), 16u);
  EXPECT_EQ(PointerAlignment(nullptr), 256u);
}

// ---------------------------------------------------------------------------------------------

bool Disjoint(std::size_t a, std::size_t an, std::size_t b, std::size_t bn) {
  return an == 0 || bn == 0 || a + an <= b || b + bn <= a;
}

TEST(CudaHeadLossPlan, TilesRowsAndAVocabularyThatIsNotAMultipleOfTheChunk) {
  const HeadLossShape s{HeadLossKind::kKl, 37, 1000, 29, 23, true};
  const HeadLossPlan p = PlanHeadLoss(s, HeadLossChunks{16, 333});
  EXPECT_EQ(p.rows, 16);
  EXPECT_EQ(p.vocab, 333);
  EXPECT_EQ(p.row_blocks, 3);    // 16 + 16 + 5
  EXPECT_EQ(p.vocab_chunks, 4);  // 333 * 3 + 1
  EXPECT_TRUE(p.teacher_gemm);
  EXPECT_TRUE(p.second_pass);
  EXPECT_TRUE(p.recompute);
  const std::size_t tile = 16 * 333;
  for (std::size_t off : {p.zs_offset, p.zt_offset, p.dz_offset, p.stats_offset})
    EXPECT_EQ(off % kHeadWorkspaceAlign, 0u);
  EXPECT_TRUE(Disjoint(p.zs_offset, tile * 4, p.zt_offset, tile * 4));
  EXPECT_TRUE(Disjoint(p.zt_offset, tile * 4, p.dz_offset, tile * 2));
  EXPECT_TRUE(Disjoint(p.dz_offset, tile * 2, p.stats_offset, 16 * kHeadRowStatsBytes));
  EXPECT_GE(p.bytes, p.stats_offset + 16 * kHeadRowStatsBytes);
  EXPECT_EQ(p.bytes % kHeadWorkspaceAlign, 0u);
  EXPECT_LE(p.bytes, tile * 10 + 16 * kHeadRowStatsBytes + 4 * kHeadWorkspaceAlign);
}

TEST(CudaHeadLossPlan, ClampsChunksAndSkipsWhatIsNotNeeded) {
  // rows = 0: all rows; a chunk beyond V: one chunk, no recomputation.
  HeadLossPlan p = PlanHeadLoss(HeadLossShape{HeadLossKind::kKl, 37, 320, 128, 128, false},
                                HeadLossChunks{0, 4096});
  EXPECT_EQ(p.rows, 37);
  EXPECT_EQ(p.vocab, 320);
  EXPECT_EQ(p.row_blocks, 1);
  EXPECT_EQ(p.vocab_chunks, 1);
  EXPECT_TRUE(p.second_pass);  // the KL is summed in pass 2
  EXPECT_FALSE(p.recompute);
  EXPECT_EQ(p.dz_offset, p.stats_offset);  // no gradient: no dz region
  // rows > N is N.
  p = PlanHeadLoss(HeadLossShape{HeadLossKind::kKl, 5, 320, 8, 8, false}, HeadLossChunks{64, 64});
  EXPECT_EQ(p.rows, 5);
  EXPECT_EQ(p.vocab_chunks, 5);
  // Forward-only CE: one pass, no teacher scratch, no dz.
  p = PlanHeadLoss(HeadLossShape{HeadLossKind::kCrossEntropy, 37, 1000, 29, 0, false},
                   HeadLossChunks{0, 64});
  EXPECT_FALSE(p.second_pass);
  EXPECT_FALSE(p.recompute);
  EXPECT_FALSE(p.teacher_gemm);
  EXPECT_EQ(p.zt_offset, p.dz_offset);
  EXPECT_EQ(p.dz_offset, p.stats_offset);
  // CE with gradients: two passes, recomputed logits.
  p = PlanHeadLoss(HeadLossShape{HeadLossKind::kCrossEntropy, 37, 1000, 29, 0, true},
                   HeadLossChunks{0, 64});
  EXPECT_TRUE(p.second_pass);
  EXPECT_TRUE(p.recompute);
  EXPECT_GT(p.stats_offset, p.dz_offset);
  // Teacher logits given: no teacher scratch.
  p = PlanHeadLoss(HeadLossShape{HeadLossKind::kKlTeacherLogits, 37, 1000, 29, 0, true},
                   HeadLossChunks{0, 64});
  EXPECT_FALSE(p.teacher_gemm);
  EXPECT_EQ(p.zt_offset, p.dz_offset);
  // No rows: nothing to do, no workspace.
  p = PlanHeadLoss(HeadLossShape{HeadLossKind::kKl, 0, 1000, 29, 23, true}, HeadLossChunks{});
  EXPECT_EQ(p.bytes, 0u);
  EXPECT_EQ(p.row_blocks, 0);
}

TEST(CudaHeadLossPlan, TheWorkspaceDoesNotGrowWithTheVocabulary) {
  const HeadLossChunks chunks{256, 8192};
  const std::size_t small =
      PlanHeadLoss(HeadLossShape{HeadLossKind::kKl, 4096, 16384, 896, 896, true}, chunks).bytes;
  const std::size_t big =
      PlanHeadLoss(HeadLossShape{HeadLossKind::kKl, 4096, 151936, 896, 896, true}, chunks).bytes;
  EXPECT_EQ(small, big);
  // 256 x 8192 tiles: 4 + 4 + 2 bytes per entry, plus the row statistics.
  EXPECT_EQ(big, std::size_t{256} * 8192 * 10 + 256 * kHeadRowStatsBytes);
}

TEST(CudaHeadLossPlan, RejectsBadShapesAndChunks) {
  const HeadLossChunks ok{};
  EXPECT_EQ(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 10, 4, 4, true}, ok), "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, -1, 10, 4, 4, true}, ok), "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 0, 4, 4, true}, ok), "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 10, 0, 4, true}, ok), "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 10, 4, 0, true}, ok), "");
  // The teacher width is only needed when the teacher head is given.
  EXPECT_EQ(CheckHeadLoss(HeadLossShape{HeadLossKind::kCrossEntropy, 3, 10, 4, 0, true}, ok), "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, std::int64_t{1} << 32, 4, 4, true},
                          ok),
            "");
  EXPECT_NE(CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 10, 4, 4, true}, HeadLossChunks{-1, 8}),
            "");
  EXPECT_NE(
      CheckHeadLoss(HeadLossShape{HeadLossKind::kKl, 3, 10, 4, 4, true}, HeadLossChunks{0, 0})
          .find("vocabulary chunk"),
      std::string::npos);
}

}  // namespace
}  // namespace radlads::cuda
