// fp64 reference for the GLA recurrence (kernels/ops/gla.h), used only by tests. Plain loops,
// no threading, written for clarity:
//   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,   o_t = S_t^T (scale * r_t),   S_0 = h0.
// The backward is an explicit step-by-step reverse sweep over all stored states (no identity
// tricks): with G_t = dL/dS_t,
//   G_T   = dhT + q_T do_T^T,   G_{t-1} = diag(exp(g_t)) G_t + q_{t-1} do_{t-1}^T,
//   dq_t  = S_t do_t,  dk_t = G_t v_t,  dv_t = G_t^T k_t,
//   dg_t  = exp(g_t) * rowsum(G_t (.) S_{t-1}),   dh0 = diag(exp(g_1)) G_1,
// with q = scale * r and dr = scale * dq.
// Layouts are the op's: r, k, g [B,T,H,K]; v, o, do [B,T,H,V]; h0, hT, dhT, dh0 [B,H,K,V].
#pragma once

#include <cstdint>
#include <span>

namespace radlads::ref {

struct GlaRefDims {
  std::int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
};

// Writes o and hT. h0 may be empty (zeros); hT may be empty (not written).
void GlaForwardRef(const GlaRefDims& d, double scale, std::span<const double> r,
                   std::span<const double> k, std::span<const double> v,
                   std::span<const double> g, std::span<const double> h0, std::span<double> o,
                   std::span<double> hT);

// Accumulates (+=) into dr, dk, dv, dg and dh0 (dh0 may be empty: not written). h0 and dhT may
// be empty (zeros).
void GlaBackwardRef(const GlaRefDims& d, double scale, std::span<const double> r,
                    std::span<const double> k, std::span<const double> v,
                    std::span<const double> g, std::span<const double> h0,
                    std::span<const double> d_o, std::span<const double> dhT,
                    std::span<double> dr, std::span<double> dk, std::span<double> dv,
                    std::span<double> dg, std::span<double> dh0);

}  // namespace radlads::ref
