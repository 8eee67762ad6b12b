// RoPE and the elementwise activations (sigmoid, tanh, SiLU, softplus, SwiGLU) against their
// fp64 references, finite differences, and the edge cases: large positions, saturation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/ops/activation.h"
#include "kernels/ops/rope.h"
#include "kernels/ref/basic_ref.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::ExpectAccumulates;
using testing::kFdTol;
using testing::NumericGrad;
using testing::RandomTensor;
using testing::Rng;
using testing::ToF64;
using testing::Tol;

constexpr Tol kRopeTolF32 = {1e-6, 1e-6, 2e-7};  // two products and a sum per element
constexpr Tol kActTolF32 = {1e-30, 2e-6, 5e-7};  // a few ulp of expf/log1pf/tanhf, relative
// Sigmoid/tanh backward use y, so 1 - y carries y's absolute rounding (~6e-8 near 1).
constexpr Tol kActGradTolF32 = {3e-7, 2e-6, 1e-6};

std::vector<double> Zeros(std::int64_t n) { return std::vector<double>(n, 0.0); }

// --- RoPE -------------------------------------------------------------------------------------

// Qwen2.5's table (head_dim 128, theta 1e6) over 32K positions, built once for the tests.
const ops::RopeTable& QwenTable() {
  static const ops::RopeTable table = ops::MakeRopeTable(32768, 128, 1e6);
  return table;
}

// The fp32 table against exact fp64 angles. transformers' angle float(t) * inv_freq_f32 is off
// from t * theta^(-2i/D) by t * |inv_f32 - inv| plus half an ulp of the product. inv_f32's
// relative error is u * (e * ln(theta) + 2) with u = 2^-24: the fp32 exponent e = 2i/D is
// rounded (amplified by ln theta through the power), then pow and 1/x round once each.
// cos/sin move by at most the angle error, plus their own fp32 rounding.
TEST(Rope, TableMatchesExactAnglesWithinTheFp32AngleRounding) {
  for (auto [d, theta] : {std::pair<std::int64_t, double>{128, 1e6}, {10, 1e4}}) {
    const std::int64_t t_max = 32768, half = d / 2;
    const ops::RopeTable table = d == 128 ? QwenTable() : ops::MakeRopeTable(t_max, d, theta);
    ASSERT_EQ(table.head_dim(), d);
    ASSERT_EQ(table.max_positions(), t_max);
    std::vector<double> rc = Zeros(t_max * half), rs = Zeros(t_max * half);
    ref::RopeTableRef(t_max, d, theta, rc.data(), rs.data());
    for (std::int64_t t : {0, 1, 2, 3, 100, 4095, 30000, 32767}) {
      for (std::int64_t i = 0; i < half; ++i) {
        const double e = 2.0 * i / d, u = std::ldexp(1.0, -24);
        const double angle = t * std::pow(theta, -e);
        const double tol = 1.2e-7 + 1.1 * angle * u * (e * std::log(theta) + 3);
        const std::int64_t k = t * half + i;
        ASSERT_NEAR(table.cos.f32()[k], rc[k], tol) << "d " << d << " t " << t << " i " << i;
        ASSERT_NEAR(table.sin.f32()[k], rs[k], tol) << "d " << d << " t " << t << " i " << i;
      }
    }
  }
}

// Pins transformers' exact fp32 recipe (modeling_rope_utils + Qwen2RotaryEmbedding):
// inv_freq = 1 / theta ** (arange(0, D, 2).float() / D) in fp32, angle = fp32 product.
TEST(Rope, TableFollowsTransformersFp32Arithmetic) {
  const std::int64_t d = 128, half = d / 2;
  const ops::RopeTable& table = QwenTable();
  int differs_from_exact_angle = 0;
  for (std::int64_t t : {1, 7, 1000, 32767}) {
    for (std::int64_t i = 0; i < half; ++i) {
      const float expo = static_cast<float>(2 * i) / static_cast<float>(d);
      const float inv = 1.0f / static_cast<float>(std::pow(static_cast<double>(1e6f), expo));
      const float angle = static_cast<float>(t) * inv;
      const std::int64_t k = t * half + i;
      ASSERT_EQ(table.cos.f32()[k], static_cast<float>(std::cos(static_cast<double>(angle))));
      ASSERT_EQ(table.sin.f32()[k], static_cast<float>(std::sin(static_cast<double>(angle))));
      const double exact = t * std::pow(1e6, -2.0 * i / d);
      if (std::fabs(table.cos.f32()[k] - std::cos(exact)) > 1e-6) ++differs_from_exact_angle;
    }
  }
  EXPECT_GT(differs_from_exact_angle, 0) << "large positions must show the fp32 angle rounding";
}

TEST(Rope, ForwardBackwardMatchReferenceUpToPosition32767) {
  Rng rng(501);
  const std::int64_t b = 2, t = 7, h = 3, d = 10, t_max = 32768;
  const ops::RopeTable table = ops::MakeRopeTable(t_max, d, 1e6);
  // The reference rotates with the same fp32 table (widened), isolating the rotation.
  const std::vector<double> cos_t = ToF64(table.cos), sin_t = ToF64(table.sin);
  for (std::int64_t pos0 : {std::int64_t{0}, std::int64_t{5}, t_max - t}) {
    Tensor x = RandomTensor({b, t, h, d}, rng), dy = RandomTensor({b, t, h, d}, rng);
    Tensor y = Tensor::Empty({b, t, h, d});
    ops::RopeForward(x, table, pos0, y);
    std::vector<double> ref = Zeros(x.numel());
    ref::RopeForwardRef(ToF64(x).data(), b, t, h, d, pos0, cos_t.data(), sin_t.data(),
                        ref.data());
    EXPECT_TRUE(AllClose(y, ref, kRopeTolF32)) << "pos0 " << pos0;

    Tensor dx = Tensor::Zeros({b, t, h, d});
    ops::RopeBackward(dy, table, pos0, dx);
    std::vector<double> rdx = Zeros(x.numel());
    ref::RopeBackwardRef(ToF64(dy).data(), b, t, h, d, pos0, cos_t.data(), sin_t.data(),
                         rdx.data());
    EXPECT_TRUE(AllClose(dx, rdx, kRopeTolF32)) << "pos0 " << pos0;
    ExpectAccumulates({&dx}, [&] { ops::RopeBackward(dy, table, pos0, dx); });

    // Backward is the inverse rotation: R^T R x = x.
    Tensor back = Tensor::Zeros({b, t, h, d});
    ops::RopeBackward(y, table, pos0, back);
    EXPECT_TRUE(AllClose(back, ToF64(x), kRopeTolF32)) << "pos0 " << pos0;
    // In place gives the same bits.
    Tensor in_place = x.Clone();
    ops::RopeForward(in_place, table, pos0, in_place);
    EXPECT_EQ(std::memcmp(in_place.raw(), y.raw(), y.nbytes()), 0);
  }
}

TEST(Rope, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(502);
  const std::int64_t b = 1, t = 3, h = 2, d = 6, pos0 = 2, t_max = 8;
  std::vector<double> cos_t = Zeros(t_max * d / 2), sin_t = Zeros(t_max * d / 2);
  ref::RopeTableRef(t_max, d, 1e4, cos_t.data(), sin_t.data());
  std::vector<double> x = ToF64(RandomTensor({b, t, h, d}, rng));
  std::vector<double> g = ToF64(RandomTensor({b, t, h, d}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(b * t * h * d);
    ref::RopeForwardRef(x.data(), b, t, h, d, pos0, cos_t.data(), sin_t.data(), y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(b * t * h * d);
  ref::RopeBackwardRef(g.data(), b, t, h, d, pos0, cos_t.data(), sin_t.data(), dx.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
}

// --- Activations ------------------------------------------------------------------------------

struct Activation {
  const char* name;
  void (*forward)(const Tensor&, Tensor&);
  void (*backward)(const Tensor&, const Tensor&, Tensor&);
  bool backward_takes_output;
  double (*ref)(double);
  double (*grad_ref)(double);
};

const Activation kActivations[] = {
    {"sigmoid", ops::SigmoidForward, ops::SigmoidBackward, true, ref::SigmoidRef,
     ref::SigmoidGradRef},
    {"tanh", ops::TanhForward, ops::TanhBackward, true, ref::TanhRef, ref::TanhGradRef},
    {"silu", ops::SiluForward, ops::SiluBackward, false, ref::SiluRef, ref::SiluGradRef},
    {"softplus", ops::SoftplusForward, ops::SoftplusBackward, false, ref::SoftplusRef,
     ref::SoftplusGradRef},
};

// Random N(0, 4^2) values plus the saturation and overflow edges.
Tensor ActivationInputs(Rng& rng) {
  const std::vector<float> edges = {-1e4f, -100.f, -89.f, -20.f, -17.f, -1e-3f, 0.f,
                                    1e-3f, 17.f,   20.f,  89.f,  100.f, 1e4f};
  Tensor x = RandomTensor({37, 67}, rng, 4.0f);
  std::memcpy(x.f32(), edges.data(), edges.size() * sizeof(float));
  return x;
}

TEST(Activation, ForwardAndBackwardMatchReferenceIncludingSaturation) {
  Rng rng(601);
  Tensor x = ActivationInputs(rng), dy = RandomTensor(x.shape(), rng);
  const std::vector<double> xd = ToF64(x), gd = ToF64(dy);
  for (const Activation& act : kActivations) {
    Tensor y = Tensor::Empty(x.shape());
    act.forward(x, y);
    std::vector<double> ref(xd.size()), rdx(xd.size());
    for (std::size_t i = 0; i < xd.size(); ++i) {
      ref[i] = act.ref(xd[i]);
      rdx[i] = gd[i] * act.grad_ref(xd[i]);
    }
    EXPECT_TRUE(AllClose(y, ref, kActTolF32)) << act.name;
    Tensor dx = Tensor::Zeros(x.shape());
    const Tensor& saved = act.backward_takes_output ? y : x;
    act.backward(saved, dy, dx);
    EXPECT_TRUE(AllClose(dx, rdx, kActGradTolF32)) << act.name;
    ExpectAccumulates({&dx}, [&] { act.backward(saved, dy, dx); });
    Tensor in_place = x.Clone();
    act.forward(in_place, in_place);
    EXPECT_EQ(std::memcmp(in_place.raw(), y.raw(), y.nbytes()), 0) << act.name;
  }
}

TEST(Activation, SaturatesWithoutOverflow) {
  Tensor x = Tensor::FromVector({-1e4f, -100.f, 100.f, 1e4f}, {4});
  Tensor y = Tensor::Empty({4}), ones = Tensor::Full({4}, 1.0f);
  auto run = [&](const Activation& act) {
    act.forward(x, y);
    Tensor dx = Tensor::Zeros({4});
    act.backward(act.backward_takes_output ? y : x, ones, dx);
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(std::isfinite(y.f32()[i])) << act.name << " y[" << i << "]";
      EXPECT_TRUE(std::isfinite(dx.f32()[i])) << act.name << " dx[" << i << "]";
    }
    return std::pair{ToF64(y), ToF64(dx)};
  };
  auto [sig, dsig] = run(kActivations[0]);
  EXPECT_EQ(sig, (std::vector<double>{0, sig[1], 1, 1}));
  EXPECT_LT(sig[1], 1e-43);
  EXPECT_EQ(dsig, (std::vector<double>{0, dsig[1], 0, 0}));
  auto [th, dth] = run(kActivations[1]);
  EXPECT_EQ(th, (std::vector<double>{-1, -1, 1, 1}));
  EXPECT_EQ(dth, (std::vector<double>{0, 0, 0, 0}));
  auto [silu, dsilu] = run(kActivations[2]);
  EXPECT_EQ(silu[3], 1e4);
  EXPECT_EQ(silu[0], 0.0);
  EXPECT_EQ(dsilu, (std::vector<double>{0, dsilu[1], 1, 1}));
  auto [sp, dsp] = run(kActivations[3]);
  EXPECT_EQ(sp, (std::vector<double>{0, sp[1], 100, 1e4}));
  EXPECT_GT(sp[1], 0.0) << "softplus(-100) = exp(-100) ~ 3.7e-44 (denormal), not 0 or NaN";
  EXPECT_EQ(dsp, (std::vector<double>{0, dsp[1], 1, 1}));
}

TEST(Activation, ReferenceDerivativesMatchFiniteDifferences) {
  const std::vector<double> points = {-30, -5, -1.3, -0.2, 0, 0.1, 0.7, 2, 6, 25};
  for (const Activation& act : kActivations) {
    std::vector<double> analytic, numeric;
    for (double p : points) {
      std::vector<double> v = {p};
      numeric.push_back(NumericGrad(&v, [&] { return act.ref(v[0]); })[0]);
      analytic.push_back(act.grad_ref(p));
    }
    EXPECT_TRUE(AllClose(analytic, numeric, kFdTol)) << act.name;
  }
}

TEST(SwiGlu, ForwardBackwardMatchReference) {
  Rng rng(602);
  Tensor g = ActivationInputs(rng), u = RandomTensor(g.shape(), rng);
  Tensor dy = RandomTensor(g.shape(), rng);
  const std::int64_t n = g.numel();
  Tensor y = Tensor::Empty(g.shape());
  ops::SwiGluForward(g, u, y);
  std::vector<double> ref = Zeros(n);
  ref::SwiGluForwardRef(ToF64(g).data(), ToF64(u).data(), n, ref.data());
  EXPECT_TRUE(AllClose(y, ref, kActTolF32));
  Tensor dg = Tensor::Zeros(g.shape()), du = Tensor::Zeros(g.shape());
  ops::SwiGluBackward(g, u, dy, &dg, &du);
  std::vector<double> rdg = Zeros(n), rdu = Zeros(n);
  ref::SwiGluBackwardRef(ToF64(g).data(), ToF64(u).data(), ToF64(dy).data(), n, rdg.data(),
                         rdu.data());
  EXPECT_TRUE(AllClose(dg, rdg, kActGradTolF32));
  EXPECT_TRUE(AllClose(du, rdu, kActGradTolF32));
  ExpectAccumulates({&dg, &du}, [&] { ops::SwiGluBackward(g, u, dy, &dg, &du); });
  Tensor only_du = Tensor::Zeros(g.shape());
  ops::SwiGluBackward(g, u, dy, nullptr, &only_du);
  EXPECT_TRUE(AllClose(only_du, rdu, kActGradTolF32));
}

TEST(SwiGlu, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(603);
  const std::int64_t n = 7;
  std::vector<double> g = ToF64(RandomTensor({n}, rng, 2.0f)), u = ToF64(RandomTensor({n}, rng));
  std::vector<double> w = ToF64(RandomTensor({n}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(n);
    ref::SwiGluForwardRef(g.data(), u.data(), n, y.data());
    return testing::Dot(y, w);
  };
  std::vector<double> dg = Zeros(n), du = Zeros(n);
  ref::SwiGluBackwardRef(g.data(), u.data(), w.data(), n, dg.data(), du.data());
  EXPECT_TRUE(AllClose(dg, NumericGrad(&g, loss), kFdTol));
  EXPECT_TRUE(AllClose(du, NumericGrad(&u, loss), kFdTol));
}

}  // namespace
}  // namespace radlads
