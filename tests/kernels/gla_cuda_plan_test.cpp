// Host-side planning of the CUDA GLA kernels (kernels/cuda/gla_plan.h): validation, workspace
// and shared-memory sizes, roofline bytes. Plain C++, runs without a GPU.
#include "kernels/cuda/gla_plan.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace radlads::cuda {
namespace {

using gla_plan::BackwardWorkspaceBytes;
using gla_plan::ChunkedBackwardSmemBytes;
using gla_plan::ChunkedForwardSmemBytes;
using gla_plan::MinBytesBackward;
using gla_plan::MinBytesForward;
using gla_plan::Validate;

TEST(GlaCudaPlan, ValidateAcceptsHeadSizesAndAnyT) {
  for (GlaAlgo algo : {GlaAlgo::kRecurrent, GlaAlgo::kChunked}) {
    for (std::int64_t K : {32, 64, 128}) {
      for (std::int64_t V : {32, 64, 128}) {
        for (std::int64_t T : {0, 1, 17, 4096}) {
          EXPECT_EQ(Validate({3, T, 5, K, V}, algo), "") << K << " " << V << " " << T;
        }
      }
    }
  }
}

TEST(GlaCudaPlan, ValidateRejectsWithAMessage) {
  for (GlaAlgo algo : {GlaAlgo::kRecurrent, GlaAlgo::kChunked}) {
    EXPECT_NE(Validate({1, 8, 1, 48, 64}, algo).find("K=48"), std::string::npos);
    EXPECT_NE(Validate({1, 8, 1, 64, 256}, algo).find("V=256"), std::string::npos);
    EXPECT_NE(Validate({0, 8, 1, 64, 64}, algo).find("B=0"), std::string::npos);
    EXPECT_NE(Validate({1, -1, 1, 64, 64}, algo).find("T=-1"), std::string::npos);
    EXPECT_NE(Validate({1, 8, 0, 64, 64}, algo).find("H=0"), std::string::npos);
    EXPECT_NE(Validate({1, std::int64_t{1} << 40, 4, 64, 64}, algo).find("too large"),
              std::string::npos);
  }
  EXPECT_NE(Validate({1, 8, 1, 48, 64}, GlaAlgo::kChunked).find("chunked"), std::string::npos);
}

TEST(GlaCudaPlan, WorkspaceHoldsOneStatePerSixteenTokens) {
  const GlaShape s{2, 33, 3, 64, 32};  // 3 snapshots (tokens 0, 16, 32)
  const std::size_t state = 2 * 3 * 64 * 32 * sizeof(float);
  EXPECT_EQ(BackwardWorkspaceBytes(s, GlaAlgo::kChunked), 3 * state);
  EXPECT_EQ(BackwardWorkspaceBytes(s, GlaAlgo::kRecurrent), (3 + 16) * state);
  EXPECT_EQ(BackwardWorkspaceBytes({2, 32, 3, 64, 32}, GlaAlgo::kChunked), 2 * state);
  EXPECT_EQ(BackwardWorkspaceBytes({2, 0, 3, 64, 32}, GlaAlgo::kChunked), 0u);
  EXPECT_EQ(BackwardWorkspaceBytes({2, 0, 3, 64, 32}, GlaAlgo::kRecurrent), 0u);
  // The benchmark shape: 2 GiB of fp32 chunk-start states.
  EXPECT_EQ(BackwardWorkspaceBytes({8, 4096, 64, 64, 64}, GlaAlgo::kChunked),
            std::size_t{256} * 512 * 64 * 64 * 4);
}

TEST(GlaCudaPlan, SharedMemoryFitsAnA100) {
  // sm_80 allows 163 KiB of dynamic shared memory per block (sm_90: 227 KiB).
  constexpr std::size_t kA100 = 163 * 1024;
  for (std::int64_t K : {32, 64, 128}) {
    for (std::int64_t V : {32, 64, 128}) {
      EXPECT_LE(ChunkedForwardSmemBytes(K, gla_plan::ForwardVTile(V)), kA100) << K << " " << V;
      EXPECT_LE(ChunkedBackwardSmemBytes(K, V), kA100) << K << " " << V;
    }
  }
  // Layout sums (floats): forward K*vt + 5*16K + 2*16vt + 256 + K.
  EXPECT_EQ(ChunkedForwardSmemBytes(64, 64), (64 * 64 + 5 * 16 * 64 + 2 * 16 * 64 + 256 + 64) * 4u);
  EXPECT_EQ(ChunkedBackwardSmemBytes(128, 128),
            (128 * 128 + 8 * 16 * 128 + 3 * 16 * 128 + 512 + 256) * 4u);
  EXPECT_EQ(gla_plan::ForwardVTile(128), 64);
  EXPECT_EQ(gla_plan::ForwardVTile(32), 32);
}

TEST(GlaCudaPlan, MinBytesMatchTheRoofline) {
  // D = K = V, bf16: forward 10D bytes per token-head, backward 18D (docs: GLA rows).
  const GlaShape s{8, 4096, 64, 64, 64};
  const std::int64_t th = 8 * 4096 * 64;
  EXPECT_EQ(MinBytesForward(s, 2, false, false), th * 10 * 64);
  EXPECT_EQ(MinBytesBackward(s, 2, false, false, false), th * 18 * 64);
  const std::int64_t st = 8 * 64 * 64 * 64 * 4;
  EXPECT_EQ(MinBytesForward(s, 2, true, true), th * 10 * 64 + 2 * st);
  EXPECT_EQ(MinBytesBackward(s, 2, true, true, true), th * 18 * 64 + 3 * st);
}

}  // namespace
}  // namespace radlads::cuda
