// AdamW step on one fp32 parameter tensor (docs/spec.md §2.6: beta 0.9/0.95, eps 1e-8, weight
// decay 0 by default, bias correction on).
//
// Math, with t the 1-based step, exactly the sequence of torch.optim.AdamW's single-tensor path
// (torch 2.x `_single_tensor_adam` with decoupled weight decay):
//   p <- p * (1 - lr*wd)                       (only when wd != 0; decoupled decay FIRST)
//   m <- lerp(m, g, 1 - b1) = m + (1 - b1) * (g - m)
//   v <- v * b2 + (1 - b2) * g * g
//   bc1 = 1 - b1^t, bc2 = 1 - b2^t             (1 when bias correction is off)
//   p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// i.e. p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p_old) with mhat = m/bc1, vhat = v/bc2.
// DeepSpeed FusedAdam in AdamW mode (adam_w_mode=True, what the RADLADS repo uses) computes
// the same quantity as p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p); the two differ only in
// the fp32 rounding order. Scalars (bc1, bc2, lr/bc1, sqrt(bc2), 1 - lr*wd) are formed in double
// and rounded to fp32 once, as torch does with Python floats; tensor math is fp32 in torch's
// operation order. Agreement with torch is to fp32 rounding, not bitwise (the compiler may fuse
// multiply-adds).
// At t = 1 with bias correction: mhat = g, vhat = g^2, so each parameter moves by
// lr * g / (|g| + eps) ~ lr * sign(g).
//
// Parameters and both moments are fp32 and updated in place; m and v start at zero (the
// caller allocates them with Tensor::Zeros). Elementwise, so deterministic for any threads.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace radlads {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool bias_correction = true;
};

// param, grad, m, v: F32 CPU tensors of one shape. step: the 1-based step number of this
// update (the caller counts steps; the first update is step 1).
void AdamWStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, std::int64_t step,
               const AdamWConfig& cfg);

}  // namespace radlads
