// RoPE kernels (contract: kernels/cuda/rope.h).
#include "kernels/cuda/rope.h"

#include "kernels/cuda/glue_common.cuh"

namespace radlads::cuda {
namespace {

using namespace glue;

__global__ void RopeTableKernel(const float* inv_freq, i64 max_positions, i64 half, float* cos_t,
                                float* sin_t) {
  const i64 total = max_positions * half;
  for (i64 e = GlobalThread(); e < total; e += GridStride()) {
    const i64 t = e / half, i = e % half;
    const float angle = static_cast<float>(t) * inv_freq[i];
    cos_t[e] = static_cast<float>(cos(static_cast<double>(angle)));
    sin_t[e] = static_cast<float>(sin(static_cast<double>(angle)));
  }
}

// sign +1: forward (overwrite); -1: backward (accumulate).
template <typename T, bool kBackward>
__global__ void RopeKernel(const T* in, const float* cos_t, const float* sin_t, i64 time,
                           i64 heads, i64 half, i64 pos0, i64 total, T* out) {
  for (i64 e = GlobalThread(); e < total; e += GridStride()) {
    const i64 i = e % half;
    const i64 rh = e / half;          // (b*T + t) * H + h
    const i64 row = rh / heads;       // b*T + t
    const i64 pos = pos0 + row % time;
    const i64 base = rh * 2 * half;
    const float c = cos_t[pos * half + i];
    const float s = kBackward ? -sin_t[pos * half + i] : sin_t[pos * half + i];
    const float x1 = Ld(in, base + i), x2 = Ld(in, base + i + half);
    const float y1 = x1 * c - x2 * s;
    const float y2 = x2 * c + x1 * s;
    if constexpr (kBackward) {
      Acc(out, base + i, y1);
      Acc(out, base + i + half, y2);
    } else {
      St(out, base + i, y1);
      St(out, base + i + half, y2);
    }
  }
}

template <typename T, bool kBackward>
void Rope(const T* in, const float* cos_t, const float* sin_t, i64 batch, i64 time, i64 heads,
          i64 head_dim, i64 pos0, T* out, cudaStream_t s) {
  if (head_dim <= 0 || head_dim % 2 != 0 || pos0 < 0) {
    std::fprintf(stderr, "Rope: head_dim %lld must be even and > 0, pos0 %lld >= 0\n",
                 static_cast<long long>(head_dim), static_cast<long long>(pos0));
    std::abort();
  }
  const i64 half = head_dim / 2, total = batch * time * heads * half;
  if (total <= 0) return;
  RopeKernel<T, kBackward><<<Blocks1D(total), kElemThreads, 0, s>>>(
      in, cos_t, sin_t, time, heads, half, pos0, total, out);
  CheckLaunch();
}

}  // namespace

void RopeTableBuild(const float* inv_freq, std::int64_t max_positions, std::int64_t head_dim,
                    float* cos, float* sin, cudaStream_t stream) {
  if (max_positions <= 0 || head_dim <= 0 || head_dim % 2 != 0) {
    std::fprintf(stderr, "RopeTableBuild: max_positions %lld, head_dim %lld\n",
                 static_cast<long long>(max_positions), static_cast<long long>(head_dim));
    std::abort();
  }
  const i64 half = head_dim / 2;
  RopeTableKernel<<<Blocks1D(max_positions * half), kElemThreads, 0, stream>>>(
      inv_freq, max_positions, half, cos, sin);
  CheckLaunch();
}

void RopeForward(const float* x, const float* cos, const float* sin, std::int64_t batch,
                 std::int64_t time, std::int64_t heads, std::int64_t head_dim, std::int64_t pos0,
                 float* y, cudaStream_t stream) {
  Rope<float, false>(x, cos, sin, batch, time, heads, head_dim, pos0, y, stream);
}
void RopeForward(const __nv_bfloat16* x, const float* cos, const float* sin, std::int64_t batch,
                 std::int64_t time, std::int64_t heads, std::int64_t head_dim, std::int64_t pos0,
                 __nv_bfloat16* y, cudaStream_t stream) {
  Rope<__nv_bfloat16, false>(x, cos, sin, batch, time, heads, head_dim, pos0, y, stream);
}
void RopeBackward(const float* dy, const float* cos, const float* sin, std::int64_t batch,
                  std::int64_t time, std::int64_t heads, std::int64_t head_dim,
                  std::int64_t pos0, float* dx, cudaStream_t stream) {
  Rope<float, true>(dy, cos, sin, batch, time, heads, head_dim, pos0, dx, stream);
}
void RopeBackward(const __nv_bfloat16* dy, const float* cos, const float* sin,
                  std::int64_t batch, std::int64_t time, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t pos0, __nv_bfloat16* dx,
                  cudaStream_t stream) {
  Rope<__nv_bfloat16, true>(dy, cos, sin, batch, time, heads, head_dim, pos0, dx, stream);
}

}  // namespace radlads::cuda
