// Step-1 alignment loss (docs/spec.md §2.1): the per-token, UN-squared L2 distance between the
// teacher's and the student's attention-sublayer outputs, divided by sqrt(C), averaged over
// tokens. For one layer, with t, s of shape [N, C] (N = B*T rows; any leading shape whose last
// dim is C is read as rows):
//
//   L = (1/N) * sum_n ||t_n - s_n||_2 / sqrt(C)
//
// The caller averages L over layers (upstream gradient 1/num_layers).
//
// Precision: squared distances accumulate in double per row; rows combine in order, so the
// value is bit-identical for any thread count.
// Gradient: dL/ds_n = (s_n - t_n) / (N * sqrt(C) * ||s_n - t_n||). The norm is not
// differentiable at 0; a row with zero distance contributes a zero gradient (the subgradient
// torch's autograd also picks for norm at 0), never NaN.
#pragma once

#include "kernels/tensor.h"

namespace radlads {

// Returns L (double). t, s: F32 [.., C], same shape. `row_dist`, when given, receives the
// per-row distances ||t_n - s_n||_2 as F32 [N] (for logging; the backward does not need it).
double AlignLossForward(const Tensor& t, const Tensor& s, Tensor* row_dist = nullptr);

// ds += dloss * dL/ds. dloss is the upstream gradient of L (e.g. 1/num_layers). Recomputes
// the row norms (one pass over t and s; cheap next to the attention that produced them).
// The teacher is frozen, so there is no dt.
void AlignLossBackward(const Tensor& t, const Tensor& s, float dloss, Tensor& ds);

}  // namespace radlads
