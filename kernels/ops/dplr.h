// DPLR recurrence (diagonal plus low rank) used by RAD-RWKV7, on the CPU: flash-linear-attention's
// generalized delta rule (`fla.ops.generalized_delta_rule.dplr`: naive `dplr_recurrence`,
// `chunk_dplr_delta_rule(q, k, v, a, b, gk, scale, initial_state, output_final_state)`).
//
// Math, per batch b and head h, state S in R^{K x V}, key-major ([B,H,K,V], as fla):
//   sa_t = S_{t-1}^T a_t                                    (V)
//   S_t  = diag(exp(g_t)) S_{t-1} + b_t sa_t^T + k_t v_t^T   (decay and low rank act on S_{t-1})
//   o_t  = S_t^T (scale * r_t)                               (the output reads the UPDATED state)
//   S_0  = h0 (zeros when h0 is undefined); hT = S_T.
// The RWKV-LM / Hugging Face RWKV-7 convention is the transpose: state [V,K],
//   S_t = S_{t-1} (diag(w_t) + a_t b_t^T) + v_t k_t^T,  y_t = S_t r_t,  w = exp(g);
// transpose h0/hT (and dh0/dhT) at that boundary, nothing else changes.
// RAD-RWKV7 passes r, g = log w in (-0.6065, 0), k = replacement key, v, a = -kappa and
// b = kappa * iclr with kappa unit-norm per head, scale = N^-1/2 (docs/spec.md §3.4). The kernel
// is correct for general inputs (g <= 0 of any magnitude, any a, b).
//
// Shapes (all F32, CPU, contiguous; K and V may differ):
//   r, g, k, a, b: [B,T,H,K]    v: [B,T,H,V]    o: [B,T,H,V]    h0, hT: [B,H,K,V]
// g is a natural-log decay, <= 0.
//
// Forms (DplrOptions::chunk):
//  - chunk == 0, recurrent: fp32 state, one (b, h) per task, vectorised over V. The backward first
//    runs the forward keeping a state checkpoint every `checkpoint` steps, then walks the segments
//    backwards: it recomputes the segment's states from its checkpoint and runs the reverse sweep
//    (docs/kernels.md §1.4 in the key-major layout). Memory per task: (T/checkpoint + checkpoint + 1)
//    states; never T full states.
//  - chunk > 0 (16, 32, 64 or any length >= 1; T need not be a multiple): chunked WY form
//    (docs/kernels.md §2.2). Per chunk of L rows with incoming state S0:
//      A_qk[i,j] = sum_k q_i k_j e^{gc_i - gc_j},  A_qb likewise with b_j     (j <= i)
//      A_ak[i,j] = sum_k a_i k_j e^{ge_i - gc_j},  A_ab likewise with b_j     (j <  i)
//    (gc inclusive, ge exclusive cumulative log-decay inside the chunk), the unit-lower-triangular
//    solve (I - A_ab) U = A_ak V, (I - A_ab) W = a . e^{ge} by forward substitution in fp32, then
//      Vn = U + W S0,  O = A_qk V + A_qb Vn + (q . e^{gc}) S0,
//      S  = diag(e^{gc_last}) S0 + (k . e^{gc_last - gc})^T V + (b . e^{gc_last - gc})^T Vn.
//    Decay handling: no exponent is ever positive. The intra-chunk factors e^{gc_i - gc_j} are
//    formed as running products of the per-step decays exp(g_m) <= 1 along each column (no
//    cancellation of large cumulative sums, no overflow for any decay strength, e.g. g = -5 at
//    chunk 64; products below 1e-30 end the column); the boundary factors exponentiate fp32
//    log-space prefix sums (gc, ge) and suffix sums (gc_last - gc), all <= 0.
//    The backward is fully chunked: one forward pass keeps the T/chunk chunk-start states, then
//    the chunks are walked in reverse, recomputing each chunk's A matrices and WY factors and
//    back-propagating through them (transposed triangular solves, the pairwise A products, and
//    the log-decay gradient as reverse/forward cumulative sums of per-row terms, with the g-free
//    pairs (diagonal of A_qk/A_qb, first sub-diagonal of A_ak/A_ab) kept out of those sums). No
//    recurrent sweep inside a chunk.
//
// Conventions (docs/kernels.md): forward writes o (and hT); backward ACCUMULATES (+=) into every
// gradient; undefined h0 / dhT mean zeros; dh0 == nullptr skips it. Work is split over B*H with
// cpu::ParallelFor (static ranges); each task writes only its own (b, h) slices, so results are
// bit-identical run to run and independent of the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/vec_math.h"
#include "kernels/tensor.h"

namespace radlads {

struct DplrOptions {
  float scale = 1.0f;          // multiplies r (RAD-RWKV7: K^-1/2)
  std::int64_t chunk = 0;      // 0 = recurrent form, else the chunk length of the chunked form
  std::int64_t checkpoint = 16;  // recurrent backward: steps between saved states (>= 1)
};

// Writes o [B,T,H,V] and, when hT != nullptr, *hT [B,H,K,V] (caller-allocated).
void DplrForward(const Tensor& r, const Tensor& g, const Tensor& k, const Tensor& v,
                 const Tensor& a, const Tensor& b, const Tensor& h0, const DplrOptions& opts,
                 Tensor& o, Tensor* hT);

// Gradients of L = sum(o * dout) + sum(hT * dhT). ACCUMULATES into dr, dg, dk, da, db
// ([B,T,H,K]), dv ([B,T,H,V]) and, when dh0 != nullptr, *dh0 ([B,H,K,V]). dhT undefined = zeros.
void DplrBackward(const Tensor& r, const Tensor& g, const Tensor& k, const Tensor& v,
                  const Tensor& a, const Tensor& b, const Tensor& h0, const Tensor& dout,
                  const Tensor& dhT, const DplrOptions& opts, Tensor& dr, Tensor& dg, Tensor& dk,
                  Tensor& dv, Tensor& da, Tensor& db, Tensor* dh0);

// Implementation detail shared by dplr.cpp (recurrent form, dispatch) and dplr_chunked.cpp.
namespace dplr_internal {

struct Problem {
  std::int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
  const float *r = nullptr, *g = nullptr, *k = nullptr, *v = nullptr, *a = nullptr,
              *b = nullptr;
  const float* h0 = nullptr;  // nullptr = zeros
};

// exp(x) for the log-decays x <= 0 without a libm call, so loops over it vectorise:
// cpu::ExpFinite (kernels/cpu/vec_math.h), about 1 ulp; returns 0 where exp(x) < FLT_MIN
// (x < -87.34, and for -inf) instead of a denormal.
inline float ExpNonPos(float x) { return cpu::ExpFinite(x); }

void ChunkedForward(const Problem& p, std::int64_t chunk, float* o, float* hT);
void ChunkedBackward(const Problem& p, std::int64_t chunk, const float* dout, const float* dhT,
                     float* dr, float* dg, float* dk, float* dv, float* da, float* db,
                     float* dh0);

}  // namespace dplr_internal
}  // namespace radlads
