// fp64 reference for causal softmax attention with GQA (kernels/ops/attention.h), for tests
// only: plain loops, no threading, the full T x T score matrix per head, an explicit masked
// softmax and the textbook backward (dS = P * (dP - rowsum(P * dP))).
//
// Layouts as the fast path: q, o, dq, d_o [B,T,H,D]; k, v, dk, dv [B,T,Hkv,D]; lse [B,H,T];
// query head h uses kv head h / (H / Hkv).
#pragma once

#include <cstdint>

namespace radlads {

struct AttentionRefShape {
  std::int64_t b = 0, t = 0, h = 0, hkv = 0, d = 0;
};

// Writes o and, when lse != nullptr, lse = log sum_{s<=t} exp(scale q_t . k_s).
void AttentionForwardRef(const AttentionRefShape& s, const double* q, const double* k,
                         const double* v, double scale, double* o, double* lse);

// Adds the gradients of sum(o * d_o) into dq, dk, dv (recomputes everything from q, k, v).
void AttentionBackwardRef(const AttentionRefShape& s, const double* q, const double* k,
                          const double* v, double scale, const double* d_o, double* dq,
                          double* dk, double* dv);

}  // namespace radlads
