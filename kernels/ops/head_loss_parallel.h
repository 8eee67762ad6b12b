// Vocabulary-parallel fused LM head + loss: the ops of kernels/ops/head_loss.h with the head
// split over the `tp` ranks of a Communicator (tensor parallelism over the vocabulary, as in
// Megatron-LM's vocab-parallel cross-entropy). No rank materialises a full-vocabulary row.
//
// Layout: rank r holds rows [v0_r, v0_r + Vl_r) of every head (student and teacher alike); the
// slices tile [0, V) (any split; sizes need not be equal, each Vl_r >= 1). The hidden states x,
// the targets and the options are replicated: every rank passes identical ones.
//
// Math (docs/spec.md §2.2, §2.4; notation of head_loss.h), for row n and the slices S_r:
//   m = max_r max_{v in S_r} z_v,   s = sum_r sum_{v in S_r} exp(z_v - m),   lse = m + log s
//   KL_n = sum_r sum_{v in S_r} p_t,v ((z_t,v - z_s,v) - (lse_t - lse_s))
//   CE_n = lse_s - z_s[target]  (only the rank owning the target has the logit)
//   dz_r = gs (p_s - p_t) + cs (p_s - onehot)   on S_r, with the global lse
//   dx   = sum_r dz_r W_r  (all-reduced),   dW_r = dz_r^T x  (local)
// The argmax (top-1) is the first index over the whole vocabulary: the smallest global index
// among the ranks whose local maximum equals the global one. Per row the numerics are those of
// head_loss.cpp: fp32 logits, exponentials against the global maximum, sums in double, the
// (z_t - z_s) - d form of the KL.
//
// Per chunk of m rows: logits GEMM(s) [m, Vl]; one AllReduceMax of the row maxima (m floats per
// head: 8m bytes for KL, 4m for CE); one AllReduceSum of the sums of exponentials (8m bytes per
// head); the gradient overwrites the logits; dW_r += dz^T x (local) and dx_partial[rows] =
// dz W_r (local). Once per call: AllReduceMax of the argmax candidates (8 bytes per row and
// head), AllReduceSum of the loss sums (16 bytes) and, with dx, one AllReduceSum of the
// [N, C] dx partial (4 N C bytes).
// Peak extra memory per rank: the [min(chunk, N), Vl] logits (2 buffers for KL, 1 for CE),
// plus 4 N C bytes for the dx partial when dx is wanted, plus 8 bytes per row and head for the
// argmax candidates, plus O(chunk). GEMM cost per rank: 2 N Vl C FLOPs per GEMM.
//
// Results (KlResult / CeResult) are the GLOBAL values, identical bits on every rank. dW (the
// local [Vl, C] slice) is accumulated (+=) with this rank's slice; dx is accumulated (+=) with
// the complete gradient, the same bits on every rank. Errors: inconsistent arguments across the
// group (N, V, chunk, scales, which gradients, slices that do not tile [0, V)) and bad shapes
// abort with RADLADS_CHECK (docs/style.md §6a) on every rank.
// Determinism: rows are combined in row order and the collectives add in a fixed order, so a
// rerun with the same group size, slices, chunk and thread count gives the same bits. A
// different group size or split is a different computation (compare with tolerances,
// docs/style.md §17); with one rank (SelfCommunicator) it matches FusedKl / FusedCrossEntropy
// to fp32 accuracy, not bit for bit.
// Thread-safety: collective calls: every rank of the group calls, in the same order with the
// same sizes; uses the process thread pool (cpu::ParallelFor, OpenBLAS); one thread per group.
#pragma once

#include <cstdint>

#include "kernels/collectives.h"
#include "kernels/ops/head_loss.h"
#include "kernels/tensor.h"

namespace radlads {

// This rank's place in the vocabulary split. Not owned: `group` must outlive the call.
struct VocabShard {
  Communicator* group = nullptr;  // the ranks that split the vocabulary (size 1: no split)
  std::int64_t vocab_begin = 0;   // first global vocabulary row held here (v0)
  std::int64_t vocab_size = 0;    // full vocabulary V (the local size Vl is the weights' dim 0)
};

// FusedKl over the split head. x_s [.., C_s] and x_t [.., C_t] (same N; replicated), w_s_local
// [Vl, C_s] and w_t_local [Vl, C_t] (rows [v0, v0 + Vl) of the full heads), targets I32 [N] with
// global ids in [-1, V) or null. grads.dx [.., C_s] gets the complete dx, grads.dw [Vl, C_s] the
// local slice; both +=; both null = forward only.
KlResult VocabParallelKl(const Tensor& x_s, const Tensor& w_s_local, const Tensor& x_t,
                         const Tensor& w_t_local, const Tensor* targets, const HeadGrads& grads,
                         const HeadLossOptions& opt, const VocabShard& shard);

// FusedCrossEntropy over the split head: x [.., C] (replicated), w_local [Vl, C], targets I32
// [N] with global ids in [-1, V). Gradients as above.
CeResult VocabParallelCrossEntropy(const Tensor& x, const Tensor& w_local, const Tensor& targets,
                                   const HeadGrads& grads, const HeadLossOptions& opt,
                                   const VocabShard& shard);

}  // namespace radlads
