// Causal softmax attention with GQA on the CPU, FlashAttention-2 style.
//
// FLOPs per call (flash-attention's convention, docs/kernels.md §3, with the causal triangle counted
// exactly: P = T(T+1)/2 unmasked scores per head):
//   forward  = 4 * B * H * D * P    (S = QK^T and O = PV; "4 B T^2 H D, halved if causal")
//   backward = 10 * B * H * D * P   (2.5x forward: S recomputed, dP = dO V^T, dV, dK, dQ)
// plus one exp per unmasked score in each pass. B=8, T=256, H=4, D=32: 135 MFLOP forward,
// 337 MFLOP backward. (The kernels below round the causal edge up to 16-key panels, and D up to
// a multiple of 16, so they execute somewhat more than this.)
//
// Block sizes: 64 queries x 64 keys. At D=32 a tile's working set (scale*Q, K^T, V, the O
// accumulator: 8 KiB each, plus the 16 KiB score tile) is about 48 KiB, the size of an L1; at
// D=128 it is about 144 KiB, well inside L2. 64 keys are four AVX-512 vectors per score row, and
// the tiny teacher's T=128..512 gives 2..8 query blocks per (batch, head), enough tasks for a
// few cores. Every product inside a tile goes through one register-blocked micro-kernel
// (Kernel4: 4 rows x 64 columns = 16 zmm accumulators, 4 broadcasts + 4 loads per 16 FMAs).
// Row groups stop at the 16-key panel their causal limit reaches, and tiles entirely above the
// diagonal are never visited; masked scores inside a panel are set to exactly 0 probability.
//
// Forward: ParallelFor over (batch, head, query block); each task owns its rows of o and lse.
// Online softmax per row in fp32 (running max m and sum l, rescale the accumulator by
// exp(m_old - m_new)), lse = m + log(l).
// Backward: ParallelFor over (batch, kv head). A task walks the query heads of its group, their
// query blocks and the causal key blocks in a fixed order; it recomputes P = exp(S - lse),
// D_i = rowsum(dO * O) (fp64 sum), dS = P (dP - D) and accumulates dV and dK for its kv head in
// task scratch and dQ for each query block in a tile buffer. Every output element therefore has
// exactly one writer and one summation order (no atomics, independent of the thread count), and
// P is computed once (no separate dQ pass). The price is that parallelism is B*Hkv tasks (16 for
// the tiny teacher's B=8, Hkv=2).
//
// Scores are kept in "scaled" units: q is multiplied by `scale` when a block is loaded, so
// S = (scale q) . k and dK = dS^T (scale q) directly; dQ gets its factor `scale` at the end.
#include "kernels/ops/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/vec_math.h"

// `omp simd` asks for vectorisation; clang reports the loops it cannot vectorise as
// -Wpass-failed, which -Werror turns into errors. Under the sanitizers' instrumentation that is
// most of them, and the hint is all we mean, so the diagnostic is off for this file.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

namespace radlads {
namespace {

using i64 = std::int64_t;

constexpr i64 kBlockQ = 64;
constexpr i64 kBlockK = 64;

struct Dims {
  i64 b = 0, t = 0, h = 0, hkv = 0, d = 0;
  i64 group = 0;  // query heads per kv head
};

void CheckF32Cpu(const Tensor& x, const char* name) {
  RADLADS_CHECK(x.defined() && x.dtype() == DType::kF32 && x.device() == Device::kCpu)
      << "attention: " << name << " must be an F32 CPU tensor, got " << x.DebugString();
}

void CheckShape(const Tensor& x, const Shape& want, const char* name) {
  CheckF32Cpu(x, name);
  RADLADS_CHECK(x.shape() == want) << "attention: " << name << " must be " << ShapeToString(want)
                                   << ", got " << ShapeToString(x.shape());
}

Dims CheckInputs(const Tensor& q, const Tensor& k, const Tensor& v, float scale) {
  CheckF32Cpu(q, "q");
  CheckF32Cpu(k, "k");
  RADLADS_CHECK(q.rank() == 4 && k.rank() == 4)
      << "attention: q [B,T,H,D] and k [B,T,Hkv,D], got " << ShapeToString(q.shape()) << " and "
      << ShapeToString(k.shape());
  Dims s;
  s.b = q.dim(0);
  s.t = q.dim(1);
  s.h = q.dim(2);
  s.d = q.dim(3);
  s.hkv = k.dim(2);
  RADLADS_CHECK(s.d > 0 && s.h > 0 && s.hkv > 0 && s.h % s.hkv == 0)
      << "attention: H=" << s.h << " must be a multiple of Hkv=" << s.hkv << ", D=" << s.d;
  CheckShape(k, {s.b, s.t, s.hkv, s.d}, "k");
  CheckShape(v, {s.b, s.t, s.hkv, s.d}, "v");
  RADLADS_CHECK(std::isfinite(scale)) << "attention: scale " << scale;
  s.group = s.h / s.hkv;
  return s;
}

// exp of the (max-subtracted, so <= 0) scores: cpu::ExpFinite (kernels/cpu/vec_math.h), which
// vectorises under `omp simd`; about 1 ulp, 0 below -87.34, NaN propagates.
using cpu::ExpFinite;

// Tile buffers hold 64 rows (or columns) and D padded to a multiple of 16 (Dp), zero-filled, so
// the micro-kernel below always runs on whole 4-row groups and 16-float panels; padding
// contributes zeros and is never written back.
i64 Round16(i64 n) { return (n + 15) / 16 * 16; }

// 64-byte aligned, zero-initialised fp32 scratch.
class Buffer {
 public:
  explicit Buffer(i64 n) : v_(static_cast<std::size_t>(n + 16), 0.f) {
    const auto addr = reinterpret_cast<std::uintptr_t>(v_.data());
    p_ = v_.data() + ((64 - addr % 64) % 64) / sizeof(float);
  }
  float* get() { return p_; }
  void Zero(i64 n) { std::fill(p_, p_ + n, 0.f); }

 private:
  std::vector<float> v_;
  float* p_;
};

// dst[i*Dp + d] = alpha * src[i*stride + d] for i < n, d < D; zero elsewhere in [rows x Dp].
void LoadRows(const float* src, i64 stride, i64 n, i64 D, i64 Dp, i64 rows, float alpha,
              float* dst) {
  std::fill(dst, dst + rows * Dp, 0.f);
  for (i64 i = 0; i < n; ++i) {
    const float* s = src + i * stride;
    float* o = dst + i * Dp;
#pragma omp simd
    for (i64 d = 0; d < D; ++d) o[d] = alpha * s[d];
  }
}

// Transposed key/value tile: dst[d*kBlockK + j] = src[j*stride + d] for j < n, d < D; zero
// elsewhere in [Dp x kBlockK].
void LoadTransposed(const float* src, i64 stride, i64 n, i64 D, i64 Dp, float* dst) {
  std::fill(dst, dst + Dp * kBlockK, 0.f);
  for (i64 j = 0; j < n; ++j) {
    const float* s = src + j * stride;
    for (i64 d = 0; d < D; ++d) dst[d * kBlockK + j] = s[d];
  }
}

// The one micro-kernel (kernels/cpu/simd.h MicroKernel): for the R rows of C and W columns,
//   C[r][0..W) = (accumulate ? C[r][0..W) : 0) + sum_{k<K} A(r,k) * B[k][0..W),
// with A(r,k) = a[r*lda + k], or a[k*lda + r] when kTransA (so P^T dO and dS^T Q need no
// transposed copy). The R x W accumulators live in registers (16 zmm at W = 64); each k costs
// W/16 vector loads of B and 4 broadcasts for 4*W/16 FMAs. Panels are narrower without AVX-512
// (two ymm: 8 accumulators of the 16 registers, with room for the loads and broadcasts).
constexpr i64 kRows = 4;
constexpr int kPanel = cpu::kLanes == 16 ? 64 : 16;

template <int W, bool kTransA, int R = kRows>
inline void Kernel4(const float* a, i64 lda, const float* b, i64 ldb, i64 K, float* c, i64 ldc, bool accumulate) {
  static_assert(W % cpu::kLanes == 0);
  cpu::MicroKernel<R, W / cpu::kLanes>(K, a, kTransA ? 1 : lda, kTransA ? lda : 1, b, ldb, c, ldc, accumulate);
}

// Kernel4 over N columns (a multiple of 16): kPanel-wide panels, then one of 48/32/16.
template <bool kTransA>
void Rows4(i64 N, const float* a, i64 lda, const float* b, i64 ldb, i64 K, float* c, i64 ldc,
           bool accumulate) {
  i64 n = 0;
  for (; n + kPanel <= N; n += kPanel)
    Kernel4<kPanel, kTransA>(a, lda, b + n, ldb, K, c + n, ldc, accumulate);
  switch (N - n) {
    case 48: Kernel4<48, kTransA>(a, lda, b + n, ldb, K, c + n, ldc, accumulate); break;
    case 32: Kernel4<32, kTransA>(a, lda, b + n, ldb, K, c + n, ldc, accumulate); break;
    case 16: Kernel4<16, kTransA>(a, lda, b + n, ldb, K, c + n, ldc, accumulate); break;
    default: break;  // 0: N is a multiple of 16
  }
}

// Number of keys of the tile starting at k0 (nk keys) that query t may see.
inline i64 CausalLen(i64 t, i64 k0, i64 nk) { return std::min(nk, t - k0 + 1); }

// y[d] += alpha * x[d], d < D.
inline void Axpy(i64 D, float alpha, const float* __restrict x, float* __restrict y) {
#pragma omp simd
  for (i64 d = 0; d < D; ++d) y[d] += alpha * x[d];
}

}  // namespace


void AttentionForward(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& o,
                      Tensor* lse) {
  const profile::Scope profile_scope(profile::Family::kAttention);
  const Dims s = CheckInputs(q, k, v, scale);
  CheckShape(o, q.shape(), "o");
  if (lse != nullptr) CheckShape(*lse, {s.b, s.h, s.t}, "lse");
  const i64 D = s.d, Dp = Round16(D), q_stride = s.h * D, kv_stride = s.hkv * D;
  const i64 num_qb = (s.t + kBlockQ - 1) / kBlockQ;
  const float* qp = q.f32();
  const float* kp = k.f32();
  const float* vp = v.f32();
  float* op = o.f32();
  float* lp = lse != nullptr ? lse->f32() : nullptr;

  // K^T and V are laid out once per call rather than per (query block, key block): every query
  // head of a group and every query block reads the same tiles. kt_all holds, per (b, kv head),
  // [Dp][Tp] with the keys padded to whole 64-key tiles (zeros); V is read in place when D is a
  // multiple of 16, else copied once into rows of Dp (zero-padded). The tiles the micro-kernel
  // sees hold the same values as before, so the results are the same bits.
  const i64 Tp = (s.t + kBlockK - 1) / kBlockK * kBlockK;
  Buffer kt_all(s.b * s.hkv * Dp * Tp);
  const bool v_in_place = Dp == D;
  Buffer v_all(v_in_place ? 0 : s.b * s.hkv * s.t * Dp);
  cpu::ParallelFor(s.b * s.hkv, 1, [&](i64 begin, i64 end) {
    for (i64 bg = begin; bg < end; ++bg) {
      const i64 b = bg / s.hkv, g = bg % s.hkv;
      const float* kb = kp + (b * s.t * s.hkv + g) * D;
      float* kt = kt_all.get() + bg * Dp * Tp;  // zero-initialised: padding stays 0
      for (i64 t0 = 0; t0 < s.t; t0 += kBlockK) {
        const i64 n = std::min(kBlockK, s.t - t0);
        for (i64 j = 0; j < n; ++j) {
          const float* src = kb + (t0 + j) * kv_stride;
          for (i64 d = 0; d < D; ++d) kt[d * Tp + t0 + j] = src[d];
        }
      }
      if (!v_in_place) {
        const float* vsrc = vp + (b * s.t * s.hkv + g) * D;
        float* vdst = v_all.get() + bg * s.t * Dp;
        for (i64 t = 0; t < s.t; ++t) std::copy(vsrc + t * kv_stride, vsrc + t * kv_stride + D, vdst + t * Dp);
      }
    }
  });

  cpu::ParallelFor(s.b * s.h * num_qb, 1, [&](i64 begin, i64 end) {
    Buffer qs_buf(kBlockQ * Dp), acc_buf(kBlockQ * Dp), s_buf(kBlockQ * kBlockK);
    float* qs = qs_buf.get();    // [64][Dp] scale * q
    float* acc = acc_buf.get();  // [64][Dp] unnormalised output
    float* sp = s_buf.get();     // [64][64] scores, then probabilities
    alignas(64) float m[kBlockQ], l[kBlockQ];
    for (i64 task = begin; task < end; ++task) {
      // Query blocks in the order 0, n-1, 1, n-2, ...: causal work grows with the block index,
      // so pairing light and heavy blocks balances the static ranges when B*H is small.
      const i64 idx = task % num_qb, h = (task / num_qb) % s.h, b = task / (num_qb * s.h);
      const i64 qb = idx % 2 == 0 ? idx / 2 : num_qb - 1 - idx / 2;
      const i64 g = h / s.group;
      const i64 q0 = qb * kBlockQ, nq = std::min(kBlockQ, s.t - q0);
      LoadRows(qp + ((b * s.t + q0) * s.h + h) * D, q_stride, nq, D, Dp, kBlockQ, scale, qs);
      acc_buf.Zero(kBlockQ * Dp);
      std::fill(m, m + kBlockQ, -std::numeric_limits<float>::infinity());
      std::fill(l, l + kBlockQ, 0.f);
      const float* ktbase = kt_all.get() + (b * s.hkv + g) * Dp * Tp;  // K^T, key t at column t
      // Row t of V at vbase + t * ldv.
      const float* vbase = v_in_place ? vp + (b * s.t * s.hkv + g) * D : v_all.get() + (b * s.hkv + g) * s.t * Dp;
      const i64 ldv = v_in_place ? kv_stride : Dp;
      for (i64 k0 = 0; k0 < q0 + nq; k0 += kBlockK) {
        const i64 nk = std::min(kBlockK, q0 + nq - k0);
        const float* kt = ktbase + k0;
        const float* vb = vbase + k0 * ldv;
        // S = (scale Q) K^T, 4 rows at a time, only the 16-key panels their causal limit reaches.
        for (i64 r0 = 0; r0 < nq; r0 += kRows) {
          const i64 lmax = CausalLen(q0 + std::min(r0 + kRows, nq) - 1, k0, nk);
          if (lmax > 0) Rows4<false>(Round16(lmax), qs + r0 * Dp, Dp, kt, Tp, Dp,
                                     sp + r0 * kBlockK, kBlockK, false);
        }
        // Online softmax per row; P overwrites S, zero beyond the causal limit.
        for (i64 i = 0; i < nq; ++i) {
          const i64 len = CausalLen(q0 + i, k0, nk);
          float* row = sp + i * kBlockK;
          if (len <= 0) {
            std::fill(row, row + kBlockK, 0.f);
            continue;
          }
          float mx = m[i];
#pragma omp simd reduction(max : mx)
          for (i64 j = 0; j < kBlockK; ++j)
            mx = std::max(mx, j < len ? row[j] : -std::numeric_limits<float>::infinity());
          float sum = 0.f;
#pragma omp simd reduction(+ : sum)
          for (i64 j = 0; j < kBlockK; ++j) {
            const float e = j < len ? ExpFinite(row[j] - mx) : 0.f;
            row[j] = e;
            sum += e;
          }
          const float alpha = std::exp(m[i] - mx);  // 0 on a row's first tile (m = -inf)
          l[i] = l[i] * alpha + sum;
          m[i] = mx;
          if (alpha != 1.f) {
            float* arow = acc + i * Dp;
#pragma omp simd
            for (i64 d = 0; d < Dp; ++d) arow[d] *= alpha;
          }
        }
        // O += P V. For head dims up to 32 (two vectors a row) 8-row groups, so each k step
        // does 16 FMAs for 2 vector loads and 8 broadcasts instead of 8 for 2 and 4. Rows of
        // the group past nq read P rows that are zero or stale and write accumulator rows that
        // are never stored.
        if (kPanel == 64 && Dp == 32) {
          for (i64 r0 = 0; r0 < nq; r0 += 2 * kRows) {
            const i64 lmax = CausalLen(q0 + std::min(r0 + 2 * kRows, nq) - 1, k0, nk);
            if (lmax > 0) Kernel4<32, false, 2 * kRows>(sp + r0 * kBlockK, kBlockK, vb, ldv, lmax,
                                                         acc + r0 * Dp, Dp, true);
          }
        } else {
          for (i64 r0 = 0; r0 < nq; r0 += kRows) {
            const i64 lmax = CausalLen(q0 + std::min(r0 + kRows, nq) - 1, k0, nk);
            if (lmax > 0) Rows4<false>(Dp, sp + r0 * kBlockK, kBlockK, vb, ldv, lmax,
                                       acc + r0 * Dp, Dp, true);
          }
        }
      }
      for (i64 i = 0; i < nq; ++i) {
        const float inv = 1.f / l[i];
        const float* arow = acc + i * Dp;
        float* orow = op + ((b * s.t + q0 + i) * s.h + h) * D;
#pragma omp simd
        for (i64 d = 0; d < D; ++d) orow[d] = arow[d] * inv;
        if (lp != nullptr) lp[(b * s.h + h) * s.t + q0 + i] = m[i] + std::log(l[i]);
      }
    }
  });
}

void AttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                       const Tensor& o, const Tensor& lse, const Tensor& d_o, Tensor& dq,
                       Tensor& dk, Tensor& dv) {
  const profile::Scope profile_scope(profile::Family::kAttention);
  const Dims s = CheckInputs(q, k, v, scale);
  CheckShape(o, q.shape(), "o");
  CheckShape(lse, {s.b, s.h, s.t}, "lse");
  CheckShape(d_o, q.shape(), "d_o");
  CheckShape(dq, q.shape(), "dq");
  CheckShape(dk, k.shape(), "dk");
  CheckShape(dv, k.shape(), "dv");
  const i64 D = s.d, Dp = Round16(D), q_stride = s.h * D, kv_stride = s.hkv * D;
  const i64 t_pad = (s.t + kBlockK - 1) / kBlockK * kBlockK;
  const float* qp = q.f32();
  const float* kp = k.f32();
  const float* vp = v.f32();
  const float* op = o.f32();
  const float* lp = lse.f32();
  const float* dop = d_o.f32();
  float* dqp = dq.f32();
  float* dkp = dk.f32();
  float* dvp = dv.f32();

  cpu::ParallelFor(s.b * s.hkv, 1, [&](i64 begin, i64 end) {
    Buffer dk_buf(t_pad * Dp), dv_buf(t_pad * Dp);
    Buffer qs_buf(kBlockQ * Dp), do_buf(kBlockQ * Dp), dq_buf(kBlockQ * Dp);
    Buffer k_buf(kBlockK * Dp), kt_buf(Dp * kBlockK), vt_buf(Dp * kBlockK);
    Buffer p_buf(kBlockQ * kBlockK), ds_buf(kBlockQ * kBlockK);
    float* dk_acc = dk_buf.get();  // [t_pad][Dp] dK of this kv head, summed over its group
    float* dv_acc = dv_buf.get();  // [t_pad][Dp]
    float* qs = qs_buf.get();      // [64][Dp] scale * q
    float* dob = do_buf.get();     // [64][Dp] dO
    float* dq_acc = dq_buf.get();  // [64][Dp] dQ / scale
    float* kr = k_buf.get();       // [64][Dp] K tile
    float* kt = kt_buf.get();      // [Dp][64] K^T tile
    float* vt = vt_buf.get();      // [Dp][64] V^T tile
    float* pp = p_buf.get();       // [64][64] S, then P
    float* dsp = ds_buf.get();     // [64][64] dP, then dS
    alignas(64) float di[kBlockQ], row_lse[kBlockQ];
    for (i64 task = begin; task < end; ++task) {
      const i64 b = task / s.hkv, g = task % s.hkv;
      dk_buf.Zero(t_pad * Dp);
      dv_buf.Zero(t_pad * Dp);
      const float* kbase = kp + (b * s.t * s.hkv + g) * D;
      const float* vbase = vp + (b * s.t * s.hkv + g) * D;
      for (i64 h = g * s.group; h < (g + 1) * s.group; ++h) {
        for (i64 q0 = 0; q0 < s.t; q0 += kBlockQ) {
          const i64 nq = std::min(kBlockQ, s.t - q0);
          const i64 row0 = (b * s.t + q0) * s.h + h;  // (b, q0, h) in rows of D floats
          LoadRows(qp + row0 * D, q_stride, nq, D, Dp, kBlockQ, scale, qs);
          LoadRows(dop + row0 * D, q_stride, nq, D, Dp, kBlockQ, 1.f, dob);
          for (i64 i = 0; i < nq; ++i) {  // D_i = rowsum(dO * O), summed in fp64
            const float* orow = op + (row0 + i * s.h) * D;
            double dot = 0;
#pragma omp simd reduction(+ : dot)
            for (i64 d = 0; d < D; ++d) dot += static_cast<double>(dob[i * Dp + d]) * orow[d];
            di[i] = static_cast<float>(dot);
            row_lse[i] = lp[(b * s.h + h) * s.t + q0 + i];
          }
          dq_buf.Zero(kBlockQ * Dp);
          for (i64 k0 = 0; k0 < q0 + nq; k0 += kBlockK) {
            const i64 nk = std::min(kBlockK, q0 + nq - k0);
            LoadRows(kbase + k0 * kv_stride, kv_stride, nk, D, Dp, kBlockK, 1.f, kr);
            LoadTransposed(kbase + k0 * kv_stride, kv_stride, nk, D, Dp, kt);
            LoadTransposed(vbase + k0 * kv_stride, kv_stride, nk, D, Dp, vt);
            // S = (scale Q) K^T and dP = dO V^T on the causal panels.
            for (i64 r0 = 0; r0 < nq; r0 += kRows) {
              const i64 lmax = CausalLen(q0 + std::min(r0 + kRows, nq) - 1, k0, nk);
              if (lmax <= 0) continue;
              Rows4<false>(Round16(lmax), qs + r0 * Dp, Dp, kt, kBlockK, Dp, pp + r0 * kBlockK,
                           kBlockK, false);
              Rows4<false>(Round16(lmax), dob + r0 * Dp, Dp, vt, kBlockK, Dp,
                           dsp + r0 * kBlockK, kBlockK, false);
            }
            // P = exp(S - lse), dS = P (dP - D_i); both zero beyond the causal limit.
            for (i64 i = 0; i < nq; ++i) {
              const i64 len = CausalLen(q0 + i, k0, nk);
              float* prow = pp + i * kBlockK;
              float* dsrow = dsp + i * kBlockK;
              const float li = row_lse[i], dii = di[i];
#pragma omp simd
              for (i64 j = 0; j < kBlockK; ++j) {
                const float pj = j < len ? ExpFinite(prow[j] - li) : 0.f;
                dsrow[j] = j < len ? pj * (dsrow[j] - dii) : 0.f;
                prow[j] = pj;
              }
            }
            // dV += P^T dO and dK += dS^T (scale Q), 4 keys at a time; queries before i0 cannot
            // see key k0 + c0.
            for (i64 c0 = 0; c0 < nk; c0 += kRows) {
              const i64 i0 = std::max<i64>(0, k0 + c0 - q0);
              if (i0 >= nq) continue;
              float* dv_rows = dv_acc + (k0 + c0) * Dp;
              float* dk_rows = dk_acc + (k0 + c0) * Dp;
              Rows4<true>(Dp, pp + i0 * kBlockK + c0, kBlockK, dob + i0 * Dp, Dp, nq - i0,
                          dv_rows, Dp, true);
              Rows4<true>(Dp, dsp + i0 * kBlockK + c0, kBlockK, qs + i0 * Dp, Dp, nq - i0,
                          dk_rows, Dp, true);
            }
            // dQ / scale += dS K.
            for (i64 r0 = 0; r0 < nq; r0 += kRows) {
              const i64 lmax = CausalLen(q0 + std::min(r0 + kRows, nq) - 1, k0, nk);
              if (lmax > 0) Rows4<false>(Dp, dsp + r0 * kBlockK, kBlockK, kr, Dp, lmax,
                                         dq_acc + r0 * Dp, Dp, true);
            }
          }
          for (i64 i = 0; i < nq; ++i)
            Axpy(D, scale, dq_acc + i * Dp, dqp + (row0 + i * s.h) * D);
        }
      }
      for (i64 t = 0; t < s.t; ++t) {
        const i64 off = ((b * s.t + t) * s.hkv + g) * D;
        Axpy(D, 1.f, dk_acc + t * Dp, dkp + off);
        Axpy(D, 1.f, dv_acc + t * Dp, dvp + off);
      }
    }
  });
}

}  // namespace radlads
