// Global gradient-norm clipping (docs/spec.md §2.6: clip 1.0, Lightning's gradient_clip_val).
//
// GlobalGradNorm: ||concat(grads)||_2, the L2 norm of all gradients taken as one vector.
//   Squares accumulate in double over fixed blocks of kGradNormBlock elements (a partition that
//   depends only on the tensor sizes, not on the thread count); block sums combine in order.
//   The result is therefore bit-identical for any thread count.
//
// ClipGradNorm: as torch.nn.utils.clip_grad_norm_(params, max_norm) (torch 2.x,
//   torch/nn/utils/clip_grad.py):
//     total_norm = GlobalGradNorm(grads)
//     clip_coef  = max_norm / (total_norm + 1e-6)
//     g *= min(clip_coef, 1)                  for every gradient
//   Differences, all documented choices:
//   - torch reduces in fp32 (per-tensor norms, then the norm of the norms); we reduce in double,
//     so our norm is the more accurate one (they agree to ~1e-6 relative).
//   - the coefficient is formed in double and applied as one fp32 multiply; when it is >= 1
//     (norm below the limit) the gradients are left untouched (torch multiplies by 1.0, which
//     is the identity in fp32 anyway).
//   - a non-finite norm (NaN/Inf gradients) leaves the gradients unchanged; torch, with its
//     default error_if_nonfinite=False, would scale them by NaN or 0. The caller sees the
//     non-finite return value and must skip the optimizer step.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/tensor.h"

namespace radlads {

inline constexpr std::int64_t kGradNormBlock = 1 << 15;

// grads: F32 CPU tensors of any shapes (undefined or empty tensors are skipped).
double GlobalGradNorm(std::span<const Tensor> grads);

// Clips in place; returns the total norm before clipping (what torch returns).
double ClipGradNorm(std::span<Tensor> grads, double max_norm);

// The scaling step alone, for a norm computed elsewhere (e.g. summed over ranks):
// g *= min(1, max_norm / (total_norm + 1e-6)) when total_norm is finite.
void ClipGradsWithNorm(std::span<Tensor> grads, double max_norm, double total_norm);

}  // namespace radlads
