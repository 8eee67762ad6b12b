// The frozen Qwen2 teacher's causal grouped-query softmax attention on the GPU, forward only
// (the teacher is frozen; only `radlads-model pretrain`, which trains a teacher from scratch on
// the CPU, ever differentiates through attention). Same semantics and layouts as the CPU op
// kernels/ops/attention.h, in bf16:
//
//   o[b,t,h,:] = sum_{s<=t} softmax_s(scale * q[b,t,h,:] . k[b,s,g,:]) v[b,s,g,:],  g = h / (H/Hkv)
//   lse[b,h,t] = log sum_{s<=t} exp(scale * q[b,t,h,:] . k[b,s,g,:])   (natural log)
//
//   q, o : [B, T, H,   D]  bf16, row-major contiguous (a projection's [B, T, H*D])
//   k, v : [B, T, Hkv, D]  bf16; H % Hkv == 0, kv heads shared by groups of H/Hkv query heads
//                          (transformers' repeat_kv order), never expanded
//   lse  : [B, H, T]       fp32, written only when lse != nullptr (the teacher passes nullptr)
// q and k are the RoPE-rotated projections (pipeline/attention_mixer.cpp applies
// ops::RopeForward before attention); scale is 1/sqrt(D) there. The shape rules are in
// kernels/cuda/attention_plan.h (AttentionShapeError); a rejected shape or a misaligned pointer
// is a programming error and aborts with a message.
//
// Both kernels OVERWRITE o (every element) and lse; outputs must not alias inputs. Arithmetic is
// fp32 on bf16 inputs; o is rounded to bf16 once, at the end. Neither uses atomics: results are
// bit-identical run to run. Both enqueue on `stream` and return without synchronising.
//
// AttentionForwardFlash: FlashAttention-2-style tiles (64 queries x 64 keys, 4 warps), QK^T and
// PV on tensor cores (mma.sync m16n8k16 bf16 -> fp32), online softmax in fp32 registers (base-2
// exponent), probabilities rounded to bf16 for the PV product (their fp32 sum normalises),
// causal tiles skipped. D in {32, 64, 128}; q, k, v, o must be 16-byte aligned. Details in
// attention.cu.
// AttentionForwardSimple: the GPU reference and fallback: one block per (b, h, query row), two
// passes over the keys (max, then exp-sum and P V) in fp32 on CUDA cores, no tiling. Any D up to
// 256, no alignment requirement.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/attention_plan.h"

namespace radlads::cuda {

void AttentionForwardFlash(const AttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                           const __nv_bfloat16* v, float scale, __nv_bfloat16* o, float* lse,
                           cudaStream_t stream);

void AttentionForwardSimple(const AttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, float scale, __nv_bfloat16* o, float* lse,
                            cudaStream_t stream);

}  // namespace radlads::cuda
