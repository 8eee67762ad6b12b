// GroupNorm over the channels of each row, as torch.nn.GroupNorm on [N, C] with `groups`
// contiguous groups of C/G channels. RWKV-7's ln_x uses G = H (one group per head, the group
// is the head's D channels) and eps = D * 1e-5.
//   xhat = (x - mean_g) * rstd_g,  rstd_g = 1 / sqrt(var_g + eps)  (biased variance)
//   y    = xhat * w + b
// Statistics are two-pass (mean, then mean of squared deviations) with fp64 sums, stored fp32.
//
//   x     [N, C]  (any rank; N = product of the leading dims; C % groups == 0)
//   w     [C]     affine weight
//   b     [C]     affine bias, or an undefined Tensor for none
//   y     [N, C]  output (may alias x only if the backward is not needed)
//   mean  [N, G]  per-(row, group) mean, saved for the backward
//   rstd  [N, G]  per-(row, group) 1/sqrt(var + eps), saved for the backward
// Backward (ACCUMULATES; null skips), with g = dy * w and means over the group's channels:
//   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dw += sum over rows of dy * xhat;  db += sum over rows of dy
// Deterministic and independent of the thread count (rows for y/dx, columns for dw/db).
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace radlads::ops {

void GroupNormForward(const Tensor& x, const Tensor& w, const Tensor& b, std::int64_t groups,
                      float eps, Tensor& y, Tensor& mean, Tensor& rstd);

void GroupNormBackward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dw, Tensor* db);

}  // namespace radlads::ops
