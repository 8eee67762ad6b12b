// Step-1 alignment loss kernels (kernels/cuda/align_loss.h).
#include "kernels/cuda/align_loss.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/check.cuh"

namespace radlads::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline double ToDouble(float x) { return static_cast<double>(x); }
__device__ inline double ToDouble(__nv_bfloat16 x) {
  return static_cast<double>(__bfloat162float(x));
}
__device__ inline float ToFloat(float x) { return x; }
__device__ inline float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

// ||t_row - s_row||_2, accumulated in double in a fixed order (per-thread strided sums, then a
// fixed tree). Valid in every thread (broadcast through shared memory).
template <typename T>
__device__ double RowDistance(const T* __restrict__ t, const T* __restrict__ s, std::int64_t c) {
  __shared__ double sh[kWarps];
  __shared__ double total;
  double acc = 0.0;
  for (std::int64_t j = threadIdx.x; j < c; j += kThreads) {
    const double d = ToDouble(t[j]) - ToDouble(s[j]);
    acc += d * d;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(kFullMask, acc, off);
  if (lane == 0) sh[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < kWarps ? sh[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(kFullMask, acc, off);
    if (lane == 0) total = sqrt(acc);
  }
  __syncthreads();
  return total;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    AlignRowsKernel(const T* __restrict__ t, const T* __restrict__ s, std::int64_t c,
                    double* __restrict__ dist, float* __restrict__ row_dist) {
  const std::int64_t row = blockIdx.x;
  const double d = RowDistance(t + row * c, s + row * c, c);
  if (threadIdx.x == 0) {
    dist[row] = d;
    if (row_dist != nullptr) row_dist[row] = static_cast<float>(d);
  }
}

// loss = sum_rows dist / (n sqrt(c)), one block, fixed order.
__global__ void __launch_bounds__(kThreads)
    AlignSumKernel(const double* __restrict__ dist, std::int64_t n, std::int64_t c, double* loss) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += kThreads) acc += dist[i];
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (static_cast<int>(threadIdx.x) < half) sh[threadIdx.x] += sh[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    *loss = sh[0] / (static_cast<double>(n) * sqrt(static_cast<double>(c)));
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    AlignBackwardKernel(const T* __restrict__ t, const T* __restrict__ s, std::int64_t c,
                        double base, float* __restrict__ ds) {
  const std::int64_t row = blockIdx.x;
  const T* tr = t + row * c;
  const T* sr = s + row * c;
  const double dist = RowDistance(tr, sr, c);
  if (!(dist > 0.0)) return;  // zero distance: zero (sub)gradient (uniform over the block)
  const float k = static_cast<float>(base / dist);
  float* dr = ds + row * c;
  for (std::int64_t j = threadIdx.x; j < c; j += kThreads)
    dr[j] += k * (ToFloat(sr[j]) - ToFloat(tr[j]));
}

void CheckSizes(std::int64_t n, std::int64_t c, const char* op) {
  if (n < 0 || c < 0 || n > 0x7fffffff) {
    std::fprintf(stderr, "%s: bad sizes N %lld, C %lld\n", op, static_cast<long long>(n),
                 static_cast<long long>(c));
    std::abort();
  }
}

template <typename T>
void Forward(const T* t, const T* s, std::int64_t n, std::int64_t c, double* loss,
             float* row_dist, void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  CheckSizes(n, c, "AlignLossForward");
  if (n == 0 || c == 0) {  // the CPU op returns 0 (no rows)
    RADLADS_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(double), stream));
    if (n > 0 && row_dist != nullptr)
      RADLADS_CUDA_CHECK(cudaMemsetAsync(row_dist, 0, sizeof(float) * n, stream));
    return;
  }
  if (workspace == nullptr || workspace_bytes < AlignLossWorkspaceBytes(n)) {
    std::fprintf(stderr, "AlignLossForward: workspace of %zu bytes, needs %zu\n", workspace_bytes,
                 AlignLossWorkspaceBytes(n));
    std::abort();
  }
  auto* dist = static_cast<double*>(workspace);
  AlignRowsKernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(t, s, c, dist, row_dist);
  RADLADS_CUDA_CHECK(cudaGetLastError());
  AlignSumKernel<<<1, kThreads, 0, stream>>>(dist, n, c, loss);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <typename T>
void Backward(const T* t, const T* s, std::int64_t n, std::int64_t c, float dloss, float* ds,
              cudaStream_t stream) {
  CheckSizes(n, c, "AlignLossBackward");
  if (n == 0 || c == 0) return;
  const double base =
      static_cast<double>(dloss) / (static_cast<double>(n) * std::sqrt(static_cast<double>(c)));
  AlignBackwardKernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(t, s, c, base, ds);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

std::size_t AlignLossWorkspaceBytes(std::int64_t n) {
  return n <= 0 ? 0 : static_cast<std::size_t>(n) * sizeof(double);
}

void AlignLossForward(const float* t, const float* s, std::int64_t n, std::int64_t c,
                      double* loss, float* row_dist, void* workspace, std::size_t workspace_bytes,
                      cudaStream_t stream) {
  Forward(t, s, n, c, loss, row_dist, workspace, workspace_bytes, stream);
}
void AlignLossForward(const __nv_bfloat16* t, const __nv_bfloat16* s, std::int64_t n,
                      std::int64_t c, double* loss, float* row_dist, void* workspace,
                      std::size_t workspace_bytes, cudaStream_t stream) {
  Forward(t, s, n, c, loss, row_dist, workspace, workspace_bytes, stream);
}

void AlignLossBackward(const float* t, const float* s, std::int64_t n, std::int64_t c, float dloss,
                       float* ds, cudaStream_t stream) {
  Backward(t, s, n, c, dloss, ds, stream);
}
void AlignLossBackward(const __nv_bfloat16* t, const __nv_bfloat16* s, std::int64_t n,
                       std::int64_t c, float dloss, float* ds, cudaStream_t stream) {
  Backward(t, s, n, c, dloss, ds, stream);
}

}  // namespace radlads::cuda
