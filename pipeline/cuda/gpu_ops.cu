#include "pipeline/cuda/gpu_ops.h"

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/glue_plan.h"

namespace radlads::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(std::int64_t n) { return static_cast<int>(ElemBlocks(n)); }

__global__ void GqaForwardKernel(const float* __restrict__ x, std::int64_t total, std::int64_t hkv,
                                 std::int64_t group, std::int64_t d, float* __restrict__ y) {
  const std::int64_t h = hkv * group;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = i % d;
    const std::int64_t qh = (i / d) % h;
    const std::int64_t row = i / (d * h);
    y[i] = x[(row * hkv + qh / group) * d + j];
  }
}

__global__ void GqaBackwardKernel(const float* __restrict__ dy, std::int64_t total, std::int64_t hkv,
                                  std::int64_t group, std::int64_t d, float* __restrict__ dx) {
  // total = rows * hkv * d (one thread per element of dx).
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = i % d;
    const std::int64_t kv = (i / d) % hkv;
    const std::int64_t row = i / (d * hkv);
    const float* src = dy + ((row * hkv + kv) * group) * d + j;
    float sum = 0.0f;
    for (std::int64_t g = 0; g < group; ++g) sum += src[g * d];
    dx[i] += sum;
  }
}

template <typename T>
__device__ __forceinline__ float ToF(T v);
template <>
__device__ __forceinline__ float ToF<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float ToF<bf16>(bf16 v) {
  return __bfloat162float(v);
}

template <typename T>
__global__ void EmbedKernel(const std::int32_t* __restrict__ ids, std::int64_t total, const T* __restrict__ table,
                            std::int64_t c, float* __restrict__ out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t row = i / c, col = i % c;
    out[i] = ToF(table[static_cast<std::int64_t>(ids[row]) * c + col]);
  }
}

__global__ void EmbedBackwardKernel(const std::int32_t* __restrict__ ids, std::int64_t n,
                                    const float* __restrict__ dout, std::int64_t c, float* __restrict__ dtable) {
  const std::int64_t col = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (col >= c) return;
  for (std::int64_t i = 0; i < n; ++i) {
    dtable[static_cast<std::int64_t>(ids[i]) * c + col] += dout[i * c + col];
  }
}

}  // namespace

DeviceTensor EmptyF32(std::int64_t n, cudaStream_t s) { return DeviceTensor({n}, DeviceDType::kF32, s); }

DeviceTensor ZerosF32(std::int64_t n, cudaStream_t s) { return DeviceTensor::Zeros({n}, DeviceDType::kF32, s); }

DeviceTensor ToBf16(const float* x, std::int64_t n, cudaStream_t s) {
  DeviceTensor t({n}, DeviceDType::kBF16, s);
  if (n > 0) ConvertF32ToBf16(x, n, t.bf16(), s);
  return t;
}

void CopyF32(const float* src, std::int64_t n, float* dst, cudaStream_t s) {
  if (n > 0) {
    RADLADS_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, s));
  }
}

void LinearForward(const bf16* x, std::int64_t n, std::int64_t in, const bf16* w, const float* bias,
                   std::int64_t out, float* y, cudaStream_t s) {
  if (n == 0 || out == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    BroadcastRows<float>(bias, n, out, y, s);
    beta = 1.0f;
  }
  GemmBf16(false, true, n, out, in, 1.0f, x, in, w, in, beta, y, out, s);
}

void LinearBackward(const bf16* x, const float* dy, std::int64_t n, std::int64_t in, std::int64_t out,
                    const bf16* w, float* dx, bool accumulate_dx, float* dw, float* db, cudaStream_t s) {
  if (n == 0) return;
  DeviceTensor dy_bf = ToBf16(dy, n * out, s);
  if (dx != nullptr) {
    GemmBf16(false, false, n, in, out, 1.0f, dy_bf.bf16(), out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in, s);
  }
  if (dw != nullptr) GemmBf16(true, false, out, in, n, 1.0f, dy_bf.bf16(), out, x, in, 1.0f, dw, in, s);
  if (db != nullptr) {
    DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, out), s);
    SumRows<float>(dy, n, out, db, static_cast<double*>(ws.raw()), s);
  }
}

void LoraForward(const bf16* x, std::int64_t n, const LoraWeights& w, LoraAct act, float* h, float* y,
                 cudaStream_t s) {
  if (n == 0) return;
  const std::int64_t kr = w.blocks * w.rank;
  GemmBf16(false, false, n, kr, w.in, 1.0f, x, w.in, w.w1, kr, 0.0f, h, kr, s);
  LoraActivationInPlace<float>(act, h, n * kr, s);
  DeviceTensor h_bf = ToBf16(h, n * kr, s);
  for (std::int64_t k = 0; k < w.blocks; ++k) {
    float* yk = y + k * n * w.out;
    float beta = 0.0f;
    if (w.bias != nullptr) {
      BroadcastRows<float>(w.bias, n, w.out, yk, s);
      beta = 1.0f;
    }
    GemmBf16(false, false, n, w.out, w.rank, 1.0f, h_bf.bf16() + k * w.rank, kr, w.w2 + k * w.rank * w.out,
             w.out, beta, yk, w.out, s);
  }
}

void LoraBackward(const bf16* x, std::int64_t n, const LoraWeights& w, LoraAct act, const float* h,
                  const float* dy, float* dx, const LoraGrads& g, cudaStream_t s) {
  if (n == 0) return;
  const std::int64_t kr = w.blocks * w.rank;
  DeviceTensor h_bf = ToBf16(h, n * kr, s);
  DeviceTensor dh = EmptyF32(n * kr, s);
  for (std::int64_t k = 0; k < w.blocks; ++k) {
    const float* dyk = dy + k * n * w.out;
    DeviceTensor dyk_bf = ToBf16(dyk, n * w.out, s);
    GemmBf16(false, true, n, w.rank, w.out, 1.0f, dyk_bf.bf16(), w.out, w.w2 + k * w.rank * w.out, w.out, 0.0f,
             dh.f32() + k * w.rank, kr, s);
    if (g.dw2 != nullptr) {
      GemmBf16(true, false, w.rank, w.out, n, 1.0f, h_bf.bf16() + k * w.rank, kr, dyk_bf.bf16(), w.out, 1.0f,
               g.dw2 + k * w.rank * w.out, w.out, s);
    }
  }
  if (g.dbias != nullptr) {
    DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, w.out), s);
    SumRows<float>(dy, n, w.out, g.dbias, static_cast<double*>(ws.raw()), s);
  }
  LoraActivationGradInPlace<float>(act, h, dh.f32(), n * kr, s);
  DeviceTensor dz_bf = ToBf16(dh.f32(), n * kr, s);
  if (g.dw1 != nullptr) GemmBf16(true, false, w.in, kr, n, 1.0f, x, w.in, dz_bf.bf16(), kr, 1.0f, g.dw1, kr, s);
  if (dx != nullptr) GemmBf16(false, true, n, w.in, kr, 1.0f, dz_bf.bf16(), kr, w.w1, kr, 1.0f, dx, w.in, s);
}

void GqaExpandForward(const float* x, std::int64_t rows, std::int64_t hkv, std::int64_t group, std::int64_t d,
                      float* y, cudaStream_t s) {
  const std::int64_t total = rows * hkv * group * d;
  if (total == 0) return;
  GqaForwardKernel<<<Blocks(total), kThreads, 0, s>>>(x, total, hkv, group, d, y);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

void GqaExpandBackward(const float* dy, std::int64_t rows, std::int64_t hkv, std::int64_t group, std::int64_t d,
                       float* dx, cudaStream_t s) {
  const std::int64_t total = rows * hkv * d;
  if (total == 0) return;
  GqaBackwardKernel<<<Blocks(total), kThreads, 0, s>>>(dy, total, hkv, group, d, dx);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

void EmbeddingForward(const std::int32_t* ids, std::int64_t n, const float* table, std::int64_t c, float* out,
                      cudaStream_t s) {
  if (n * c == 0) return;
  EmbedKernel<float><<<Blocks(n * c), kThreads, 0, s>>>(ids, n * c, table, c, out);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

void EmbeddingForward(const std::int32_t* ids, std::int64_t n, const bf16* table, std::int64_t c, float* out,
                      cudaStream_t s) {
  if (n * c == 0) return;
  EmbedKernel<bf16><<<Blocks(n * c), kThreads, 0, s>>>(ids, n * c, table, c, out);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

void EmbeddingBackward(const std::int32_t* ids, std::int64_t n, const float* dout, std::int64_t c, float* dtable,
                       cudaStream_t s) {
  if (n * c == 0) return;
  EmbedBackwardKernel<<<static_cast<int>((c + kThreads - 1) / kThreads), kThreads, 0, s>>>(ids, n, dout, c,
                                                                                         dtable);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace radlads::cuda
