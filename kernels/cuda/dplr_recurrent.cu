// Recurrent form of the CUDA DPLR recurrence (kernels/cuda/dplr.h): the GPU reference and
// fallback. One block per (b, h), one thread per state column j (D threads); the column S[:, j]
// evolves on its own given sa_j = sum_i a_i S[i, j], so the forward needs no communication.
//
// Backward (the reverse sweep of kernels/ops/dplr.cpp, BackStep), thread j owning column j of
// G = dL/dS_t:
//   G += q do^T;  dv_j = sum_i k_i G_ij;  dsa_j = sum_i b_i G_ij        (column-local)
//   dr_i = scale sum_j S_t,ij do_j;  dk_i = sum_j G_ij v_j;  db_i = sum_j G_ij sa_j;
//   dg_i = w_i sum_j G_ij S_{t-1},ij;  da_i = sum_j S_{t-1},ij dsa_j     (row sums over threads)
//   G = diag(w) G + a dsa^T.
// The row sums reduce 32 rows at a time across a warp by a butterfly reduce-scatter (31
// shuffles per 32 rows; lane l ends with row l's sum), then across the D/32 warps through a small
// shared array in a fixed order (deterministic). States S_t: a checkpoint every `ckpt` steps
// from a first forward pass, then per segment (last first) the segment's states recomputed into
// the workspace; each thread only ever reads its own column of them, so no barrier is needed
// between those writes and reads.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dplr_common.cuh"

namespace radlads::cuda::dplr_detail {
namespace {

template <typename In, int D>
__global__ void __launch_bounds__(D) RecFwdKernel(I64 T, I64 H, float scale, FwdPtrs<In> p) {
  const I64 bh = blockIdx.x, bi = bh / H, hi = bh % H;
  const int j = threadIdx.x;
  constexpr I64 DD = static_cast<I64>(D) * D;
  float S[D];
#pragma unroll
  for (int i = 0; i < D; ++i) S[i] = p.h0 != nullptr ? p.h0[bh * DD + i * D + j] : 0.0f;
  for (I64 t = 0; t < T; ++t) {
    const I64 row = RowOff(bi, t, hi, T, H, D);
    float sa = 0.0f;
#pragma unroll
    for (int i = 0; i < D; ++i) sa += Ld(p.a + row + i) * S[i];
    const float vj = Ld(p.v + row + j);
    float out = 0.0f;
#pragma unroll
    for (int i = 0; i < D; ++i) {
      const float w = expf(Ld(p.g + row + i));
      S[i] = w * S[i] + Ld(p.b + row + i) * sa + Ld(p.k + row + i) * vj;
      out += (scale * Ld(p.r + row + i)) * S[i];
    }
    St(p.o + row + j, out);
  }
  if (p.hT != nullptr) {
#pragma unroll
    for (int i = 0; i < D; ++i) p.hT[bh * DD + i * D + j] = S[i];
  }
}

// One butterfly stage of the reduce-scatter: x[0, 2h) holds the values of 2h consecutive rows;
// afterwards x[0, h) holds the partner-summed half this lane keeps (lower half when bit h of the
// lane is clear, upper half when set).
template <int Hh>
__device__ __forceinline__ void ReduceScatterStage(float (&x)[32], int lane) {
  const bool upper = (lane & Hh) != 0;
#pragma unroll
  for (int m = 0; m < Hh; ++m) {
    const float send = upper ? x[m] : x[m + Hh];
    const float keep = upper ? x[m + Hh] : x[m];
    x[m] = keep + __shfl_xor_sync(0xffffffffu, send, Hh);
  }
}

// Lane l of the warp returns sum over the 32 lanes of their x[l]. Clobbers x.
__device__ __forceinline__ float ReduceScatter32(float (&x)[32], int lane) {
  ReduceScatterStage<16>(x, lane);
  ReduceScatterStage<8>(x, lane);
  ReduceScatterStage<4>(x, lane);
  ReduceScatterStage<2>(x, lane);
  ReduceScatterStage<1>(x, lane);
  return x[0];
}

// Per head workspace: ck [nseg][D][D] (checkpoints), seg [ckpt+1][D][D] (one segment's states),
// sas [ckpt][D] (its sa vectors).
template <typename In, int D>
__global__ void __launch_bounds__(D)
    RecBwdKernel(I64 T, I64 H, float scale, I64 ckpt, I64 nseg, BwdPtrs<In> p, float* ck,
                 float* seg, float* sas) {
  constexpr int NW = D / 32;
  constexpr I64 DD = static_cast<I64>(D) * D;
  __shared__ float part[NW][5][D];
  const I64 bh = blockIdx.x, bi = bh / H, hi = bh % H;
  const int j = threadIdx.x, lane = j & 31, warp = j >> 5;
  float* ckh = ck + bh * nseg * DD;
  float* segh = seg + bh * (ckpt + 1) * DD;
  float* sah = sas + bh * ckpt * D;

  // Pass 1: the state at the start of every segment.
  {
    float S[D];
#pragma unroll
    for (int i = 0; i < D; ++i) S[i] = p.h0 != nullptr ? p.h0[bh * DD + i * D + j] : 0.0f;
    for (I64 s = 0; s < nseg; ++s) {
#pragma unroll
      for (int i = 0; i < D; ++i) ckh[s * DD + i * D + j] = S[i];
      if (s == nseg - 1) break;
      for (I64 t = s * ckpt; t < (s + 1) * ckpt; ++t) {
        const I64 row = RowOff(bi, t, hi, T, H, D);
        float sa = 0.0f;
#pragma unroll
        for (int i = 0; i < D; ++i) sa += Ld(p.a + row + i) * S[i];
        const float vj = Ld(p.v + row + j);
#pragma unroll
        for (int i = 0; i < D; ++i) {
          S[i] = expf(Ld(p.g + row + i)) * S[i] + Ld(p.b + row + i) * sa + Ld(p.k + row + i) * vj;
        }
      }
    }
  }

  // Pass 2: segments in reverse.
  float G[D];
#pragma unroll
  for (int i = 0; i < D; ++i) G[i] = p.dhT != nullptr ? p.dhT[bh * DD + i * D + j] : 0.0f;
  for (I64 s = nseg - 1; s >= 0; --s) {
    const I64 t0 = s * ckpt, len = T - t0 < ckpt ? T - t0 : ckpt;
    for (int i = 0; i < D; ++i) segh[i * D + j] = ckh[s * DD + i * D + j];
    for (I64 m = 0; m < len; ++m) {
      const I64 row = RowOff(bi, t0 + m, hi, T, H, D);
      const float* Sp = segh + m * DD;
      float* Sn = segh + (m + 1) * DD;
      float sa = 0.0f;
      for (int i = 0; i < D; ++i) sa += Ld(p.a + row + i) * Sp[i * D + j];
      sah[m * D + j] = sa;
      const float vj = Ld(p.v + row + j);
      for (int i = 0; i < D; ++i) {
        Sn[i * D + j] = expf(Ld(p.g + row + i)) * Sp[i * D + j] + Ld(p.b + row + i) * sa +
                        Ld(p.k + row + i) * vj;
      }
    }
    for (I64 m = len - 1; m >= 0; --m) {
      const I64 row = RowOff(bi, t0 + m, hi, T, H, D);
      const float* Stc = segh + (m + 1) * DD;  // S_t
      const float* Spc = segh + m * DD;        // S_{t-1}
      const float doj = Ld(p.dout + row + j), saj = sah[m * D + j], vj = Ld(p.v + row + j);
      float dvj = 0.0f, dsaj = 0.0f;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        G[i] += (scale * Ld(p.r + row + i)) * doj;
        dvj += Ld(p.k + row + i) * G[i];
        dsaj += Ld(p.b + row + i) * G[i];
      }
#pragma unroll
      for (int grp = 0; grp < NW; ++grp) {
        const int i0 = grp * 32;
        float x[32];
#pragma unroll
        for (int l = 0; l < 32; ++l) x[l] = Stc[(i0 + l) * D + j] * doj;
        part[warp][0][i0 + lane] = ReduceScatter32(x, lane);
#pragma unroll
        for (int l = 0; l < 32; ++l) x[l] = G[i0 + l] * vj;
        part[warp][1][i0 + lane] = ReduceScatter32(x, lane);
#pragma unroll
        for (int l = 0; l < 32; ++l) x[l] = G[i0 + l] * saj;
        part[warp][2][i0 + lane] = ReduceScatter32(x, lane);
#pragma unroll
        for (int l = 0; l < 32; ++l) x[l] = G[i0 + l] * Spc[(i0 + l) * D + j];
        part[warp][3][i0 + lane] = ReduceScatter32(x, lane);
#pragma unroll
        for (int l = 0; l < 32; ++l) x[l] = Spc[(i0 + l) * D + j] * dsaj;
        part[warp][4][i0 + lane] = ReduceScatter32(x, lane);
      }
#pragma unroll
      for (int i = 0; i < D; ++i) G[i] = expf(Ld(p.g + row + i)) * G[i] + Ld(p.a + row + i) * dsaj;
      AccSt(p.dv + row + j, dvj);
      __syncthreads();
      {
        const int i = j;  // row i's five sums, warps added in order
        float q[5];
#pragma unroll
        for (int c = 0; c < 5; ++c) {
          q[c] = part[0][c][i];
#pragma unroll
          for (int w = 1; w < NW; ++w) q[c] += part[w][c][i];
        }
        AccSt(p.dr + row + i, scale * q[0]);
        AccSt(p.dk + row + i, q[1]);
        AccSt(p.db + row + i, q[2]);
        AccSt(p.dg + row + i, expf(Ld(p.g + row + i)) * q[3]);
        AccSt(p.da + row + i, q[4]);
      }
      __syncthreads();  // part is rewritten by the next step
    }
  }
  if (p.dh0 != nullptr) {
#pragma unroll
    for (int i = 0; i < D; ++i) p.dh0[bh * DD + i * D + j] += G[i];
  }
}

template <typename In>
FwdPtrs<In> Typed(const DplrCudaForwardArgs& a) {
  return {static_cast<const In*>(a.r), static_cast<const In*>(a.g), static_cast<const In*>(a.k),
          static_cast<const In*>(a.v), static_cast<const In*>(a.a), static_cast<const In*>(a.b),
          a.h0, static_cast<In*>(a.o), a.hT};
}
template <typename In>
BwdPtrs<In> Typed(const DplrCudaBackwardArgs& a) {
  return {static_cast<const In*>(a.r), static_cast<const In*>(a.g), static_cast<const In*>(a.k),
          static_cast<const In*>(a.v), static_cast<const In*>(a.a), static_cast<const In*>(a.b),
          a.h0, static_cast<const In*>(a.dout), a.dhT, static_cast<In*>(a.dr),
          static_cast<In*>(a.dg), static_cast<In*>(a.dk), static_cast<In*>(a.dv),
          static_cast<In*>(a.da), static_cast<In*>(a.db), a.dh0};
}

template <typename In, int D>
void LaunchFwd(const DplrCudaDims& d, const DplrCudaConfig& cfg, const DplrCudaForwardArgs& args,
               cudaStream_t stream) {
  RecFwdKernel<In, D><<<static_cast<unsigned>(d.B * d.H), D, 0, stream>>>(d.T, d.H, cfg.scale,
                                                                          Typed<In>(args));
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <typename In, int D>
void LaunchBwd(const DplrCudaDims& d, const DplrCudaConfig& cfg, const dplr_plan::Plan& p,
               const DplrCudaBackwardArgs& args, char* ws, cudaStream_t stream) {
  RecBwdKernel<In, D><<<static_cast<unsigned>(d.B * d.H), D, 0, stream>>>(
      d.T, d.H, cfg.scale, p.ckpt, p.nseg, Typed<In>(args),
      reinterpret_cast<float*>(ws + p.ck_off), reinterpret_cast<float*>(ws + p.seg_off),
      reinterpret_cast<float*>(ws + p.sa_off));
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void RecurrentForward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      const DplrCudaForwardArgs& args, cudaStream_t stream) {
  const bool bf = cfg.dtype == DplrDType::kBf16;
  switch (d.D) {
    case 32: return bf ? LaunchFwd<__nv_bfloat16, 32>(d, cfg, args, stream)
                       : LaunchFwd<float, 32>(d, cfg, args, stream);
    case 64: return bf ? LaunchFwd<__nv_bfloat16, 64>(d, cfg, args, stream)
                       : LaunchFwd<float, 64>(d, cfg, args, stream);
    case 128: return bf ? LaunchFwd<__nv_bfloat16, 128>(d, cfg, args, stream)
                        : LaunchFwd<float, 128>(d, cfg, args, stream);
    default: RADLADS_DPLR_REQUIRE(false, "unsupported head size");
  }
}

void RecurrentBackward(const DplrCudaDims& d, const DplrCudaConfig& cfg, const dplr_plan::Plan& p,
                       const DplrCudaBackwardArgs& args, char* ws, cudaStream_t stream) {
  const bool bf = cfg.dtype == DplrDType::kBf16;
  switch (d.D) {
    case 32: return bf ? LaunchBwd<__nv_bfloat16, 32>(d, cfg, p, args, ws, stream)
                       : LaunchBwd<float, 32>(d, cfg, p, args, ws, stream);
    case 64: return bf ? LaunchBwd<__nv_bfloat16, 64>(d, cfg, p, args, ws, stream)
                       : LaunchBwd<float, 64>(d, cfg, p, args, ws, stream);
    case 128: return bf ? LaunchBwd<__nv_bfloat16, 128>(d, cfg, p, args, ws, stream)
                        : LaunchBwd<float, 128>(d, cfg, p, args, ws, stream);
    default: RADLADS_DPLR_REQUIRE(false, "unsupported head size");
  }
}

}  // namespace radlads::cuda::dplr_detail
