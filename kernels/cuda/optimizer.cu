// Multi-tensor AdamW, gradient norm and clipping (contract: kernels/cuda/optimizer.h).
#include "kernels/cuda/optimizer.h"

#include "kernels/cuda/glue_common.cuh"

namespace radlads::cuda {
namespace {

using namespace glue;

constexpr int kOptThreads = 256;
constexpr int kFinishThreads = 1024;

void CheckChunks(i64 num_chunks, const char* what) {
  if (num_chunks > 0x7fffffff) {
    std::fprintf(stderr, "%s: %lld chunks exceed one launch\n", what,
                 static_cast<long long>(num_chunks));
    std::abort();
  }
}

__global__ void AdamWKernel(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                            AdamWScalars s, const float* grad_scale, bool zero_grad) {
  const MultiTensorChunk ch = chunks[blockIdx.x];
  const MultiTensorEntry e = entries[ch.tensor];
  const AdamWGroupScalars gs = s.group[e.group];
  const float scale = grad_scale != nullptr ? *grad_scale : 1.0f;
  float* p = e.param + ch.start;
  float* g = e.grad + ch.start;
  float* mp = e.m + ch.start;
  float* vp = e.v + ch.start;
  for (int i = threadIdx.x; i < ch.len; i += blockDim.x) {
    float gi = g[i];
    if (scale != 1.0f) gi = __fmul_rn(gi, scale);
    const float pi = __fmul_rn(p[i], gs.keep);
    const float m0 = mp[i];
    const float mi = s.lerp_from_m ? __fadd_rn(m0, __fmul_rn(s.w1, __fsub_rn(gi, m0)))
                                   : __fsub_rn(gi, __fmul_rn(__fsub_rn(gi, m0), s.w1c));
    const float vi = __fadd_rn(__fmul_rn(vp[i], s.b2), __fmul_rn(__fmul_rn(s.w2, gi), gi));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
    p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(gs.neg_step, mi), denom));
    mp[i] = mi;
    vp[i] = vi;
    if (zero_grad) g[i] = 0.0f;
  }
}

__global__ void SumSquaresKernel(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                                 double* partial) {
  __shared__ double scratch[32];
  const MultiTensorChunk ch = chunks[blockIdx.x];
  const float* g = entries[ch.tensor].grad + ch.start;
  double acc = 0.0;
  for (int i = threadIdx.x; i < ch.len; i += blockDim.x) {
    const double x = g[i];
    acc += x * x;
  }
  acc = BlockSum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block: thread t adds partials t, t + B, t + 2B, ... in order, then a fixed tree.
__global__ void SumPartialsKernel(const double* partial, i64 n, double* out) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (i64 i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = BlockSum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void ClipScaleKernel(const double* sumsq, double max_norm, double* norm, float* scale) {
  const double nr = sqrt(*sumsq);
  *norm = nr;
  float k = 1.0f;
  if (max_norm > 0.0 && isfinite(nr)) {
    const double coef = max_norm / (nr + 1e-6);
    if (coef < 1.0) k = static_cast<float>(coef);
  }
  *scale = k;
}

__global__ void ScaleKernel(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                            const float* scale) {
  const float k = *scale;
  if (k == 1.0f) return;
  const MultiTensorChunk ch = chunks[blockIdx.x];
  float* g = entries[ch.tensor].grad + ch.start;
  for (int i = threadIdx.x; i < ch.len; i += blockDim.x) g[i] = __fmul_rn(g[i], k);
}

}  // namespace

void AdamWMultiTensor(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                      std::int64_t num_chunks, const AdamWScalars& scalars,
                      const float* grad_scale, bool zero_grad, cudaStream_t stream) {
  if (num_chunks <= 0) return;
  CheckChunks(num_chunks, "AdamWMultiTensor");
  AdamWKernel<<<static_cast<unsigned>(num_chunks), kOptThreads, 0, stream>>>(
      entries, chunks, scalars, grad_scale, zero_grad);
  CheckLaunch();
}

void GradSumSquares(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                    std::int64_t num_chunks, double* ws, double* sumsq, cudaStream_t stream) {
  if (num_chunks <= 0) {
    RADLADS_CUDA_CHECK(cudaMemsetAsync(sumsq, 0, sizeof(double), stream));
    return;
  }
  CheckChunks(num_chunks, "GradSumSquares");
  SumSquaresKernel<<<static_cast<unsigned>(num_chunks), kOptThreads, 0, stream>>>(entries, chunks,
                                                                                  ws);
  CheckLaunch();
  SumPartialsKernel<<<1, kFinishThreads, 0, stream>>>(ws, num_chunks, sumsq);
  CheckLaunch();
}

void ClipScaleFromSumSquares(const double* sumsq, double max_norm, double* norm, float* scale,
                             cudaStream_t stream) {
  ClipScaleKernel<<<1, 1, 0, stream>>>(sumsq, max_norm, norm, scale);
  CheckLaunch();
}

void ScaleGrads(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                std::int64_t num_chunks, const float* scale, cudaStream_t stream) {
  if (num_chunks <= 0) return;
  CheckChunks(num_chunks, "ScaleGrads");
  ScaleKernel<<<static_cast<unsigned>(num_chunks), kOptThreads, 0, stream>>>(entries, chunks,
                                                                             scale);
  CheckLaunch();
}

}  // namespace radlads::cuda
