// CUDA optimizer kernels over many fp32 tensors at once: fused multi-tensor AdamW, the global
// gradient norm and clipping. The same math as kernels/ops/adamw.h and kernels/ops/grad_norm.h.
//
// Tables (host side in kernels/cuda/glue_plan.h): `entries` [num_tensors] MultiTensorEntry and
// `chunks` [num_chunks] MultiTensorChunk (BuildMultiTensorChunks, chunks of kMultiTensorChunk
// = the CPU's kGradNormBlock elements), both copied to DEVICE memory by the caller (they only
// change when the parameter set does). One CUDA block per chunk; one launch per call.
//
// AdamWMultiTensor: per element of every tensor, with the fp32 scalars of MakeAdamWScalars
// (formed in double, rounded once) for the tensor's group, in kernels/ops/adamw.cpp's order:
//     g  = grad (* *grad_scale when grad_scale is non-null: the clipped gradient, one multiply)
//     p  = p * keep;  m = lerp(m, g, w1);  v = v * b2 + w2 * g * g
//     p  = p + neg_step * m / (sqrt(v) / bc2_sqrt + eps)
//   Every operation is an explicitly rounded fp32 op (no fused multiply-add), so on a CPU build
//   that does not contract either the results are bit-identical. With zero_grad the gradient
//   is set to 0 after use (the optimizer's ZeroGrads). param, m, v updated in place.
// GradSumSquares: *sumsq (device fp64) = sum of g^2 over every gradient; level 1 one fp64 partial
//   per chunk (ws: GradNormWorkspaceBytes(num_chunks)), level 2 one block adding the partials in a
//   fixed order: deterministic (the same bits on every run for the same table), no atomics.
//   For a gang, the per-rank sums are all-reduced before the square root (as GangTrainer does).
// ClipScaleFromSumSquares: one thread: *norm = sqrt(*sumsq) (fp64) and *scale = ClipScale(
//   max_norm, norm) (glue_plan.h): no host round trip before the clip.
// ScaleGrads: g *= *scale for every gradient (skipped per element when *scale == 1, as the CPU
//   leaves them untouched). A non-finite norm gives scale 1: the caller reads *norm and skips
//   the step, as kernels/ops/grad_norm.h says.
// All asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/glue_plan.h"

namespace radlads::cuda {

void AdamWMultiTensor(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                      std::int64_t num_chunks, const AdamWScalars& scalars,
                      const float* grad_scale, bool zero_grad, cudaStream_t stream);

void GradSumSquares(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                    std::int64_t num_chunks, double* ws, double* sumsq, cudaStream_t stream);

void ClipScaleFromSumSquares(const double* sumsq, double max_norm, double* norm, float* scale,
                             cudaStream_t stream);

void ScaleGrads(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                std::int64_t num_chunks, const float* scale, cudaStream_t stream);

}  // namespace radlads::cuda
