#include "kernels/ops/rmsnorm.h"

#include <cmath>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

// Returns C after checking w [C], x [N, C] and rstd [N]; sets *n = N.
std::int64_t CheckShapes(const Tensor& x, const Tensor& w, const Tensor& rstd, std::int64_t* n) {
  RADLADS_CHECK(w.rank() == 1) << "RmsNorm w: want [C], got " << w.DebugString();
  const std::int64_t c = w.dim(0);
  *n = RowsOf(x, c, "RmsNorm x");
  CheckF32Shape(w, {c}, "RmsNorm w");
  CheckF32Shape(rstd, {*n}, "RmsNorm rstd");
  return c;
}

}  // namespace

void RmsNormForward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  std::int64_t n = 0;
  const std::int64_t c = CheckShapes(x, w, rstd, &n);
  CheckF32Shape(y, x.shape(), "RmsNorm y");
  const float* xp = x.f32();
  const float* wp = w.f32();
  float* yp = y.f32();
  float* rp = rstd.f32();
  cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* xr = xp + r * c;
      float* yr = yp + r * c;
      double ss = 0.0;
#pragma omp simd reduction(+ : ss)
      for (std::int64_t j = 0; j < c; ++j) ss += static_cast<double>(xr[j]) * xr[j];
      const float mean_sq = c > 0 ? static_cast<float>(ss / static_cast<double>(c)) : 0.0f;
      const float rs = 1.0f / std::sqrt(mean_sq + eps);
      rp[r] = rs;
#pragma omp simd
      for (std::int64_t j = 0; j < c; ++j) yr[j] = wp[j] * (xr[j] * rs);
    }
  });
}

void RmsNormBackward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                     Tensor* dx, Tensor* dw) {
  std::int64_t n = 0;
  const std::int64_t c = CheckShapes(x, w, rstd, &n);
  CheckF32Shape(dy, x.shape(), "RmsNorm dy");
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* rp = rstd.f32();
  const float* gp = dy.f32();
  if (dx != nullptr) {
    CheckF32Shape(*dx, x.shape(), "RmsNorm dx");
    float* dxp = dx->f32();
    cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = xp + r * c;
        const float* gr = gp + r * c;
        float* dr = dxp + r * c;
        double dot = 0.0;  // sum_j w_j dy_j x_j
#pragma omp simd reduction(+ : dot)
        for (std::int64_t j = 0; j < c; ++j) dot += static_cast<double>(wp[j] * gr[j]) * xr[j];
        const float rs = rp[r];
        const float coef =
            static_cast<float>(dot / static_cast<double>(c)) * rs * rs * rs;
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dr[j] += rs * (wp[j] * gr[j]) - coef * xr[j];
      }
    });
  }
  if (dw != nullptr) {
    CheckF32Shape(*dw, w.shape(), "RmsNorm dw");
    AccumulateColumnSums(
        n, c,
        [&](std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc) {
          const float* xr = xp + r * c;
          const float* gr = gp + r * c;
          const float rs = rp[r];
          for (std::int64_t j = c0; j < c1; ++j)
            acc[j - c0] += static_cast<double>(gr[j]) * (xr[j] * rs);
        },
        dw->f32());
  }
}

}  // namespace radlads::ops
