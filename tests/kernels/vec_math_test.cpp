// kernels/cpu/vec_math.h against libm evaluated in fp64 (correctly rounded for our purpose):
// ulp bounds over a dense sweep of each function's range, and the edge behaviour (subnormals,
// overflow, saturation, NaN) the kernels rely on. The exhaustive sweep over every float (run
// once when the functions were written) gave: Exp 1.01 ulp, Expm1 1.44, Log1p 1.44, Sigmoid
// 2.48, Tanh 2.42, Softplus 1.99, Silu 2.86; the bounds below leave a little margin.
#include "kernels/cpu/vec_math.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace radlads {
namespace {

// |f - ref| in units of the fp32 spacing at ref (subnormal spacing 2^-149 at the bottom).
double UlpError(float f, double ref) {
  if (std::isnan(ref)) return std::isnan(f) ? 0.0 : 1e30;
  const float rf = static_cast<float>(ref);
  if (std::isinf(rf)) return f == rf ? 0.0 : 1e30;
  int e = 0;
  std::frexp(std::fabs(ref), &e);
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return std::fabs(static_cast<double>(f) - ref) / ulp;
}

struct Worst {
  double ulp = 0;
  float at = 0;
};

// Every `stride`-th float (by bit pattern) of [lo, hi], through a SIMD loop as the kernels call
// them, plus the range ends.
Worst Sweep(float lo, float hi, std::uint32_t stride, const std::function<void(const float*, float*, int)>& f,
            double (*ref)(double)) {
  std::vector<float> xs;
  auto add_range = [&](float a, float b) {  // a <= b, same sign
    std::uint32_t ua = std::bit_cast<std::uint32_t>(a), ub = std::bit_cast<std::uint32_t>(b);
    if (ua > ub) std::swap(ua, ub);
    for (std::uint64_t u = ua; u <= ub; u += stride) xs.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(u)));
  };
  if (lo < 0 && hi > 0) {
    add_range(-0.0f, lo);
    add_range(0.0f, hi);
  } else {
    add_range(lo, hi);
  }
  xs.push_back(lo);
  xs.push_back(hi);
  std::vector<float> ys(xs.size());
  f(xs.data(), ys.data(), static_cast<int>(xs.size()));
  Worst w;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double e = UlpError(ys[i], ref(static_cast<double>(xs[i])));
    if (e > w.ulp) w = {e, xs[i]};
  }
  return w;
}

#define VEC_FN(fn)                                                  \
  [](const float* x, float* y, int n) {                             \
    _Pragma("omp simd") for (int i = 0; i < n; ++i) y[i] = fn(x[i]); \
  }

double RefExp(double x) { return std::exp(x); }
double RefExpm1(double x) { return std::expm1(x); }
double RefLog1p(double x) { return std::log1p(x); }
double RefSigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double RefSilu(double x) { return x / (1.0 + std::exp(-x)); }
double RefTanh(double x) { return std::tanh(x); }
double RefSoftplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

constexpr std::uint32_t kStride = 211;  // ~20M points over the widest range

TEST(VecMath, UlpBoundsAgainstFp64) {
  struct Case {
    const char* name;
    float lo, hi;
    std::function<void(const float*, float*, int)> f;
    double (*ref)(double);
    double bound;
  };
  const Case cases[] = {
      {"Exp", -104.0f, 89.0f, VEC_FN(cpu::Exp), RefExp, 1.5},
      {"ExpFinite", -87.3f, 88.0f, VEC_FN(cpu::ExpFinite), RefExp, 1.5},
      {"Expm1", -90.0f, 89.0f, VEC_FN(cpu::Expm1), RefExpm1, 2.0},
      {"Log1p", -0.9999999f, 3e38f, VEC_FN(cpu::Log1p), RefLog1p, 2.0},
      {"Sigmoid", -88.0f, 40.0f, VEC_FN(cpu::Sigmoid), RefSigmoid, 3.0},
      {"Silu", -88.0f, 88.0f, VEC_FN(cpu::Silu), RefSilu, 3.5},
      {"Tanh", -12.0f, 12.0f, VEC_FN(cpu::Tanh), RefTanh, 3.0},
      {"Softplus", -100.0f, 100.0f, VEC_FN(cpu::Softplus), RefSoftplus, 2.5},
  };
  for (const Case& c : cases) {
    const Worst w = Sweep(c.lo, c.hi, kStride, c.f, c.ref);
    EXPECT_LE(w.ulp, c.bound) << c.name << ": " << w.ulp << " ulp at x = " << w.at;
  }
}

TEST(VecMath, EdgesMatchLibmSemantics) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Exp: 0 at the bottom, subnormals above it, +inf above 88.72, NaN propagates.
  EXPECT_EQ(cpu::Exp(-inf), 0.0f);
  EXPECT_EQ(cpu::Exp(-200.0f), 0.0f);
  EXPECT_GT(cpu::Exp(-100.0f), 0.0f);
  EXPECT_LT(cpu::Exp(-100.0f), std::numeric_limits<float>::min());
  EXPECT_EQ(cpu::Exp(88.8f), inf);
  EXPECT_EQ(cpu::Exp(inf), inf);
  EXPECT_TRUE(std::isfinite(cpu::Exp(88.72f)));
  EXPECT_TRUE(std::isnan(cpu::Exp(nan)));
  EXPECT_EQ(cpu::Exp(0.0f), 1.0f);
  // ExpFinite: flushes instead of subnormals, saturates instead of +inf.
  EXPECT_EQ(cpu::ExpFinite(-87.4f), 0.0f);
  EXPECT_EQ(cpu::ExpFinite(-inf), 0.0f);
  EXPECT_GE(cpu::ExpFinite(-87.3f), std::numeric_limits<float>::min());
  EXPECT_TRUE(std::isfinite(cpu::ExpFinite(1e4f)));
  EXPECT_EQ(cpu::ExpFinite(1e4f) * 0.0f, 0.0f);
  EXPECT_TRUE(std::isnan(cpu::ExpFinite(nan)));
  for (float x : {-87.0f, -20.0f, -1.0f, -1e-3f, 0.0f, 0.5f, 10.0f, 87.9f})
    EXPECT_EQ(cpu::ExpFinite(x), cpu::Exp(x)) << x;
  // Expm1: exact at 0, x itself for tiny x, -1 at the bottom, +inf at the top.
  EXPECT_EQ(cpu::Expm1(0.0f), 0.0f);
  EXPECT_EQ(cpu::Expm1(1e-30f), 1e-30f);
  EXPECT_EQ(cpu::Expm1(-1e-30f), -1e-30f);
  EXPECT_EQ(cpu::Expm1(-inf), -1.0f);
  EXPECT_EQ(cpu::Expm1(-100.0f), -1.0f);
  EXPECT_EQ(cpu::Expm1(89.0f), inf);
  EXPECT_EQ(cpu::Expm1(inf), inf);
  EXPECT_TRUE(std::isfinite(cpu::Expm1(88.7f)));
  EXPECT_TRUE(std::isnan(cpu::Expm1(nan)));
  // Log1p: x itself for tiny x (also subnormal), -inf at -1, NaN below, +inf at +inf.
  EXPECT_EQ(cpu::Log1p(0.0f), 0.0f);
  EXPECT_EQ(cpu::Log1p(1e-30f), 1e-30f);
  EXPECT_EQ(cpu::Log1p(1e-44f), 1e-44f);
  EXPECT_EQ(cpu::Log1p(-1.0f), -inf);
  EXPECT_TRUE(std::isnan(cpu::Log1p(-2.0f)));
  EXPECT_EQ(cpu::Log1p(inf), inf);
  EXPECT_TRUE(std::isnan(cpu::Log1p(nan)));
  // Activations: saturation without overflow or NaN.
  EXPECT_EQ(cpu::Sigmoid(-1e4f), 0.0f);
  EXPECT_EQ(cpu::Sigmoid(-100.0f), 0.0f);
  EXPECT_EQ(cpu::Sigmoid(100.0f), 1.0f);
  EXPECT_EQ(cpu::Sigmoid(inf), 1.0f);
  EXPECT_EQ(cpu::Sigmoid(-inf), 0.0f);
  EXPECT_EQ(cpu::Silu(-1e4f), 0.0f);
  EXPECT_EQ(cpu::Silu(1e4f), 1e4f);
  EXPECT_EQ(cpu::Tanh(9.1f), 1.0f);
  EXPECT_EQ(cpu::Tanh(1e4f), 1.0f);
  EXPECT_EQ(cpu::Tanh(-inf), -1.0f);
  EXPECT_EQ(cpu::Tanh(1e-30f), 1e-30f);
  EXPECT_TRUE(std::isnan(cpu::Tanh(nan)));
  EXPECT_EQ(cpu::Softplus(1e4f), 1e4f);
  EXPECT_EQ(cpu::Softplus(100.0f), 100.0f);
  EXPECT_GT(cpu::Softplus(-100.0f), 0.0f);  // exp(-100) ~ 3.7e-44, subnormal
  EXPECT_EQ(cpu::Softplus(-1e4f), 0.0f);
  EXPECT_TRUE(std::isnan(cpu::Softplus(nan)));
}

}  // namespace
}  // namespace radlads
