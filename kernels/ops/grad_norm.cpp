#include "kernels/ops/grad_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"

namespace radlads {
namespace {

template <typename P>
struct Block {
  P data;  // const float* to read, float* to scale
  std::int64_t size;
};

// Fixed partition of every gradient into blocks of at most kGradNormBlock elements, in order.
// T = const Tensor gives read-only blocks, T = Tensor writable ones.
template <typename T>
auto Blocks(std::span<T> grads) {
  using P = decltype(grads[0].f32());
  std::vector<Block<P>> blocks;
  for (T& g : grads) {
    if (!g.defined() || g.numel() == 0) continue;
    RADLADS_CHECK(g.dtype() == DType::kF32 && g.device() == Device::kCpu)
        << "grad norm: needs F32 CPU gradients, got " << g.DebugString();
    P p = g.f32();
    for (std::int64_t b = 0; b < g.numel(); b += kGradNormBlock)
      blocks.push_back(Block<P>{p + b, std::min(kGradNormBlock, g.numel() - b)});
  }
  return blocks;
}

}  // namespace

double GlobalGradNorm(std::span<const Tensor> grads) {
  const profile::Scope profile_scope(profile::Family::kOptimizer);
  const auto blocks = Blocks(grads);
  const std::int64_t nb = static_cast<std::int64_t>(blocks.size());
  std::vector<double> sums(blocks.size(), 0.0);
  auto sum_squares = [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const auto& blk = blocks[static_cast<std::size_t>(i)];
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < blk.size; ++j) {
        const double x = blk.data[j];
        s += x * x;
      }
      sums[static_cast<std::size_t>(i)] = s;
    }
  };
  cpu::ParallelFor(nb, 1, sum_squares);
  double total = 0.0;
  for (double s : sums) total += s;  // in block order
  return std::sqrt(total);
}

void ClipGradsWithNorm(std::span<Tensor> grads, double max_norm, double total_norm) {
  const profile::Scope profile_scope(profile::Family::kOptimizer);
  if (!std::isfinite(total_norm)) return;  // caller skips the step (see header)
  const double coef = max_norm / (total_norm + 1e-6);
  if (!(coef < 1.0)) return;  // torch multiplies by the clamped 1.0: the identity
  const float k = static_cast<float>(coef);
  const auto blocks = Blocks(grads);
  const std::int64_t nb = static_cast<std::int64_t>(blocks.size());
  auto scale = [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) {
      const auto& blk = blocks[static_cast<std::size_t>(i)];
#pragma omp simd
      for (std::int64_t j = 0; j < blk.size; ++j) blk.data[j] *= k;
    }
  };
  cpu::ParallelFor(nb, 1, scale);
}

double ClipGradNorm(std::span<Tensor> grads, double max_norm) {
  const profile::Scope profile_scope(profile::Family::kOptimizer);
  const double norm = GlobalGradNorm(std::span<const Tensor>(grads.data(), grads.size()));
  ClipGradsWithNorm(grads, max_norm, norm);
  return norm;
}

}  // namespace radlads
