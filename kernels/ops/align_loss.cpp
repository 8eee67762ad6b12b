#include "kernels/ops/align_loss.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"

namespace radlads {
namespace {

void CheckPair(const Tensor& t, const Tensor& s) {
  RADLADS_CHECK(t.defined() && s.defined()) << "AlignLoss: undefined input";
  RADLADS_CHECK(t.dtype() == DType::kF32 && s.dtype() == DType::kF32 &&
                t.device() == Device::kCpu && s.device() == Device::kCpu)
      << "AlignLoss: needs F32 CPU tensors, got " << t.DebugString() << " and " << s.DebugString();
  RADLADS_CHECK(t.rank() >= 1 && t.shape() == s.shape())
      << "AlignLoss: shapes " << ShapeToString(t.shape()) << " vs " << ShapeToString(s.shape());
}

// ||a - b||^2 over c elements, accumulated in double.
inline double RowSquaredDistance(const float* a, const float* b, std::int64_t c) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (std::int64_t j = 0; j < c; ++j) {
    double d = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    acc += d * d;
  }
  return acc;
}

// Rows per ParallelFor range: enough elements to be worth a thread.
std::int64_t RowGrain(std::int64_t c) {
  return std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, c));
}

}  // namespace

double AlignLossForward(const Tensor& t, const Tensor& s, Tensor* row_dist) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  CheckPair(t, s);
  const std::int64_t c = t.dim(-1);
  const std::int64_t n = c == 0 ? 0 : t.numel() / c;
  if (row_dist != nullptr) {
    RADLADS_CHECK(row_dist->dtype() == DType::kF32 && row_dist->numel() == n)
        << "AlignLossForward: row_dist must be F32 with " << n << " elements, got "
        << row_dist->DebugString();
  }
  if (n == 0) return 0.0;
  const float* tp = t.f32();
  const float* sp = s.f32();
  std::vector<double> dist(static_cast<std::size_t>(n));
  cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r)
      dist[static_cast<std::size_t>(r)] = std::sqrt(RowSquaredDistance(tp + r * c, sp + r * c, c));
  });
  double sum = 0.0;
  for (double d : dist) sum += d;  // fixed order: independent of the thread count
  if (row_dist != nullptr) {
    float* out = row_dist->f32();
    for (std::int64_t r = 0; r < n; ++r)
      out[r] = static_cast<float>(dist[static_cast<std::size_t>(r)]);
  }
  return sum / (static_cast<double>(n) * std::sqrt(static_cast<double>(c)));
}

void AlignLossBackward(const Tensor& t, const Tensor& s, float dloss, Tensor& ds) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  CheckPair(t, s);
  RADLADS_CHECK(ds.dtype() == DType::kF32 && ds.device() == Device::kCpu && ds.shape() == s.shape())
      << "AlignLossBackward: ds " << ds.DebugString() << " vs s " << ShapeToString(s.shape());
  const std::int64_t c = t.dim(-1);
  const std::int64_t n = c == 0 ? 0 : t.numel() / c;
  if (n == 0) return;
  const float* tp = t.f32();
  const float* sp = s.f32();
  float* dp = ds.f32();
  const double base =
      static_cast<double>(dloss) / (static_cast<double>(n) * std::sqrt(static_cast<double>(c)));
  cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      const float* tr = tp + r * c;
      const float* sr = sp + r * c;
      float* dr = dp + r * c;
      const double dist = std::sqrt(RowSquaredDistance(tr, sr, c));
      if (!(dist > 0.0)) continue;  // zero distance: zero (sub)gradient
      const float k = static_cast<float>(base / dist);
#pragma omp simd
      for (std::int64_t j = 0; j < c; ++j) dr[j] += k * (sr[j] - tr[j]);
    }
  });
}

}  // namespace radlads
