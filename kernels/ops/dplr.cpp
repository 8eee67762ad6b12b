// DPLR recurrence (RAD-RWKV7): API, shape checks, and the recurrent form. The chunked form is in
// dplr_chunked.cpp. Math and conventions: dplr.h.
//
// FLOPs per token-head (FMA = 2, D = K = V, C = chunk length; counted from the loops here and in
// dplr_chunked.cpp; O(D) terms such as the exps left out):
//  - recurrent forward: sa = S^T a (2D^2), update w.S + b sa^T + k v^T (5D^2), o = S^T q (2D^2)
//    = 9D^2. Backward = checkpoint pass (7D^2) + segment recompute (7D^2) + reverse sweep
//    (G += q do^T 2, dr 2, dk 2, db 2, dw 2, dv 2, dsa 2, da 2, G update 3 = 19D^2) = 33D^2;
//    fwd+bwd = 42D^2.
//  - chunked forward: the four A matrices by running decay products (C/2 pairs per row, 11D each:
//    5.5CD), WY forward substitutions (2CD), A_ak V (CD), Vn = W S0 (2D^2), A_qk V + A_qb Vn
//    (2CD), Qh S0 (2D^2), state update (5D^2) = 9D^2 + 10.5CD. Backward = chunk-state pass
//    (7D^2 + 8.5CD) + per-chunk recompute (2D^2 + 8.5CD) + back-propagation (state-sized
//    products 17D^2; dA products computed as full C x C tiles 10CD; transposed solves 2CD;
//    A^T products 3CD; pair loop 11CD) = 26D^2 + 43CD; fwd+bwd = 35D^2 + 53.5CD.
//  - At D = 64: recurrent 37k fwd / 172k fwd+bwd; chunked C = 16: 48k / 198k, C = 64: 80k / 362k.
//    On a CPU the chunked form saves no arithmetic (unlike tensor cores, nothing makes its
//    matrix products cheaper than the recurrent rank-1 passes); both run at a similar rate here.
//  - Measured on this machine (2-core AMD EPYC Zen 4 VM, AVX-512, shared and loaded; 1 thread,
//    CPU time, min of 9, fwd / fwd+bwd in ms):
//      B=8 T=256 H=4 D=32:   recurrent 4.3 / 20.6   C=16 6.3 / 26.2   C=32 10.6 / 37.6
//                            C=64 21.6 / 68.4
//      B=2 T=512 H=8 D=64:   recurrent 10.7 / 51.4  C=16 13.5 / 57.4  C=32 17.0 / 72.4
//                            C=64 31.3 / 112
//      B=1 T=512 H=4 D=128:  recurrent 7.7 / 42.5   C=16 8.3 / 40.3   C=64 14.0 / 58.4
//      B=4 T=512 H=4 D=16:   recurrent 1.5 / 7.6    C=16 4.6 / 19.1
//    So the recurrent form is the CPU default: faster at every D <= 64 and within 5% at D = 128,
//    where chunk 16 is marginally ahead on fwd+bwd. Among chunk lengths 16 is fastest (the C x C
//    work grows with C); longer chunks only buy fewer sequential steps, which a CPU does not need.
#include "kernels/ops/dplr.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"

namespace radlads {
namespace {

using dplr_internal::Problem;

void CheckF32(const Tensor& t, const char* name) {
  RADLADS_CHECK(t.defined()) << "Dplr: " << name << " is undefined";
  RADLADS_CHECK(t.dtype() == DType::kF32 && t.device() == Device::kCpu)
      << "Dplr: " << name << " must be F32 on the CPU, got " << t.DebugString();
}

void CheckShape(const Tensor& t, const Shape& want, const char* name) {
  CheckF32(t, name);
  RADLADS_CHECK(t.shape() == want) << "Dplr: " << name << " has shape "
                                   << ShapeToString(t.shape()) << ", expected "
                                   << ShapeToString(want);
}

Problem MakeProblem(const Tensor& r, const Tensor& g, const Tensor& k, const Tensor& v,
                    const Tensor& a, const Tensor& b, const Tensor& h0, const DplrOptions& opts) {
  CheckF32(r, "r");
  RADLADS_CHECK(r.rank() == 4) << "Dplr: r must be [B,T,H,K], got " << ShapeToString(r.shape());
  CheckF32(v, "v");
  RADLADS_CHECK(v.rank() == 4) << "Dplr: v must be [B,T,H,V], got " << ShapeToString(v.shape());
  Problem p;
  p.B = r.dim(0);
  p.T = r.dim(1);
  p.H = r.dim(2);
  p.K = r.dim(3);
  p.V = v.dim(3);
  RADLADS_CHECK(p.K >= 1 && p.V >= 1) << "Dplr: empty head dimension";
  const Shape sk{p.B, p.T, p.H, p.K};
  CheckShape(g, sk, "g");
  CheckShape(k, sk, "k");
  CheckShape(a, sk, "a");
  CheckShape(b, sk, "b");
  CheckShape(v, {p.B, p.T, p.H, p.V}, "v");
  if (h0.defined()) CheckShape(h0, {p.B, p.H, p.K, p.V}, "h0");
  RADLADS_CHECK(opts.chunk >= 0) << "Dplr: chunk must be >= 0, got " << opts.chunk;
  RADLADS_CHECK(opts.checkpoint >= 1) << "Dplr: checkpoint must be >= 1";
  p.scale = opts.scale;
  p.r = r.f32();
  p.g = g.f32();
  p.k = k.f32();
  p.v = v.f32();
  p.a = a.f32();
  p.b = b.f32();
  p.h0 = h0.defined() ? h0.f32() : nullptr;
  return p;
}

// Offsets of the (bi, t, hi) row in [B,T,H,C] and of head (bi, hi)'s state in [B,H,K,V].
inline std::int64_t Row(const Problem& p, std::int64_t bi, std::int64_t t, std::int64_t hi,
                        std::int64_t C) {
  return ((bi * p.T + t) * p.H + hi) * C;
}
inline std::int64_t StateOff(const Problem& p, std::int64_t bh) { return bh * p.K * p.V; }

using dplr_internal::ExpNonPos;

// One recurrent step on S (K x V): sa = S^T a; S = diag(exp g) S + b sa^T + k v^T. When o is
// non-null also writes o = S^T q (q = scale * r). w is K floats of scratch.
void Step(std::int64_t K, std::int64_t V, float* __restrict S, float* __restrict sa,
          float* __restrict w, const float* __restrict g, const float* __restrict k,
          const float* __restrict v, const float* __restrict a, const float* __restrict b,
          const float* __restrict r, float scale, float* __restrict o) {
  for (std::int64_t i = 0; i < K; ++i) w[i] = ExpNonPos(g[i]);
  std::fill(sa, sa + V, 0.0f);
  for (std::int64_t i = 0; i < K; ++i) {
    const float ai = a[i];
    const float* __restrict row = S + i * V;
    for (std::int64_t j = 0; j < V; ++j) sa[j] += ai * row[j];
  }
  if (o != nullptr) std::fill(o, o + V, 0.0f);
  for (std::int64_t i = 0; i < K; ++i) {
    const float wi = w[i], bi = b[i], ki = k[i];
    float* __restrict row = S + i * V;
    for (std::int64_t j = 0; j < V; ++j) row[j] = wi * row[j] + bi * sa[j] + ki * v[j];
    if (o != nullptr) {
      const float qi = scale * r[i];
      for (std::int64_t j = 0; j < V; ++j) o[j] += qi * row[j];
    }
  }
}

void LoadState(const Problem& p, std::int64_t bh, float* S) {
  const std::int64_t n = p.K * p.V;
  if (p.h0 != nullptr) {
    std::copy(p.h0 + StateOff(p, bh), p.h0 + StateOff(p, bh) + n, S);
  } else {
    std::fill(S, S + n, 0.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// Register-blocked steps for V a small multiple of the SIMD width (V = 16, 32, 64, 128 with
// AVX-512; 8..64 with AVX2): the same math as Step / BackStep, but the row accumulators (sa, o,
// dv, dsa) live in vector registers for the whole step instead of being re-loaded and stored for
// every state row (a store-to-load chain that made the step latency-bound), and each row's dot
// products are reduced with a vector tree instead of 15 scalar adds. Sums over rows use P
// interleaved partial accumulators (combined in a fixed order at the end) so the FMA latency is
// hidden. Deterministic: a fixed order of operations for a given V.
constexpr int kVL = cpu::kLanes;  // kernels/cpu/simd.h
using cpu::FVec;
using cpu::VLoad;
using cpu::VStore;
using HVec = float __attribute__((vector_size(4 * sizeof(float))));

// Sum of the lanes of v, in a fixed tree order: halves added down to 4 lanes, then
// (0 + 2) + (1 + 3).
inline float HSum(const FVec& v) {
  float buf[kVL];
  std::memcpy(buf, &v, sizeof(FVec));
  HVec acc;
  std::memcpy(&acc, buf, sizeof(HVec));
  for (int q = 1; q < kVL / 4; ++q) {
    HVec h;
    std::memcpy(&h, buf + 4 * q, sizeof(HVec));
    acc += h;
  }
  return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// Partial accumulators over rows: enough independent FMA chains to cover the latency.
template <int NV>
constexpr int kChains = NV >= 8 ? 1 : (NV >= 4 ? 2 : 4);

// Step (above) for V = NV * kVL; sa_out (may be null) receives sa.
template <int NV, bool kOut>
void StepV(std::int64_t K, float* __restrict S, float* __restrict sa_out, float* __restrict w,
           const float* __restrict g, const float* __restrict k, const float* __restrict v,
           const float* __restrict a, const float* __restrict b, const float* __restrict r,
           float scale, float* __restrict o) {
  constexpr std::int64_t V = NV * kVL;
  constexpr int P = kChains<NV>;
#pragma omp simd
  for (std::int64_t i = 0; i < K; ++i) w[i] = ExpNonPos(g[i]);
  FVec acc[P][NV];
  for (int c = 0; c < P; ++c)
    for (int u = 0; u < NV; ++u) acc[c][u] = FVec{};
  std::int64_t i = 0;
  for (; i + P <= K; i += P) {
    for (int c = 0; c < P; ++c) {
      const float ai = a[i + c];
      const float* row = S + (i + c) * V;
      for (int u = 0; u < NV; ++u) {
        FVec x;
        VLoad(x, row + u * kVL);
        acc[c][u] += ai * x;
      }
    }
  }
  for (; i < K; ++i) {
    const float ai = a[i];
    for (int u = 0; u < NV; ++u) {
      FVec x;
      VLoad(x, S + i * V + u * kVL);
      acc[0][u] += ai * x;
    }
  }
  FVec sa[NV], vv[NV];
  for (int u = 0; u < NV; ++u) {
    sa[u] = acc[0][u];
    for (int c = 1; c < P; ++c) sa[u] += acc[c][u];
    if (sa_out != nullptr) VStore(sa_out + u * kVL, sa[u]);
    VLoad(vv[u], v + u * kVL);
    for (int c = 0; c < P; ++c) acc[c][u] = FVec{};  // now the output accumulators
  }
  for (i = 0; i < K; ++i) {
    const float wi = w[i], bi = b[i], ki = k[i];
    const float qi = kOut ? scale * r[i] : 0.0f;
    float* row = S + i * V;
    const int c = static_cast<int>(i % P);
    for (int u = 0; u < NV; ++u) {
      FVec x;
      VLoad(x, row + u * kVL);
      x = wi * x + bi * sa[u] + ki * vv[u];
      VStore(row + u * kVL, x);
      if constexpr (kOut) acc[c][u] += qi * x;
    }
  }
  if constexpr (kOut) {
    for (int u = 0; u < NV; ++u) {
      FVec x = acc[0][u];
      for (int c = 1; c < P; ++c) x += acc[c][u];
      VStore(o + u * kVL, x);
    }
  }
}

// BackStep (below) for V = NV * kVL.
template <int NV>
void BackStepV(std::int64_t K, float* __restrict G, const float* __restrict St,
               const float* __restrict Sp, const float* __restrict sa, float* __restrict w,
               const float* __restrict r, const float* __restrict g, const float* __restrict k,
               const float* __restrict v, const float* __restrict a, const float* __restrict b,
               const float* __restrict dout, float scale, float* __restrict dr,
               float* __restrict dg, float* __restrict dk, float* __restrict dv,
               float* __restrict da, float* __restrict db) {
  constexpr std::int64_t V = NV * kVL;
  constexpr int P = NV >= 4 ? 1 : 2;
#pragma omp simd
  for (std::int64_t i = 0; i < K; ++i) w[i] = ExpNonPos(g[i]);
  FVec dov[NV], sav[NV], vv[NV], dvacc[P][NV], dsacc[P][NV];
  for (int u = 0; u < NV; ++u) {
    VLoad(dov[u], dout + u * kVL);
    VLoad(sav[u], sa + u * kVL);
    VLoad(vv[u], v + u * kVL);
    for (int c = 0; c < P; ++c) dvacc[c][u] = dsacc[c][u] = FVec{};
  }
  for (std::int64_t i = 0; i < K; ++i) {
    float* Gr = G + i * V;
    const float* Str = St + i * V;
    const float* Spr = Sp + i * V;
    const float qi = scale * r[i], ki = k[i], bi = b[i];
    const int c = static_cast<int>(i % P);
    FVec pr{}, pk{}, pb{}, pw{};
    for (int u = 0; u < NV; ++u) {
      FVec gij, st, sp;
      VLoad(gij, Gr + u * kVL);
      VLoad(st, Str + u * kVL);
      VLoad(sp, Spr + u * kVL);
      gij += qi * dov[u];
      VStore(Gr + u * kVL, gij);
      pr += st * dov[u];
      pk += gij * vv[u];
      pb += gij * sav[u];
      pw += gij * sp;
      dvacc[c][u] += ki * gij;
      dsacc[c][u] += bi * gij;
    }
    dr[i] += scale * HSum(pr);
    dk[i] += HSum(pk);
    db[i] += HSum(pb);
    dg[i] += w[i] * HSum(pw);
  }
  FVec dsa[NV];
  for (int u = 0; u < NV; ++u) {
    FVec x = dvacc[0][u];
    dsa[u] = dsacc[0][u];
    for (int c = 1; c < P; ++c) {
      x += dvacc[c][u];
      dsa[u] += dsacc[c][u];
    }
    FVec d;
    VLoad(d, dv + u * kVL);
    VStore(dv + u * kVL, d + x);
  }
  for (std::int64_t i = 0; i < K; ++i) {
    float* Gr = G + i * V;
    const float* Spr = Sp + i * V;
    const float wi = w[i], ai = a[i];
    FVec pa{};
    for (int u = 0; u < NV; ++u) {
      FVec gij, sp;
      VLoad(gij, Gr + u * kVL);
      VLoad(sp, Spr + u * kVL);
      pa += sp * dsa[u];
      VStore(Gr + u * kVL, wi * gij + ai * dsa[u]);
    }
    da[i] += HSum(pa);
  }
}

// The widths with a register-blocked kernel: NV in {1, 2, 4, 8} (0: none).
inline int VecBlocks(std::int64_t V) {
  if (V % kVL != 0) return 0;
  const std::int64_t nv = V / kVL;
  return nv == 1 || nv == 2 || nv == 4 || nv == 8 ? static_cast<int>(nv) : 0;
}

// Forward step dispatch: o == nullptr skips the output; sa_out may be null.
inline void StepAny(int nv, std::int64_t K, std::int64_t V, float* S, float* sa_out, float* sa_tmp,
                    float* w, const float* g, const float* k, const float* v, const float* a,
                    const float* b, const float* r, float scale, float* o) {
  switch (o != nullptr ? nv : nv + 16) {
    case 1: StepV<1, true>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 2: StepV<2, true>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 4: StepV<4, true>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 8: StepV<8, true>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 17: StepV<1, false>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 18: StepV<2, false>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 20: StepV<4, false>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    case 24: StepV<8, false>(K, S, sa_out, w, g, k, v, a, b, r, scale, o); return;
    default: break;
  }
  Step(K, V, S, sa_out != nullptr ? sa_out : sa_tmp, w, g, k, v, a, b, r, scale, o);
}

void RecurrentForward(const Problem& p, float* o, float* hT) {
  const std::int64_t K = p.K, V = p.V;
  cpu::ParallelFor(p.B * p.H, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> S(static_cast<std::size_t>(K * V)), sa(static_cast<std::size_t>(V)),
        w(static_cast<std::size_t>(K));
    for (std::int64_t bh = begin; bh < end; ++bh) {
      const std::int64_t bi = bh / p.H, hi = bh % p.H;
      LoadState(p, bh, S.data());
      const int nv = VecBlocks(V);
      for (std::int64_t t = 0; t < p.T; ++t) {
        const std::int64_t rk = Row(p, bi, t, hi, K);
        StepAny(nv, K, V, S.data(), nullptr, sa.data(), w.data(), p.g + rk, p.k + rk,
                p.v + Row(p, bi, t, hi, V), p.a + rk, p.b + rk, p.r + rk, p.scale,
                o + Row(p, bi, t, hi, V));
      }
      if (hT != nullptr) std::copy(S.begin(), S.end(), hT + StateOff(p, bh));
    }
  });
}

// Lane-parallel partial sums for the row dot products of the backward: kLanes independent
// accumulators per dot (one vector register), summed at the end by a fixed balanced tree. This
// keeps the horizontal part off the loop's critical path (an `omp simd reduction` finished with
// a serial chain of scalar adds dominated the step at V = 32). The order is fixed: deterministic.
constexpr std::int64_t kLanes = 16;

inline float LaneSum(const float* __restrict x) {
  float t[kLanes / 2];
  for (std::int64_t l = 0; l < kLanes / 2; ++l) t[l] = x[l] + x[l + kLanes / 2];
  for (std::int64_t l = 0; l < 4; ++l) t[l] += t[l + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}
static_assert(kLanes == 16, "LaneSum assumes 16 lanes");

// Reverse step t with G = dL/dS_t on entry and dL/dS_{t-1} on exit (docs/kernels.md §1.4, key-major):
//   G += q do^T; dr = scale S_t do; dk = G v; db = G sa; dg = exp(g) rowsum(G . S_{t-1});
//   dv = G^T k; dsa = G^T b; da = S_{t-1} dsa; G = diag(exp g) G + a dsa^T.
void BackStep(std::int64_t K, std::int64_t V, float* __restrict G, const float* __restrict St,
              const float* __restrict Sp, const float* __restrict sa, float* __restrict dsa,
              float* __restrict dvacc, float* __restrict w, const float* __restrict r,
              const float* __restrict g, const float* __restrict k, const float* __restrict v,
              const float* __restrict a, const float* __restrict b, const float* __restrict dout,
              float scale, float* __restrict dr, float* __restrict dg, float* __restrict dk,
              float* __restrict dv, float* __restrict da, float* __restrict db) {
  for (std::int64_t i = 0; i < K; ++i) w[i] = ExpNonPos(g[i]);
  std::fill(dsa, dsa + V, 0.0f);
  std::fill(dvacc, dvacc + V, 0.0f);
  const std::int64_t Vb = V - V % kLanes;  // lane-blocked part; the tail goes to lane 0
  for (std::int64_t i = 0; i < K; ++i) {
    float* __restrict Gr = G + i * V;
    const float* __restrict Str = St + i * V;
    const float* __restrict Spr = Sp + i * V;
    const float qi = scale * r[i], ki = k[i], bi = b[i];
    float adr[kLanes] = {}, adk[kLanes] = {}, adb[kLanes] = {}, adw[kLanes] = {};
    for (std::int64_t j0 = 0; j0 < Vb; j0 += kLanes) {
      for (std::int64_t l = 0; l < kLanes; ++l) {
        const std::int64_t j = j0 + l;
        const float gij = Gr[j] + qi * dout[j];
        Gr[j] = gij;
        adr[l] += Str[j] * dout[j];
        adk[l] += gij * v[j];
        adb[l] += gij * sa[j];
        adw[l] += gij * Spr[j];
        dvacc[j] += ki * gij;
        dsa[j] += bi * gij;
      }
    }
    for (std::int64_t j = Vb; j < V; ++j) {
      const float gij = Gr[j] + qi * dout[j];
      Gr[j] = gij;
      adr[0] += Str[j] * dout[j];
      adk[0] += gij * v[j];
      adb[0] += gij * sa[j];
      adw[0] += gij * Spr[j];
      dvacc[j] += ki * gij;
      dsa[j] += bi * gij;
    }
    dr[i] += scale * LaneSum(adr);
    dk[i] += LaneSum(adk);
    db[i] += LaneSum(adb);
    dg[i] += w[i] * LaneSum(adw);
  }
  for (std::int64_t j = 0; j < V; ++j) dv[j] += dvacc[j];
  for (std::int64_t i = 0; i < K; ++i) {
    float* __restrict Gr = G + i * V;
    const float* __restrict Spr = Sp + i * V;
    const float wi = w[i], ai = a[i];
    float ada[kLanes] = {};
    for (std::int64_t j0 = 0; j0 < Vb; j0 += kLanes) {
      for (std::int64_t l = 0; l < kLanes; ++l) {
        const std::int64_t j = j0 + l;
        ada[l] += Spr[j] * dsa[j];
        Gr[j] = wi * Gr[j] + ai * dsa[j];
      }
    }
    for (std::int64_t j = Vb; j < V; ++j) {
      ada[0] += Spr[j] * dsa[j];
      Gr[j] = wi * Gr[j] + ai * dsa[j];
    }
    da[i] += LaneSum(ada);
  }
}

void RecurrentBackward(const Problem& p, std::int64_t ckpt, const float* dout, const float* dhT,
                       float* dr, float* dg, float* dk, float* dv, float* da, float* db,
                       float* dh0) {
  const std::int64_t K = p.K, V = p.V, KV = K * V, T = p.T;
  const std::int64_t nseg = (T + ckpt - 1) / ckpt;
  cpu::ParallelFor(p.B * p.H, 1, [&](std::int64_t begin, std::int64_t end) {
    // ck: state at the start of each segment; seg: S_{s*ckpt + m} for m = 0..len; sas: sa per step.
    std::vector<float> ck(static_cast<std::size_t>(std::max<std::int64_t>(nseg, 1) * KV));
    std::vector<float> seg(static_cast<std::size_t>((ckpt + 1) * KV));
    std::vector<float> sas(static_cast<std::size_t>(ckpt * V));
    std::vector<float> S(static_cast<std::size_t>(KV)), G(static_cast<std::size_t>(KV));
    std::vector<float> sa(static_cast<std::size_t>(V)), dsa(static_cast<std::size_t>(V)),
        dvacc(static_cast<std::size_t>(V)), w(static_cast<std::size_t>(K));
    const int nv = VecBlocks(V);
    for (std::int64_t bh = begin; bh < end; ++bh) {
      const std::int64_t bi = bh / p.H, hi = bh % p.H;
      LoadState(p, bh, S.data());
      for (std::int64_t s = 0; s < nseg; ++s) {
        std::copy(S.begin(), S.end(), ck.begin() + s * KV);
        if (s == nseg - 1) break;  // the last segment's end state is not needed
        for (std::int64_t t = s * ckpt; t < (s + 1) * ckpt; ++t) {
          const std::int64_t rk = Row(p, bi, t, hi, K);
          StepAny(nv, K, V, S.data(), nullptr, sa.data(), w.data(), p.g + rk, p.k + rk,
                  p.v + Row(p, bi, t, hi, V), p.a + rk, p.b + rk, nullptr, 0.0f, nullptr);
        }
      }
      if (dhT != nullptr) {
        std::copy(dhT + StateOff(p, bh), dhT + StateOff(p, bh) + KV, G.begin());
      } else {
        std::fill(G.begin(), G.end(), 0.0f);
      }
      for (std::int64_t s = nseg - 1; s >= 0; --s) {
        const std::int64_t t0 = s * ckpt, len = std::min(ckpt, T - t0);
        std::copy(ck.begin() + s * KV, ck.begin() + (s + 1) * KV, seg.begin());
        for (std::int64_t m = 0; m < len; ++m) {
          const std::int64_t t = t0 + m, rk = Row(p, bi, t, hi, K);
          std::copy(seg.begin() + m * KV, seg.begin() + (m + 1) * KV, seg.begin() + (m + 1) * KV);
          StepAny(nv, K, V, seg.data() + (m + 1) * KV, sas.data() + m * V, nullptr, w.data(),
                  p.g + rk, p.k + rk, p.v + Row(p, bi, t, hi, V), p.a + rk, p.b + rk, nullptr,
                  0.0f, nullptr);
        }
        for (std::int64_t m = len - 1; m >= 0; --m) {
          const std::int64_t t = t0 + m, rk = Row(p, bi, t, hi, K), rv = Row(p, bi, t, hi, V);
          float* Gd = G.data();
          const float* St = seg.data() + (m + 1) * KV;
          const float* Sp = seg.data() + m * KV;
          const float* sam = sas.data() + m * V;
          switch (nv) {
            case 1:
              BackStepV<1>(K, Gd, St, Sp, sam, w.data(), p.r + rk, p.g + rk, p.k + rk, p.v + rv,
                           p.a + rk, p.b + rk, dout + rv, p.scale, dr + rk, dg + rk, dk + rk,
                           dv + rv, da + rk, db + rk);
              break;
            case 2:
              BackStepV<2>(K, Gd, St, Sp, sam, w.data(), p.r + rk, p.g + rk, p.k + rk, p.v + rv,
                           p.a + rk, p.b + rk, dout + rv, p.scale, dr + rk, dg + rk, dk + rk,
                           dv + rv, da + rk, db + rk);
              break;
            case 4:
              BackStepV<4>(K, Gd, St, Sp, sam, w.data(), p.r + rk, p.g + rk, p.k + rk, p.v + rv,
                           p.a + rk, p.b + rk, dout + rv, p.scale, dr + rk, dg + rk, dk + rk,
                           dv + rv, da + rk, db + rk);
              break;
            case 8:
              BackStepV<8>(K, Gd, St, Sp, sam, w.data(), p.r + rk, p.g + rk, p.k + rk, p.v + rv,
                           p.a + rk, p.b + rk, dout + rv, p.scale, dr + rk, dg + rk, dk + rk,
                           dv + rv, da + rk, db + rk);
              break;
            default:
              BackStep(K, V, Gd, St, Sp, sam, dsa.data(), dvacc.data(), w.data(), p.r + rk,
                       p.g + rk, p.k + rk, p.v + rv, p.a + rk, p.b + rk, dout + rv, p.scale,
                       dr + rk, dg + rk, dk + rk, dv + rv, da + rk, db + rk);
          }
        }
      }
      if (dh0 != nullptr) {
        float* out = dh0 + StateOff(p, bh);
        for (std::int64_t i = 0; i < KV; ++i) out[i] += G[static_cast<std::size_t>(i)];
      }
    }
  });
}

}  // namespace

void DplrForward(const Tensor& r, const Tensor& g, const Tensor& k, const Tensor& v,
                 const Tensor& a, const Tensor& b, const Tensor& h0, const DplrOptions& opts,
                 Tensor& o, Tensor* hT) {
  const profile::Scope profile_scope(profile::Family::kRecurrence);
  const Problem p = MakeProblem(r, g, k, v, a, b, h0, opts);
  CheckShape(o, {p.B, p.T, p.H, p.V}, "o");
  if (hT != nullptr) CheckShape(*hT, {p.B, p.H, p.K, p.V}, "hT");
  float* hTp = hT != nullptr ? hT->f32() : nullptr;
  if (p.T == 0) {
    if (hTp != nullptr) {
      for (std::int64_t i = 0; i < p.B * p.H * p.K * p.V; ++i) hTp[i] = p.h0 ? p.h0[i] : 0.0f;
    }
    return;
  }
  if (opts.chunk > 0) {
    dplr_internal::ChunkedForward(p, opts.chunk, o.f32(), hTp);
  } else {
    RecurrentForward(p, o.f32(), hTp);
  }
}

void DplrBackward(const Tensor& r, const Tensor& g, const Tensor& k, const Tensor& v,
                  const Tensor& a, const Tensor& b, const Tensor& h0, const Tensor& dout,
                  const Tensor& dhT, const DplrOptions& opts, Tensor& dr, Tensor& dg, Tensor& dk,
                  Tensor& dv, Tensor& da, Tensor& db, Tensor* dh0) {
  const profile::Scope profile_scope(profile::Family::kRecurrence);
  const Problem p = MakeProblem(r, g, k, v, a, b, h0, opts);
  const Shape sk{p.B, p.T, p.H, p.K}, sv{p.B, p.T, p.H, p.V}, ss{p.B, p.H, p.K, p.V};
  CheckShape(dout, sv, "dout");
  if (dhT.defined()) CheckShape(dhT, ss, "dhT");
  CheckShape(dr, sk, "dr");
  CheckShape(dg, sk, "dg");
  CheckShape(dk, sk, "dk");
  CheckShape(dv, sv, "dv");
  CheckShape(da, sk, "da");
  CheckShape(db, sk, "db");
  if (dh0 != nullptr) CheckShape(*dh0, ss, "dh0");
  const float* dhTp = dhT.defined() ? dhT.f32() : nullptr;
  float* dh0p = dh0 != nullptr ? dh0->f32() : nullptr;
  if (p.T == 0) {
    if (dh0p != nullptr && dhTp != nullptr) {
      for (std::int64_t i = 0; i < p.B * p.H * p.K * p.V; ++i) dh0p[i] += dhTp[i];
    }
    return;
  }
  if (opts.chunk > 0) {
    dplr_internal::ChunkedBackward(p, opts.chunk, dout.f32(), dhTp, dr.f32(), dg.f32(), dk.f32(),
                                   dv.f32(), da.f32(), db.f32(), dh0p);
  } else {
    RecurrentBackward(p, opts.checkpoint, dout.f32(), dhTp, dr.f32(), dg.f32(), dk.f32(),
                      dv.f32(), da.f32(), db.f32(), dh0p);
  }
}

}  // namespace radlads
