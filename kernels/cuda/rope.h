// CUDA rotary position embedding, the rotate-half (Hugging Face Qwen2) form of
// kernels/ops/rope.h, on device pointers.
//
// Table: cos, sin [max_positions, D/2] fp32 device buffers, row t = position t. RopeTableBuild
// fills them from inv_freq [D/2] (RopeInvFreq in kernels/cuda/glue_plan.h, uploaded by the
// caller) with the CPU table's arithmetic: angle = float(t) * inv_freq[i] (one fp32 product),
// cos/sin evaluated in double of that angle and rounded to fp32. So it equals MakeRopeTable's
// table up to the last-ulp rounding of the device's double cos/sin.
//
// Forward (OVERWRITES y; y may alias x):
//   y[i] = x[i] c_i - x[i+D/2] s_i,  y[i+D/2] = x[i+D/2] c_i + x[i] s_i   (i < D/2)
// Backward (ACCUMULATES into dx; dx must not alias dy): rotation by the negative angle,
//   dx[i] += dy[i] c_i + dy[i+D/2] s_i,  dx[i+D/2] += dy[i+D/2] c_i - dy[i] s_i.
// x, y, dy, dx: [B, T, H, D], fp32 or bf16 (math in fp32); positions pos0 .. pos0+T-1 of the
// table are used (pos0 + T <= max_positions is the caller's to guarantee). Pure per-element,
// deterministic. One thread per (b, t, h, i < D/2), grid-stride; all on `stream`.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace radlads::cuda {

void RopeTableBuild(const float* inv_freq, std::int64_t max_positions, std::int64_t head_dim,
                    float* cos, float* sin, cudaStream_t stream);

void RopeForward(const float* x, const float* cos, const float* sin, std::int64_t batch,
                 std::int64_t time, std::int64_t heads, std::int64_t head_dim, std::int64_t pos0,
                 float* y, cudaStream_t stream);
void RopeForward(const __nv_bfloat16* x, const float* cos, const float* sin, std::int64_t batch,
                 std::int64_t time, std::int64_t heads, std::int64_t head_dim, std::int64_t pos0,
                 __nv_bfloat16* y, cudaStream_t stream);

void RopeBackward(const float* dy, const float* cos, const float* sin, std::int64_t batch,
                  std::int64_t time, std::int64_t heads, std::int64_t head_dim,
                  std::int64_t pos0, float* dx, cudaStream_t stream);
void RopeBackward(const __nv_bfloat16* dy, const float* cos, const float* sin,
                  std::int64_t batch, std::int64_t time, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t pos0, __nv_bfloat16* dx,
                  cudaStream_t stream);

}  // namespace radlads::cuda
