// RMSNorm on the CPU (Qwen2RMSNorm): y = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps),
// per row of C channels, in fp32 with an fp64 sum of squares.
//
//   x    [N, C]  input (any rank; N = product of the leading dims)
//   w    [C]     weight
//   y    [N, C]  output (may alias x when no backward needs x)
//   rstd [N]     per-row 1/sqrt(mean(x^2) + eps), saved for the backward
// Backward (ACCUMULATES; null skips):
//   dx += rstd * (w*dy - x * rstd^2 * mean_c(w*dy*x))
//   dw += sum over rows of dy * x * rstd
// Deterministic and independent of the thread count (rows for y/dx, columns for dw).
#pragma once

#include "kernels/tensor.h"

namespace radlads::ops {

void RmsNormForward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);

void RmsNormBackward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                     Tensor* dx, Tensor* dw);

}  // namespace radlads::ops
