#include "kernels/ops/groupnorm.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

struct Dims {
  std::int64_t n, c, groups, gs;  // rows, channels, groups, channels per group
};

Dims CheckShapes(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                 const char* what) {
  RADLADS_CHECK(w.rank() == 1) << what << " w: want [C], got " << w.DebugString();
  const std::int64_t c = w.dim(0);
  const std::int64_t n = RowsOf(x, c, what);
  CheckF32Shape(w, {c}, what);
  RADLADS_CHECK(mean.rank() >= 1) << what << " mean: want [N, G], got " << mean.DebugString();
  const std::int64_t groups = mean.dim(-1);
  RADLADS_CHECK(groups > 0 && c % groups == 0)
      << what << ": " << c << " channels do not split into " << groups << " groups";
  RADLADS_CHECK(RowsOf(mean, groups, what) == n && RowsOf(rstd, groups, what) == n)
      << what << ": mean " << mean.DebugString() << " / rstd " << rstd.DebugString()
      << " for x " << x.DebugString();
  return Dims{n, c, groups, c / groups};
}

}  // namespace

void GroupNormForward(const Tensor& x, const Tensor& w, const Tensor& b, std::int64_t groups,
                      float eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  RADLADS_CHECK(mean.defined() && mean.dim(-1) == groups)
      << "GroupNormForward: mean " << (mean.defined() ? mean.DebugString() : "undefined")
      << " for " << groups << " groups";
  const Dims s = CheckShapes(x, w, mean, rstd, "GroupNormForward");
  CheckF32Shape(y, x.shape(), "GroupNormForward y");
  if (b.defined()) CheckF32Shape(b, w.shape(), "GroupNormForward b");
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = b.defined() ? b.f32() : nullptr;
  float* yp = y.f32();
  float* mp = mean.f32();
  float* rp = rstd.f32();
  const std::int64_t gs = s.gs;
  cpu::ParallelFor(s.n, RowGrain(s.c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      for (std::int64_t g = 0; g < s.groups; ++g) {
        const std::int64_t o = r * s.c + g * gs;
        const float* xg = xp + o;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (std::int64_t i = 0; i < gs; ++i) sum += xg[i];
        const auto mu = static_cast<float>(sum / static_cast<double>(gs));
        double sq = 0.0;
#pragma omp simd reduction(+ : sq)
        for (std::int64_t i = 0; i < gs; ++i) {
          const double dv = static_cast<double>(xg[i]) - mu;
          sq += dv * dv;
        }
        const float rs = 1.0f / std::sqrt(static_cast<float>(sq / static_cast<double>(gs)) + eps);
        mp[r * s.groups + g] = mu;
        rp[r * s.groups + g] = rs;
        const float* wg = wp + g * gs;
        float* yg = yp + o;
        if (bp != nullptr) {
          const float* bg = bp + g * gs;
#pragma omp simd
          for (std::int64_t i = 0; i < gs; ++i) yg[i] = (xg[i] - mu) * rs * wg[i] + bg[i];
        } else {
#pragma omp simd
          for (std::int64_t i = 0; i < gs; ++i) yg[i] = (xg[i] - mu) * rs * wg[i];
        }
      }
    }
  });
}

void GroupNormBackward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dw, Tensor* db) {
  const Dims s = CheckShapes(x, w, mean, rstd, "GroupNormBackward");
  CheckF32Shape(dy, x.shape(), "GroupNormBackward dy");
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* mp = mean.f32();
  const float* rp = rstd.f32();
  const float* gp = dy.f32();
  const std::int64_t gs = s.gs;
  if (dx != nullptr) {
    CheckF32Shape(*dx, x.shape(), "GroupNormBackward dx");
    float* dxp = dx->f32();
    cpu::ParallelFor(s.n, RowGrain(s.c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        for (std::int64_t g = 0; g < s.groups; ++g) {
          const std::int64_t o = r * s.c + g * gs;
          const float mu = mp[r * s.groups + g], rs = rp[r * s.groups + g];
          const float* xg = xp + o;
          const float* dyg = gp + o;
          const float* wg = wp + g * gs;
          double sum_g = 0.0, sum_gx = 0.0;  // sums of dy*w and dy*w*xhat over the group
#pragma omp simd reduction(+ : sum_g, sum_gx)
          for (std::int64_t i = 0; i < gs; ++i) {
            const float gw = dyg[i] * wg[i];
            sum_g += gw;
            sum_gx += static_cast<double>(gw) * ((xg[i] - mu) * rs);
          }
          const auto mean_g = static_cast<float>(sum_g / static_cast<double>(gs));
          const auto mean_gx = static_cast<float>(sum_gx / static_cast<double>(gs));
          float* dxg = dxp + o;
#pragma omp simd
          for (std::int64_t i = 0; i < gs; ++i)
            dxg[i] += rs * (dyg[i] * wg[i] - mean_g - (xg[i] - mu) * rs * mean_gx);
        }
      }
    });
  }
  if (dw != nullptr) {
    CheckF32Shape(*dw, w.shape(), "GroupNormBackward dw");
    AccumulateColumnSums(
        s.n, s.c,
        [&](std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc) {
          // The groups overlapping columns [c0, c1), each with its own mean and rstd.
          for (std::int64_t g = c0 / gs; g * gs < c1; ++g) {
            const std::int64_t j0 = std::max(c0, g * gs), j1 = std::min(c1, (g + 1) * gs);
            const float mu = mp[r * s.groups + g], rs = rp[r * s.groups + g];
            const float* xr = xp + r * s.c;
            const float* gr = gp + r * s.c;
#pragma omp simd
            for (std::int64_t j = j0; j < j1; ++j)
              acc[j - c0] += static_cast<double>(gr[j]) * ((xr[j] - mu) * rs);
          }
        },
        dw->f32());
  }
  if (db != nullptr) {
    CheckF32Shape(*db, w.shape(), "GroupNormBackward db");
    SumRows(dy.View({s.n, s.c}), *db);
  }
}

}  // namespace radlads::ops
