// CUDA GLA recurrence, recurrent algorithm (the GPU reference and fallback), and the public
// entry points of kernels/cuda/gla.h. Semantics: gla.h (= kernels/ops/gla.h).
//
// The recurrence is separable both ways: a column S[:, j] evolves on its own
// (S_t[:, j] = w_t . S_{t-1}[:, j] + k_t v_t[j]), and so does a row S[i, :]
// (S_t[i, :] = w_t[i] S_{t-1}[i, :] + k_t[i] v_t), and so does the state gradient
// G_t = diag(w_{t+1}) G_{t+1} + q_t do_t^T. Every quantity needs only one of the two slicings:
//   column j (K fp32 registers): o_t[j] = q_t . S_t[:, j], hT, dv_t[j] = k_t . G_t[:, j], dh0;
//   row i (V values):            dr_t[i] = scale S_t[i, :] . do_t, dk_t[i] = G_t[i, :] . v_t,
//                                dg_t[i] = w_t[i] (G_t[i, :] . S_{t-1}[i, :]).
// So there are no cross-thread reductions at all: the forward is one column kernel; the
// backward is one column kernel (reverse sweep of G, no states needed) and one row kernel
// (forward sweep writing a checkpoint every 16 tokens, then per 16-token block in reverse:
// recompute the block's states into the workspace, then the reverse steps). Per element the
// arithmetic is the CPU recurrent form's, in the same order (kernels/ops/gla.cpp).
//
// One block per (b, h) with V threads (column kernels) or K threads (row kernel). Inputs are
// read straight from global memory: the per-token vectors every thread of a block needs
// (r, k, g in the column kernels; v, d_o in the row kernel) are the same address across the
// warp, one broadcast transaction each.
#include <cuda_bf16.h>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gla.h"
#include "kernels/cuda/gla_common.cuh"

namespace radlads::cuda {
namespace gla_detail {
namespace {

using gla_plan::kCheckpoint;

// o and hT; thread j owns column j of the state.
template <int K, class T>
__global__ void __launch_bounds__(128) ColumnForwardKernel(GlaForwardArgsT<T> a) {
  const std::int64_t H = a.shape.H, Tn = a.shape.T, V = a.shape.V;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int j = threadIdx.x;
  const std::int64_t KV = K * V;
  float s[K];
#pragma unroll
  for (int i = 0; i < K; ++i) s[i] = a.h0 ? a.h0[bh * KV + i * V + j] : 0.0f;
  for (std::int64_t t = 0; t < Tn; ++t) {
    const std::int64_t row = (b * Tn + t) * H + h;
    const T* rt = a.r + row * K;
    const T* kt = a.k + row * K;
    const T* gt = a.g + row * K;
    const float vj = ToF(a.v[row * V + j]);
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const float sv = expf(ToF(gt[i])) * s[i] + ToF(kt[i]) * vj;
      s[i] = sv;
      acc += (a.scale * ToF(rt[i])) * sv;
    }
    a.o[row * V + j] = FromF<T>(acc);
  }
  if (a.hT) {
#pragma unroll
    for (int i = 0; i < K; ++i) a.hT[bh * KV + i * V + j] = s[i];
  }
}

// dv and dh0: reverse sweep of column j of the state gradient.
template <int K, class T>
__global__ void __launch_bounds__(128) ColumnBackwardKernel(GlaBackwardArgsT<T> a) {
  const std::int64_t H = a.shape.H, Tn = a.shape.T, V = a.shape.V;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int j = threadIdx.x;
  const std::int64_t KV = K * V;
  float G[K];
#pragma unroll
  for (int i = 0; i < K; ++i) G[i] = a.dhT ? a.dhT[bh * KV + i * V + j] : 0.0f;
  for (std::int64_t t = Tn - 1; t >= 0; --t) {
    const std::int64_t row = (b * Tn + t) * H + h;
    const T* rt = a.r + row * K;
    const T* kt = a.k + row * K;
    const T* gt = a.g + row * K;
    const float doj = ToF(a.d_o[row * V + j]);
    float dvj = 0.0f;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const float gv = G[i] + (a.scale * ToF(rt[i])) * doj;  // G_t = decayed G_{t+1} + q do^T
      dvj += gv * ToF(kt[i]);                               // dv_t = G_t^T k_t
      G[i] = gv * expf(ToF(gt[i]));                         // flows to S_{t-1}
    }
    T* dvt = a.dv + row * V + j;
    *dvt = FromF<T>(ToF(*dvt) + dvj);
  }
  if (a.dh0) {
#pragma unroll
    for (int i = 0; i < K; ++i) a.dh0[bh * KV + i * V + j] += G[i];
  }
}

// dr, dk, dg: thread i owns row i of the state and of its gradient. Workspace (fp32, element
// (j, i) of a snapshot at j*K + i so a warp's accesses are contiguous):
//   ckpt [B*H][nblk][V][K]: state before token c*16;  seg [B*H][16][V][K]: states after the
//   tokens of the block being reversed.
template <int V, class T>
__global__ void __launch_bounds__(128) RowBackwardKernel(GlaBackwardArgsT<T> a, float* ws) {
  const std::int64_t H = a.shape.H, Tn = a.shape.T, K = a.shape.K;
  const std::int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
  const int i = threadIdx.x;
  const std::int64_t KV = K * V, BH = a.shape.B * H;
  const std::int64_t nblk = (Tn + kCheckpoint - 1) / kCheckpoint;
  float* ckpt = ws + bh * nblk * KV + i;
  float* seg = ws + BH * nblk * KV + bh * kCheckpoint * KV + i;
  // Forward sweep: checkpoints.
  {
    float s[V];
#pragma unroll
    for (int j = 0; j < V; ++j) s[j] = a.h0 ? a.h0[bh * KV + i * V + j] : 0.0f;
    for (std::int64_t t = 0; t < Tn; ++t) {
      if (t % kCheckpoint == 0) {
        float* c = ckpt + (t / kCheckpoint) * KV;
#pragma unroll
        for (int j = 0; j < V; ++j) c[j * K] = s[j];
      }
      const std::int64_t row = (b * Tn + t) * H + h;
      const float w = expf(ToF(a.g[row * K + i])), ki = ToF(a.k[row * K + i]);
      const T* vt = a.v + row * V;
#pragma unroll
      for (int j = 0; j < V; ++j) s[j] = w * s[j] + ki * ToF(vt[j]);
    }
  }
  float G[V];
#pragma unroll
  for (int j = 0; j < V; ++j) G[j] = a.dhT ? a.dhT[bh * KV + i * V + j] : 0.0f;
  for (std::int64_t c = nblk - 1; c >= 0; --c) {
    const std::int64_t t0 = c * kCheckpoint;
    const std::int64_t t1 = t0 + kCheckpoint < Tn ? t0 + kCheckpoint : Tn;
    // seg[t - t0] = state after token t (same thread writes and reads: no sync needed).
    for (std::int64_t t = t0; t < t1; ++t) {
      const float* prev = t > t0 ? seg + (t - t0 - 1) * KV : ckpt + c * KV;
      float* cur = seg + (t - t0) * KV;
      const std::int64_t row = (b * Tn + t) * H + h;
      const float w = expf(ToF(a.g[row * K + i])), ki = ToF(a.k[row * K + i]);
      const T* vt = a.v + row * V;
#pragma unroll
      for (int j = 0; j < V; ++j) cur[j * K] = w * prev[j * K] + ki * ToF(vt[j]);
    }
    for (std::int64_t t = t1 - 1; t >= t0; --t) {
      const float* St = seg + (t - t0) * KV;
      const float* Sp = t > t0 ? seg + (t - t0 - 1) * KV : ckpt + c * KV;
      const std::int64_t row = (b * Tn + t) * H + h;
      const float qi = a.scale * ToF(a.r[row * K + i]);
      const float ki = ToF(a.k[row * K + i]);
      const float w = expf(ToF(a.g[row * K + i]));
      const T* vt = a.v + row * V;
      const T* dot = a.d_o + row * V;
      float dq = 0.0f, dk = 0.0f, x = 0.0f;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float doj = ToF(dot[j]);
        const float gv = G[j] + qi * doj;  // G_t
        dq += St[j * K] * doj;             // dq_t = S_t do_t
        dk += gv * ToF(vt[j]);             // dk_t = G_t v_t
        x += gv * Sp[j * K];               // rowsum(G_t . S_{t-1})
        G[j] = gv * w;
      }
      T* drt = a.dr + row * K + i;
      T* dkt = a.dk + row * K + i;
      T* dgt = a.dg + row * K + i;
      *drt = FromF<T>(ToF(*drt) + a.scale * dq);
      *dkt = FromF<T>(ToF(*dkt) + dk);
      *dgt = FromF<T>(ToF(*dgt) + w * x);  // dg_t = w_t rowsum(G_t . S_{t-1})
    }
  }
}

template <int K, class T>
void LaunchColumnForward(const GlaForwardArgsT<T>& a, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(a.shape.B * a.shape.H);
  ColumnForwardKernel<K, T><<<blocks, static_cast<unsigned>(a.shape.V), 0, stream>>>(a);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void RecurrentForward(const GlaForwardArgsT<T>& a, cudaStream_t stream) {
  switch (a.shape.K) {
    case 32: LaunchColumnForward<32, T>(a, stream); break;
    case 64: LaunchColumnForward<64, T>(a, stream); break;
    default: LaunchColumnForward<128, T>(a, stream); break;
  }
}

template <int K, class T>
void LaunchColumnBackward(const GlaBackwardArgsT<T>& a, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(a.shape.B * a.shape.H);
  ColumnBackwardKernel<K, T><<<blocks, static_cast<unsigned>(a.shape.V), 0, stream>>>(a);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <int V, class T>
void LaunchRowBackward(const GlaBackwardArgsT<T>& a, float* ws, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(a.shape.B * a.shape.H);
  RowBackwardKernel<V, T><<<blocks, static_cast<unsigned>(a.shape.K), 0, stream>>>(a, ws);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void RecurrentBackward(const GlaBackwardArgsT<T>& a, float* ws, cudaStream_t stream) {
  switch (a.shape.K) {
    case 32: LaunchColumnBackward<32, T>(a, stream); break;
    case 64: LaunchColumnBackward<64, T>(a, stream); break;
    default: LaunchColumnBackward<128, T>(a, stream); break;
  }
  if (a.shape.T == 0) return;  // dr, dk, dg are empty
  switch (a.shape.V) {
    case 32: LaunchRowBackward<32, T>(a, ws, stream); break;
    case 64: LaunchRowBackward<64, T>(a, ws, stream); break;
    default: LaunchRowBackward<128, T>(a, ws, stream); break;
  }
}

}  // namespace
}  // namespace gla_detail

void GlaForwardCuda(const GlaForwardArgs& a, GlaAlgo algo, cudaStream_t stream) {
  gla_detail::CheckForward(a, algo);
  if (algo == GlaAlgo::kChunked) {
    gla_detail::ChunkedForward(a, stream);
  } else {
    gla_detail::RecurrentForward(a, stream);
  }
}

void GlaBackwardCuda(const GlaBackwardArgs& a, GlaAlgo algo, void* workspace,
                     std::size_t workspace_bytes, cudaStream_t stream) {
  gla_detail::CheckBackward(a, algo, workspace, workspace_bytes);
  if (algo == GlaAlgo::kChunked) {
    gla_detail::ChunkedBackward(a, static_cast<float*>(workspace), stream);
  } else {
    gla_detail::RecurrentBackward(a, static_cast<float*>(workspace), stream);
  }
}

void GlaForwardCuda(const GlaForwardArgsF32& a, cudaStream_t stream) {
  gla_detail::CheckForward(a, GlaAlgo::kRecurrent);
  gla_detail::RecurrentForward(a, stream);
}

void GlaBackwardCuda(const GlaBackwardArgsF32& a, void* workspace, std::size_t workspace_bytes,
                     cudaStream_t stream) {
  gla_detail::CheckBackward(a, GlaAlgo::kRecurrent, workspace, workspace_bytes);
  gla_detail::RecurrentBackward(a, static_cast<float*>(workspace), stream);
}

}  // namespace radlads::cuda
