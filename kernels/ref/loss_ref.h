// fp64 references for the losses and the optimizer (kernels/ops/align_loss.h, head_loss.h,
// adamw.h, grad_norm.h). Plain loops over full tensors, no threading, no intrinsics, written to
// read like the math; used only by tests. All arrays are row-major; an empty span for an
// optional output means "not wanted". Gradient outputs accumulate (+=), as in the fast path.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/ops/adamw.h"

namespace radlads {

// L = (1/N) sum_n ||t_n - s_n|| / sqrt(C); ds += dloss * dL/ds (zero for zero-distance rows).
double AlignLossRef(std::span<const double> t, std::span<const double> s, std::int64_t n,
                    std::int64_t c, double dloss, std::span<double> ds);

// z[N, Vc] = x[N, C] W[Vc, C]^T.
std::vector<double> LinearRef(std::span<const double> x, std::span<const double> w, std::int64_t n,
                              std::int64_t c, std::int64_t vc);
// dx[N, C] += dz W, dW[Vc, C] += dz^T x (either output may be empty).
void LinearBackwardRef(std::span<const double> x, std::span<const double> w,
                       std::span<const double> dz, std::int64_t n, std::int64_t c, std::int64_t vc,
                       std::span<double> dx, std::span<double> dw);

// Row-wise log-softmax of z[N, Vc] (max subtracted).
std::vector<double> LogSoftmaxRef(std::span<const double> z, std::int64_t n, std::int64_t vc);

struct KlRefResult {
  double kl_sum = 0.0;
  std::int64_t top1_agree = 0;  // argmax (first index) of teacher == of student
  double ce_sum = 0.0;          // student CE over rows with target != -1
  std::int64_t ce_count = 0;
};

// KL(softmax(zt) || softmax(zs)) summed over rows. targets may be empty (no CE).
// dzs += d(gs * kl_sum + cs * ce_sum)/dzs.
KlRefResult KlFromLogitsRef(std::span<const double> zs, std::span<const double> zt, std::int64_t n,
                            std::int64_t vc, std::span<const std::int32_t> targets, double gs,
                            double cs, std::span<double> dzs);

struct CeRefResult {
  double loss_sum = 0.0;
  std::int64_t count = 0;
  std::int64_t correct = 0;
};

// sum over rows with target != -1 of -log softmax(z)[target]; dz += gs * d(sum)/dz.
CeRefResult CrossEntropyFromLogitsRef(std::span<const double> z, std::int64_t n, std::int64_t vc,
                                      std::span<const std::int32_t> targets, double gs,
                                      std::span<double> dz);

// The head + loss compositions matching FusedKl / FusedCrossEntropy (full logits).
KlRefResult FusedKlRef(std::span<const double> xs, std::span<const double> ws,
                       std::span<const double> xt, std::span<const double> wt, std::int64_t n,
                       std::int64_t c_s, std::int64_t c_t, std::int64_t vc,
                       std::span<const std::int32_t> targets, double gs, double cs,
                       std::span<double> dxs, std::span<double> dws);
CeRefResult FusedCrossEntropyRef(std::span<const double> x, std::span<const double> w,
                                 std::int64_t n, std::int64_t c, std::int64_t vc,
                                 std::span<const std::int32_t> targets, double gs,
                                 std::span<double> dx, std::span<double> dw);

// Textbook AdamW in double: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; mhat = m/(1-b1^t);
// vhat = v/(1-b2^t); p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
void AdamWStepRef(std::span<double> p, std::span<const double> g, std::span<double> m,
                  std::span<double> v, std::int64_t step, const AdamWConfig& cfg);

// sqrt(sum of squares over all tensors); clip scales by min(1, max_norm / (norm + 1e-6)).
double GlobalGradNormRef(const std::vector<std::vector<double>>& grads);
double ClipGradNormRef(std::vector<std::vector<double>>& grads, double max_norm);

}  // namespace radlads
