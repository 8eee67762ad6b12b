// Linear layer on the CPU with PyTorch's weight layout: y = x W^T + b.
//
//   x  [N, in]   input (any rank; N = product of the leading dims)
//   W  [out, in] weight, as nn.Linear / safetensors store it
//   b  [out]     bias, or an undefined Tensor for none
//   y  [N, out]  output (must not alias x)
// Backward (ACCUMULATES; a null pointer skips that gradient, saving its GEMM):
//   dx [N, in]   += dy W
//   dW [out, in] += dy^T x
//   db [out]     += sum over rows of dy
// The GEMMs go through Gemm (OpenBLAS, beta = 1 to accumulate): deterministic for a fixed
// thread count. db is summed per column in fp64, independent of the thread count.
#pragma once

#include "kernels/tensor.h"

namespace radlads::ops {

void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);

void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db);

}  // namespace radlads::ops
