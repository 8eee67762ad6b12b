// GLA recurrence (RAD-RWKV6): API, shape checks, the small matmul kernel and the recurrent form.
// The chunked form is in gla_chunked.cpp. Semantics and shapes: gla.h.
//
// FLOPs per token and head (an FMA counts 2; C = chunk, Cs = 16 sub-chunk; triangular parts
// counted as computed):
//   Recurrent forward  : update s = w s + k v^T (3 KV) + readout o += q s (2 KV) = 5 KV, K exp.
//   Recurrent backward : state recompute from checkpoints every 16 tokens (3 KV) + reverse step
//                        (G += q do^T, dq = S do, dk = G v, dv = G^T k, rowsum(G . S_prev): 2 KV
//                        each; G *= w: 1 KV) = 14 KV, 2K exp.        fwd+bwd = 19 KV.
//   Chunked forward    : (q e^b) S0 2 KV + state update 2 KV + A (K(C-Cs) off-diagonal + 2 K Cs
//                        diagonal) + A V (V(C+Cs)) = 4 KV + (K+V)(C+Cs), ~5 K exp.
//   Chunked backward   : chunk-state recompute 2 KV; dv = kend dH, dk_state = v dH^T,
//                        dq_inter = dO S0^T, dH and dH^T updates: 10 KV; A again K(C+Cs); dA and
//                        A^T dO: 2 V(C+Cs); intra dq and dk: 2 K(C+Cs)
//                        = 12 KV + 3 K(C+Cs) + 2 V(C+Cs), ~7 K exp.
//                        fwd+bwd = 16 KV + 4 K(C+Cs) + 3 V(C+Cs).
//   D = K = V = 64: recurrent fwd 20.5 k, fwd+bwd 77.8 k; chunk 16 fwd 20.5 k, fwd+bwd 79.9 k;
//   chunk 32 fwd 22.5 k, fwd+bwd 87.0 k; chunk 64 fwd 26.6 k, fwd+bwd 101.4 k.
//
// Which is used when (the caller picks with GlaOptions::chunk). Measured on the 2-core AVX-512
// development machine, one thread, best of 5 (kernels_gla_test --gtest_also_run_disabled_tests
// --gtest_filter='*Timing*'), B=2 T=512 H=8 D=64: recurrent fwd 4.7 ms, fwd+bwd 30 ms; chunk 16
// fwd 4.3 ms, fwd+bwd 16.5 ms; chunk 32 fwd 5.0 ms, fwd+bwd 17.7 ms. At D=128 the chunked
// fwd+bwd is ~2x faster than the recurrent one, at D=32 ~1.8x.
//   - Training (fwd+bwd): the chunked form, chunk 16 or 32. Same FLOPs as the recurrent form
//     but in small matrix products at ~35-40 GFLOP/s per core, against ~20 for the recurrent
//     reverse sweep (three dot-product reductions per state row and token).
//   - Forward only (evaluation, stage-1 hidden-state targets): either; the recurrent form is
//     as fast at D <= 64 and is the simplest code.
// Both are exact to fp32 rounding against the fp64 reference (worst relative RMS ~1e-6 over the
// tests' decay regimes, g down to -30). RADLADS itself trains with fla's fused_recurrent_gla
// (docs/spec.md §6.2: the chunked Triton kernel was unstable at scale before the -5 clamp);
// gla_chunked.cpp explains how this chunked form stays exact for any g <= 0.
//
// Threading: cpu::ParallelFor over the B*H independent (b, h) pairs, each with its own scratch
// and its own vectorised matrix micro-kernel (MatMulAcc below). The alternative, Gemm (OpenBLAS)
// calls from a sequential loop over (b, h) and chunks, was measured: on one thread it is no
// faster than MatMulAcc (OpenBLAS's small-matrix kernels run at the same 35-40 GFLOP/s on
// 16..64-row blocks), and it cannot use the second core because OpenBLAS does not split
// matrices this small, so the per-(b, h) parallel version is kept.
#include "kernels/ops/gla.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"
#include "kernels/ops/gla_internal.h"

namespace radlads {
namespace gla_internal {
namespace {

// The register-blocked micro-kernel and its vector width: kernels/cpu/simd.h.
using cpu::kLanes;
using cpu::kRegs;

// One row of a column tail of width w < kLanes.
inline void RowTail(std::int64_t w, std::int64_t P, const float* a, std::int64_t a_cs,
                    const float* b, std::int64_t ldb, float* c) {
  float acc[kLanes];
  for (std::int64_t j = 0; j < w; ++j) acc[j] = c[j];
  for (std::int64_t p = 0; p < P; ++p) {
    const float ai = a[p * a_cs];
    const float* bp = b + p * ldb;
    for (std::int64_t j = 0; j < w; ++j) acc[j] += ai * bp[j];
  }
  for (std::int64_t j = 0; j < w; ++j) c[j] = acc[j];
}

// Rows [0, M) of one column panel of kLanes*NV columns: R rows at a time, then 4, then 1.
template <int R, int NV>
inline void Panel(std::int64_t M, std::int64_t P, const float* a, std::int64_t a_rs,
                  std::int64_t a_cs, const float* b, std::int64_t ldb, float* c,
                  std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + R <= M; i += R) cpu::MicroKernel<R, NV>(P, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, true);
  for (; i + 4 <= M; i += 4) cpu::MicroKernel<4, NV>(P, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, true);
  for (; i < M; ++i) cpu::MicroKernel<1, NV>(P, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, true);
}

}  // namespace

// Column panels of two vectors, then one, then the tail; within a panel the B columns stay in
// L1 across the row blocks. Half the registers hold accumulators.
constexpr int kRows2 = kRegs / 4;  // rows x 2 vectors
constexpr int kRows1 = kRegs / 2;  // rows x 1 vector

void MatMulAcc(std::int64_t M, std::int64_t N, std::int64_t P, const float* a, std::int64_t a_rs,
               std::int64_t a_cs, const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  if (M <= 0 || N <= 0 || P <= 0) return;
  std::int64_t j = 0;
  for (; j + 2 * kLanes <= N; j += 2 * kLanes) {
    Panel<kRows2, 2>(M, P, a, a_rs, a_cs, b + j, ldb, c + j, ldc);
  }
  for (; j + kLanes <= N; j += kLanes) {
    Panel<kRows1, 1>(M, P, a, a_rs, a_cs, b + j, ldb, c + j, ldc);
  }
  if (j < N) {
    for (std::int64_t i = 0; i < M; ++i) {
      RowTail(N - j, P, a + i * a_rs, a_cs, b + j, ldb, c + i * ldc + j);
    }
  }
}

namespace {

// S_out = diag(exp(g_t)) S_in + k_t v_t^T for one token (S_out may be S_in); dec receives
// exp(g_t).
inline void StateStep(std::int64_t K, std::int64_t V, const float* gt, const float* kt,
                      const float* vt, float* dec, const float* S_in, float* S_out) {
#pragma omp simd
  for (std::int64_t i = 0; i < K; ++i) dec[i] = FastExp(gt[i]);
  for (std::int64_t i = 0; i < K; ++i) {
    const float* si = S_in + i * V;
    float* so = S_out + i * V;
    const float d = dec[i], ki = kt[i];
    for (std::int64_t j = 0; j < V; ++j) so[j] = d * si[j] + ki * vt[j];
  }
}

void RecurrentForward(const GlaProblem& p) {
  const std::int64_t K = p.K, V = p.V, KV = K * V;
  const std::int64_t sk = p.H * K, sv = p.H * V;  // token strides
  cpu::ParallelFor(p.B * p.H, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> S(static_cast<std::size_t>(KV)), dec(static_cast<std::size_t>(K)),
        q(static_cast<std::size_t>(K)), acc(static_cast<std::size_t>(V));
    for (std::int64_t bh = begin; bh < end; ++bh) {
      const std::int64_t b = bh / p.H, h = bh % p.H;
      if (p.h0) {
        std::copy(p.h0 + bh * KV, p.h0 + (bh + 1) * KV, S.begin());
      } else {
        std::fill(S.begin(), S.end(), 0.0f);
      }
      const std::int64_t ok = (b * p.T * p.H + h) * K, ov = (b * p.T * p.H + h) * V;
      for (std::int64_t t = 0; t < p.T; ++t) {
        const float* rt = p.r + ok + t * sk;
        const float* kt = p.k + ok + t * sk;
        const float* gt = p.g + ok + t * sk;
        const float* vt = p.v + ov + t * sv;
#pragma omp simd
        for (std::int64_t i = 0; i < K; ++i) {
          dec[i] = FastExp(gt[i]);
          q[i] = p.scale * rt[i];
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        float* a = acc.data();
        for (std::int64_t i = 0; i < K; ++i) {
          float* s = S.data() + i * V;
          const float d = dec[i], ki = kt[i], qi = q[i];
          for (std::int64_t j = 0; j < V; ++j) {
            const float sj = d * s[j] + ki * vt[j];
            s[j] = sj;
            a[j] += qi * sj;
          }
        }
        std::copy(acc.begin(), acc.end(), p.o + ov + t * sv);
      }
      if (p.hT) std::copy(S.begin(), S.end(), p.hT + bh * KV);
    }
  });
}

// Reverse sweep; states are recomputed block by block from checkpoints taken every
// kRecurrentCheckpoint tokens ((T/16 + 16) states per (b, h) instead of T).
void RecurrentBackward(const GlaProblem& p) {
  const std::int64_t K = p.K, V = p.V, KV = K * V, T = p.T;
  const std::int64_t sk = p.H * K, sv = p.H * V;
  const std::int64_t Cc = kRecurrentCheckpoint;
  const std::int64_t nblk = (T + Cc - 1) / Cc;
  cpu::ParallelFor(p.B * p.H, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> ckpt(static_cast<std::size_t>(std::max<std::int64_t>(nblk, 1) * KV));
    std::vector<float> buf(static_cast<std::size_t>(Cc * KV)), S(static_cast<std::size_t>(KV));
    std::vector<float> G(static_cast<std::size_t>(KV)), dec(static_cast<std::size_t>(K)),
        q(static_cast<std::size_t>(K)), dva(static_cast<std::size_t>(V));
    for (std::int64_t bh = begin; bh < end; ++bh) {
      const std::int64_t b = bh / p.H, h = bh % p.H;
      const std::int64_t ok = (b * T * p.H + h) * K, ov = (b * T * p.H + h) * V;
      // Forward sweep: checkpoint c holds the state before token c*Cc.
      if (p.h0) {
        std::copy(p.h0 + bh * KV, p.h0 + (bh + 1) * KV, S.begin());
      } else {
        std::fill(S.begin(), S.end(), 0.0f);
      }
      for (std::int64_t t = 0; t < T; ++t) {
        if (t % Cc == 0) std::copy(S.begin(), S.end(), ckpt.begin() + (t / Cc) * KV);
        StateStep(K, V, p.g + ok + t * sk, p.k + ok + t * sk, p.v + ov + t * sv, dec.data(),
                  S.data(), S.data());
      }
      if (p.dhT) {
        std::copy(p.dhT + bh * KV, p.dhT + (bh + 1) * KV, G.begin());
      } else {
        std::fill(G.begin(), G.end(), 0.0f);
      }
      for (std::int64_t c = nblk - 1; c >= 0; --c) {
        const std::int64_t t0 = c * Cc, t1 = std::min(T, t0 + Cc);
        // buf[t - t0] = state after token t.
        const float* prev = ckpt.data() + c * KV;
        for (std::int64_t t = t0; t < t1; ++t) {
          float* cur = buf.data() + (t - t0) * KV;
          StateStep(K, V, p.g + ok + t * sk, p.k + ok + t * sk, p.v + ov + t * sv, dec.data(),
                    prev, cur);
          prev = cur;
        }
        for (std::int64_t t = t1 - 1; t >= t0; --t) {
          const float* St = buf.data() + (t - t0) * KV;
          const float* Sp = t > t0 ? buf.data() + (t - t0 - 1) * KV : ckpt.data() + c * KV;
          const float* rt = p.r + ok + t * sk;
          const float* kt = p.k + ok + t * sk;
          const float* gt = p.g + ok + t * sk;
          const float* vt = p.v + ov + t * sv;
          const float* dot = p.d_o + ov + t * sv;
          float* drt = p.dr + ok + t * sk;
          float* dkt = p.dk + ok + t * sk;
          float* dgt = p.dg + ok + t * sk;
#pragma omp simd
          for (std::int64_t i = 0; i < K; ++i) {
            dec[i] = FastExp(gt[i]);
            q[i] = p.scale * rt[i];
          }
          std::fill(dva.begin(), dva.end(), 0.0f);
          float* dvp = dva.data();
          for (std::int64_t i = 0; i < K; ++i) {
            float* Gi = G.data() + i * V;
            const float* si = St + i * V;
            const float* spi = Sp + i * V;
            const float qi = q[i], ki = kt[i], d = dec[i];
            float dq = 0.0f, dki = 0.0f, x = 0.0f;
#pragma omp simd reduction(+ : dq, dki, x)
            for (std::int64_t j = 0; j < V; ++j) {
              const float gv = Gi[j] + qi * dot[j];  // G_t = (decayed G_{t+1}) + q_t do_t^T
              dq += si[j] * dot[j];                  // dq_t = S_t do_t
              dki += gv * vt[j];                     // dk_t = G_t v_t
              dvp[j] += gv * ki;                     // dv_t = G_t^T k_t
              x += gv * spi[j];                      // rowsum(G_t . S_{t-1})
              Gi[j] = gv * d;                        // diag(w_t) G_t, flows to S_{t-1}
            }
            drt[i] += p.scale * dq;
            dkt[i] += dki;
            dgt[i] += d * x;  // dg_t = w_t rowsum(G_t . S_{t-1}): no cancellation
          }
          float* dvt = p.dv + ov + t * sv;
          for (std::int64_t j = 0; j < V; ++j) dvt[j] += dva[j];
        }
      }
      if (p.dh0) {
        float* dst = p.dh0 + bh * KV;
        for (std::int64_t e = 0; e < KV; ++e) dst[e] += G[e];
      }
    }
  });
}

}  // namespace
}  // namespace gla_internal

namespace {

void CheckF32Cpu(const Tensor& t, const char* name) {
  RADLADS_CHECK(t.defined()) << "Gla: " << name << " is undefined";
  RADLADS_CHECK(t.dtype() == DType::kF32 && t.device() == Device::kCpu)
      << "Gla: " << name << " must be F32 on the CPU, got " << t.DebugString();
}

void CheckShape(const Tensor& t, const char* name, const Shape& want) {
  CheckF32Cpu(t, name);
  RADLADS_CHECK(t.shape() == want) << "Gla: " << name << " has shape " << ShapeToString(t.shape())
                                   << ", expected " << ShapeToString(want);
}

gla_internal::GlaProblem MakeProblem(const Tensor& r, const Tensor& k, const Tensor& v,
                                     const Tensor& g, const Tensor& h0, const GlaOptions& opt) {
  CheckF32Cpu(r, "r");
  RADLADS_CHECK(r.rank() == 4) << "Gla: r must be [B,T,H,K], got " << ShapeToString(r.shape());
  CheckF32Cpu(v, "v");
  RADLADS_CHECK(v.rank() == 4) << "Gla: v must be [B,T,H,V], got " << ShapeToString(v.shape());
  gla_internal::GlaProblem p;
  p.B = r.dim(0);
  p.T = r.dim(1);
  p.H = r.dim(2);
  p.K = r.dim(3);
  p.V = v.dim(3);
  CheckShape(k, "k", r.shape());
  CheckShape(g, "g", r.shape());
  CheckShape(v, "v", {p.B, p.T, p.H, p.V});
  if (h0.defined()) {
    CheckShape(h0, "h0", {p.B, p.H, p.K, p.V});
    p.h0 = h0.f32();
  }
  RADLADS_CHECK(opt.chunk >= 0) << "Gla: chunk must be >= 0 (0 = recurrent), got " << opt.chunk;
  p.scale = opt.scale;
  p.r = r.f32();
  p.k = k.f32();
  p.v = v.f32();
  p.g = g.f32();
  return p;
}

}  // namespace

void GlaForward(const Tensor& r, const Tensor& k, const Tensor& v, const Tensor& g,
                const Tensor& h0, const GlaOptions& opt, Tensor& o, Tensor* hT) {
  const profile::Scope profile_scope(profile::Family::kRecurrence);
  gla_internal::GlaProblem p = MakeProblem(r, k, v, g, h0, opt);
  CheckShape(o, "o", {p.B, p.T, p.H, p.V});
  p.o = o.f32();
  if (hT != nullptr) {
    CheckShape(*hT, "hT", {p.B, p.H, p.K, p.V});
    p.hT = hT->f32();
  }
  if (opt.chunk == 0) {
    gla_internal::RecurrentForward(p);
  } else {
    gla_internal::ChunkedForward(p, opt.chunk);
  }
}

void GlaBackward(const Tensor& r, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& h0, const Tensor& d_o, const Tensor& dhT, const GlaOptions& opt,
                 Tensor& dr, Tensor& dk, Tensor& dv, Tensor& dg, Tensor* dh0) {
  const profile::Scope profile_scope(profile::Family::kRecurrence);
  gla_internal::GlaProblem p = MakeProblem(r, k, v, g, h0, opt);
  CheckShape(d_o, "d_o", {p.B, p.T, p.H, p.V});
  p.d_o = d_o.f32();
  if (dhT.defined()) {
    CheckShape(dhT, "dhT", {p.B, p.H, p.K, p.V});
    p.dhT = dhT.f32();
  }
  CheckShape(dr, "dr", r.shape());
  CheckShape(dk, "dk", r.shape());
  CheckShape(dg, "dg", r.shape());
  CheckShape(dv, "dv", v.shape());
  p.dr = dr.f32();
  p.dk = dk.f32();
  p.dg = dg.f32();
  p.dv = dv.f32();
  if (dh0 != nullptr) {
    CheckShape(*dh0, "dh0", {p.B, p.H, p.K, p.V});
    p.dh0 = dh0->f32();
  }
  if (opt.chunk == 0) {
    gla_internal::RecurrentBackward(p);
  } else {
    gla_internal::ChunkedBackward(p, opt.chunk);
  }
}

}  // namespace radlads
