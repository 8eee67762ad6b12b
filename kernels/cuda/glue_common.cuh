// Device helpers shared by the glue kernels (.cu files only): bf16/fp32 loads and stores with
// fp32 math, the activations in the CPU ops' formulas, deterministic block reductions, and the
// two-level column sum of kernels/cuda/glue_plan.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/glue_plan.h"

namespace radlads::cuda::glue {

using bf16 = __nv_bfloat16;
using i64 = std::int64_t;

__device__ __forceinline__ float Ld(const float* p, i64 i) { return p[i]; }
__device__ __forceinline__ float Ld(const bf16* p, i64 i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void St(float* p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void St(bf16* p, i64 i, float v) { p[i] = __float2bfloat16_rn(v); }
// p[i] += v with the add in fp32 (one rounding to bf16 for bf16 storage).
__device__ __forceinline__ void Acc(float* p, i64 i, float v) { p[i] += v; }
__device__ __forceinline__ void Acc(bf16* p, i64 i, float v) {
  p[i] = __float2bfloat16_rn(__bfloat162float(p[i]) + v);
}

// The CPU formulas of kernels/cpu/vec_math.h with CUDA's accurate libm (a few ulp apart).
__device__ __forceinline__ float SigmoidF(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float TanhF(float x) { return tanhf(x); }
__device__ __forceinline__ float SiluF(float x) { return x * SigmoidF(x); }
__device__ __forceinline__ float SoftplusF(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

// Grid-stride index helpers.
__device__ __forceinline__ i64 GlobalThread() {
  return static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ i64 GridStride() { return static_cast<i64>(gridDim.x) * blockDim.x; }

inline void CheckLaunch() { RADLADS_CUDA_CHECK(cudaGetLastError()); }

// Sum over a warp, fixed butterfly order (deterministic).
__device__ __forceinline__ double WarpSum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024), returned to every thread. Fixed
// order for a given blockDim: deterministic. `scratch` holds 32 doubles; the block must call
// it uniformly. Ends with a barrier so scratch can be reused.
__device__ __forceinline__ double BlockSum(double v, double* scratch) {
  v = WarpSum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double t = lane < nw ? scratch[lane] : 0.0;
  t = WarpSum(t);
  __syncthreads();
  return t;
}

// --- two-level deterministic column sums ----------------------------------------------------
// F: __device__ double operator()(i64 row, i64 col) const.  Out: __device__ void
// operator()(i64 col, double sum) const. Level 1: block (chunk, column tile), one thread per
// column, rows of the chunk in order. Level 2: one thread per column, chunks in order.

inline constexpr int kColThreads = 256;

template <typename F>
__global__ void ColSumPartialKernel(i64 rows, i64 cols, F f, double* partial) {
  const i64 j = static_cast<i64>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const i64 chunk = blockIdx.x;
  const i64 r0 = chunk * kColSumRows;
  const i64 r1 = r0 + kColSumRows < rows ? r0 + kColSumRows : rows;
  double acc = 0.0;
  for (i64 r = r0; r < r1; ++r) acc += f(r, j);
  partial[chunk * cols + j] = acc;
}

template <typename Out>
__global__ void ColSumFinishKernel(i64 chunks, i64 cols, const double* partial, Out out) {
  const i64 j = GlobalThread();
  if (j >= cols) return;
  double acc = 0.0;
  for (i64 c = 0; c < chunks; ++c) acc += partial[c * cols + j];
  out(j, acc);
}

// out(j, sum over rows of f(r, j)); ws: ColSumWorkspaceBytes(rows, cols) bytes. No-op when
// rows or cols is 0 (the CPU adds 0.0, which changes nothing but a -0.0).
template <typename F, typename Out>
void ColumnSum(i64 rows, i64 cols, F f, Out out, double* ws, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const i64 chunks = ColSumChunks(rows);
  const i64 tiles = (cols + kColThreads - 1) / kColThreads;
  if (tiles > 65535 || chunks > 0x7fffffff || ws == nullptr) {
    std::fprintf(stderr, "ColumnSum: %lld rows x %lld cols (workspace %p) out of range\n",
                 static_cast<long long>(rows), static_cast<long long>(cols),
                 static_cast<void*>(ws));
    std::abort();
  }
  ColSumPartialKernel<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(tiles)),
                        kColThreads, 0, stream>>>(rows, cols, f, ws);
  CheckLaunch();
  ColSumFinishKernel<<<static_cast<unsigned>(tiles), kColThreads, 0, stream>>>(chunks, cols, ws,
                                                                               out);
  CheckLaunch();
}

// out[j] = float(out[j] + sum): the CPU's AccumulateColumnSums rounding.
struct AccumulateF32 {
  float* out;
  __device__ void operator()(i64 j, double s) const {
    out[j] = static_cast<float>(static_cast<double>(out[j]) + s);
  }
};

// Plain row-wise sum: x [rows, cols] of T.
template <typename T>
struct RowsOf {
  const T* x;
  i64 cols;
  __device__ double operator()(i64 r, i64 j) const { return Ld(x, r * cols + j); }
};

// Row-wise sum of an elementwise product: a * b, both [rows, cols] of T (broadcast-vector
// gradients such as sum over rows of dy * a).
template <typename T>
struct RowsOfProduct {
  const T* a;
  const T* b;
  i64 cols;
  __device__ double operator()(i64 r, i64 j) const {
    return static_cast<double>(Ld(a, r * cols + j)) * Ld(b, r * cols + j);
  }
};

inline unsigned Blocks1D(i64 n) { return static_cast<unsigned>(ElemBlocks(n)); }

// f(e) for e in [0, n), grid-stride. F: a functor or an extended __device__ lambda (the
// enclosing function must be a named, non-local function: nvcc's --extended-lambda rules).
template <typename F>
__global__ void ForEachKernel(i64 n, F f) {
  for (i64 e = GlobalThread(); e < n; e += GridStride()) f(e);
}
template <typename F>
void ForEach(i64 n, F f, cudaStream_t stream) {
  if (n <= 0) return;
  ForEachKernel<<<Blocks1D(n), kElemThreads, 0, stream>>>(n, f);
  CheckLaunch();
}

}  // namespace radlads::cuda::glue
