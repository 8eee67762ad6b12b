// Step-1 alignment loss and the fused LM head + KL / cross-entropy losses against their fp64
// references (kernels/ref/loss_ref.h), the references against central finite differences, and
// the properties the training loop relies on (chunk-size invariance, KL(p||p) = 0, shift
// invariance, top-1 counting, ignore index, extreme logits, determinism).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "kernels/ops/align_loss.h"
#include "kernels/ops/head_loss.h"
#include "kernels/ref/loss_ref.h"
#include "tests/kernels/loss_test_util.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::RandomTensor;
using testing::Rng;
using testing::ScalarClose;
using testing::ToDouble;
using testing::Tol;

// ---- named tolerances (fp32 fast path vs fp64 reference) ----------------------------------
// Alignment loss: double accumulation, so the loss is exact to ~1e-7 relative.
constexpr double kAlignLossTolRel = 1e-6;
constexpr Tol kAlignGradTolF32{1e-8, 1e-5, 1e-6};
// Fused head losses: fp32 GEMM logits (K = 29) and fp32 softmax; loss sums in double.
// Measured (N=37, C=29, Vc=301): loss rel err ~4e-8, gradients max |err| ~7e-7, rel RMS ~4e-7.
constexpr double kHeadLossTolRel = 1e-6;
constexpr double kHeadLossTolAbs = 1e-5;
constexpr Tol kHeadGradTolF32{1e-6, 1e-5, 2e-6};
// Two fp32 runs that differ only in the chunking (GEMM blocking) or in an exact shift of the
// inputs: fp32 accuracy (measured: max |err| ~2.4e-7, rel RMS ~2e-7; often bit-identical).
constexpr double kChunkLossTolRel = 1e-6;
constexpr Tol kChunkGradTolF32{1e-6, 1e-5, 2e-6};
// fp64 reference vs central finite differences (h = 1e-5).
constexpr double kFdStep = 1e-5;
constexpr double kFdTolAbs = 1e-7;
constexpr double kFdTolRel = 1e-6;

constexpr std::int64_t kN = 37, kCs = 29, kCt = 23, kVc = 301;

class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : saved_(cpu::NumThreads()) { cpu::SetNumThreads(n); }
  ~ThreadCountGuard() { cpu::SetNumThreads(saved_); }

 private:
  int saved_;
};

std::span<const std::int32_t> Ids(const Tensor& t) {
  return std::span<const std::int32_t>(t.data<std::int32_t>(), static_cast<std::size_t>(t.numel()));
}

Tensor Targets(Rng& rng, std::int64_t n, std::int64_t vc, int ignore_every) {
  Tensor t = Tensor::Empty({n}, DType::kI32);
  std::uniform_int_distribution<std::int32_t> ud(0, static_cast<std::int32_t>(vc - 1));
  for (std::int64_t i = 0; i < n; ++i)
    t.data<std::int32_t>()[i] = (ignore_every > 0 && i % ignore_every == 2) ? -1 : ud(rng);
  return t;
}

// Central differences of f at every entry of `x` (modified in place and restored); checks them
// against `grad`.
void ExpectFiniteDifferences(std::vector<double>& x, const std::vector<double>& grad,
                             const std::function<double()>& f, const char* what) {
  ASSERT_EQ(x.size(), grad.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + kFdStep;
    const double fp = f();
    x[i] = keep - kFdStep;
    const double fm = f();
    x[i] = keep;
    const double fd = (fp - fm) / (2 * kFdStep);
    ASSERT_NEAR(grad[i], fd, kFdTolAbs + kFdTolRel * std::fabs(fd)) << what << " index " << i;
  }
}

// ---- alignment loss ------------------------------------------------------------------------

TEST(AlignLoss, MatchesReferenceAndAccumulates) {
  Rng rng(101);
  Tensor t = RandomTensor(rng, {kN, kCs});
  Tensor s = RandomTensor(rng, {kN, kCs});
  std::memcpy(s.f32() + 5 * kCs, t.f32() + 5 * kCs, kCs * sizeof(float));  // a zero-distance row
  Tensor ds = RandomTensor(rng, {kN, kCs});
  std::vector<double> ds_ref = ToDouble(ds);
  Tensor dist = Tensor::Empty({kN});
  const double loss = AlignLossForward(t, s, &dist);
  AlignLossBackward(t, s, 0.7f, ds);
  const double loss_ref = AlignLossRef(ToDouble(t), ToDouble(s), kN, kCs, 0.7, ds_ref);
  EXPECT_TRUE(ScalarClose(loss, loss_ref, 0, kAlignLossTolRel, "align loss"));
  EXPECT_TRUE(AllClose(ds, ds_ref, kAlignGradTolF32, "align ds"));
  EXPECT_EQ(dist.f32()[5], 0.0f);
  double mean = 0;
  for (int i = 0; i < kN; ++i) mean += dist.f32()[i];
  EXPECT_TRUE(ScalarClose(mean / kN / std::sqrt(double(kCs)), loss, 0, 1e-6, "row_dist"));
}

TEST(AlignLoss, AcceptsBatchTimeShape) {
  Rng rng(102);
  Tensor t = RandomTensor(rng, {3, 5, kCs});
  Tensor s = RandomTensor(rng, {3, 5, kCs});
  EXPECT_TRUE(ScalarClose(AlignLossForward(t, s),
                          AlignLossForward(t.View({15, kCs}), s.View({15, kCs})), 0, 0,
                          "[B,T,C] vs [N,C]"));
}

TEST(AlignLoss, ZeroDistanceGivesZeroLossAndGradient) {
  Rng rng(103);
  Tensor t = RandomTensor(rng, {kN, kCs});
  Tensor ds = Tensor::Zeros({kN, kCs});
  EXPECT_EQ(AlignLossForward(t, t), 0.0);
  AlignLossBackward(t, t, 1.0f, ds);
  for (std::int64_t i = 0; i < ds.numel(); ++i) ASSERT_EQ(ds.f32()[i], 0.0f) << i;
}

TEST(AlignLoss, ReferenceMatchesFiniteDifferences) {
  Rng rng(104);
  const std::int64_t n = 6, c = 7;
  std::vector<double> t = ToDouble(RandomTensor(rng, {n, c}));
  std::vector<double> s = ToDouble(RandomTensor(rng, {n, c}));
  std::vector<double> ds(s.size(), 0.0);
  AlignLossRef(t, s, n, c, 1.3, ds);
  ExpectFiniteDifferences(
      s, ds, [&] { return 1.3 * AlignLossRef(t, s, n, c, 0, {}); }, "ds");
}

// Identity head (C = Vc): the student logits are the rows of x_s.
Tensor Eye(std::int64_t n) {
  Tensor e = Tensor::Zeros({n, n});
  for (std::int64_t i = 0; i < n; ++i) e.f32()[i * n + i] = 1.0f;
  return e;
}

// ---- fused KL ------------------------------------------------------------------------------

struct KlCase {
  Tensor xs, ws, xt, wt, targets;
};

KlCase MakeKlCase(std::uint64_t seed, std::int64_t n, std::int64_t cs, std::int64_t ct,
                  std::int64_t vc) {
  Rng rng(seed);
  KlCase k;
  k.xs = RandomTensor(rng, {n, cs});
  k.ws = RandomTensor(rng, {vc, cs}, 2.0f / std::sqrt(float(cs)));  // logits ~ N(0, 4)
  k.xt = RandomTensor(rng, {n, ct});
  k.wt = RandomTensor(rng, {vc, ct}, 2.0f / std::sqrt(float(ct)));
  k.targets = Targets(rng, n, vc, 5);
  return k;
}

struct KlRun {
  KlResult res;
  Tensor dx, dw;
};

KlRun RunFusedKl(const KlCase& k, std::int64_t chunk, bool with_targets, float gs, float cs,
                 std::uint64_t grad_seed = 0) {
  KlRun r;
  Rng rng(grad_seed);
  r.dx = grad_seed ? RandomTensor(rng, k.xs.shape()) : Tensor::Zeros(k.xs.shape());
  r.dw = grad_seed ? RandomTensor(rng, k.ws.shape()) : Tensor::Zeros(k.ws.shape());
  HeadLossOptions opt;
  opt.chunk = chunk;
  opt.grad_scale = gs;
  opt.ce_grad_scale = cs;
  r.res = FusedKl(k.xs, k.ws, k.xt, k.wt, with_targets ? &k.targets : nullptr, {&r.dx, &r.dw}, opt);
  return r;
}

TEST(FusedKl, MatchesReference) {
  const KlCase k = MakeKlCase(201, kN, kCs, kCt, kVc);
  const float gs = 1.0f / kN, cs = 0.3f / kN;
  const KlRun got = RunFusedKl(k, 7, true, gs, cs, /*grad_seed=*/202);
  Rng rng(202);  // the same initial gradients, accumulated into by the reference
  std::vector<double> dx_ref = ToDouble(RandomTensor(rng, k.xs.shape()));
  std::vector<double> dw_ref = ToDouble(RandomTensor(rng, k.ws.shape()));
  const KlRefResult ref = FusedKlRef(ToDouble(k.xs), ToDouble(k.ws), ToDouble(k.xt), ToDouble(k.wt),
                                     kN, kCs, kCt, kVc, Ids(k.targets), gs, cs, dx_ref, dw_ref);
  EXPECT_TRUE(ScalarClose(got.res.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "kl_sum"));
  EXPECT_TRUE(ScalarClose(got.res.ce_sum, ref.ce_sum, kHeadLossTolAbs, kHeadLossTolRel, "ce_sum"));
  EXPECT_EQ(got.res.ce_count, ref.ce_count);
  EXPECT_EQ(got.res.top1_agree, ref.top1_agree);
  EXPECT_TRUE(AllClose(got.dx, dx_ref, kHeadGradTolF32, "dx_s"));
  EXPECT_TRUE(AllClose(got.dw, dw_ref, kHeadGradTolF32, "dW_s"));
}

TEST(FusedKl, TeacherLogitsVariantMatchesReference) {
  const KlCase k = MakeKlCase(203, kN, kCs, kCt, kVc);
  // Teacher logits from the fp64 reference, rounded to fp32.
  const std::vector<double> zt_d = LinearRef(ToDouble(k.xt), ToDouble(k.wt), kN, kCt, kVc);
  Tensor zt = Tensor::Empty({kN, kVc});
  for (std::int64_t i = 0; i < zt.numel(); ++i) zt.f32()[i] = static_cast<float>(zt_d[i]);
  Tensor dx = Tensor::Zeros({kN, kCs}), dw = Tensor::Zeros({kVc, kCs});
  HeadLossOptions opt;
  opt.chunk = 10;
  opt.grad_scale = 0.5f;
  const KlResult got = FusedKlTeacherLogits(k.xs, k.ws, zt, &k.targets, {&dx, &dw}, opt);

  const std::vector<double> xs = ToDouble(k.xs), ws = ToDouble(k.ws);
  const std::vector<double> zs = LinearRef(xs, ws, kN, kCs, kVc);
  std::vector<double> dz(kN * kVc, 0.0), dx_ref(kN * kCs, 0.0), dw_ref(kVc * kCs, 0.0);
  const KlRefResult ref = KlFromLogitsRef(zs, ToDouble(zt), kN, kVc, Ids(k.targets), 0.5, 0.0, dz);
  LinearBackwardRef(xs, ws, dz, kN, kCs, kVc, dx_ref, dw_ref);
  EXPECT_TRUE(ScalarClose(got.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "kl_sum"));
  EXPECT_TRUE(ScalarClose(got.ce_sum, ref.ce_sum, kHeadLossTolAbs, kHeadLossTolRel, "ce_sum"));
  EXPECT_EQ(got.top1_agree, ref.top1_agree);
  EXPECT_TRUE(AllClose(dx, dx_ref, kHeadGradTolF32, "dx_s"));
  EXPECT_TRUE(AllClose(dw, dw_ref, kHeadGradTolF32, "dW_s"));

  // Streaming the teacher in row blocks gives the same totals and gradients.
  Tensor dx2 = Tensor::Zeros({kN, kCs}), dw2 = Tensor::Zeros({kVc, kCs});
  double kl2 = 0;
  for (std::int64_t b = 0; b < kN; b += 16) {
    const std::int64_t e = std::min(kN, b + 16);
    Tensor dxr = dx2.Rows(b, e), tg = k.targets.Rows(b, e);
    kl2 +=
        FusedKlTeacherLogits(k.xs.Rows(b, e), k.ws, zt.Rows(b, e), &tg, {&dxr, &dw2}, opt).kl_sum;
  }
  EXPECT_TRUE(ScalarClose(kl2, got.kl_sum, 0, kChunkLossTolRel, "streamed kl_sum"));
  EXPECT_TRUE(AllClose(dx2, ToDouble(dx), kChunkGradTolF32, "streamed dx_s"));
  EXPECT_TRUE(AllClose(dw2, ToDouble(dw), kChunkGradTolF32, "streamed dW_s"));
}

TEST(FusedKl, ReferenceMatchesFiniteDifferences) {
  const std::int64_t n = 4, cs = 5, ct = 3, vc = 7;
  const KlCase k = MakeKlCase(204, n, cs, ct, vc);
  std::vector<double> xs = ToDouble(k.xs), ws = ToDouble(k.ws);
  const std::vector<double> xt = ToDouble(k.xt), wt = ToDouble(k.wt);
  const std::vector<std::int32_t> tg = {2, -1, 6, 0};
  const double gs = 0.8, ce = 0.35;
  std::vector<double> dxs(xs.size(), 0.0), dws(ws.size(), 0.0);
  FusedKlRef(xs, ws, xt, wt, n, cs, ct, vc, tg, gs, ce, dxs, dws);
  auto f = [&] {
    const KlRefResult r = FusedKlRef(xs, ws, xt, wt, n, cs, ct, vc, tg, 0, 0, {}, {});
    return gs * r.kl_sum + ce * r.ce_sum;
  };
  ExpectFiniteDifferences(xs, dxs, f, "dx_s");
  ExpectFiniteDifferences(ws, dws, f, "dW_s");
}

TEST(FusedKl, ChunkSizeInvariance) {
  const KlCase k = MakeKlCase(205, kN, kCs, kCt, kVc);
  const KlRun base = RunFusedKl(k, kN, true, 1.0f / kN, 0.2f);
  for (std::int64_t chunk : std::initializer_list<std::int64_t>{1, 7, 64}) {
    SCOPED_TRACE(chunk);
    const KlRun r = RunFusedKl(k, chunk, true, 1.0f / kN, 0.2f);
    EXPECT_TRUE(ScalarClose(r.res.kl_sum, base.res.kl_sum, 0, kChunkLossTolRel, "kl_sum"));
    EXPECT_TRUE(ScalarClose(r.res.ce_sum, base.res.ce_sum, 0, kChunkLossTolRel, "ce_sum"));
    EXPECT_EQ(r.res.top1_agree, base.res.top1_agree);
    EXPECT_TRUE(AllClose(r.dx, ToDouble(base.dx), kChunkGradTolF32, "dx_s"));
    EXPECT_TRUE(AllClose(r.dw, ToDouble(base.dw), kChunkGradTolF32, "dW_s"));
  }
}

TEST(FusedKl, ForwardOnlyGivesTheSameLoss) {
  const KlCase k = MakeKlCase(206, kN, kCs, kCt, kVc);
  const KlRun with_grad = RunFusedKl(k, 8, true, 1.0f, 0.0f);
  HeadLossOptions opt;
  opt.chunk = 8;
  const KlResult fwd = FusedKl(k.xs, k.ws, k.xt, k.wt, &k.targets, {}, opt);
  EXPECT_EQ(fwd.kl_sum, with_grad.res.kl_sum);
  EXPECT_EQ(fwd.ce_sum, with_grad.res.ce_sum);
  EXPECT_EQ(fwd.top1_agree, with_grad.res.top1_agree);
}

TEST(FusedKl, IdenticalDistributionsGiveZeroLossAndGradient) {
  const KlCase k = MakeKlCase(207, kN, kCs, kCt, kVc);
  Tensor dx = Tensor::Zeros({kN, kCs}), dw = Tensor::Zeros({kVc, kCs});
  HeadLossOptions opt;
  opt.chunk = 7;
  const KlResult r = FusedKl(k.xs, k.ws, k.xs, k.ws, nullptr, {&dx, &dw}, opt);
  EXPECT_EQ(r.kl_sum, 0.0);
  EXPECT_EQ(r.top1_agree, kN);
  for (std::int64_t i = 0; i < dx.numel(); ++i) ASSERT_EQ(dx.f32()[i], 0.0f) << i;
  for (std::int64_t i = 0; i < dw.numel(); ++i) ASSERT_EQ(dw.f32()[i], 0.0f) << i;
}

TEST(FusedKl, TeacherShiftByConstantChangesNothing) {
  const KlCase k = MakeKlCase(208, kN, kCs, kCt, kVc);
  Tensor zt = Tensor::Empty({kN, kVc});
  Gemm(false, true, kN, kVc, kCt, 1.0f, k.xt.f32(), kCt, k.wt.f32(), kCt, 0.0f, zt.f32(), kVc);
  Tensor zt_shift = zt.Clone();
  for (std::int64_t i = 0; i < zt.numel(); ++i) zt_shift.f32()[i] += 3.75f;  // exact in fp32
  Tensor dx1 = Tensor::Zeros({kN, kCs}), dw1 = Tensor::Zeros({kVc, kCs});
  Tensor dx2 = Tensor::Zeros({kN, kCs}), dw2 = Tensor::Zeros({kVc, kCs});
  const KlResult a = FusedKlTeacherLogits(k.xs, k.ws, zt, nullptr, {&dx1, &dw1}, {});
  const KlResult b = FusedKlTeacherLogits(k.xs, k.ws, zt_shift, nullptr, {&dx2, &dw2}, {});
  EXPECT_TRUE(ScalarClose(b.kl_sum, a.kl_sum, 0, kChunkLossTolRel, "shifted kl_sum"));
  EXPECT_EQ(a.top1_agree, b.top1_agree);
  EXPECT_TRUE(AllClose(dx2, ToDouble(dx1), kChunkGradTolF32, "shifted dx_s"));
  EXPECT_TRUE(AllClose(dw2, ToDouble(dw1), kChunkGradTolF32, "shifted dW_s"));
  // And a student equal to the teacher up to a shift has zero KL (to fp32 accuracy).
  Tensor zs_shift = Tensor::Empty({kN, kVc});
  Gemm(false, true, kN, kVc, kCs, 1.0f, k.xs.f32(), kCs, k.ws.f32(), kCs, 0.0f, zs_shift.f32(),
       kVc);
  for (std::int64_t i = 0; i < zs_shift.numel(); ++i) zs_shift.f32()[i] -= 2.5f;
  const Tensor eye = Eye(kVc);
  Tensor zs = Tensor::Empty({kN, kVc});
  Gemm(false, true, kN, kVc, kCs, 1.0f, k.xs.f32(), kCs, k.ws.f32(), kCs, 0.0f, zs.f32(), kVc);
  const KlResult c = FusedKlTeacherLogits(zs_shift, eye, zs, nullptr, {}, {});
  EXPECT_NEAR(c.kl_sum, 0.0, 1e-6 * kN);
  EXPECT_EQ(c.top1_agree, kN);
}

TEST(FusedKl, TopOneAgreementOnConstructedCase) {
  const std::int64_t vc = 11, n = 8;
  Tensor zs = Tensor::Zeros({n, vc}), zt = Tensor::Zeros({n, vc});
  // argmax per row: student / teacher. Rows 6 and 7 have ties (first index wins).
  const int am_s[6] = {0, 3, 5, 10, 7, 2};
  const int am_t[6] = {0, 3, 4, 10, 1, 2};
  for (int r = 0; r < 6; ++r) {
    for (int v = 0; v < vc; ++v) {
      zs.f32()[r * vc + v] = 0.1f * float((v * 7 + r) % 5);
      zt.f32()[r * vc + v] = -0.2f * float((v * 3 + r) % 4);
    }
    zs.f32()[r * vc + am_s[r]] = 2.0f;
    zt.f32()[r * vc + am_t[r]] = 1.5f;
  }
  zs.f32()[6 * vc + 2] = zs.f32()[6 * vc + 8] = 1.0f;  // tie 2/8 in both: agree (index 2)
  zt.f32()[6 * vc + 2] = zt.f32()[6 * vc + 8] = 3.0f;
  zs.f32()[7 * vc + 4] = zs.f32()[7 * vc + 9] = 1.0f;  // student first max 4, teacher 9: differ
  zt.f32()[7 * vc + 9] = 1.0f;
  const KlResult r = FusedKlTeacherLogits(zs, Eye(vc), zt, nullptr, {}, HeadLossOptions{3});
  EXPECT_EQ(r.top1_agree, 5);
  const KlRefResult ref = KlFromLogitsRef(ToDouble(zs), ToDouble(zt), n, vc, {}, 0, 0, {});
  EXPECT_EQ(ref.top1_agree, 5);
  EXPECT_TRUE(ScalarClose(r.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "kl_sum"));
}

TEST(FusedKl, ExtremeLogitsStayFinite) {
  const std::int64_t vc = 53, n = 9;
  Rng rng(209);
  std::uniform_real_distribution<float> ud(-1000.0f, 1000.0f);
  Tensor zs = Tensor::Empty({n, vc}), zt = Tensor::Empty({n, vc});
  for (std::int64_t i = 0; i < zs.numel(); ++i) {
    zs.f32()[i] = ud(rng);
    zt.f32()[i] = (i / vc) % 3 == 0 ? zs.f32()[i] + 0.5f * ud(rng) / 1000.0f : ud(rng);
  }
  Tensor targets = Targets(rng, n, vc, 4);
  Tensor dx = Tensor::Zeros({n, vc}), dw = Tensor::Zeros({vc, vc});
  HeadLossOptions opt;
  opt.chunk = 4;
  opt.ce_grad_scale = 0.5f;
  const Tensor eye = Eye(vc);
  const KlResult r = FusedKlTeacherLogits(zs, eye, zt, &targets, {&dx, &dw}, opt);
  std::vector<double> dz(n * vc, 0.0);
  const KlRefResult ref =
      KlFromLogitsRef(ToDouble(zs), ToDouble(zt), n, vc, Ids(targets), 1.0, 0.5, dz);
  ASSERT_TRUE(std::isfinite(r.kl_sum) && std::isfinite(r.ce_sum));
  EXPECT_TRUE(ScalarClose(r.kl_sum, ref.kl_sum, 1e-3, kHeadLossTolRel, "kl_sum"));
  EXPECT_TRUE(ScalarClose(r.ce_sum, ref.ce_sum, 1e-3, kHeadLossTolRel, "ce_sum"));
  EXPECT_TRUE(AllClose(dx, dz, kHeadGradTolF32, "dx_s (= dz)"));
}

// ---- fused cross-entropy -------------------------------------------------------------------

TEST(FusedCrossEntropy, MatchesReferenceWithIgnoreIndex) {
  Rng rng(301);
  Tensor x = RandomTensor(rng, {kN, kCs});
  Tensor w = RandomTensor(rng, {kVc, kCs}, 2.0f / std::sqrt(float(kCs)));
  Tensor targets = Targets(rng, kN, kVc, 4);
  Tensor dx = RandomTensor(rng, {kN, kCs}), dw = RandomTensor(rng, {kVc, kCs});
  std::vector<double> dx_ref = ToDouble(dx), dw_ref = ToDouble(dw);
  const Tensor dx0 = dx.Clone();
  HeadLossOptions opt;
  opt.chunk = 6;
  opt.grad_scale = 0.25f;
  const CeResult got = FusedCrossEntropy(x, w, targets, {&dx, &dw}, opt);
  const CeRefResult ref = FusedCrossEntropyRef(ToDouble(x), ToDouble(w), kN, kCs, kVc, Ids(targets),
                                               0.25, dx_ref, dw_ref);
  EXPECT_TRUE(ScalarClose(got.loss_sum, ref.loss_sum, kHeadLossTolAbs, kHeadLossTolRel, "ce"));
  EXPECT_EQ(got.count, ref.count);
  EXPECT_EQ(got.count, kN - (kN + 1) / 4);  // rows 2, 6, 10, ... are ignored
  EXPECT_EQ(got.correct, ref.correct);
  EXPECT_TRUE(AllClose(dx, dx_ref, kHeadGradTolF32, "dx"));
  EXPECT_TRUE(AllClose(dw, dw_ref, kHeadGradTolF32, "dW"));
  for (std::int64_t r = 2; r < kN; r += 4)  // ignored rows: dx untouched
    for (std::int64_t j = 0; j < kCs; ++j) ASSERT_EQ(dx.f32()[r * kCs + j], dx0.f32()[r * kCs + j]);

  // Chunk-size invariance.
  for (std::int64_t chunk : std::initializer_list<std::int64_t>{1, 7, kN, 100}) {
    SCOPED_TRACE(chunk);
    Tensor dx2 = dx0.Clone();
    Tensor dw2 = Tensor::Zeros({kVc, kCs});
    opt.chunk = chunk;
    const CeResult r = FusedCrossEntropy(x, w, targets, {&dx2, nullptr}, opt);
    EXPECT_TRUE(ScalarClose(r.loss_sum, got.loss_sum, 0, kChunkLossTolRel, "ce"));
    EXPECT_TRUE(AllClose(dx2, ToDouble(dx), kChunkGradTolF32, "dx"));
  }
}

TEST(FusedCrossEntropy, AllIgnoredIsZero) {
  Rng rng(302);
  Tensor x = RandomTensor(rng, {5, kCs});
  Tensor w = RandomTensor(rng, {kVc, kCs});
  Tensor targets = Tensor::Empty({5}, DType::kI32);
  for (int i = 0; i < 5; ++i) targets.data<std::int32_t>()[i] = -1;
  Tensor dw = Tensor::Zeros({kVc, kCs});
  const CeResult r = FusedCrossEntropy(x, w, targets, {nullptr, &dw}, {});
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.loss_sum, 0.0);
  for (std::int64_t i = 0; i < dw.numel(); ++i) ASSERT_EQ(dw.f32()[i], 0.0f);
}

TEST(FusedCrossEntropy, ReferenceMatchesFiniteDifferences) {
  Rng rng(303);
  const std::int64_t n = 5, c = 4, vc = 9;
  std::vector<double> x = ToDouble(RandomTensor(rng, {n, c}));
  std::vector<double> w = ToDouble(RandomTensor(rng, {vc, c}));
  const std::vector<std::int32_t> tg = {3, 8, -1, 0, 5};
  std::vector<double> dx(x.size(), 0.0), dw(w.size(), 0.0);
  FusedCrossEntropyRef(x, w, n, c, vc, tg, 0.6, dx, dw);
  auto f = [&] { return 0.6 * FusedCrossEntropyRef(x, w, n, c, vc, tg, 0, {}, {}).loss_sum; };
  ExpectFiniteDifferences(x, dx, f, "dx");
  ExpectFiniteDifferences(w, dw, f, "dW");
}

// ---- determinism ---------------------------------------------------------------------------

TEST(FusedKl, DeterministicWithTwoThreads) {
  const KlCase k = MakeKlCase(401, 301, 67, 45, 1031);
  ThreadCountGuard guard(2);
  const KlRun a = RunFusedKl(k, 64, true, 1.0f / 301, 0.1f);
  const KlRun b = RunFusedKl(k, 64, true, 1.0f / 301, 0.1f);
  EXPECT_EQ(a.res.kl_sum, b.res.kl_sum);
  EXPECT_EQ(a.res.ce_sum, b.res.ce_sum);
  EXPECT_EQ(a.res.top1_agree, b.res.top1_agree);
  EXPECT_EQ(0, std::memcmp(a.dx.f32(), b.dx.f32(), a.dx.nbytes()));
  EXPECT_EQ(0, std::memcmp(a.dw.f32(), b.dw.f32(), a.dw.nbytes()));
  cpu::SetNumThreads(1);
  const KlRun c = RunFusedKl(k, 64, true, 1.0f / 301, 0.1f);
  EXPECT_TRUE(ScalarClose(c.res.kl_sum, a.res.kl_sum, 0, kChunkLossTolRel, "1 vs 2 threads"));
  EXPECT_TRUE(AllClose(c.dw, ToDouble(a.dw), kChunkGradTolF32, "dW 1 vs 2 threads"));
}

TEST(AlignLoss, DeterministicWithTwoThreads) {
  Rng rng(402);
  Tensor t = RandomTensor(rng, {1000, 77}), s = RandomTensor(rng, {1000, 77});
  ThreadCountGuard guard(2);
  const double a = AlignLossForward(t, s);
  cpu::SetNumThreads(1);
  EXPECT_EQ(a, AlignLossForward(t, s));  // rows combine in order: thread-count independent
}

// ---- timing (run by hand: --gtest_also_run_disabled_tests --gtest_filter='*Timing*') ------

void FillUniform(Tensor& t, std::uint64_t seed, float scale) {
  float* p = t.f32();
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = scale * (float((s >> 40) & 0xFFFFFF) / float(1 << 24) - 0.5f);
  }
}

void TimeHead(std::int64_t n, std::int64_t c, std::int64_t vc, std::int64_t chunk) {
  Tensor xs = Tensor::Empty({n, c}), ws = Tensor::Empty({vc, c});
  Tensor xt = Tensor::Empty({n, c}), wt = Tensor::Empty({vc, c});
  FillUniform(xs, 1, 2.0f);
  FillUniform(xt, 2, 2.0f);
  FillUniform(ws, 3, 4.0f / std::sqrt(float(c)));
  FillUniform(wt, 4, 4.0f / std::sqrt(float(c)));
  Tensor targets = Tensor::Empty({n}, DType::kI32);
  for (std::int64_t i = 0; i < n; ++i)
    targets.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7919) % vc);
  Tensor dx = Tensor::Zeros({n, c}), dw = Tensor::Zeros({vc, c});
  HeadLossOptions opt;
  opt.chunk = chunk;
  opt.grad_scale = 1.0f / float(n);
  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point a) {
    return std::chrono::duration<double>(Clock::now() - a).count();
  };
  const int reps = vc * c * n < 1e9 ? 5 : 1;
  double best_kl = 1e30, best_fwd = 1e30, best_ce = 1e30;
  KlResult r;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    r = FusedKl(xs, ws, xt, wt, nullptr, {&dx, &dw}, opt);
    best_kl = std::min(best_kl, secs(t0));
    t0 = Clock::now();
    FusedKl(xs, ws, xt, wt, nullptr, {}, opt);
    best_fwd = std::min(best_fwd, secs(t0));
    t0 = Clock::now();
    FusedCrossEntropy(xs, ws, targets, {&dx, &dw}, opt);
    best_ce = std::min(best_ce, secs(t0));
  }
  // The same four GEMMs alone (student and teacher logits, dx, dW), for the GEMM-bound share.
  double best_gemm = 1e30;
  {
    Tensor z = Tensor::Empty({chunk, vc});
    for (int i = 0; i < reps; ++i) {
      auto t0 = Clock::now();
      for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
        const std::int64_t m = std::min(chunk, n - r0);
        Gemm(false, true, m, vc, c, 1.0f, xt.f32() + r0 * c, c, wt.f32(), c, 0.0f, z.f32(), vc);
        Gemm(false, true, m, vc, c, 1.0f, xs.f32() + r0 * c, c, ws.f32(), c, 0.0f, z.f32(), vc);
        Gemm(false, false, m, c, vc, 1e-6f, z.f32(), vc, ws.f32(), c, 1.0f, dx.f32() + r0 * c, c);
        Gemm(true, false, vc, c, m, 1e-6f, z.f32(), vc, xs.f32() + r0 * c, c, 1.0f, dw.f32(), c);
      }
      best_gemm = std::min(best_gemm, secs(t0));
    }
  }
  const double gemm_flops = 2.0 * double(n) * double(c) * double(vc);
  std::printf(
      "N=%lld C=%lld Vc=%lld chunk=%lld threads=%d: KL fwd+bwd %.3f s (%.1f GFLOP/s over 4 GEMMs; "
      "the 4 GEMMs alone %.3f s), KL fwd %.3f s, CE fwd+bwd %.3f s (3 GEMMs, %.1f GFLOP/s); "
      "KL/N=%.4f\n",
      (long long)n, (long long)c, (long long)vc, (long long)chunk, cpu::NumThreads(), best_kl,
      4 * gemm_flops / best_kl * 1e-9, best_gemm, best_fwd, best_ce,
      3 * gemm_flops / best_ce * 1e-9, r.kl_sum / double(n));
}

TEST(HeadLossTiming, DISABLED_Small) { TimeHead(2048, 128, 320, 256); }
TEST(HeadLossTiming, DISABLED_Qwen05B) { TimeHead(1024, 896, 151936, 256); }

}  // namespace
}  // namespace radlads
