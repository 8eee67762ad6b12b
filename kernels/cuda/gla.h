// CUDA GLA recurrence (RAD-RWKV6 token mixer): the device twin of the CPU op kernels/ops/gla.h,
// with exactly its semantics and layouts.
//
// Per batch b and head h, with the fp32 state S in R^{K x V} (key-major, [B, H, K, V]):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * r_t),    t = 1..T,
//   S_0 = h0 (zeros when h0 == nullptr), final state hT = S_T.
// The output reads the UPDATED state; there is no bonus. g is the natural-log decay, <= 0
// (RAD-RWKV6 passes max(-exp(d), -5)); not checked per element.
//
// Layouts (contiguous, row-major): r, k, g [B,T,H,K]; v, o [B,T,H,V]; h0, hT, dhT, dh0
// [B,H,K,V] fp32. Element (b,t,h,c) of a [B,T,H,C] array is at ((b*T + t)*H + h)*C + c.
// dtypes: r, k, v, g, o, d_o and the gradients dr, dk, dv, dg are bf16 (the contract) or fp32
// (recurrent algorithm only, for exact comparisons); states and all arithmetic are fp32.
// Sizes: K and V each in {32, 64, 128}; any T >= 0 (odd T fine), any B*H >= 1
// (gla_plan::Validate; a violation aborts with the message).
//
// Backward: gradients of L = sum(o * d_o) + sum(hT * dhT); ACCUMULATES (+=) into dr, dk, dv, dg
// and, when dh0 != nullptr, dh0 (for bf16 gradients: read, add in fp32, round once). dhT may be
// nullptr (zeros), h0 may be nullptr (zeros). The backward needs a device workspace of
// gla_plan::BackwardWorkspaceBytes(shape, algo) bytes (fp32 state snapshots every 16 tokens);
// passing less aborts. The forward needs none.
//
// Algorithms (gla_recurrent.cu, gla_chunked.cu; see there for the details):
//   kRecurrent: one thread per state column (forward; o and the backward's dv, dh0) or row
//               (the backward's dr, dk, dg), fp32 registers, token by token. The GPU
//               reference that the chunked kernels are tested against, and the fallback.
//   kChunked  : 16-token chunks; state products and intra-chunk products on tensor cores
//               (TF32 WMMA, fp32 accumulation), the decay-weighted intra-chunk terms
//               element-wise in fp32. Every exponent is <= 0 for any g <= 0.
// Deterministic: no atomics; every output element is written by one thread in a fixed order.
// Stream-ordered on `stream`; no host synchronisation, no allocation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/gla_plan.h"

namespace radlads::cuda {

template <class T>
struct GlaForwardArgsT {
  GlaShape shape;
  float scale = 1.0f;  // multiplies r (RAD-RWKV6: K^-1/2)
  const T* r = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* g = nullptr;
  const float* h0 = nullptr;  // nullable: zeros
  T* o = nullptr;             // written, every element
  float* hT = nullptr;        // nullable: not wanted
};

template <class T>
struct GlaBackwardArgsT {
  GlaShape shape;
  float scale = 1.0f;
  const T* r = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* g = nullptr;
  const float* h0 = nullptr;   // nullable: zeros
  const T* d_o = nullptr;
  const float* dhT = nullptr;  // nullable: zeros
  T* dr = nullptr;             // accumulated, [B,T,H,K]
  T* dk = nullptr;
  T* dv = nullptr;             // [B,T,H,V]
  T* dg = nullptr;
  float* dh0 = nullptr;        // nullable: not wanted; accumulated
};

using GlaForwardArgs = GlaForwardArgsT<__nv_bfloat16>;
using GlaBackwardArgs = GlaBackwardArgsT<__nv_bfloat16>;
using GlaForwardArgsF32 = GlaForwardArgsT<float>;
using GlaBackwardArgsF32 = GlaBackwardArgsT<float>;

// bf16 I/O, either algorithm.
void GlaForwardCuda(const GlaForwardArgs& a, GlaAlgo algo, cudaStream_t stream);
void GlaBackwardCuda(const GlaBackwardArgs& a, GlaAlgo algo, void* workspace,
                     std::size_t workspace_bytes, cudaStream_t stream);

// fp32 I/O, recurrent algorithm only (exact comparisons against the CPU op).
void GlaForwardCuda(const GlaForwardArgsF32& a, cudaStream_t stream);
void GlaBackwardCuda(const GlaBackwardArgsF32& a, void* workspace, std::size_t workspace_bytes,
                     cudaStream_t stream);

}  // namespace radlads::cuda
