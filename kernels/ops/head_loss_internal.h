// Internals shared by the fused LM head + loss ops (head_loss.cpp: one rank holds the whole
// head; head_loss_parallel.cpp: the head is split over the vocabulary). Not part of the public
// API. Both files compile with -fno-math-errno -fno-trapping-math (kernels/CMakeLists.txt), so
// these inline functions vectorise and give the same bits in either.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/check.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops/head_loss.h"
#include "kernels/tensor.h"

namespace radlads::head_loss_internal {

// ---------------------------------------------------------------------------------------------
// Vectorisable math. Plain branch-free float code inside `omp simd` loops: GCC and clang turn
// these loops into AVX2/AVX-512 code (checked with -fopt-info-vec).

// exp(x) in float (cpu::ExpFinite, kernels/cpu/vec_math.h: ~1 ulp, exactly 0 below -87.34
// where expf would go subnormal, NaN propagates). Arguments here are always <= ~0.
inline float ExpF(float x) { return cpu::ExpFinite(x); }

// max_i z[i]; -inf for n = 0 (NaN entries are skipped).
inline float RowMax(const float* z, std::int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (std::int64_t i = 0; i < n; ++i) m = z[i] > m ? z[i] : m;
  return m;
}

// First index i with z[i] == v (0 if none, e.g. NaN rows). Blocks keep the scan vectorised.
inline std::int64_t FirstIndexOf(const float* z, std::int64_t n, float v) {
  constexpr std::int64_t kBlock = 256;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = std::min(n, b + kBlock);
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (std::int64_t i = b; i < e; ++i) hit |= z[i] == v ? 1 : 0;
    if (hit != 0) {
      for (std::int64_t i = b; i < e; ++i)
        if (z[i] == v) return i;
    }
  }
  return 0;
}

// sum_i exp(z[i] - m), accumulated in double.
inline double SumExp(const float* z, std::int64_t n, float m) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(ExpF(z[i] - m));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Argument checks (RADLADS_CHECK: shapes are programming errors, docs/style.md §6a).

inline std::int64_t RowsOf(const Tensor& x, std::int64_t c) { return c == 0 ? 0 : x.numel() / c; }

inline void CheckF32Cpu(const Tensor& t, const char* what) {
  RADLADS_CHECK(t.defined() && t.dtype() == DType::kF32 && t.device() == Device::kCpu)
      << what << " must be an F32 CPU tensor, got "
      << (t.defined() ? t.DebugString() : "undefined");
}

// Checks x [.., C] against W [Vc, C] and the optional gradient outputs; returns N.
inline std::int64_t CheckHead(const Tensor& x, const Tensor& w, const HeadGrads& g,
                              const char* op) {
  CheckF32Cpu(x, "x");
  CheckF32Cpu(w, "W");
  RADLADS_CHECK(x.rank() >= 1 && w.rank() == 2 && x.dim(-1) == w.dim(1))
      << op << ": x " << ShapeToString(x.shape()) << " vs W " << ShapeToString(w.shape());
  if (g.dx != nullptr) {
    CheckF32Cpu(*g.dx, "dx");
    RADLADS_CHECK(g.dx->shape() == x.shape()) << op << ": dx " << g.dx->DebugString();
  }
  if (g.dw != nullptr) {
    CheckF32Cpu(*g.dw, "dW");
    RADLADS_CHECK(g.dw->shape() == w.shape()) << op << ": dW " << g.dw->DebugString();
  }
  return RowsOf(x, x.dim(-1));
}

// targets: I32 CPU with n elements, each in [-1, vc).
inline void CheckTargets(const Tensor& t, std::int64_t n, std::int64_t vc, const char* op) {
  RADLADS_CHECK(t.defined() && t.dtype() == DType::kI32 && t.device() == Device::kCpu &&
                t.numel() == n)
      << op << ": targets must be I32 CPU with " << n << " elements, got " << t.DebugString();
  const std::int32_t* p = t.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i)
    RADLADS_CHECK(p[i] >= -1 && p[i] < vc)
        << op << ": target " << p[i] << " at row " << i << " outside [-1, " << vc << ")";
}

// Rows per ParallelFor range: enough logits per range to be worth a thread.
inline std::int64_t RowGrain(std::int64_t vc) {
  return std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(1, vc));
}

// Effective chunk: in [1, max(N, 1)].
inline std::int64_t ChunkRows(std::int64_t chunk, std::int64_t n) {
  RADLADS_CHECK(chunk >= 1) << "HeadLossOptions::chunk must be >= 1, got " << chunk;
  return std::min(chunk, std::max<std::int64_t>(n, 1));
}

// One rank's share of a row: KL terms of its slice, CE when it owns the target.
struct RowPart {
  double kl = 0.0;
  double ce = 0.0;
};

// The part of a KL row held here (all of it for the whole vocabulary: KlRow in head_loss.cpp; a
// rank's slice in head_loss_parallel.cpp), given the row's global maxima ms, mt
// and sums of exponentials ss, st. y: global target or -1; yl: local index of y when owned
// here, else -1. With kGrad, overwrites zs with gs * (p_s - p_t) + cs * (p_s - onehot(y)).
template <bool kGrad>
inline RowPart KlRowPart(const float* zt, float* zs, std::int64_t vl, float ms, float mt, double ss,
                  double st, std::int32_t y, std::int64_t yl, float gs, float cs) {
  RowPart out;
  const double log_ss = std::log(ss), log_st = std::log(st);
  const float ls = static_cast<float>(log_ss), lt = static_cast<float>(log_st);
  const float d = static_cast<float>((static_cast<double>(mt) - ms) + (log_st - log_ss));
  if (y < 0) cs = 0.0f;  // ignored row: no CE term in the gradient
  if (yl >= 0) out.ce = (static_cast<double>(ms) - zs[yl]) + log_ss;  // lse_s - z_s[y]
  double kl = 0.0;
#pragma omp simd reduction(+ : kl)
  for (std::int64_t v = 0; v < vl; ++v) {
    const float pt = ExpF((zt[v] - mt) - lt);
    kl += static_cast<double>(pt * ((zt[v] - zs[v]) - d));
    if constexpr (kGrad) {
      const float ps = ExpF((zs[v] - ms) - ls);
      zs[v] = gs * (ps - pt) + cs * ps;
    }
  }
  if constexpr (kGrad) {
    if (yl >= 0) zs[yl] -= cs;
  }
  out.kl = kl;
  return out;
}

// The part of a CE row held here (CeRow in head_loss.cpp; a rank's slice in
// head_loss_parallel.cpp), for a non-ignored row. With kGrad, overwrites z with
// gs * (p - onehot(y)).
template <bool kGrad>
inline double CeRowPart(float* z, std::int64_t vl, float m, double s, std::int64_t yl, float gs) {
  const double log_s = std::log(s);
  const double loss = yl >= 0 ? (static_cast<double>(m) - z[yl]) + log_s : 0.0;
  if constexpr (kGrad) {
    const float ls = static_cast<float>(log_s);
#pragma omp simd
    for (std::int64_t v = 0; v < vl; ++v) z[v] = gs * ExpF((z[v] - m) - ls);
    if (yl >= 0) z[yl] -= gs;
  }
  return loss;
}

}  // namespace radlads::head_loss_internal
