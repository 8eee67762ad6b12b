// Elementwise activations on the CPU: sigmoid, tanh, SiLU, softplus, and SwiGLU's
// silu(g) * u, forward and backward.
//
// All tensors are F32 CPU tensors of one shape (any rank); forward outputs may alias the input
// (in-place), backward ACCUMULATES into dx (docs/kernels.md). Sigmoid and tanh backward take the
// forward OUTPUT y (their derivatives are functions of y); SiLU and softplus take the input x.
// Numerics (fp32 throughout, no overflow for any finite x, no NaN), with the vectorised exp,
// expm1 and log1p of kernels/cpu/vec_math.h (a few ulp; the loops run in SIMD):
//   sigmoid(x)  = 1 / (1 + exp(-x))          -> 0 below about -89 (exp(-x) = inf), 1 above ~17
//   tanh(x)     from expm1(2|x|)           -> exactly +-1 beyond about +-9
//   silu(x)     = x * sigmoid(x)
//   softplus(x) = max(x, 0) + log1p(exp(-|x|)) (PyTorch returns x itself for x > 20; the two
//                 differ by < 3e-9 there, below fp32 resolution)
// Deterministic: pure elementwise, split over elements.
#pragma once

#include "kernels/cpu/vec_math.h"
#include "kernels/tensor.h"

namespace radlads::ops {

// Scalar forms, shared with the ops that fuse an activation (LoRA).
// They vectorise inside `#pragma omp simd` loops.
inline float SigmoidScalar(float x) { return cpu::Sigmoid(x); }
inline float SiluScalar(float x) { return cpu::Silu(x); }
inline float TanhScalar(float x) { return cpu::Tanh(x); }
// d silu / dx = s * (1 + x * (1 - s)), s = sigmoid(x).
inline float SiluGradScalar(float x) {
  const float s = SigmoidScalar(x);
  return s * (1.0f + x * (1.0f - s));
}
inline float SoftplusScalar(float x) { return cpu::Softplus(x); }

// y = sigmoid(x); dx += dy * y * (1 - y).
void SigmoidForward(const Tensor& x, Tensor& y);
void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor& dx);

// y = tanh(x); dx += dy * (1 - y^2).
void TanhForward(const Tensor& x, Tensor& y);
void TanhBackward(const Tensor& y, const Tensor& dy, Tensor& dx);

// y = x * sigmoid(x); dx += dy * silu'(x).
void SiluForward(const Tensor& x, Tensor& y);
void SiluBackward(const Tensor& x, const Tensor& dy, Tensor& dx);

// y = softplus(x) = log(1 + exp(x)); dx += dy * sigmoid(x).
void SoftplusForward(const Tensor& x, Tensor& y);
void SoftplusBackward(const Tensor& x, const Tensor& dy, Tensor& dx);

// SwiGLU gate: y = silu(g) * u, with g = x W_gate^T and u = x W_up^T of the MLP ([N, F] each).
// g, u, y: one shape; y may alias g or u.
void SwiGluForward(const Tensor& g, const Tensor& u, Tensor& y);
// dg += dy * u * silu'(g); du += dy * silu(g). Null skips that gradient.
void SwiGluBackward(const Tensor& g, const Tensor& u, const Tensor& dy, Tensor* dg, Tensor* du);

}  // namespace radlads::ops
