// CUDA RMSNorm and GroupNorm: the same math, layouts and conventions as kernels/ops/rmsnorm.h
// and kernels/ops/groupnorm.h, on device pointers. Activations (x, y, dy, dx) are fp32 or bf16
// (one dtype per call; math in fp32, row statistics summed in fp64 as on the CPU); weights,
// statistics and weight gradients are fp32. Everything runs on `stream`, asynchronously.
//
// RMSNorm, per row of c channels:  rstd = 1/sqrt(mean(x^2) + eps),  y = w * (x * rstd)
//   x, y [n, c] (y may alias x); w [c]; rstd [n] (written).
//   Backward ACCUMULATES (null skips): dx += rstd*(w*dy - x*rstd^2*mean(w*dy*x)),
//   dw += sum over rows of dy*x*rstd.
// GroupNorm, `groups` contiguous groups of c/groups channels per row (RWKV-7's ln_x: groups =
//   heads, eps = D*1e-5): two-pass fp64 mean and biased variance; y = (x-mean)*rstd*w + b.
//   x, y [n, c] (y may alias x when no backward needs x); w, b [c] (b nullable);
//   mean, rstd [n, groups] (written).
//   Backward ACCUMULATES (null skips), g = dy*w: dx += rstd*(g - mean(g) - xhat*mean(g*xhat)),
//   dw += sum over rows of dy*xhat, db += sum over rows of dy.
// Weight gradients are two-level fp64 column sums (kernels/cuda/glue_plan.h): ws must hold
// ColSumWorkspaceBytes(n, c) bytes when dw or db is requested (it may be null otherwise).
// Deterministic: fixed reduction trees that depend only on (n, c, groups), no atomics.
// Launch shapes: RMSNorm one 128-thread block per row; GroupNorm one warp per (row, group).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace radlads::cuda {

void RmsNormForward(const float* x, const float* w, float eps, std::int64_t n, std::int64_t c,
                    float* y, float* rstd, cudaStream_t stream);
void RmsNormForward(const __nv_bfloat16* x, const float* w, float eps, std::int64_t n,
                    std::int64_t c, __nv_bfloat16* y, float* rstd, cudaStream_t stream);

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy,
                     std::int64_t n, std::int64_t c, float* dx, float* dw, double* ws,
                     cudaStream_t stream);
void RmsNormBackward(const __nv_bfloat16* x, const float* w, const float* rstd,
                     const __nv_bfloat16* dy, std::int64_t n, std::int64_t c, __nv_bfloat16* dx,
                     float* dw, double* ws, cudaStream_t stream);

void GroupNormForward(const float* x, const float* w, const float* b, std::int64_t n,
                      std::int64_t c, std::int64_t groups, float eps, float* y, float* mean,
                      float* rstd, cudaStream_t stream);
void GroupNormForward(const __nv_bfloat16* x, const float* w, const float* b, std::int64_t n,
                      std::int64_t c, std::int64_t groups, float eps, __nv_bfloat16* y,
                      float* mean, float* rstd, cudaStream_t stream);

void GroupNormBackward(const float* x, const float* w, const float* mean, const float* rstd,
                       const float* dy, std::int64_t n, std::int64_t c, std::int64_t groups,
                       float* dx, float* dw, float* db, double* ws, cudaStream_t stream);
void GroupNormBackward(const __nv_bfloat16* x, const float* w, const float* mean,
                       const float* rstd, const __nv_bfloat16* dy, std::int64_t n,
                       std::int64_t c, std::int64_t groups, __nv_bfloat16* dx, float* dw,
                       float* db, double* ws, cudaStream_t stream);

}  // namespace radlads::cuda
