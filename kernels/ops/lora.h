// Low-rank ("LoRA") paths of the RWKV mixers: y = act(x W1) W2 (+ bias), with the factors
// stored [in, out] as the released checkpoints do (w1/w2, a1/a2, v1/v2, g1/g2, time_maa_w*,
// time_decay_w*). Used as:
//   decay       d = w0 + tanh(x W1) W2              act kTanh, bias w0
//   ICLR        a = sigmoid(a0 + x A1 A2)           act kNone, bias a0 (caller applies sigmoid)
//   value mix   nu = sigmoid(v0 + x V1 V2)          act kNone, bias v0
//   gate        g = sigmoid(x G1) G2                act kSigmoid, no bias
//   tokenshift  m_k = tanh(x T1)[:, k*r:(k+1)*r] T2[k], k < 5   act kTanh, K = 5 blocks
//
//   x     [N, in]          input (any rank; N = product of the leading dims)
//   w1    [in, K*r]        first factor
//   w2    [r, out] (K = 1) or [K, r, out]: block k maps h's columns k*r .. k*r+r-1
//   bias  [out] or an undefined Tensor (only with K = 1)
//   h     [N, K*r]         act(x W1), written by the forward and needed by the backward
//   y     [N, out] (K = 1, same leading dims as x) or [K, N, out]
// Backward (ACCUMULATES; null skips; only the GEMMs that a requested gradient needs run):
//   dh = dy W2^T, dz = dh * act'(h) (tanh: 1-h^2, sigmoid: h(1-h), none: 1)
//   dx += dz W1^T;  dW1 += x^T dz;  dW2[k] += h_k^T dy_k;  dbias += sum over rows of dy
// GEMMs through Gemm (deterministic for a fixed thread count); nothing may alias.
#pragma once

#include "kernels/tensor.h"

namespace radlads::ops {

enum class LoraActivation { kNone, kTanh, kSigmoid };

void LoraForward(const Tensor& x, const Tensor& w1, const Tensor& w2, const Tensor& bias,
                 LoraActivation act, Tensor& h, Tensor& y);

void LoraBackward(const Tensor& x, const Tensor& w1, const Tensor& w2, LoraActivation act,
                  const Tensor& h, const Tensor& dy, Tensor* dx, Tensor* dw1, Tensor* dw2,
                  Tensor* dbias);

}  // namespace radlads::ops
