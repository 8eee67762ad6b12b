// The CUDA teacher attention's host-side plan (kernels/cuda/attention_plan.h): shape rules, the
// flash kernel's tiles and grid, and the benchmark's FLOP / byte counts. Runs without a GPU.
#include "kernels/cuda/attention_plan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace radlads::cuda {
namespace {

using Impl = AttentionImpl;

TEST(AttentionCudaPlan, AcceptsThePresetShapes) {
  for (std::int64_t d : {32, 64, 128}) {
    for (const AttentionShape& s : {AttentionShape{12, 512, 28, 4, d}, AttentionShape{1, 1, 7, 1, d},
                                    AttentionShape{3, 17, 2, 2, d}, AttentionShape{0, 0, 4, 2, d}}) {
      EXPECT_EQ(AttentionShapeError(s, Impl::kFlash), "") << d;
      EXPECT_EQ(AttentionShapeError(s, Impl::kSimple), "") << d;
    }
  }
}

TEST(AttentionCudaPlan, RejectsWithTheRuleNamed) {
  auto expect_error = [](const AttentionShape& s, Impl impl, const std::string& needle) {
    const std::string err = AttentionShapeError(s, impl);
    EXPECT_NE(err.find(needle), std::string::npos) << "got: '" << err << "'";
  };
  expect_error({1, 8, 6, 4, 64}, Impl::kFlash, "multiple of Hkv");
  expect_error({1, 8, 6, 4, 64}, Impl::kSimple, "multiple of Hkv");
  expect_error({1, 8, 4, 0, 64}, Impl::kSimple, "must be > 0");
  expect_error({-1, 8, 4, 2, 64}, Impl::kFlash, ">= 0");
  expect_error({1, 8, 4, 2, 10}, Impl::kFlash, "D in {32, 64, 128}");
  expect_error({1, 8, 4, 2, 256 + 1}, Impl::kSimple, "D <= 256");
  expect_error({65536, 8, 4, 2, 64}, Impl::kFlash, "65535");
  expect_error({1, 8, 65536 * 2, 2, 64}, Impl::kSimple, "65535");
  expect_error({1, std::int64_t{1} << 31, 4, 2, 64}, Impl::kSimple, "2^31");
  expect_error({1, 65535 * 64 + 1, 4, 2, 64}, Impl::kFlash, "T <= 65535 * 64");
  EXPECT_EQ(AttentionShapeError({1, 65535 * 64, 4, 2, 64}, Impl::kFlash), "");
  EXPECT_EQ(AttentionShapeError({1, 65535 * 64 + 1, 4, 2, 64}, Impl::kSimple), "");
  // The simple kernel takes any D up to 256, odd ones included.
  EXPECT_EQ(AttentionShapeError({2, 5, 3, 1, 10}, Impl::kSimple), "");
  EXPECT_EQ(AttentionShapeError({2, 5, 3, 1, 256}, Impl::kSimple), "");
}

TEST(AttentionCudaPlan, FlashTilesAndGrid) {
  // Q, K and V tiles of 64 rows, each row D + 8 bf16.
  const struct {
    std::int64_t d, t, query_blocks;
    std::size_t smem;
  } cases[] = {{32, 1, 1, 3 * 64 * 40 * 2},    {64, 64, 1, 3 * 64 * 72 * 2},
               {64, 65, 2, 3 * 64 * 72 * 2},   {128, 130, 3, 3 * 64 * 136 * 2},
               {128, 4096, 64, 52224}};
  for (const auto& c : cases) {
    const AttentionFlashPlan p = PlanAttentionFlash({5, c.t, 28, 4, c.d});
    EXPECT_EQ(p.block_q, 64);
    EXPECT_EQ(p.block_k, 64);
    EXPECT_EQ(p.threads, 128);
    EXPECT_EQ(p.smem_row, c.d + 8);
    EXPECT_EQ(p.smem_row * 2 % 16, 0) << "ldmatrix rows must stay 16-byte aligned";
    EXPECT_EQ(p.smem_bytes, c.smem) << c.d;
    EXPECT_EQ(p.grid_x, 28);
    EXPECT_EQ(p.grid_y, 5);
    EXPECT_EQ(p.grid_z, c.query_blocks) << c.t;
  }
  // Within the 227 KiB an sm_90 block can opt into and the 163 KiB of sm_80.
  EXPECT_LE(PlanAttentionFlash({1, 1, 1, 1, 128}).smem_bytes, std::size_t{163 * 1024});
}

TEST(AttentionCudaPlan, SimpleGrid) {
  const AttentionSimplePlan p = PlanAttentionSimple({3, 17, 14, 2, 10});
  EXPECT_EQ(p.grid_x, 17);
  EXPECT_EQ(p.grid_y, 14);
  EXPECT_EQ(p.grid_z, 3);
  EXPECT_EQ(p.smem_bytes, (10 + p.threads + 32) * sizeof(float));
  EXPECT_GE(2 * p.threads, kAttentionSimpleMaxD);
}

TEST(AttentionCudaPlan, FlopsCountTheCausalTriangleExactly) {
  for (std::int64_t t : {1, 2, 17, 130}) {
    std::int64_t pairs = 0;
    for (std::int64_t i = 0; i < t; ++i) pairs += i + 1;
    const AttentionShape s{2, t, 7, 1, 64};
    EXPECT_EQ(AttentionForwardFlops(s), 4.0 * 2 * 7 * 64 * static_cast<double>(pairs)) << t;
  }
  // The 7B step-2 shape: 4 * 12 * 28 * 128 * 512 * 513 / 2.
  EXPECT_EQ(AttentionForwardFlops({12, 512, 28, 4, 128}), 22592618496.0);
}

TEST(AttentionCudaPlan, MinBytes) {
  const AttentionShape s{2, 3, 4, 2, 32};
  const double q = 2 * 3 * 4 * 32, kv = 2 * 3 * 2 * 32;
  EXPECT_EQ(AttentionForwardMinBytes(s, false), 2 * (2 * q + 2 * kv));
  EXPECT_EQ(AttentionForwardMinBytes(s, true), 2 * (2 * q + 2 * kv) + 4 * 2 * 3 * 4);
}

}  // namespace
}  // namespace radlads::cuda
