// CUDA GLA recurrence, chunked algorithm (bf16 I/O). Semantics: gla.h (= kernels/ops/gla.h).
//
// Chunks of C = 16 tokens (local t = 0..15; a short last chunk is padded with r = k = v = d_o
// = 0 and g = 0, which changes nothing), b_t = g_0 + ... + g_t in fp32 (inclusive), S0 the
// state entering the chunk:
//   o_t   = (q_t . e^{b_t}) S0 + sum_{j<=t} A[t,j] v_j,  A[t,j] = sum_c q_t k_j e^{b_t - b_j},
//   S_end = diag(e^{b_15}) S0 + sum_j (k_j . e^{b_15 - b_j}) v_j^T.
// A chunk is one 16-token sub-chunk of the CPU chunked form (fla's BC), so there are no
// off-diagonal sub-blocks: A is computed element-wise in fp32 with e^{b_t - b_j}, j <= t, and
// every exponent evaluated anywhere is <= 0 for any g <= 0 (no reference points, no
// fallback channels, exact at the -5 clamp and beyond).
// The matrix products (q e^b) S0, A V, the state update, and in the backward dO V^T, A^T dO,
// kend dH, dO S0^T, V dH^T and the dH update run on tensor cores as TF32 WMMA with fp32
// accumulation: operands stay fp32 in shared memory (bf16 inputs are exact in TF32), one
// rounding to 10 mantissa bits per product operand, against bf16's 8 of the outputs.
//
// Forward (ChunkForwardKernel): one block per (b, h, 64-column tile of V), sequential over the
// chunks, its fp32 state tile [K][Vt] in shared memory; A is recomputed per V tile. With
// `states` set it also writes each chunk's S0 to the workspace (the backward's first pass; o is
// then skipped).
// Backward (ChunkBackwardKernel): one block per (b, h), reverse over chunks, the state gradient
// dH [K][V] (gradient reaching the chunk's S_end) in shared memory, S0 read from the
// workspace. Per chunk, as the CPU chunked backward (kernels/ops/gla_chunked.cpp), whose
// decay-gradient formula keeps dg free of catastrophic cancellation:
//   dA = (dO V^T) masked j <= t,     dv = A^T dO + kend dH,
//   dq' = (dO S0^T) . e^b + sum_{j<t} dA[t,j] k_j e^{b_t-b_j},
//   dk' = sum_{s>t} dA[s,t] q_s e^{b_s-b_t},   dks = (V dH^T) . e^{b_15 - b},
//   dr = scale (dq' + dA[t,t] k),  dk = dk' + dks + dA[t,t] q,
//   dg_t = sum_{s>=t} (q_s dq'_s - k_s dk'_s) + e^{b_15} rowsum(dH . S0) + sum_{j<t} k_j dks_j,
//   dH <- diag(e^{b_15}) dH + (q . e^b)^T dO.
#include <cuda_bf16.h>
#include <mma.h>

#include <type_traits>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gla.h"
#include "kernels/cuda/gla_common.cuh"

namespace radlads::cuda::gla_detail {
namespace {

namespace wmma = nvcuda::wmma;
using gla_plan::kBwdThreads;
using gla_plan::kFwdThreads;
constexpr int kC = static_cast<int>(gla_plan::kChunk);  // 16
static_assert(kC == 16, "one WMMA tile per chunk");

using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

// acc += A (16 x kdim) * B (kdim x 16), fp32 operands rounded to TF32. a/b point at the tile's
// first row/column; lda/ldb are the leading dimensions in floats of the given layouts.
template <class LA, class LB>
__device__ __forceinline__ void MmaAcc(FragAcc& acc, const float* a, unsigned lda, const float* b,
                                       unsigned ldb, int kdim) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> fb;
  for (int k0 = 0; k0 < kdim; k0 += 8) {
    const float* pa = std::is_same_v<LA, wmma::row_major> ? a + k0 : a + k0 * lda;
    const float* pb = std::is_same_v<LB, wmma::row_major> ? b + k0 * ldb : b + k0;
    wmma::load_matrix_sync(fa, pa, lda);
    wmma::load_matrix_sync(fb, pb, ldb);
#pragma unroll
    for (int e = 0; e < fa.num_elements; ++e) fa.x[e] = wmma::__float_to_tf32(fa.x[e]);
#pragma unroll
    for (int e = 0; e < fb.num_elements; ++e) fb.x[e] = wmma::__float_to_tf32(fb.x[e]);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

using RM = wmma::row_major;
using CM = wmma::col_major;

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

struct ChunkParams {
  GlaShape shape;
  float scale = 1.0f;
  const __nv_bfloat16 *r = nullptr, *k = nullptr, *v = nullptr, *g = nullptr;
  const float* h0 = nullptr;
  // Forward.
  __nv_bfloat16* o = nullptr;  // nullptr: state pass only
  float* hT = nullptr;
  float* states = nullptr;     // [B*H][NC][K][V]: S0 of every chunk (nullable)
  std::int64_t vtile = 0;
  // Backward.
  const __nv_bfloat16* d_o = nullptr;
  const float* dhT = nullptr;
  __nv_bfloat16 *dr = nullptr, *dk = nullptr, *dv = nullptr, *dg = nullptr;
  float* dh0 = nullptr;
};

__device__ __forceinline__ float Ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void AddTo(__nv_bfloat16* p, float x) {
  *p = __float2bfloat16_rn(__bfloat162float(*p) + x);
}

// Loads chunk rows [t0, t0+L) of q = scale*r, k and g (into sb) as [16][K], zero-padded; and
// columns [v0, v0+vw) of v (and d_o) as [16][vw].
template <int K, int NT>
__device__ void LoadChunk(const ChunkParams& p, std::int64_t bh, std::int64_t t0, int L,
                          std::int64_t v0, int vw, const __nv_bfloat16* vsrc, float* sq, float* sk,
                          float* sb, float* sv, const __nv_bfloat16* dosrc, float* sdo) {
  const std::int64_t H = p.shape.H, Tn = p.shape.T, V = p.shape.V;
  const std::int64_t b = bh / H, h = bh % H;
  for (int e = threadIdx.x; e < kC * K; e += NT) {
    const int t = e / K, i = e % K;
    const bool in = t < L;
    const std::int64_t x = ((b * Tn + t0 + t) * H + h) * K + i;
    if (sq) sq[e] = in ? p.scale * Ld(p.r + x) : 0.0f;
    sk[e] = in ? Ld(p.k + x) : 0.0f;
    sb[e] = in ? Ld(p.g + x) : 0.0f;
  }
  for (int e = threadIdx.x; e < kC * vw; e += NT) {
    const int t = e / vw, j = e % vw;
    const bool in = t < L;
    const std::int64_t x = ((b * Tn + t0 + t) * H + h) * V + v0 + j;
    sv[e] = in ? Ld(vsrc + x) : 0.0f;
    if (sdo) sdo[e] = in ? Ld(dosrc + x) : 0.0f;
  }
}

// sb: g -> inclusive cumsum b per channel; sebL[i] = e^{b_15}.
template <int K, int NT>
__device__ void CumSum(float* sb, float* sebL) {
  for (int i = threadIdx.x; i < K; i += NT) {
    float acc = 0.0f;
#pragma unroll
    for (int t = 0; t < kC; ++t) {
      acc += sb[t * K + i];
      sb[t * K + i] = acc;
    }
    sebL[i] = expf(acc);
  }
}

// sA[t][j] = sum_c q_t k_j e^{b_t - b_j} for j <= t, 0 above the diagonal. One warp per entry,
// lanes over the channels.
template <int K, int NT>
__device__ void IntraA(const float* sq, const float* sk, const float* sb, float* sA) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int e = warp; e < kC * kC; e += NT / 32) {
    const int t = e / kC, j = e % kC;
    float sum = 0.0f;
    if (j <= t) {  // warp-uniform
      for (int i = lane; i < K; i += 32) {
        sum += sq[t * K + i] * sk[j * K + i] * expf(sb[t * K + i] - sb[j * K + i]);
      }
      sum = WarpSum(sum);
    }
    if (lane == 0) sA[e] = sum;
  }
}

template <int K>
__global__ void __launch_bounds__(kFwdThreads) ChunkForwardKernel(ChunkParams p) {
  constexpr int NT = kFwdThreads, NW = NT / 32;
  extern __shared__ __align__(128) float smem[];
  const int warp = threadIdx.x / 32;
  const std::int64_t H = p.shape.H, Tn = p.shape.T, V = p.shape.V;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int Vt = static_cast<int>(p.vtile);
  const std::int64_t v0 = static_cast<std::int64_t>(blockIdx.y) * Vt;
  const std::int64_t KV = K * V, NC = (Tn + kC - 1) / kC;
  float* S = smem;                  // [K][Vt]
  float* sq = S + K * Vt;           // [16][K] each
  float* sk = sq + kC * K;
  float* sb = sk + kC * K;
  float* sqin = sb + kC * K;
  float* skend = sqin + kC * K;
  float* sv = skend + kC * K;       // [16][Vt] each
  float* so = sv + kC * Vt;
  float* sA = so + kC * Vt;         // [16][16]
  float* sebL = sA + kC * kC;       // [K]
  for (int e = threadIdx.x; e < K * Vt; e += NT) {
    const int i = e / Vt, j = e % Vt;
    S[e] = p.h0 ? p.h0[bh * KV + i * V + v0 + j] : 0.0f;
  }
  __syncthreads();
  const bool out = p.o != nullptr;
  for (std::int64_t c = 0; c < NC; ++c) {
    const std::int64_t t0 = c * kC;
    const int L = static_cast<int>(Tn - t0 < kC ? Tn - t0 : kC);
    if (p.states) {
      float* dst = p.states + (bh * NC + c) * KV + v0;
      for (int e = threadIdx.x; e < K * Vt; e += NT) dst[(e / Vt) * V + e % Vt] = S[e];
    }
    LoadChunk<K, NT>(p, bh, t0, L, v0, Vt, p.v, out ? sq : nullptr, sk, sb, sv, nullptr, nullptr);
    __syncthreads();
    CumSum<K, NT>(sb, sebL);
    __syncthreads();
    for (int e = threadIdx.x; e < kC * K; e += NT) {
      const float bt = sb[e];
      if (out) sqin[e] = sq[e] * expf(bt);
      skend[e] = sk[e] * expf(sb[(kC - 1) * K + e % K] - bt);
    }
    if (out) IntraA<K, NT>(sq, sk, sb, sA);
    __syncthreads();
    if (out) {
      // o = (q e^b) S0 + A v, one 16x16 output tile per warp.
      for (int n = warp; n < Vt / 16; n += NW) {
        FragAcc acc;
        wmma::fill_fragment(acc, 0.0f);
        MmaAcc<RM, RM>(acc, sqin, K, S + n * 16, Vt, K);
        MmaAcc<RM, RM>(acc, sA, kC, sv + n * 16, Vt, kC);
        wmma::store_matrix_sync(so + n * 16, acc, Vt, wmma::mem_row_major);
      }
      __syncthreads();
      for (int e = threadIdx.x; e < kC * Vt; e += NT) {
        const int t = e / Vt, j = e % Vt;
        if (t < L) p.o[((b * Tn + t0 + t) * H + h) * V + v0 + j] = __float2bfloat16_rn(so[e]);
      }
    }
    // S <- diag(e^{b_15}) S + kend^T v.
    for (int e = threadIdx.x; e < K * Vt; e += NT) S[e] *= sebL[e / Vt];
    __syncthreads();
    const int ntn = Vt / 16;
    for (int tile = warp; tile < (K / 16) * ntn; tile += NW) {
      const int m = tile / ntn, n = tile % ntn;
      float* St = S + m * 16 * Vt + n * 16;
      FragAcc acc;
      wmma::load_matrix_sync(acc, St, Vt, wmma::mem_row_major);
      MmaAcc<CM, RM>(acc, skend + m * 16, K, sv + n * 16, Vt, kC);
      wmma::store_matrix_sync(St, acc, Vt, wmma::mem_row_major);
    }
    __syncthreads();
  }
  if (p.hT) {
    for (int e = threadIdx.x; e < K * Vt; e += NT) {
      p.hT[bh * KV + (e / Vt) * V + v0 + e % Vt] = S[e];
    }
  }
}

template <int K>
__global__ void __launch_bounds__(kBwdThreads) ChunkBackwardKernel(ChunkParams p) {
  constexpr int NT = kBwdThreads, NW = NT / 32;
  extern __shared__ __align__(128) float smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t H = p.shape.H, Tn = p.shape.T;
  const int V = static_cast<int>(p.shape.V);
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const std::int64_t KV = static_cast<std::int64_t>(K) * V, NC = (Tn + kC - 1) / kC;
  float* dH = smem;                 // [K][V]
  float* sq = dH + K * V;           // [16][K] each
  float* sk = sq + kC * K;
  float* sb = sk + kC * K;
  float* sqin = sb + kC * K;
  float* skend = sqin + kC * K;
  float* sdq = skend + kC * K;
  float* sdkp = sdq + kC * K;
  float* sdks = sdkp + kC * K;
  float* sv = sdks + kC * K;        // [16][V] each
  float* sdo = sv + kC * V;
  float* sdv = sdo + kC * V;
  float* sA = sdv + kC * V;         // [16][16] each
  float* sdA = sA + kC * kC;
  float* sdgs = sdA + kC * kC;      // [K] each
  float* sebL = sdgs + K;
  for (int e = threadIdx.x; e < K * V; e += NT) dH[e] = p.dhT ? p.dhT[bh * KV + e] : 0.0f;
  __syncthreads();
  for (std::int64_t c = NC - 1; c >= 0; --c) {
    const std::int64_t t0 = c * kC;
    const int L = static_cast<int>(Tn - t0 < kC ? Tn - t0 : kC);
    const float* S0 = p.states + (bh * NC + c) * KV;
    LoadChunk<K, NT>(p, bh, t0, L, 0, V, p.v, sq, sk, sb, sv, p.d_o, sdo);
    __syncthreads();
    CumSum<K, NT>(sb, sebL);
    __syncthreads();
    // Phase 1: qin, kend; dA = dO V^T (last warp); A element-wise.
    for (int e = threadIdx.x; e < kC * K; e += NT) {
      const float bt = sb[e];
      sqin[e] = sq[e] * expf(bt);
      skend[e] = sk[e] * expf(sb[(kC - 1) * K + e % K] - bt);
    }
    if (warp == NW - 1) {
      FragAcc acc;
      wmma::fill_fragment(acc, 0.0f);
      MmaAcc<RM, CM>(acc, sdo, V, sv, V, V);
      wmma::store_matrix_sync(sdA, acc, kC, wmma::mem_row_major);
    }
    IntraA<K, NT>(sq, sk, sb, sA);
    __syncthreads();
    // Phase 2: mask dA; dgs; dv = A^T dO + kend dH, dq' = dO S0^T, dks = V dH^T (tiles).
    for (int e = threadIdx.x; e < kC * kC; e += NT) {
      if (e % kC > e / kC) sdA[e] = 0.0f;
    }
    for (int i = warp; i < K; i += NW) {
      float sum = 0.0f;
      for (int j = lane; j < V; j += 32) sum += dH[i * V + j] * S0[i * V + j];
      sum = WarpSum(sum);
      if (lane == 0) sdgs[i] = sebL[i] * sum;
    }
    {
      const int nv = V / 16, nk = K / 16;
      for (int tile = warp; tile < nv + 2 * nk; tile += NW) {
        FragAcc acc;
        wmma::fill_fragment(acc, 0.0f);
        if (tile < nv) {
          MmaAcc<CM, RM>(acc, sA, kC, sdo + tile * 16, V, kC);
          MmaAcc<RM, RM>(acc, skend, K, dH + tile * 16, V, K);
          wmma::store_matrix_sync(sdv + tile * 16, acc, V, wmma::mem_row_major);
        } else if (tile < nv + nk) {
          const int m = tile - nv;
          MmaAcc<RM, CM>(acc, sdo, V, S0 + m * 16 * V, V, V);
          wmma::store_matrix_sync(sdq + m * 16, acc, K, wmma::mem_row_major);
        } else {
          const int m = tile - nv - nk;
          MmaAcc<RM, CM>(acc, sv, V, dH + m * 16 * V, V, V);
          wmma::store_matrix_sync(sdks + m * 16, acc, K, wmma::mem_row_major);
        }
      }
    }
    __syncthreads();
    // Phase 3: element-wise intra dq', dk', dks decay; dv out; dH decay.
    for (int e = threadIdx.x; e < kC * K; e += NT) {
      const int t = e / K, i = e % K;
      const float bt = sb[e];
      float dq = sdq[e] * expf(bt);
      for (int j = 0; j < t; ++j) {
        dq += sdA[t * kC + j] * sk[j * K + i] * expf(bt - sb[j * K + i]);
      }
      sdq[e] = dq;
      float dkp = 0.0f;
      for (int s = t + 1; s < kC; ++s) {
        dkp += sdA[s * kC + t] * sq[s * K + i] * expf(sb[s * K + i] - bt);
      }
      sdkp[e] = dkp;
      sdks[e] *= expf(sb[(kC - 1) * K + i] - bt);
    }
    for (int e = threadIdx.x; e < kC * V; e += NT) {
      const int t = e / V, j = e % V;
      if (t < L) AddTo(p.dv + ((b * Tn + t0 + t) * H + h) * V + j, sdv[e]);
    }
    for (int e = threadIdx.x; e < K * V; e += NT) dH[e] *= sebL[e / V];
    __syncthreads();
    // Phase 4: assemble dr, dk, dg per channel; dH += (q e^b)^T dO (tiles).
    if (threadIdx.x < K) {
      const int i = threadIdx.x;
      float pre[kC];
      float gp = 0.0f;
#pragma unroll
      for (int t = 0; t < kC; ++t) {
        pre[t] = gp;
        gp += sk[t * K + i] * sdks[t * K + i];
      }
      float gx = 0.0f;
      const float gs = sdgs[i];
#pragma unroll
      for (int t = kC - 1; t >= 0; --t) {
        const int e = t * K + i;
        const float q = sq[e], kk = sk[e], dq = sdq[e], dk = sdkp[e];
        const float dd = sdA[t * kC + t];
        gx += q * dq - kk * dk;
        if (t < L) {
          const std::int64_t x = ((b * Tn + t0 + t) * H + h) * K + i;
          AddTo(p.dg + x, gx + gs + pre[t]);
          AddTo(p.dr + x, p.scale * (dq + dd * kk));
          AddTo(p.dk + x, dk + sdks[e] + dd * q);
        }
      }
    }
    {
      const int nv = V / 16;
      for (int tile = warp; tile < (K / 16) * nv; tile += NW) {
        const int m = tile / nv, n = tile % nv;
        float* dHt = dH + m * 16 * V + n * 16;
        FragAcc acc;
        wmma::load_matrix_sync(acc, dHt, V, wmma::mem_row_major);
        MmaAcc<CM, RM>(acc, sqin + m * 16, K, sdo + n * 16, V, kC);
        wmma::store_matrix_sync(dHt, acc, V, wmma::mem_row_major);
      }
    }
    __syncthreads();
  }
  if (p.dh0) {
    for (int e = threadIdx.x; e < K * V; e += NT) p.dh0[bh * KV + e] += dH[e];
  }
}

// Opts the kernel into `bytes` of dynamic shared memory; aborts with a message when the device
// has less.
template <class Kernel>
void PrepareSmem(Kernel kernel, std::size_t bytes, const char* what) {
  int dev = 0, optin = 0;
  RADLADS_CUDA_CHECK(cudaGetDevice(&dev));
  RADLADS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  DieIf(bytes > static_cast<std::size_t>(optin)
            ? std::string("Gla (CUDA chunked): ") + what + " needs " + std::to_string(bytes) +
                  " bytes of shared memory per block, the device allows " + std::to_string(optin)
            : "");
  RADLADS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(bytes)));
}

template <int K>
void LaunchForward(const ChunkParams& p, cudaStream_t stream) {
  const std::size_t smem = gla_plan::ChunkedForwardSmemBytes(K, p.vtile);
  PrepareSmem(ChunkForwardKernel<K>, smem, "forward");
  const dim3 grid(static_cast<unsigned>(p.shape.B * p.shape.H),
                  static_cast<unsigned>(p.shape.V / p.vtile));
  ChunkForwardKernel<K><<<grid, kFwdThreads, smem, stream>>>(p);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <int K>
void LaunchBackward(const ChunkParams& p, cudaStream_t stream) {
  const std::size_t smem = gla_plan::ChunkedBackwardSmemBytes(K, p.shape.V);
  PrepareSmem(ChunkBackwardKernel<K>, smem, "backward");
  ChunkBackwardKernel<K><<<static_cast<unsigned>(p.shape.B * p.shape.H), kBwdThreads, smem,
                           stream>>>(p);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

void ForwardByK(const ChunkParams& p, cudaStream_t stream) {
  switch (p.shape.K) {
    case 32: LaunchForward<32>(p, stream); break;
    case 64: LaunchForward<64>(p, stream); break;
    default: LaunchForward<128>(p, stream); break;
  }
}

}  // namespace

void ChunkedForward(const GlaForwardArgs& a, cudaStream_t stream) {
  ChunkParams p;
  p.shape = a.shape;
  p.scale = a.scale;
  p.r = a.r;
  p.k = a.k;
  p.v = a.v;
  p.g = a.g;
  p.h0 = a.h0;
  p.o = a.o;
  p.hT = a.hT;
  p.vtile = gla_plan::ForwardVTile(a.shape.V);
  ForwardByK(p, stream);
}

void ChunkedBackward(const GlaBackwardArgs& a, float* workspace, cudaStream_t stream) {
  ChunkParams p;
  p.shape = a.shape;
  p.scale = a.scale;
  p.r = a.r;
  p.k = a.k;
  p.v = a.v;
  p.g = a.g;
  p.h0 = a.h0;
  p.vtile = gla_plan::ForwardVTile(a.shape.V);
  if (a.shape.T > 0) {
    p.states = workspace;  // pass 1: chunk-start states
    ForwardByK(p, stream);
  }
  p.states = workspace;
  p.d_o = a.d_o;
  p.dhT = a.dhT;
  p.dr = a.dr;
  p.dk = a.dk;
  p.dv = a.dv;
  p.dg = a.dg;
  p.dh0 = a.dh0;
  switch (a.shape.K) {
    case 32: LaunchBackward<32>(p, stream); break;
    case 64: LaunchBackward<64>(p, stream); break;
    default: LaunchBackward<128>(p, stream); break;
  }
}

}  // namespace radlads::cuda::gla_detail
