// The host-side plans of the CUDA glue kernels (kernels/cuda/glue_plan.h), on any machine:
// the multi-tensor chunk table, the AdamW scalars against kernels/ops/adamw.cpp's arithmetic
// (one CPU step through the scalars equals AdamWStep bit for bit), the clip factor against
// ClipGradsWithNorm, the RoPE inverse frequencies against MakeRopeTable, and the workspace sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cuda/glue_plan.h"
#include "kernels/ops/adamw.h"
#include "kernels/ops/grad_norm.h"
#include "kernels/ops/rope.h"

namespace radlads::cuda {
namespace {

TEST(CudaGluePlan, ChunkTableCoversEveryElementOnceInOrder) {
  const std::vector<std::int64_t> sizes = {1, 0, 32768, 32769, 65536 * 2 + 17, 5};
  std::vector<MultiTensorEntry> entries;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    MultiTensorEntry e;
    e.n = sizes[i];
    e.group = static_cast<std::int32_t>(i % 2);
    entries.push_back(e);
  }
  const auto chunks = BuildMultiTensorChunks(entries);
  std::vector<std::int64_t> covered(sizes.size(), 0);
  std::int32_t last_tensor = -1;
  std::int64_t next_start = 0;
  for (const MultiTensorChunk& c : chunks) {
    ASSERT_GE(c.tensor, last_tensor);
    if (c.tensor != last_tensor) {
      last_tensor = c.tensor;
      next_start = 0;
    }
    EXPECT_EQ(c.start, next_start) << "tensor " << c.tensor;
    EXPECT_GT(c.len, 0);
    EXPECT_LE(c.len, kMultiTensorChunk);
    next_start += c.len;
    covered[static_cast<std::size_t>(c.tensor)] += c.len;
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) EXPECT_EQ(covered[i], sizes[i]) << i;
  // 1 + 0 + 1 + 2 + 5 + 1 chunks; the partition is the CPU grad norm's (kGradNormBlock).
  EXPECT_EQ(chunks.size(), 10u);
  EXPECT_EQ(kMultiTensorChunk, kGradNormBlock);
  EXPECT_EQ(sizeof(MultiTensorEntry), 48u);  // device layout: 4 pointers, n, group, pad
  EXPECT_EQ(sizeof(MultiTensorChunk), 16u);
}

TEST(CudaGluePlan, ChunkTableRejectsBadEntries) {
  MultiTensorEntry e;
  e.n = -1;
  EXPECT_THROW(BuildMultiTensorChunks({e}), std::invalid_argument);
  e.n = 3;
  e.group = kMaxParamGroups;
  EXPECT_THROW(BuildMultiTensorChunks({e}), std::invalid_argument);
  e.group = 0;
  EXPECT_THROW(BuildMultiTensorChunks({e}, 0), std::invalid_argument);
  EXPECT_TRUE(BuildMultiTensorChunks({}).empty());
}

// The device kernel's per-element sequence, run on the CPU with the plan's scalars.
void StepWithScalars(const AdamWScalars& s, int group, std::vector<float>& p,
                     const std::vector<float>& g, std::vector<float>& m, std::vector<float>& v) {
  const AdamWGroupScalars gs = s.group[group];
  for (std::size_t i = 0; i < p.size(); ++i) {
    volatile float gi = g[i];  // volatile: no contraction, as the kernel's __f*_rn ops
    volatile float pi = p[i] * gs.keep;
    volatile float d = gi - m[i];
    volatile float mi = s.lerp_from_m ? m[i] + s.w1 * d : gi - d * s.w1c;
    volatile float w2g = s.w2 * gi;
    volatile float w2gg = w2g * gi;
    volatile float vb = v[i] * s.b2;
    volatile float vi = vb + w2gg;
    volatile float sq = std::sqrt(static_cast<float>(vi));
    volatile float den = sq / s.bc2_sqrt + s.eps;
    volatile float num = gs.neg_step * mi;
    volatile float upd = num / den;
    p[i] = pi + upd;
    m[i] = mi;
    v[i] = vi;
  }
}

TEST(CudaGluePlan, AdamWScalarsReproduceTheCpuStep) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const double wd : {0.0, 0.1}) {
    for (const bool bc : {true, false}) {
      const std::int64_t n = 1031;
      std::vector<float> p(n), g(n), m(n, 0.0f), v(n, 0.0f);
      for (auto& x : p) x = nd(rng);
      Tensor tp = Tensor::FromVector(p, {n}), tm = Tensor::Zeros({n}), tv = Tensor::Zeros({n});
      for (std::int64_t step = 1; step <= 4; ++step) {
        for (auto& x : g) x = nd(rng) * 1e-2f;
        const double lr[2] = {3e-4, 1e-3};
        AdamWConfig cfg;
        cfg.lr = lr[1];
        cfg.weight_decay = wd;
        cfg.bias_correction = bc;
        AdamWStep(tp, Tensor::FromVector(g, {n}), tm, tv, step, cfg);
        const AdamWScalars s = MakeAdamWScalars(lr, 2, cfg.beta1, cfg.beta2, cfg.eps, wd, bc, step);
        StepWithScalars(s, 1, p, g, m, v);
      }
      // Equal to fp32 rounding (the CPU build may contract multiply-adds); typically exact.
      for (std::int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(p[i], tp.f32()[i], 2e-7f * (1.0f + std::fabs(p[i]))) << i;
        EXPECT_NEAR(m[i], tm.f32()[i], 1e-6f * std::fabs(m[i]) + 1e-12f) << i;
        EXPECT_NEAR(v[i], tv.f32()[i], 1e-6f * std::fabs(v[i]) + 1e-16f) << i;
      }
    }
  }
  const double lr1[1] = {1e-3};
  EXPECT_THROW(MakeAdamWScalars(lr1, 1, 0.9, 0.95, 1e-8, 0, true, 0), std::invalid_argument);
  EXPECT_THROW(MakeAdamWScalars(lr1, 0, 0.9, 0.95, 1e-8, 0, true, 1), std::invalid_argument);
}

TEST(CudaGluePlan, ClipScaleMatchesClipGradsWithNorm) {
  for (const double norm : {0.0, 0.5, 0.999999, 1.0, 1.5, 1e6}) {
    Tensor g = Tensor::Full({3}, 2.0f);
    std::vector<Tensor> gs = {g};
    ClipGradsWithNorm(gs, 1.0, norm);
    EXPECT_EQ(g.f32()[0], 2.0f * ClipScale(1.0, norm)) << norm;
  }
  EXPECT_EQ(ClipScale(1.0, std::numeric_limits<double>::infinity()), 1.0f);
  EXPECT_EQ(ClipScale(1.0, std::numeric_limits<double>::quiet_NaN()), 1.0f);
  EXPECT_EQ(ClipScale(0.0, 10.0), 1.0f);
}

TEST(CudaGluePlan, RopeInvFreqIsTheCpuTables) {
  for (const std::int64_t d : {2, 32, 64, 128}) {
    const double theta = 1e6;
    const auto inv = RopeInvFreq(d, theta);
    const ops::RopeTable table = ops::MakeRopeTable(3, d, theta);
    for (std::int64_t i = 0; i < d / 2; ++i) {
      // Row 1 of the table is cos/sin of float(1) * inv_freq[i] exactly.
      const float angle = 1.0f * inv[static_cast<std::size_t>(i)];
      EXPECT_EQ(table.cos.f32()[d / 2 + i], static_cast<float>(std::cos(static_cast<double>(angle))));
      EXPECT_EQ(table.sin.f32()[d / 2 + i], static_cast<float>(std::sin(static_cast<double>(angle))));
    }
  }
  EXPECT_THROW(RopeInvFreq(3, 1e4), std::invalid_argument);
}

TEST(CudaGluePlan, WorkspaceAndLaunchSizes) {
  EXPECT_EQ(ColSumChunks(0), 0);
  EXPECT_EQ(ColSumChunks(1), 1);
  EXPECT_EQ(ColSumChunks(kColSumRows), 1);
  EXPECT_EQ(ColSumChunks(kColSumRows + 1), 2);
  EXPECT_EQ(ColSumWorkspaceBytes(0, 5), 0u);
  EXPECT_EQ(ColSumWorkspaceBytes(257, 3), 2u * 3u * sizeof(double));
  EXPECT_EQ(GradNormWorkspaceBytes(7), 7u * sizeof(double));
  EXPECT_EQ(ElemBlocks(0), 0);
  EXPECT_EQ(ElemBlocks(1), 1);
  EXPECT_EQ(ElemBlocks(kElemThreads + 1), 2);
  EXPECT_EQ(ElemBlocks(std::int64_t{1} << 40), kMaxElemBlocks);
}

}  // namespace
}  // namespace radlads::cuda
