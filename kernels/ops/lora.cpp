#include "kernels/ops/lora.h"

#include <cmath>
#include <cstring>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

constexpr std::int64_t kElemGrain = 1 << 14;

struct Dims {
  std::int64_t n, in, k, r, out;  // rows, input width, blocks, rank, output width
};

Dims CheckShapes(const Tensor& x, const Tensor& w1, const Tensor& w2, const Tensor& h,
                 const Tensor& y, const char* what) {
  RADLADS_CHECK(w1.rank() == 2 && (w2.rank() == 2 || w2.rank() == 3))
      << what << ": want w1 [in, K*r] and w2 [r, out] or [K, r, out], got " << w1.DebugString()
      << " and " << w2.DebugString();
  Dims d{};
  d.k = w2.rank() == 3 ? w2.dim(0) : 1;
  d.r = w2.dim(-2);
  d.out = w2.dim(-1);
  d.in = w1.dim(0);
  CheckF32Shape(w1, {d.in, d.k * d.r}, what);
  CheckF32Shape(w2, w2.shape(), what);
  d.n = RowsOf(x, d.in, what);
  RADLADS_CHECK(RowsOf(h, d.k * d.r, what) == d.n)
      << what << ": h " << h.DebugString() << " for x " << x.DebugString();
  if (d.k == 1) {
    RADLADS_CHECK(RowsOf(y, d.out, what) == d.n)
        << what << ": y " << y.DebugString() << " for x " << x.DebugString();
  } else {
    CheckF32Shape(y, {d.k, d.n, d.out}, what);
  }
  return d;
}

// v[i] = act(v[i]).
void ApplyActivation(LoraActivation act, float* v, std::int64_t count) {
  if (act == LoraActivation::kNone) return;
  cpu::ParallelFor(count, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
    if (act == LoraActivation::kTanh) {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) v[i] = TanhScalar(v[i]);
    } else {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) v[i] = SigmoidScalar(v[i]);
    }
  });
}

// dz[i] *= act'(.) expressed through the saved output h.
void ApplyActivationGrad(LoraActivation act, const float* h, float* dz, std::int64_t count) {
  if (act == LoraActivation::kNone) return;
  cpu::ParallelFor(count, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
    if (act == LoraActivation::kTanh) {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) dz[i] *= 1.0f - h[i] * h[i];
    } else {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) dz[i] *= h[i] * (1.0f - h[i]);
    }
  });
}

}  // namespace

void LoraForward(const Tensor& x, const Tensor& w1, const Tensor& w2, const Tensor& bias,
                 LoraActivation act, Tensor& h, Tensor& y) {
  const Dims d = CheckShapes(x, w1, w2, h, y, "LoraForward");
  const std::int64_t kr = d.k * d.r;
  float* hp = h.f32();
  float* yp = y.f32();
  Gemm(false, false, d.n, kr, d.in, 1.0f, x.f32(), d.in, w1.f32(), kr, 0.0f, hp, kr);
  ApplyActivation(act, hp, d.n * kr);
  float beta = 0.0f;
  if (bias.defined()) {
    RADLADS_CHECK(d.k == 1) << "LoraForward: a bias needs K = 1 block, got " << d.k;
    CheckF32Shape(bias, {d.out}, "LoraForward bias");
    const float* bp = bias.f32();
    cpu::ParallelFor(d.n, RowGrain(d.out), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r)
        std::memcpy(yp + r * d.out, bp, static_cast<std::size_t>(d.out) * sizeof(float));
    });
    beta = 1.0f;
  }
  const float* w2p = w2.f32();
  for (std::int64_t b = 0; b < d.k; ++b)
    Gemm(false, false, d.n, d.out, d.r, 1.0f, hp + b * d.r, kr, w2p + b * d.r * d.out, d.out,
         beta, yp + b * d.n * d.out, d.out);
}

void LoraBackward(const Tensor& x, const Tensor& w1, const Tensor& w2, LoraActivation act,
                  const Tensor& h, const Tensor& dy, Tensor* dx, Tensor* dw1, Tensor* dw2,
                  Tensor* dbias) {
  const Dims d = CheckShapes(x, w1, w2, h, dy, "LoraBackward");
  const std::int64_t kr = d.k * d.r;
  const float* hp = h.f32();
  const float* gp = dy.f32();
  const float* w2p = w2.f32();
  if (dbias != nullptr) {
    RADLADS_CHECK(d.k == 1) << "LoraBackward: dbias needs K = 1 block, got " << d.k;
    CheckF32Shape(*dbias, {d.out}, "LoraBackward dbias");
    SumRows(dy.View({d.n, d.out}), *dbias);
  }
  if (dw2 != nullptr) {
    CheckF32Shape(*dw2, w2.shape(), "LoraBackward dw2");
    float* dw2p = dw2->f32();
    for (std::int64_t b = 0; b < d.k; ++b)
      Gemm(true, false, d.r, d.out, d.n, 1.0f, hp + b * d.r, kr, gp + b * d.n * d.out, d.out,
           1.0f, dw2p + b * d.r * d.out, d.out);
  }
  if (dx == nullptr && dw1 == nullptr) return;
  // dz = (dy W2^T) * act'(h), [N, K*r].
  Tensor dz = Tensor::Empty({d.n, kr});
  float* dzp = dz.f32();
  for (std::int64_t b = 0; b < d.k; ++b)
    Gemm(false, true, d.n, d.r, d.out, 1.0f, gp + b * d.n * d.out, d.out, w2p + b * d.r * d.out,
         d.out, 0.0f, dzp + b * d.r, kr);
  ApplyActivationGrad(act, hp, dzp, d.n * kr);
  if (dw1 != nullptr) {
    CheckF32Shape(*dw1, w1.shape(), "LoraBackward dw1");
    Gemm(true, false, d.in, kr, d.n, 1.0f, x.f32(), d.in, dzp, kr, 1.0f, dw1->f32(), kr);
  }
  if (dx != nullptr) {
    CheckF32Shape(*dx, x.shape(), "LoraBackward dx");
    Gemm(false, true, d.n, d.in, kr, 1.0f, dzp, kr, w1.f32(), kr, 1.0f, dx->f32(), d.in);
  }
}

}  // namespace radlads::ops
