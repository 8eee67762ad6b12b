// Causal softmax attention with grouped-query attention (GQA): the Qwen2 teacher's attention
// (docs/spec.md §3.2), forward and backward, fp32 on the CPU.
//
//   o[b,t,h,:] = sum_{s<=t} softmax_s(scale * q[b,t,h,:] . k[b,s,g,:]) v[b,s,g,:],
//   g = h / (H / Hkv)   (query head h reads kv head g, as transformers' repeat_kv)
//
// Shapes (row-major, contiguous; [B,T,H,D] is the same buffer as a projection's [B,T,H*D], so
// callers pass `x.View({B, T, H, D})`):
//   q, o, dq, d_o : [B, T, H,   D]
//   k, v, dk, dv  : [B, T, Hkv, D]      H % Hkv == 0; k/v are never expanded to H heads
//   lse           : [B, H, T]           natural-log log-sum-exp of the scaled, masked logits of
//                                       each query row: lse = log sum_{s<=t} exp(scale q.k_s)
// scale is usually 1/sqrt(D). All tensors are F32 on the CPU; outputs must not alias inputs.
//
// Algorithm: FlashAttention-style tiles (query block x key block) with an online softmax in fp32,
// causal tiles skipped, never a T x T matrix. The backward recomputes the probabilities from lse
// (FlashAttention-2: D_i = rowsum(dO * O), dS = P * (dP - D)). See attention.cpp for FLOPs and
// block sizes.
//
// Conventions (docs/kernels.md): the forward writes o (and lse when given); the backward ADDS
// into dq, dk and dv. dk/dv are already summed over each kv head's query group. Each backward
// call computes its whole contribution in scratch and adds it to every output element once, so
// calling it twice on zeroed buffers gives exactly twice one call.
// Threading: cpu::ParallelFor with static ranges and no atomics; every output element is
// computed by one code path in a fixed order, so results are bit-identical run to run and do
// not depend on the thread count.
#pragma once

#include "kernels/tensor.h"

namespace radlads {

// Writes o; writes lse when lse != nullptr (training needs it for the backward; inference
// passes nullptr).
void AttentionForward(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o,
                      Tensor* lse);

// Accumulates the gradients of sum(o * d_o) into dq, dk, dv. o and lse are the forward's
// outputs for the same q, k, v and scale.
void AttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& o, const Tensor& lse, const Tensor& d_o, Tensor& dq,
                       Tensor& dk, Tensor& dv);

}  // namespace radlads
