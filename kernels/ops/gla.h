// GLA recurrence (gated linear attention with a per-key-channel decay), the token mixer of
// RAD-RWKV6. Semantics are exactly flash-linear-attention's `fla.ops.gla` (naive_recurrent_gla,
// fused_recurrent_gla, chunk_gla with g = log-decay, scale, initial_state, output_final_state).
//
// Per batch b and head h, with the state S in R^{K x V} (key-major, [B, H, K, V]):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * r_t),    t = 1..T,
//   S_0 = h0 (zeros when h0 is undefined), final state hT = S_T.
// The output reads the UPDATED state: the current token counts at full weight, there is no
// bonus u (unlike classic RWKV6, which reads S_{t-1} plus a u-weighted current token).
//
// Shapes (all F32, CPU, contiguous):
//   r, k, g : [B, T, H, K]     (g: natural-log decay, must be <= 0; not checked per element)
//   v       : [B, T, H, V]     (K and V may differ)
//   h0, hT  : [B, H, K, V]
//   o       : [B, T, H, V]
// RAD-RWKV6 passes g = max(-exp(d), -5) and scale = K^-1/2 (one factor, on r).
//
// Two algorithms with the same results up to fp32 rounding (see gla.cpp for costs):
//   chunk == 0 : recurrent form, token by token, fp32 state.
//   chunk >= 1 : chunked form, `chunk` tokens per chunk (16/32/64 are the usual choices; any
//                length works, T need not be a multiple); fp32 within-chunk cumulative decays,
//                sub-chunks of 16 so that no exponent is ever positive-and-unbounded.
// Backward ACCUMULATES (+=) into dr, dk, dv, dg and *dh0 (kernels/ convention). The forward
// saves nothing: the backward recomputes states (from checkpoints every 16 tokens in the
// recurrent form, chunk-start states in the chunked form).
// Deterministic: every (b, h) is computed by the same code whatever the thread count.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace radlads {

struct GlaOptions {
  float scale = 1.0f;       // multiplies r (RAD-RWKV6: K^-1/2)
  std::int64_t chunk = 0;   // 0 = recurrent form, else chunk length of the chunked form
};

// Writes o [B,T,H,V] and, when hT != nullptr, the final state *hT [B,H,K,V].
// h0 may be undefined (zeros).
void GlaForward(const Tensor& r, const Tensor& k, const Tensor& v, const Tensor& g,
                const Tensor& h0, const GlaOptions& opt, Tensor& o, Tensor* hT);

// Gradients of L = sum(o * d_o) + sum(hT * dhT) for the same inputs as GlaForward.
// d_o [B,T,H,V]; dhT [B,H,K,V] or undefined (zeros). Accumulates into dr, dk, dg [B,T,H,K],
// dv [B,T,H,V] and, when dh0 != nullptr, *dh0 [B,H,K,V] (dh0 is the gradient w.r.t. h0 and is
// meaningful whether or not h0 was given).
void GlaBackward(const Tensor& r, const Tensor& k, const Tensor& v, const Tensor& g,
                 const Tensor& h0, const Tensor& d_o, const Tensor& dhT, const GlaOptions& opt,
                 Tensor& dr, Tensor& dk, Tensor& dv, Tensor& dg, Tensor* dh0);

}  // namespace radlads
