// Fused LM head + loss on the device: the ops of kernels/ops/head_loss.h (FusedKl,
// FusedKlTeacherLogits, FusedCrossEntropy) with the same losses, layouts, gradient scaling and
// results, tiled over rows AND the vocabulary so that no full-vocabulary fp32 row exists.
//
// Losses (natural log, temperature 1, p = softmax(z), z = x W^T), as on the CPU:
//   KL  row n: KL(p_t || p_s) = sum_v p_t,v ((z_t,v - z_s,v) - (lse_t - lse_s))
//   CE  row n: lse_s - z_s[target_n]; rows with target -1 are ignored
//   dKL/dz_s = p_s - p_t,   dCE/dz_s = p_s - onehot(target)
//   dz = grad_scale * (p_s - p_t) + ce_grad_scale * (p_s - onehot)   (KL; CE term where target >= 0)
//   dz = grad_scale * (p_s - onehot)                                  (CE; 0 for ignored rows)
//   dx[rows] += dz W,   dW += dz^T x[rows]
//
// Algorithm (kernels/cuda/head_loss_plan.h gives the tiling and the workspace), per row block:
//   pass 1, per vocabulary chunk: z_s (and z_t) = x W_chunk^T by cuBLASLt into fp32 scratch; one
//     block per row merges the chunk's (max, sum exp, first argmax) into the row's running
//     statistics (online softmax; sums of a chunk in fp32, across chunks in double) and picks up
//     the target logit;
//   pass 2 (KL, or any gradient), per chunk: the logits again (recomputed by the GEMMs when the
//     vocabulary spans several chunks), then per row the KL terms (summed in double) and dz
//     (bf16 scratch); then dx[rows] += dz W_chunk and dW_chunk += dz^T x[rows] (cuBLASLt, fp32
//     accumulate, beta = 1);
//   per row block: one block adds the rows' terms to the result in a fixed order.
// The forward-only CE skips pass 2. GEMM FLOPs per row block and chunk: logits 2 m Vc C (x2 with
// the teacher head, x2 again when recomputed), dx and dW 2 m Vc C each.
//
// Precision: x, W (both heads) are bf16; logits fp32 (fp32 accumulation); softmax terms fp32
// (expf), per-row sums and KL in double; dz is rounded to bf16 for the backward GEMMs (relative
// error ~2^-9 per element); dx and dW accumulate in fp32.
// Determinism: no floating-point atomics; every reduction has a fixed order and cuBLASLt's
// algorithm per shape is cached, so the same call on the same device gives the same bits. A
// different tiling is a different (fp32-close) computation.
//
// Arguments: device pointers, row-major. x_s bf16 [N, C_s], w_s bf16 [V, C_s] (PyTorch Linear
// layout, no bias); x_t bf16 [N, C_t], w_t bf16 [V, C_t]; z_t fp32 [N, V]; targets int32 [N]
// (values in [-1, V); -1 = ignore) or null (KL only). grads.dx fp32 [N, C_s] and grads.dw fp32
// [V, C_s] are ACCUMULATED into (+=); either may be null, both null = forward only (no dz, no
// backward GEMMs). `result` is a device pointer; it is overwritten (zeroed first). The workspace
// (HeadLossWorkspaceBytes for the same shape, chunks and gradient request) is caller-owned
// device memory, unused after the stream reaches the end of the call.
// Targets outside [-1, V) are not checked on the host (no synchronisation): such rows are
// treated as ignored and counted in invalid_targets; a caller should treat a non-zero count as an
// error (the CPU op aborts).
// Stream: everything is enqueued on `stream` (cuBLASLt with its per-stream workspace,
// kernels/cuda/gemm.h); nothing synchronises. Bad shapes or a short workspace abort with a
// message (CheckHeadLoss).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/head_loss_plan.h"

namespace radlads::cuda {

struct HeadLossCudaOptions {
  HeadLossChunks chunks;      // rows per block (0 = all N) and the vocabulary chunk
  float grad_scale = 1.0f;    // as HeadLossOptions::grad_scale (e.g. 1/N for a token mean)
  float ce_grad_scale = 0.0f; // KL only, needs targets: + ce_grad_scale * (student CE sum)
};

struct HeadGradsCuda {
  float* dx = nullptr;  // fp32 [N, C_s]: += d(objective)/dx
  float* dw = nullptr;  // fp32 [V, C_s]: += d(objective)/dW
};

// KlResult / CeResult of kernels/ops/head_loss.h, on the device.
struct HeadKlSums {
  double kl_sum;              // sum over rows of KL(p_t || p_s), nats
  double ce_sum;              // student CE over rows with a target in [0, V)
  long long top1_agree;       // rows where argmax z_t == argmax z_s (first index on ties)
  long long ce_count;         // rows with a target in [0, V)
  long long invalid_targets;  // targets outside [-1, V) (should be 0)
};

struct HeadCeSums {
  double loss_sum;            // sum over non-ignored rows of -log p(target)
  long long count;            // non-ignored rows
  long long correct;          // non-ignored rows with argmax z == target
  long long invalid_targets;  // targets outside [-1, V) (counted as ignored)
};

// Workspace bytes for one call (0 when N == 0). c_t is the teacher width (kKl only).
std::size_t HeadLossWorkspaceBytes(HeadLossKind kind, std::int64_t n, std::int64_t v,
                                   std::int64_t c_s, std::int64_t c_t, bool grad,
                                   const HeadLossChunks& chunks);

void HeadKl(const __nv_bfloat16* x_s, const __nv_bfloat16* w_s, std::int64_t c_s,
            const __nv_bfloat16* x_t, const __nv_bfloat16* w_t, std::int64_t c_t, std::int64_t n,
            std::int64_t v, const std::int32_t* targets, const HeadGradsCuda& grads,
            const HeadLossCudaOptions& opt, void* workspace, std::size_t workspace_bytes,
            HeadKlSums* result, cudaStream_t stream);

void HeadKlTeacherLogits(const __nv_bfloat16* x_s, const __nv_bfloat16* w_s, std::int64_t c_s,
                         const float* z_t, std::int64_t n, std::int64_t v,
                         const std::int32_t* targets, const HeadGradsCuda& grads,
                         const HeadLossCudaOptions& opt, void* workspace,
                         std::size_t workspace_bytes, HeadKlSums* result, cudaStream_t stream);

// targets are required.
void HeadCrossEntropy(const __nv_bfloat16* x, const __nv_bfloat16* w, std::int64_t c,
                      std::int64_t n, std::int64_t v, const std::int32_t* targets,
                      const HeadGradsCuda& grads, const HeadLossCudaOptions& opt, void* workspace,
                      std::size_t workspace_bytes, HeadCeSums* result, cudaStream_t stream);

}  // namespace radlads::cuda
