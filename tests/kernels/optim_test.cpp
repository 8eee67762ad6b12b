// AdamW and global gradient-norm clipping against their fp64 references (kernels/ref/loss_ref.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/ops/adamw.h"
#include "kernels/ops/grad_norm.h"
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

// fp32 AdamW vs the fp64 textbook formula after a few steps. Parameters are O(1) and move by
// O(lr) per step, so the absolute bound is a few fp32 ulps of 1 per step. Moments can cancel
// (gradients of either sign), so their absolute bound is a few ulps of the largest term
// (|g| <= ~2 here, (1-b1)|g| ~ 0.2: ulp ~1.5e-8).
constexpr Tol kAdamWParamTolF32{4e-7, 2e-6, 1e-6};
constexpr Tol kAdamWMomentTolF32{3e-8, 2e-6, 1e-6};
// The norm reduces in double over fp32 inputs: only the summation order differs from the ref.
constexpr double kGradNormTolRel = 1e-12;
constexpr Tol kClipTolF32{0, 2e-7, 1e-7};

class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : saved_(cpu::NumThreads()) { cpu::SetNumThreads(n); }
  ~ThreadCountGuard() { cpu::SetNumThreads(saved_); }

 private:
  int saved_;
};

// Runs `steps` AdamW steps on fresh random gradients (fast path and reference side by side) and
// compares parameters and moments after every step.
void CheckAdamW(const AdamWConfig& cfg, std::int64_t size, int steps, std::uint64_t seed) {
  Rng rng(seed);
  Tensor p = RandomTensor(rng, {size});
  Tensor m = Tensor::Zeros({size}), v = Tensor::Zeros({size});
  std::vector<double> pr = ToDouble(p), mr(size, 0.0), vr(size, 0.0);
  for (int t = 1; t <= steps; ++t) {
    SCOPED_TRACE(t);
    Tensor g = RandomTensor(rng, {size}, t % 2 ? 0.5f : 2e-3f);  // large and small gradients
    AdamWStep(p, g, m, v, t, cfg);
    AdamWStepRef(pr, ToDouble(g), mr, vr, t, cfg);
    ASSERT_TRUE(AllClose(m, mr, kAdamWMomentTolF32, "m"));
    ASSERT_TRUE(AllClose(v, vr, kAdamWMomentTolF32, "v"));
    ASSERT_TRUE(AllClose(p, pr, kAdamWParamTolF32, "p"));
  }
}

TEST(AdamW, MatchesReferenceOverSeveralSteps) {
  AdamWConfig cfg;  // RADLADS defaults: 0.9 / 0.95 / 1e-8, no decay, bias correction
  cfg.lr = 1e-3;
  CheckAdamW(cfg, 1037, 6, 11);
  cfg.weight_decay = 0.1;
  CheckAdamW(cfg, 1037, 6, 12);
  cfg.bias_correction = false;
  CheckAdamW(cfg, 1037, 6, 13);
  cfg.weight_decay = 0.0;
  cfg.beta1 = 0.3;  // lerp weight 0.7 >= 0.5: torch's other lerp branch
  cfg.bias_correction = true;
  CheckAdamW(cfg, 333, 4, 14);
}

TEST(AdamW, FirstStepMovesEachParameterByLrTimesSign) {
  Rng rng(21);
  const std::int64_t size = 257;
  Tensor p = RandomTensor(rng, {size});
  const Tensor p0 = p.Clone();
  Tensor g = RandomTensor(rng, {size});
  for (std::int64_t i = 0; i < size; ++i)  // keep |g| >= 1e-3 so eps (1e-8) is negligible
    if (std::fabs(g.f32()[i]) < 1e-3f) g.f32()[i] = g.f32()[i] < 0 ? -1e-3f : 1e-3f;
  Tensor m = Tensor::Zeros({size}), v = Tensor::Zeros({size});
  AdamWConfig cfg;
  cfg.lr = 1e-2;
  AdamWStep(p, g, m, v, 1, cfg);
  for (std::int64_t i = 0; i < size; ++i) {
    const double step = double(p.f32()[i]) - double(p0.f32()[i]);
    const double want = g.f32()[i] > 0 ? -cfg.lr : cfg.lr;
    ASSERT_NEAR(step, want, 1e-4 * cfg.lr + 2e-7) << i;  // fp32 rounding of p ~ 1e-7
  }
}

TEST(AdamW, DecoupledWeightDecayWithZeroGradient) {
  Rng rng(22);
  Tensor p = RandomTensor(rng, {100});
  const Tensor p0 = p.Clone();
  Tensor g = Tensor::Zeros({100}), m = Tensor::Zeros({100}), v = Tensor::Zeros({100});
  AdamWConfig cfg;
  cfg.lr = 0.01;
  cfg.weight_decay = 0.5;
  AdamWStep(p, g, m, v, 1, cfg);  // m = v = 0: only the decay moves p
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(p.f32()[i], p0.f32()[i] * static_cast<float>(1.0 - 0.01 * 0.5)) << i;
  cfg.weight_decay = 0.0;
  const Tensor p1 = p.Clone();
  AdamWStep(p, g, m, v, 2, cfg);  // no decay, no gradient: nothing moves
  EXPECT_EQ(0, std::memcmp(p.f32(), p1.f32(), p.nbytes()));
}

TEST(AdamW, ThreadCountDoesNotChangeTheResult) {
  Rng rng(23);
  const std::int64_t size = 100003;
  Tensor p = RandomTensor(rng, {size}), g = RandomTensor(rng, {size});
  Tensor m = RandomTensor(rng, {size}, 0.1f), v = RandomTensor(rng, {size}, 0.1f);
  for (std::int64_t i = 0; i < size; ++i) v.f32()[i] = std::fabs(v.f32()[i]);
  Tensor p2 = p.Clone(), m2 = m.Clone(), v2 = v.Clone();
  AdamWConfig cfg;
  cfg.weight_decay = 0.01;
  {
    ThreadCountGuard guard(2);
    AdamWStep(p, g, m, v, 7, cfg);
    cpu::SetNumThreads(1);
    AdamWStep(p2, g, m2, v2, 7, cfg);
  }
  EXPECT_EQ(0, std::memcmp(p.f32(), p2.f32(), p.nbytes()));
  EXPECT_EQ(0, std::memcmp(m.f32(), m2.f32(), m.nbytes()));
  EXPECT_EQ(0, std::memcmp(v.f32(), v2.f32(), v.nbytes()));
}

// ---- gradient norm and clipping -----------------------------------------------------------

std::vector<Tensor> MakeGrads(Rng& rng, float stddev) {
  // Odd sizes, one spanning several kGradNormBlock blocks, plus an empty and an undefined one.
  std::vector<Tensor> g;
  g.push_back(RandomTensor(rng, {37, 29}, stddev));
  g.push_back(RandomTensor(rng, {3 * kGradNormBlock + 1001}, stddev));
  g.push_back(Tensor::Zeros({0}));
  g.push_back(Tensor());
  g.push_back(RandomTensor(rng, {7}, stddev));
  return g;
}

std::vector<std::vector<double>> ToRef(const std::vector<Tensor>& g) {
  std::vector<std::vector<double>> r;
  for (const Tensor& t : g)
    if (t.defined()) r.push_back(ToDouble(t));
  return r;
}

TEST(GradNorm, MatchesReference) {
  Rng rng(31);
  std::vector<Tensor> g = MakeGrads(rng, 1e-3f);
  EXPECT_TRUE(
      ScalarClose(GlobalGradNorm(g), GlobalGradNormRef(ToRef(g)), 0, kGradNormTolRel, "norm"));
  EXPECT_EQ(GlobalGradNorm({}), 0.0);
}

TEST(GradNorm, ClipBelowLimitLeavesGradientsUntouched) {
  Rng rng(32);
  std::vector<Tensor> g = MakeGrads(rng, 1e-4f);
  std::vector<Tensor> before;
  for (const Tensor& t : g) before.push_back(t.defined() ? t.Clone() : Tensor());
  const double norm = ClipGradNorm(g, 1.0);
  ASSERT_LT(norm, 1.0);
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (g[i].defined()) {
      EXPECT_EQ(0, std::memcmp(g[i].raw(), before[i].raw(), g[i].nbytes())) << i;
    }
  }
}

TEST(GradNorm, ClipAboveLimitScalesToMaxNorm) {
  Rng rng(33);
  std::vector<Tensor> g = MakeGrads(rng, 0.05f);
  std::vector<std::vector<double>> ref = ToRef(g);
  const double norm = ClipGradNorm(g, 1.0);
  const double norm_ref = ClipGradNormRef(ref, 1.0);
  ASSERT_GT(norm, 1.0);
  EXPECT_TRUE(ScalarClose(norm, norm_ref, 0, kGradNormTolRel, "norm before clipping"));
  std::size_t k = 0;
  for (const Tensor& t : g) {
    if (t.defined()) {
      EXPECT_TRUE(AllClose(t, ref[k++], kClipTolF32, "clipped gradient"));
    }
  }
  EXPECT_TRUE(ScalarClose(GlobalGradNorm(g), 1.0, 0, 1e-6, "norm after clipping"));
}

TEST(GradNorm, NonFiniteNormLeavesGradientsUntouched) {
  Rng rng(34);
  std::vector<Tensor> g = MakeGrads(rng, 1.0f);
  g[0].f32()[3] = NAN;
  const Tensor keep = g[1].Clone();
  EXPECT_TRUE(std::isnan(ClipGradNorm(g, 1.0)));
  EXPECT_EQ(0, std::memcmp(g[1].raw(), keep.raw(), keep.nbytes()));
}

TEST(GradNorm, DeterministicAcrossThreadCounts) {
  Rng rng(35);
  std::vector<Tensor> g = MakeGrads(rng, 1.0f);
  ThreadCountGuard guard(2);
  const double a = GlobalGradNorm(g);
  EXPECT_EQ(a, GlobalGradNorm(g));
  cpu::SetNumThreads(1);
  EXPECT_EQ(a, GlobalGradNorm(g));  // fixed partition, ordered combination
}

}  // namespace
}  // namespace radlads
