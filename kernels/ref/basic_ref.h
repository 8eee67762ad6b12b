// Plain fp64 references for the basic CPU ops (kernels/ops/): embedding, RMSNorm, linear,
// RoPE, activations, SwiGLU, GQA expansion, GroupNorm, the elementwise helpers and LoRA.
// Written for clarity, not speed: double in / double out, plain loops, no threading, no
// intrinsics; used only by tests (docs/kernels.md). Shapes and semantics are those of the
// matching op header, with the dims passed explicitly; arrays are contiguous row-major.
// Backward references ACCUMULATE (+=) into every gradient output, like the ops, and a null
// gradient pointer skips it. Norm backward references recompute their statistics from x.
#pragma once

#include <cstdint>

#include "kernels/ops/lora.h"

namespace radlads::ref {

using Index = std::int64_t;

// ids [n] in [0, vocab) (unchecked), table [vocab, c], out [n, c].
void EmbeddingForwardRef(const std::int32_t* ids, Index n, const double* table, Index c,
                         double* out);
void EmbeddingBackwardRef(const std::int32_t* ids, Index n, const double* dout, Index c,
                          double* dtable);

// x, y [n, c]; w [c]; rstd [n] (may be null).
void RmsNormForwardRef(const double* x, const double* w, Index n, Index c, double eps, double* y,
                       double* rstd);
void RmsNormBackwardRef(const double* x, const double* w, Index n, Index c, double eps,
                        const double* dy, double* dx, double* dw);

// x [n, in], w [out, in], b [out] or null, y [n, out]: y = x w^T + b.
void LinearForwardRef(const double* x, const double* w, const double* b, Index n, Index in,
                      Index out, double* y);
void LinearBackwardRef(const double* x, const double* w, const double* dy, Index n, Index in,
                       Index out, double* dx, double* dw, double* db);

// RoPE with exact angles: cos/sin [max_pos, d/2] of t * theta^(-2i/d), in double.
void RopeTableRef(Index max_pos, Index d, double theta, double* cos_t, double* sin_t);
// x, y [b, t, h, d]; row pos0 + t of the [*, d/2] tables; y = x cos + rotate_half(x) sin.
void RopeForwardRef(const double* x, Index b, Index t, Index h, Index d, Index pos0,
                    const double* cos_t, const double* sin_t, double* y);
void RopeBackwardRef(const double* dy, Index b, Index t, Index h, Index d, Index pos0,
                     const double* cos_t, const double* sin_t, double* dx);
// RopeTableRef + RopeForwardRef in place on x [b, t, h, d] (positions pos0 .. pos0 + t - 1),
// for references that rotate their own q/k.
void RopeInPlaceRef(double* x, Index b, Index t, Index h, Index d, Index pos0, double theta);

// Scalar activations and their derivatives (with respect to x).
double SigmoidRef(double x);
double SigmoidGradRef(double x);
double TanhRef(double x);
double TanhGradRef(double x);
double SiluRef(double x);
double SiluGradRef(double x);
double SoftplusRef(double x);
double SoftplusGradRef(double x);
// SwiGLU over n elements: y = silu(g) u; dg += dy u silu'(g); du += dy silu(g).
void SwiGluForwardRef(const double* g, const double* u, Index n, double* y);
void SwiGluBackwardRef(const double* g, const double* u, const double* dy, Index n, double* dg,
                       double* du);

// GQA: x [rows, hkv, d] -> y [rows, h, d], head j uses kv head j / (h / hkv).
void GqaExpandForwardRef(const double* x, Index rows, Index hkv, Index h, Index d, double* y);
void GqaExpandBackwardRef(const double* dy, Index rows, Index hkv, Index h, Index d, double* dx);

// GroupNorm: x, y [n, c], `groups` contiguous groups; w [c]; b [c] or null.
void GroupNormForwardRef(const double* x, const double* w, const double* b, Index n, Index c,
                         Index groups, double eps, double* y);
void GroupNormBackwardRef(const double* x, const double* w, Index n, Index c, Index groups,
                          double eps, const double* dy, double* dx, double* dw, double* db);

// Mul: y = a * b, a/y [n, c], b [n, c] or (b_rows_broadcast) [c].
void MulForwardRef(const double* a, const double* b, Index n, Index c, bool b_rows_broadcast,
                   double* y);
void MulBackwardRef(const double* a, const double* b, const double* dy, Index n, Index c,
                    bool b_rows_broadcast, double* da, double* db);

// Lerp: y = x + d (mu + m), x/d/m/y [n, c], mu [c], m may be null.
void LerpForwardRef(const double* x, const double* d, const double* mu, const double* m, Index n,
                    Index c, double* y);
void LerpBackwardRef(const double* d, const double* mu, const double* m, const double* dy,
                     Index n, Index c, double* dx, double* dd, double* dmu, double* dm);
// Token shift: delta[b, t] = x[b, t-1] - x[b, t] (x[b, -1] = 0); [b, t, c].
void TokenShiftDeltaForwardRef(const double* x, Index b, Index t, Index c, double* delta);
void TokenShiftDeltaBackwardRef(const double* ddelta, Index b, Index t, Index c, double* dx);

// LoRA: x [n, in], w1 [in, k*r], w2 [k, r, out], bias [out] or null (k = 1),
// y [k, n, out] = act(x w1)[:, block] w2[block] (+ bias).
void LoraForwardRef(const double* x, const double* w1, const double* w2, const double* bias,
                    Index n, Index in, Index k, Index r, Index out, ops::LoraActivation act,
                    double* y);
void LoraBackwardRef(const double* x, const double* w1, const double* w2, Index n, Index in,
                     Index k, Index r, Index out, ops::LoraActivation act, const double* dy,
                     double* dx, double* dw1, double* dw2, double* dbias);

}  // namespace radlads::ref
