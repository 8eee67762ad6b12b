// The simple GPU reference for the teacher attention (kernels/cuda/attention.h): one block of
// 128 threads per (query row t, head h, batch b), no tiling and no tensor cores, and a different
// algorithm from the flash kernel (two passes with the exact max, no online rescaling), so the
// two share no structure that could hide a common error.
//
//   q row -> shared memory as fp32
//   pass 1: thread i scores keys i, i + 128, ... <= t (fp32 dot, then * scale); block max M
//   pass 2: per chunk of 128 keys, thread i writes p_i = exp(score - M) (0 past t) to shared
//           memory; thread i then accumulates sum_j p_j v[j][d] for its columns d = i, i + 128
//   o = acc / sum(p) rounded to bf16; lse = M + log(sum(p))
//
// Scores are recomputed in pass 2 by the same code as in pass 1, so p <= 1 exactly.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.cuh"

namespace radlads::cuda {
namespace {

using i64 = std::int64_t;
using bf16 = __nv_bfloat16;

constexpr int kThreads = 128;
static_assert(2 * kThreads >= kAttentionSimpleMaxD, "two output columns per thread");

struct SimpleParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* o;
  float* lse;
  i64 t;
  int h, hkv, group, d;
  float scale;
};

// Reduces `x` over the block with op (max or +); every thread gets the result. `red` holds
// kThreads / 32 floats and may be reused after the call returns.
template <bool kMax>
__device__ float BlockReduce(float x, float* red) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, off);
    x = kMax ? fmaxf(x, y) : x + y;
  }
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();  // a previous call's readers are done with red
  if (lane == 0) red[warp] = x;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kThreads / 32; ++w) r = kMax ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

__device__ float Score(const float* qf, const bf16* krow, int d, float scale) {
  float dot = 0.f;
  for (int i = 0; i < d; ++i) dot = fmaf(qf[i], __bfloat162float(krow[i]), dot);
  return dot * scale;
}

__global__ void __launch_bounds__(kThreads) AttentionSimpleForwardKernel(SimpleParams p) {
  extern __shared__ float smem[];
  float* qf = smem;             // [d]
  float* pc = smem + p.d;       // [kThreads] probabilities of the current chunk
  float* red = pc + kThreads;   // [kThreads / 32]
  const i64 t = blockIdx.x;
  const int h = static_cast<int>(blockIdx.y);
  const i64 b = blockIdx.z;
  const int g = h / p.group;
  const int tid = static_cast<int>(threadIdx.x);
  const int D = p.d;
  const i64 kv_stride = static_cast<i64>(p.hkv) * D;
  const bf16* qrow = p.q + ((b * p.t + t) * p.h + h) * D;
  const bf16* k_base = p.k + (b * p.t * p.hkv + g) * D;  // key j at + j * kv_stride
  const bf16* v_base = p.v + (b * p.t * p.hkv + g) * D;

  for (int i = tid; i < D; i += kThreads) qf[i] = __bfloat162float(qrow[i]);
  __syncthreads();

  float mx = -INFINITY;
  for (i64 j = tid; j <= t; j += kThreads) mx = fmaxf(mx, Score(qf, k_base + j * kv_stride, D, p.scale));
  mx = BlockReduce<true>(mx, red);

  float acc0 = 0.f, acc1 = 0.f;  // columns tid and tid + kThreads
  float psum = 0.f;
  for (i64 j0 = 0; j0 <= t; j0 += kThreads) {
    const i64 j = j0 + tid;
    float pj = 0.f;
    if (j <= t) pj = expf(Score(qf, k_base + j * kv_stride, D, p.scale) - mx);
    psum += pj;
    pc[tid] = pj;
    __syncthreads();
    const int n = static_cast<int>(t - j0 + 1 < kThreads ? t - j0 + 1 : kThreads);
    for (int jj = 0; jj < n; ++jj) {
      const bf16* vrow = v_base + (j0 + jj) * kv_stride;
      if (tid < D) acc0 = fmaf(pc[jj], __bfloat162float(vrow[tid]), acc0);
      if (tid + kThreads < D) acc1 = fmaf(pc[jj], __bfloat162float(vrow[tid + kThreads]), acc1);
    }
    __syncthreads();  // pc is rewritten by the next chunk
  }
  const float l = BlockReduce<false>(psum, red);

  bf16* orow = p.o + ((b * p.t + t) * p.h + h) * D;
  if (tid < D) orow[tid] = __float2bfloat16_rn(acc0 / l);
  if (tid + kThreads < D) orow[tid + kThreads] = __float2bfloat16_rn(acc1 / l);
  if (p.lse != nullptr && tid == 0) p.lse[(b * p.h + h) * p.t + t] = mx + logf(l);
}

}  // namespace

void AttentionForwardSimple(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v,
                            float scale, bf16* o, float* lse, cudaStream_t stream) {
  const std::string err = AttentionShapeError(s, AttentionImpl::kSimple);
  if (!err.empty() || !std::isfinite(scale)) {
    std::fprintf(stderr, "AttentionForwardSimple: %s\n",
                 !err.empty() ? err.c_str() : "scale must be finite");
    std::abort();
  }
  if (s.b == 0 || s.t == 0) return;
  const AttentionSimplePlan plan = PlanAttentionSimple(s);
  if (plan.threads != kThreads) {
    std::fprintf(stderr, "AttentionForwardSimple: plan has %d threads, kernel %d\n", plan.threads,
                 kThreads);
    std::abort();
  }
  SimpleParams p{q, k, v, o, lse, s.t, static_cast<int>(s.h), static_cast<int>(s.hkv),
                 static_cast<int>(s.h / s.hkv), static_cast<int>(s.d), scale};
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  AttentionSimpleForwardKernel<<<grid, kThreads, plan.smem_bytes, stream>>>(p);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace radlads::cuda
