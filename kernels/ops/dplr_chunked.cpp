// Chunked (WY / UT transform) form of the DPLR recurrence, forward and backward. Math: dplr.h.
//
// Per chunk of L rows (local index i, j), incoming state S0 (K x V), with w = exp(g) and the
// in-chunk log-decay sums gc_i = sum_{m<=i} g_m, ge_i = sum_{m<i} g_m, gs_j = sum_{m>j} g_m,
// gt = gc_{L-1} (all <= 0, fp32):
//   Qh = q . e^{gc}, Ah = a . e^{ge}, Kh = k . e^{gs}, Bh = b . e^{gs}        (L x K)
//   A_qk, A_qb (j <= i), A_ak, A_ab (j < i)                                  (L x L)
//   U = (I - A_ab)^{-1} A_ak V,  W = (I - A_ab)^{-1} Ah                        (forward subst.)
//   Vn = U + W S0  (the pseudo-values sa_i = S_{i-1}^T a_i)
//   O = A_qk V + A_qb Vn + Qh S0
//   S_L = diag(e^{gt}) S0 + Kh^T V + Bh^T Vn
// The backward is the hand-written reverse mode of exactly these steps (see ChunkBackward).
//
// Everything runs inside one cpu::ParallelFor over B*H tasks, so the small matrix products are
// plain vectorisable loops here (Gemm must not be called from a ParallelFor body).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/ops/dplr.h"

namespace radlads::dplr_internal {
namespace {

using I64 = std::int64_t;

// Intra-chunk decay products below this are treated as zero (the running product only shrinks),
// which avoids denormal arithmetic for strong decays; the dropped terms are < 1e-30 |x||y|.
constexpr float kTinyDecay = 1e-30f;

inline float Dot(const float* __restrict x, const float* __restrict y, I64 n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (I64 i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// C[m x n] += op(A) B, with op(A)(i, q) = A[i*ars + q*acs] (so NN: ars = lda, acs = 1;
// TN: ars = 1, acs = lda), B row-major [p x n] (ldb), C row-major (ldc).
void MatAcc(I64 m, I64 n, I64 p, const float* A, I64 ars, I64 acs, const float* B, I64 ldb,
            float* C, I64 ldc) {
  for (I64 i = 0; i < m; ++i) {
    float* __restrict c = C + i * ldc;
    const float* a = A + i * ars;
    I64 q = 0;
    for (; q + 4 <= p; q += 4) {
      const float a0 = a[q * acs], a1 = a[(q + 1) * acs], a2 = a[(q + 2) * acs],
                  a3 = a[(q + 3) * acs];
      const float* __restrict b0 = B + q * ldb;
      const float* __restrict b1 = b0 + ldb;
      const float* __restrict b2 = b1 + ldb;
      const float* __restrict b3 = b2 + ldb;
      for (I64 j = 0; j < n; ++j) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
    }
    for (; q < p; ++q) {
      const float a0 = a[q * acs];
      const float* __restrict b0 = B + q * ldb;
      for (I64 j = 0; j < n; ++j) c[j] += a0 * b0[j];
    }
  }
}

// BT[p x n] = B[n x p]^T.
void Transpose(I64 n, I64 p, const float* B, float* BT) {
  for (I64 j = 0; j < n; ++j) {
    for (I64 q = 0; q < p; ++q) BT[q * n + j] = B[j * p + q];
  }
}

// C[m x n] = A[m x p] B^T given BT = B^T [p x n] (row-major, overwrites C).
void MatNT(I64 m, I64 n, I64 p, const float* A, const float* BT, float* C) {
  std::fill(C, C + m * n, 0.0f);
  MatAcc(m, n, p, A, p, 1, BT, n, C, n);
}

// C[L x n] += A X for lower-triangular A [L x L] (diag: j <= i, else j < i), X [L x n].
void LowerNN(I64 L, I64 n, const float* A, bool diag, const float* X, float* C) {
  for (I64 i = 0; i < L; ++i) {
    const I64 jend = diag ? i + 1 : i;
    float* __restrict c = C + i * n;
    for (I64 j = 0; j < jend; ++j) {
      const float aij = A[i * L + j];
      const float* __restrict x = X + j * n;
      for (I64 t = 0; t < n; ++t) c[t] += aij * x[t];
    }
  }
}

// C[L x n] += A^T X for lower-triangular A (diag as above): C_j += sum_{i >= j (> j)} A[i,j] X_i.
void LowerTN(I64 L, I64 n, const float* A, bool diag, const float* X, float* C) {
  for (I64 i = 0; i < L; ++i) {
    const I64 jend = diag ? i + 1 : i;
    const float* __restrict x = X + i * n;
    for (I64 j = 0; j < jend; ++j) {
      const float aij = A[i * L + j];
      float* __restrict c = C + j * n;
      for (I64 t = 0; t < n; ++t) c[t] += aij * x[t];
    }
  }
}

// In place: X <- (I - A)^{-1} X for strictly-lower A (forward substitution), X [L x n].
void SolveLower(I64 L, I64 n, const float* A, float* X) {
  for (I64 i = 1; i < L; ++i) {
    float* __restrict xi = X + i * n;
    for (I64 j = 0; j < i; ++j) {
      const float aij = A[i * L + j];
      const float* __restrict xj = X + j * n;
      for (I64 t = 0; t < n; ++t) xi[t] += aij * xj[t];
    }
  }
}

// In place: X <- (I - A)^{-T} X (backward substitution): X_j += sum_{i>j} A[i,j] X_i.
void SolveLowerT(I64 L, I64 n, const float* A, float* X) {
  for (I64 j = L - 2; j >= 0; --j) {
    float* __restrict xj = X + j * n;
    for (I64 i = j + 1; i < L; ++i) {
      const float aij = A[i * L + j];
      const float* __restrict xi = X + i * n;
      for (I64 t = 0; t < n; ++t) xj[t] += aij * xi[t];
    }
  }
}

// Per-task scratch: one chunk's inputs, decays, A matrices and WY factors (and the backward's).
struct Scratch {
  I64 C = 0, K = 0, V = 0;
  std::vector<float> q, k, a, b, g, w, gc, gs, egc, ege, egs, Qh, Ah, Kh, Bh, W;  // C x K
  std::vector<float> v, U, Vn, O;                                                  // C x V
  std::vector<float> Aqk, Aqb, Aak, Aab;                                           // C x C
  std::vector<float> eg, P, tmp;                                                   // K
  // backward only
  std::vector<float> dO, dVn, dX, dvl;                                             // C x V
  std::vector<float> dQh, dKh, dBh, dW, dAh, dqi, dki, dai, dbi, dq0, dk0, da0, db0, dgm;  // C x K
  std::vector<float> dAqk, dAqb, dAak, dAab;                                       // C x C
  std::vector<float> acc;                                                          // K
  std::vector<float> S0T, dST;                                                     // V x K
  std::vector<float> vT, VnT, UT;                                                  // V x C
  std::vector<float> WT;                                                           // K x C

  Scratch(I64 C_, I64 K_, I64 V_, bool backward) : C(C_), K(K_), V(V_) {
    const auto ck = static_cast<std::size_t>(C * K), cv = static_cast<std::size_t>(C * V),
               cc = static_cast<std::size_t>(C * C), kk = static_cast<std::size_t>(K);
    for (auto* x : {&q, &k, &a, &b, &g, &w, &gc, &gs, &egc, &ege, &egs, &Qh, &Ah, &Kh, &Bh, &W}) {
      x->resize(ck);
    }
    for (auto* x : {&v, &U, &Vn, &O}) x->resize(cv);
    for (auto* x : {&Aqk, &Aqb, &Aak, &Aab}) x->resize(cc);
    for (auto* x : {&eg, &P, &tmp}) x->resize(kk);
    if (backward) {
      for (auto* x : {&dO, &dVn, &dX, &dvl}) x->resize(cv);
      for (auto* x : {&dQh, &dKh, &dBh, &dW, &dAh, &dqi, &dki, &dai, &dbi, &dq0, &dk0, &da0, &db0,
                      &dgm}) {
        x->resize(ck);
      }
      for (auto* x : {&dAqk, &dAqb, &dAak, &dAab}) x->resize(cc);
      acc.resize(kk);
      for (auto* x : {&S0T, &dST}) x->resize(static_cast<std::size_t>(K * V));
      for (auto* x : {&vT, &VnT, &UT}) x->resize(cv);
      WT.resize(ck);
    }
  }
};

// Loads chunk rows [t0, t0+L) of head (bi, hi) and computes everything that does not depend on
// the incoming state: decays, Qh/Ah/Kh/Bh, the four A matrices, U and W.
void PrepareChunk(const Problem& p, I64 bi, I64 hi, I64 t0, I64 L, Scratch& s) {
  const I64 K = p.K, V = p.V;
  float* __restrict q = s.q.data();
  float* __restrict k = s.k.data();
  float* __restrict a = s.a.data();
  float* __restrict b = s.b.data();
  float* __restrict g = s.g.data();
  float* __restrict gc = s.gc.data();
  float* __restrict gs = s.gs.data();
  float* __restrict w = s.w.data();
  float* __restrict egc = s.egc.data();
  float* __restrict ege = s.ege.data();
  float* __restrict egs = s.egs.data();
  for (I64 i = 0; i < L; ++i) {
    const I64 rk = ((bi * p.T + t0 + i) * p.H + hi) * K;
    const I64 rv = ((bi * p.T + t0 + i) * p.H + hi) * V;
    const float* __restrict pr = p.r + rk;
    const float sc = p.scale;
    for (I64 c = 0; c < K; ++c) q[i * K + c] = sc * pr[c];
    std::copy(p.k + rk, p.k + rk + K, k + i * K);
    std::copy(p.a + rk, p.a + rk + K, a + i * K);
    std::copy(p.b + rk, p.b + rk + K, b + i * K);
    std::copy(p.g + rk, p.g + rk + K, g + i * K);
    std::copy(p.v + rv, p.v + rv + V, s.v.begin() + i * V);
  }
  // Log-space sums, fp32: gc inclusive prefix, gs exclusive suffix (ge_i = gc_{i-1}); then the
  // factors e^{gc}, e^{ge}, e^{gs} (all exponents <= 0).
  std::copy(g, g + K, gc);
  for (I64 i = 1; i < L; ++i) {
    for (I64 c = 0; c < K; ++c) gc[i * K + c] = gc[(i - 1) * K + c] + g[i * K + c];
  }
  std::fill(gs + (L - 1) * K, gs + L * K, 0.0f);
  for (I64 i = L - 2; i >= 0; --i) {
    for (I64 c = 0; c < K; ++c) gs[i * K + c] = gs[(i + 1) * K + c] + g[(i + 1) * K + c];
  }
  const I64 LK = L * K;
  for (I64 n = 0; n < LK; ++n) w[n] = ExpNonPos(g[n]);
  for (I64 n = 0; n < LK; ++n) egc[n] = ExpNonPos(gc[n]);
  for (I64 n = 0; n < LK; ++n) egs[n] = ExpNonPos(gs[n]);
  std::fill(ege, ege + K, 1.0f);
  std::copy(egc, egc + (L - 1) * K, ege + K);
  std::copy(egc + (L - 1) * K, egc + L * K, s.eg.begin());
  {
    float* __restrict Qh = s.Qh.data();
    float* __restrict Ah = s.Ah.data();
    float* __restrict Kh = s.Kh.data();
    float* __restrict Bh = s.Bh.data();
    for (I64 n = 0; n < LK; ++n) Qh[n] = q[n] * egc[n];
    for (I64 n = 0; n < LK; ++n) Ah[n] = a[n] * ege[n];
    for (I64 n = 0; n < LK; ++n) Kh[n] = k[n] * egs[n];
    for (I64 n = 0; n < LK; ++n) Bh[n] = b[n] * egs[n];
  }
  // A matrices: for each column j walk the rows i > j, carrying P = prod_{j<m<=i} w_m.
  for (auto* A : {&s.Aqk, &s.Aqb, &s.Aak, &s.Aab}) std::fill(A->begin(), A->begin() + L * L, 0.f);
  float* __restrict P = s.P.data();
  for (I64 j = 0; j < L; ++j) {
    const float* __restrict kj = s.k.data() + j * K;
    const float* __restrict bj = s.b.data() + j * K;
    const float* __restrict qj = s.q.data() + j * K;
    s.Aqk[j * L + j] = Dot(qj, kj, K);
    s.Aqb[j * L + j] = Dot(qj, bj, K);
    std::fill(P, P + K, 1.0f);
    for (I64 i = j + 1; i < L; ++i) {
      const float* __restrict ai = s.a.data() + i * K;
      const float* __restrict qi = s.q.data() + i * K;
      const float* __restrict wi = s.w.data() + i * K;
      float s1 = 0.f, s2 = 0.f;
#pragma omp simd reduction(+ : s1, s2)
      for (I64 c = 0; c < K; ++c) {
        const float t = ai[c] * P[c];
        s1 += t * kj[c];
        s2 += t * bj[c];
      }
      s.Aak[i * L + j] = s1;
      s.Aab[i * L + j] = s2;
      float s3 = 0.f, s4 = 0.f, pmax = 0.f;
#pragma omp simd reduction(+ : s3, s4) reduction(max : pmax)
      for (I64 c = 0; c < K; ++c) {
        const float pc = P[c] * wi[c];
        P[c] = pc;
        const float t = qi[c] * pc;
        s3 += t * kj[c];
        s4 += t * bj[c];
        pmax = std::max(pmax, pc);
      }
      s.Aqk[i * L + j] = s3;
      s.Aqb[i * L + j] = s4;
      if (pmax < kTinyDecay) break;
    }
  }
  // U = (I - A_ab)^{-1} A_ak V and W = (I - A_ab)^{-1} Ah.
  std::fill(s.U.begin(), s.U.begin() + L * V, 0.0f);
  LowerNN(L, V, s.Aak.data(), false, s.v.data(), s.U.data());
  SolveLower(L, V, s.Aab.data(), s.U.data());
  std::copy(s.Ah.begin(), s.Ah.begin() + L * K, s.W.begin());
  SolveLower(L, K, s.Aab.data(), s.W.data());
}

// Given the prepared chunk and S0: Vn, optionally O, and (when S1 != nullptr) the next state
// S1 (S1 != S0).
void ChunkForward(I64 L, I64 K, I64 V, Scratch& s, const float* S0, bool want_o, float* S1) {
  std::copy(s.U.begin(), s.U.begin() + L * V, s.Vn.begin());
  MatAcc(L, V, K, s.W.data(), K, 1, S0, V, s.Vn.data(), V);
  if (want_o) {
    std::fill(s.O.begin(), s.O.begin() + L * V, 0.0f);
    MatAcc(L, V, K, s.Qh.data(), K, 1, S0, V, s.O.data(), V);
    LowerNN(L, V, s.Aqk.data(), true, s.v.data(), s.O.data());
    LowerNN(L, V, s.Aqb.data(), true, s.Vn.data(), s.O.data());
  }
  if (S1 == nullptr) return;
  for (I64 c = 0; c < K; ++c) {
    const float e = s.eg[c];
    for (I64 t = 0; t < V; ++t) S1[c * V + t] = e * S0[c * V + t];
  }
  MatAcc(K, V, L, s.Kh.data(), 1, K, s.v.data(), V, S1, V);
  MatAcc(K, V, L, s.Bh.data(), 1, K, s.Vn.data(), V, S1, V);
}

void LoadState(const Problem& p, I64 bh, float* S) {
  const I64 n = p.K * p.V;
  if (p.h0 != nullptr) {
    std::copy(p.h0 + bh * n, p.h0 + (bh + 1) * n, S);
  } else {
    std::fill(S, S + n, 0.0f);
  }
}

// Reverse mode of one chunk. On entry dS = dL/dS_L (chunk end state), S0 = chunk start state,
// s prepared (PrepareChunk) and s.Vn computed (ChunkForward). Accumulates the input gradients of
// the chunk's rows and writes dS0 = dL/dS0.
void ChunkBackward(const Problem& p, I64 bi, I64 hi, I64 t0, I64 L, Scratch& s,
                   const float* S0, const float* dS, const float* dout, float* dS0, float* dr,
                   float* dg, float* dk, float* dv, float* da, float* db) {
  const I64 K = p.K, V = p.V;
  for (I64 i = 0; i < L; ++i) {
    const I64 rv = ((bi * p.T + t0 + i) * p.H + hi) * V;
    std::copy(dout + rv, dout + rv + V, s.dO.begin() + i * V);
  }
  float* dO = s.dO.data();
  // dVn = A_qb^T dO + Bh dS;  dX = (I - A_ab)^{-T} dVn.
  std::fill(s.dVn.begin(), s.dVn.begin() + L * V, 0.0f);
  LowerTN(L, V, s.Aqb.data(), true, dO, s.dVn.data());
  MatAcc(L, V, K, s.Bh.data(), K, 1, dS, V, s.dVn.data(), V);
  std::copy(s.dVn.begin(), s.dVn.begin() + L * V, s.dX.begin());
  SolveLowerT(L, V, s.Aab.data(), s.dX.data());
  // dW = dVn S0^T;  dAh = (I - A_ab)^{-T} dW.
  Transpose(K, V, S0, s.S0T.data());
  Transpose(K, V, dS, s.dST.data());
  MatNT(L, K, V, s.dVn.data(), s.S0T.data(), s.dW.data());
  std::copy(s.dW.begin(), s.dW.begin() + L * K, s.dAh.begin());
  SolveLowerT(L, K, s.Aab.data(), s.dAh.data());
  // dv = A_qk^T dO + A_ak^T dX + Kh dS.
  std::fill(s.dvl.begin(), s.dvl.begin() + L * V, 0.0f);
  LowerTN(L, V, s.Aqk.data(), true, dO, s.dvl.data());
  LowerTN(L, V, s.Aak.data(), false, s.dX.data(), s.dvl.data());
  MatAcc(L, V, K, s.Kh.data(), K, 1, dS, V, s.dvl.data(), V);
  // dQh = dO S0^T, dKh = V dS^T, dBh = Vn dS^T.
  MatNT(L, K, V, dO, s.S0T.data(), s.dQh.data());
  MatNT(L, K, V, s.v.data(), s.dST.data(), s.dKh.data());
  MatNT(L, K, V, s.Vn.data(), s.dST.data(), s.dBh.data());
  // dS0 = diag(e^{gt}) dS + Qh^T dO + W^T dVn; d(gt) = e^{gt} rowsum(S0 . dS).
  for (I64 c = 0; c < K; ++c) {
    const float e = s.eg[c];
    for (I64 t = 0; t < V; ++t) dS0[c * V + t] = e * dS[c * V + t];
    s.acc[c] = e * Dot(S0 + c * V, dS + c * V, V);
  }
  MatAcc(K, V, L, s.Qh.data(), 1, K, dO, V, dS0, V);
  MatAcc(K, V, L, s.W.data(), 1, K, s.dVn.data(), V, dS0, V);
  // Gradients of the A matrices: dA_qk = dO V^T, dA_qb = dO Vn^T, dA_ak = dX V^T,
  // dA_ab = dX U^T + dAh W^T (full products; only the lower parts are read).
  Transpose(L, V, s.v.data(), s.vT.data());
  Transpose(L, V, s.Vn.data(), s.VnT.data());
  Transpose(L, V, s.U.data(), s.UT.data());
  Transpose(L, K, s.W.data(), s.WT.data());
  MatNT(L, L, V, dO, s.vT.data(), s.dAqk.data());
  MatNT(L, L, V, dO, s.VnT.data(), s.dAqb.data());
  MatNT(L, L, V, s.dX.data(), s.vT.data(), s.dAak.data());
  MatNT(L, L, V, s.dX.data(), s.UT.data(), s.dAab.data());
  MatAcc(L, L, K, s.dAh.data(), K, 1, s.WT.data(), L, s.dAab.data(), L);
  // Back through the A matrices: intra-chunk parts of dq, dk, da, db, carrying the same running
  // decay product P as PrepareChunk. Pairs whose decay span is empty (A_qk/A_qb diagonal, A_ak/A_ab
  // first sub-diagonal: factor e^0) go to dq0/dk0/da0/db0: they do not depend on g, and keeping
  // them out of the log-decay sums below avoids cancelling O(1) terms there (strong decays).
  for (auto* x : {&s.dqi, &s.dki, &s.dai, &s.dbi, &s.dq0, &s.dk0, &s.da0, &s.db0}) {
    std::fill(x->begin(), x->begin() + L * K, 0.f);
  }
  float* __restrict P = s.P.data();
  for (I64 j = 0; j < L; ++j) {
    const float* __restrict kj = s.k.data() + j * K;
    const float* __restrict bj = s.b.data() + j * K;
    const float* __restrict qj = s.q.data() + j * K;
    float* __restrict dkj = s.dki.data() + j * K;
    float* __restrict dbj = s.dbi.data() + j * K;
    {
      const float c1 = s.dAqk[j * L + j], c2 = s.dAqb[j * L + j];
      float* __restrict dqj = s.dq0.data() + j * K;
      float* __restrict dkj0 = s.dk0.data() + j * K;
      float* __restrict dbj0 = s.db0.data() + j * K;
#pragma omp simd
      for (I64 c = 0; c < K; ++c) {
        dqj[c] += c1 * kj[c] + c2 * bj[c];
        dkj0[c] += c1 * qj[c];
        dbj0[c] += c2 * qj[c];
      }
      if (j + 1 < L) {
        const I64 i = j + 1;
        const float e1 = s.dAak[i * L + j], e2 = s.dAab[i * L + j];
        const float* __restrict ai = s.a.data() + i * K;
        float* __restrict dai = s.da0.data() + i * K;
#pragma omp simd
        for (I64 c = 0; c < K; ++c) {
          dai[c] += e1 * kj[c] + e2 * bj[c];
          dkj0[c] += e1 * ai[c];
          dbj0[c] += e2 * ai[c];
        }
      }
    }
    std::fill(P, P + K, 1.0f);
    for (I64 i = j + 1; i < L; ++i) {
      const float* __restrict ai = s.a.data() + i * K;
      const float* __restrict qi = s.q.data() + i * K;
      const float* __restrict wi = s.w.data() + i * K;
      float* __restrict dai = s.dai.data() + i * K;
      float* __restrict dqi = s.dqi.data() + i * K;
      const float e1 = i > j + 1 ? s.dAak[i * L + j] : 0.f;  // sub-diagonal done above
      const float e2 = i > j + 1 ? s.dAab[i * L + j] : 0.f;
      const float c1 = s.dAqk[i * L + j], c2 = s.dAqb[i * L + j];
      float pmax = 0.f;
#pragma omp simd reduction(max : pmax)
      for (I64 c = 0; c < K; ++c) {
        const float pa = P[c];
        dai[c] += pa * (e1 * kj[c] + e2 * bj[c]);
        const float ta = pa * ai[c];
        const float pq = pa * wi[c];
        const float tq = pq * qi[c];
        dqi[c] += pq * (c1 * kj[c] + c2 * bj[c]);
        dkj[c] += e1 * ta + c1 * tq;
        dbj[c] += e2 * ta + c2 * tq;
        P[c] = pq;
        pmax = std::max(pmax, pq);
      }
      if (pmax < kTinyDecay) break;
    }
  }
  // Input gradients, and the per-row log-decay terms:
  //   dgc_i = dQh.Qh + q.dq_intra - k.dk_intra - b.db_intra,  dge_i = dAh.Ah + a.da_intra,
  //   dgs_j = dKh.Kh + dBh.Bh,  dg_m = sum_{i>=m} dgc_i + sum_{i>m} dge_i + sum_{j<m} dgs_j + dgt.
  const float* __restrict q = s.q.data();
  const float* __restrict k = s.k.data();
  const float* __restrict a = s.a.data();
  const float* __restrict b = s.b.data();
  const float* __restrict egc = s.egc.data();
  const float* __restrict ege = s.ege.data();
  const float* __restrict egs = s.egs.data();
  const float* __restrict Qh = s.Qh.data();
  const float* __restrict Ah = s.Ah.data();
  const float* __restrict Kh = s.Kh.data();
  const float* __restrict Bh = s.Bh.data();
  const float* __restrict dQh = s.dQh.data();
  const float* __restrict dAh = s.dAh.data();
  const float* __restrict dKh = s.dKh.data();
  const float* __restrict dBh = s.dBh.data();
  const float* __restrict dqi = s.dqi.data();
  const float* __restrict dai = s.dai.data();
  const float* __restrict dki = s.dki.data();
  const float* __restrict dbi = s.dbi.data();
  const float* __restrict dq0 = s.dq0.data();
  const float* __restrict da0 = s.da0.data();
  const float* __restrict dk0 = s.dk0.data();
  const float* __restrict db0 = s.db0.data();
  const float* __restrict dvl = s.dvl.data();
  float* __restrict dgm = s.dgm.data();
  float* __restrict run = s.tmp.data();
  const float scale = p.scale;
  std::copy(s.acc.begin(), s.acc.end(), run);  // running: dgt + sum_{j<m} dgs_j
  for (I64 i = 0; i < L; ++i) {
    const I64 rk = ((bi * p.T + t0 + i) * p.H + hi) * K;
    const I64 rv = ((bi * p.T + t0 + i) * p.H + hi) * V;
    float* __restrict drr = dr + rk;
    float* __restrict dar = da + rk;
    float* __restrict dkr = dk + rk;
    float* __restrict dbr = db + rk;
    float* __restrict dvr = dv + rv;
    const I64 o = i * K;
#pragma omp simd
    for (I64 c = 0; c < K; ++c) {
      const I64 n = o + c;
      drr[c] += scale * (dQh[n] * egc[n] + dqi[n] + dq0[n]);
      dar[c] += dAh[n] * ege[n] + dai[n] + da0[n];
      dkr[c] += dKh[n] * egs[n] + dki[n] + dk0[n];
      dbr[c] += dBh[n] * egs[n] + dbi[n] + db0[n];
      dgm[n] = run[c];
      run[c] += dKh[n] * Kh[n] + dBh[n] * Bh[n];
    }
    for (I64 t = 0; t < V; ++t) dvr[t] += dvl[i * V + t];
  }
  std::fill(run, run + K, 0.0f);  // running: sum_{i>=m} dgc_i + sum_{i>m} dge_i
  for (I64 i = L - 1; i >= 0; --i) {
    float* __restrict dgr = dg + ((bi * p.T + t0 + i) * p.H + hi) * K;
    const I64 o = i * K;
#pragma omp simd
    for (I64 c = 0; c < K; ++c) {
      const I64 n = o + c;
      run[c] += dQh[n] * Qh[n] + q[n] * dqi[n] - k[n] * dki[n] - b[n] * dbi[n];
      dgr[c] += dgm[n] + run[c];
      run[c] += dAh[n] * Ah[n] + a[n] * dai[n];
    }
  }
}

}  // namespace

void ChunkedForward(const Problem& p, I64 chunk, float* o, float* hT) {
  const I64 K = p.K, V = p.V, KV = K * V;
  const I64 C = std::min(chunk, p.T);
  cpu::ParallelFor(p.B * p.H, 1, [&](I64 begin, I64 end) {
    Scratch s(C, K, V, false);
    std::vector<float> S(static_cast<std::size_t>(KV)), S1(static_cast<std::size_t>(KV));
    for (I64 bh = begin; bh < end; ++bh) {
      const I64 bi = bh / p.H, hi = bh % p.H;
      LoadState(p, bh, S.data());
      for (I64 t0 = 0; t0 < p.T; t0 += C) {
        const I64 L = std::min(C, p.T - t0);
        PrepareChunk(p, bi, hi, t0, L, s);
        ChunkForward(L, K, V, s, S.data(), true, S1.data());
        for (I64 i = 0; i < L; ++i) {
          const I64 rv = ((bi * p.T + t0 + i) * p.H + hi) * V;
          std::copy(s.O.begin() + i * V, s.O.begin() + (i + 1) * V, o + rv);
        }
        S.swap(S1);
      }
      if (hT != nullptr) std::copy(S.begin(), S.end(), hT + bh * KV);
    }
  });
}

void ChunkedBackward(const Problem& p, I64 chunk, const float* dout, const float* dhT, float* dr,
                     float* dg, float* dk, float* dv, float* da, float* db, float* dh0) {
  const I64 K = p.K, V = p.V, KV = K * V;
  const I64 C = std::min(chunk, p.T);
  const I64 nc = (p.T + C - 1) / C;
  cpu::ParallelFor(p.B * p.H, 1, [&](I64 begin, I64 end) {
    Scratch s(C, K, V, true);
    std::vector<float> states(static_cast<std::size_t>(nc * KV));  // chunk-start states
    std::vector<float> dS(static_cast<std::size_t>(KV)),
        dS0(static_cast<std::size_t>(KV));
    for (I64 bh = begin; bh < end; ++bh) {
      const I64 bi = bh / p.H, hi = bh % p.H;
      LoadState(p, bh, states.data());
      for (I64 c = 0; c + 1 < nc; ++c) {
        PrepareChunk(p, bi, hi, c * C, C, s);
        ChunkForward(C, K, V, s, states.data() + c * KV, false, states.data() + (c + 1) * KV);
      }
      if (dhT != nullptr) {
        std::copy(dhT + bh * KV, dhT + (bh + 1) * KV, dS.begin());
      } else {
        std::fill(dS.begin(), dS.end(), 0.0f);
      }
      for (I64 c = nc - 1; c >= 0; --c) {
        const I64 t0 = c * C, L = std::min(C, p.T - t0);
        const float* S0 = states.data() + c * KV;
        PrepareChunk(p, bi, hi, t0, L, s);
        ChunkForward(L, K, V, s, S0, false, nullptr);  // Vn only
        ChunkBackward(p, bi, hi, t0, L, s, S0, dS.data(), dout, dS0.data(), dr, dg, dk, dv, da,
                      db);
        dS.swap(dS0);
      }
      if (dh0 != nullptr) {
        for (I64 n = 0; n < KV; ++n) dh0[bh * KV + n] += dS[static_cast<std::size_t>(n)];
      }
    }
  });
}

}  // namespace radlads::dplr_internal
