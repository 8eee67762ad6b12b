#include "kernels/ops/activation.h"

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

constexpr std::int64_t kGrain = 1 << 14;  // elements per range (transcendentals: ~10 ns each)

void CheckSame(const Tensor& ref, const Tensor& t, const char* name) {
  CheckF32Shape(t, ref.shape(), name);
}

// y[i] = f(x[i]).
template <typename F>
void Unary(const Tensor& x, Tensor& y, const char* name, F f) {
  CheckSame(x, x, name);
  CheckSame(x, y, name);
  const float* xp = x.f32();
  float* yp = y.f32();
  cpu::ParallelFor(x.numel(), kGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = f(xp[i]);
  });
}

// dx[i] += dy[i] * f(v[i]), v being the saved input or output.
template <typename F>
void UnaryBackward(const Tensor& v, const Tensor& dy, Tensor& dx, const char* name, F f) {
  CheckSame(v, v, name);
  CheckSame(v, dy, name);
  CheckSame(v, dx, name);
  const float* vp = v.f32();
  const float* gp = dy.f32();
  float* dxp = dx.f32();
  cpu::ParallelFor(v.numel(), kGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) dxp[i] += gp[i] * f(vp[i]);
  });
}

}  // namespace

void SigmoidForward(const Tensor& x, Tensor& y) {
  Unary(x, y, "SigmoidForward", [](float v) { return SigmoidScalar(v); });
}
void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  UnaryBackward(y, dy, dx, "SigmoidBackward", [](float s) { return s * (1.0f - s); });
}

void TanhForward(const Tensor& x, Tensor& y) {
  Unary(x, y, "TanhForward", [](float v) { return TanhScalar(v); });
}
void TanhBackward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  UnaryBackward(y, dy, dx, "TanhBackward", [](float t) { return 1.0f - t * t; });
}

void SiluForward(const Tensor& x, Tensor& y) {
  Unary(x, y, "SiluForward", [](float v) { return SiluScalar(v); });
}
void SiluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  UnaryBackward(x, dy, dx, "SiluBackward", [](float v) { return SiluGradScalar(v); });
}

void SoftplusForward(const Tensor& x, Tensor& y) {
  Unary(x, y, "SoftplusForward", [](float v) { return SoftplusScalar(v); });
}
void SoftplusBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  UnaryBackward(x, dy, dx, "SoftplusBackward", [](float v) { return SigmoidScalar(v); });
}

void SwiGluForward(const Tensor& g, const Tensor& u, Tensor& y) {
  CheckSame(g, g, "SwiGluForward g");
  CheckSame(g, u, "SwiGluForward u");
  CheckSame(g, y, "SwiGluForward y");
  const float* gp = g.f32();
  const float* up = u.f32();
  float* yp = y.f32();
  cpu::ParallelFor(g.numel(), kGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = SiluScalar(gp[i]) * up[i];
  });
}

void SwiGluBackward(const Tensor& g, const Tensor& u, const Tensor& dy, Tensor* dg, Tensor* du) {
  CheckSame(g, g, "SwiGluBackward g");
  CheckSame(g, u, "SwiGluBackward u");
  CheckSame(g, dy, "SwiGluBackward dy");
  if (dg != nullptr) CheckSame(g, *dg, "SwiGluBackward dg");
  if (du != nullptr) CheckSame(g, *du, "SwiGluBackward du");
  const float* gp = g.f32();
  const float* up = u.f32();
  const float* dyp = dy.f32();
  float* dgp = dg != nullptr ? dg->f32() : nullptr;
  float* dup = du != nullptr ? du->f32() : nullptr;
  // One loop per combination, so that each vectorises (a null check inside the loop kept GCC
  // from vectorising it at all: scalar sigmoids, 5% of a distill step).
  cpu::ParallelFor(g.numel(), kGrain, [&](std::int64_t i0, std::int64_t i1) {
    const float* __restrict x = gp;
    const float* __restrict v = up;
    const float* __restrict d = dyp;
    if (dgp != nullptr && dup != nullptr) {
      float* __restrict a = dgp;
      float* __restrict b = dup;
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) {
        const float s = SigmoidScalar(x[i]);
        a[i] += d[i] * v[i] * (s * (1.0f + x[i] * (1.0f - s)));
        b[i] += d[i] * (x[i] * s);
      }
    } else if (dgp != nullptr) {
      float* __restrict a = dgp;
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) {
        const float s = SigmoidScalar(x[i]);
        a[i] += d[i] * v[i] * (s * (1.0f + x[i] * (1.0f - s)));
      }
    } else if (dup != nullptr) {
      float* __restrict b = dup;
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) b[i] += d[i] * (x[i] * SigmoidScalar(x[i]));
    }
  });
}

}  // namespace radlads::ops
