// fp64 reference of the DPLR recurrence (RAD-RWKV7 / fla generalized delta rule). Plain loops,
// no threading, no intrinsics, written for clarity; used only by tests (kernels/ops/dplr.h is
// the fast path and documents the math, layouts and conventions, which are the same here).
//
// Per batch b and head h, state S in R^{K x V} (key-major), S_0 = h0 (zeros when null):
//   sa_t = S_{t-1}^T a_t                                   (V)
//   S_t  = diag(exp(g_t)) S_{t-1} + b_t sa_t^T + k_t v_t^T  (K x V)
//   o_t  = S_t^T (scale * r_t)                              (V)
// The backward is the explicit reverse sweep with every state kept (T+1 states per head).
#pragma once

#include <cstdint>

namespace radlads::ref {

struct DplrRefDims {
  std::int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
};

// r, g, k, a, b: [B,T,H,K]; v: [B,T,H,V]; h0: [B,H,K,V] or nullptr (zeros).
// Writes o: [B,T,H,V] and, when non-null, hT: [B,H,K,V].
void DplrRefForward(const DplrRefDims& d, double scale, const double* r, const double* g,
                    const double* k, const double* v, const double* a, const double* b,
                    const double* h0, double* o, double* hT);

// Gradients of L = sum(o * dout) + sum(hT * dhT) (dhT may be nullptr = zeros). ACCUMULATES into
// dr, dg, dk, da, db ([B,T,H,K]), dv ([B,T,H,V]) and, when non-null, dh0 ([B,H,K,V]).
void DplrRefBackward(const DplrRefDims& d, double scale, const double* r, const double* g,
                     const double* k, const double* v, const double* a, const double* b,
                     const double* h0, const double* dout, const double* dhT, double* dr,
                     double* dg, double* dk, double* dv, double* da, double* db, double* dh0);

}  // namespace radlads::ref
