// Fused LM head + loss (docs/kernels.md; the losses of steps 2 and 3: docs/conversion.md).
//
// The [N, Vc] logits are never materialised: rows are processed in chunks of `chunk` tokens.
// Per chunk: logits z = x W^T (GEMM) -> one row-parallel, vectorised pass that computes the
// per-row loss and overwrites the student logits with dL/dz -> dx[chunk] += dz W and
// dW += dz^T x[chunk] (GEMMs). The gradient is computed during the forward (Liger pattern), so
// the caller passes the upstream scale up front (`grad_scale`, e.g. 1/N for a token mean).
//
// Losses (natural log, temperature 1, p = softmax(z), log-softmax with max subtraction):
//   KL  row n: KL(p_t || p_s) = sum_v p_t,v (log p_t,v - log p_s,v)     (forward KL, docs/spec.md §2.2)
//   CE  row n: -log p_s,n[target_n], rows with target -1 ignored         (docs/spec.md §2.4)
//   dKL/dz_s = p_s - p_t,   dCE/dz_s = p_s - onehot(target).
// Logits are fp32 (GEMM outputs); per-row sums of exponentials, the loss terms and the sums
// over rows accumulate in double. Rows are combined in order, so results are bit-identical run
// to run for a fixed thread count (the GEMMs are the only thread-count-dependent part).
//
// Peak extra memory (independent of N):
//   FusedKl                : 2 * min(chunk, N) * Vc * 4 bytes (student + teacher logits)
//   FusedKlTeacherLogits   : 1 * min(chunk, N) * Vc * 4 bytes (student logits)
//   FusedCrossEntropy      : 1 * min(chunk, N) * Vc * 4 bytes
//   plus O(chunk) bytes of per-row statistics. E.g. Vc = 151936, chunk = 256: 156 MB per
//   [chunk, Vc] buffer. The GEMM cost is 2*N*Vc*C FLOPs per GEMM (student logits, teacher
//   logits, dx, dW), independent of the chunk size; a larger chunk only helps GEMM efficiency.
//
// Shapes: x is F32 [.., C] read as rows (N = numel / C), W is F32 [Vc, C] (PyTorch Linear
// layout, no bias), targets I32 with N elements (values in [0, Vc) or -1 = ignore). Gradient
// outputs, when given, have the shape of x / W and are ACCUMULATED into (+=).
// Thread-safety: calls use the process thread pool (cpu::ParallelFor, OpenBLAS); do not call
// concurrently from several threads.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace radlads {

struct HeadLossOptions {
  // Rows per chunk. Any value >= 1; chunk > N is the same as chunk = N.
  std::int64_t chunk = 256;
  // Gradients written are those of grad_scale * (KL sum) for FusedKl*, of
  // grad_scale * (CE sum) for FusedCrossEntropy. E.g. 1/N for the token mean of docs/spec.md §2.2.
  float grad_scale = 1.0f;
  // FusedKl* only, needs targets: adds ce_grad_scale * (student CE sum) to the objective that is
  // differentiated (the repo's `ce_weight`; 0 in every RADLADS config).
  float ce_grad_scale = 0.0f;
};

// Where the accumulated gradients go; either may be null (nothing computed for it). With both
// null the call is forward-only and skips the backward GEMMs.
struct HeadGrads {
  Tensor* dx = nullptr;  // [.., C] like x: += d(objective)/dx
  Tensor* dw = nullptr;  // [Vc, C] like W: += d(objective)/dW
};

struct KlResult {
  double kl_sum = 0.0;          // sum over rows of KL(p_t || p_s), nats (divide by N for docs/spec.md §2.2)
  std::int64_t top1_agree = 0;  // rows where argmax z_t == argmax z_s (first index on ties)
  double ce_sum = 0.0;          // student CE summed over rows with target != -1 (targets given)
  std::int64_t ce_count = 0;    // number of such rows
};

struct CeResult {
  double loss_sum = 0.0;     // sum over non-ignored rows of -log p(target)
  std::int64_t count = 0;    // non-ignored rows
  std::int64_t correct = 0;  // non-ignored rows with argmax z == target
};

// Student x_s [.., C_s] with head w_s [Vc, C_s]; teacher x_t [.., C_t] (same N) with head
// w_t [Vc, C_t]; teacher logits are computed chunk by chunk too. targets may be null.
KlResult FusedKl(const Tensor& x_s, const Tensor& w_s, const Tensor& x_t, const Tensor& w_t,
                 const Tensor* targets, const HeadGrads& grads, const HeadLossOptions& opt = {});

// Same, with precomputed teacher logits z_t F32 [N, Vc] (tests, cached teachers). z_t is read
// only. To stream a cached teacher, call once per block of rows with x_s.Rows(b, e) and
// z_t.Rows(b, e) (and the matching dx rows): results add up and dW accumulates.
KlResult FusedKlTeacherLogits(const Tensor& x_s, const Tensor& w_s, const Tensor& z_t,
                              const Tensor* targets, const HeadGrads& grads,
                              const HeadLossOptions& opt = {});

// Next-token cross-entropy with the head fused: x [.., C], w [Vc, C], targets I32 [N].
CeResult FusedCrossEntropy(const Tensor& x, const Tensor& w, const Tensor& targets,
                           const HeadGrads& grads, const HeadLossOptions& opt = {});

}  // namespace radlads
