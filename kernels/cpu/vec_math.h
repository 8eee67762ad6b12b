// Vectorisable fp32 transcendental functions for the CPU kernels: exp, expm1, log1p and the
// activations built on them (sigmoid, SiLU, tanh, softplus).
//
// Why: std::exp / std::tanh / std::expm1 are libm calls that GCC does not vectorise without
// -ffast-math, so every loop over them ran one element at a time (they were 10-15% of a step-1
// training step). These are plain branch-free float code (selects, the 1.5*2^23 rounding trick,
// exponent bits through std::bit_cast): inside `#pragma omp simd` loops GCC and clang emit
// AVX2/AVX-512 code for them. They are the only copies in the project; the kernels (attention,
// GLA, DPLR, losses, activations, LoRA, the mixers) all use these.
//
// Accuracy, measured against correctly rounded fp64 results over every float of the stated
// range (tests/kernels/vec_math_test.cpp checks these bounds):
//   Exp       <= 2 ulp on [-87.3, 88.7] (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6
//             polynomial, 2^n through the exponent bits); the same semantics as std::exp at the
//             edges: subnormal results below -87.34 (within 1 subnormal ulp), 0 below -103.97,
//             +inf above 88.72, NaN propagates.
//   ExpFinite the same polynomial for kernels whose arguments are <= ~0 (softmax, decays):
//             exactly 0 where exp(x) < FLT_MIN (x < -87.34, no subnormal arithmetic downstream),
//             saturates at exp(88) instead of +inf (so a factor multiplied by 0 never gives
//             NaN), NaN propagates. Bit-identical to Exp on [-87.34, 88].
//   Expm1     <= 2 ulp (full relative accuracy near 0: expm1(r) = r + r^2 P(r), no 1 - 1
//             cancellation); -1 below -88, +inf above 88.72, NaN propagates.
//   Log1p     <= 2 ulp for x > -1 (Cephes logf on 1 + x plus the rounding correction of 1 + x,
//             so tiny x returns x); -inf at -1, NaN below, +inf at +inf.
//   Sigmoid   1 / (1 + Exp(-x)): <= 3 ulp; exactly 0 below -88.72 (Exp overflows), 1 above ~17.
//   Silu      x * Sigmoid(x).
//   Tanh      from expm1(2|x|) (see Tanh): <= 3 ulp, full relative accuracy near 0, absolute
//             error a fraction of an ulp of 1 near +-1, exactly +-1 beyond |x| ~ 9.01.
//   Softplus  max(x, 0) + Log1p(Exp(-|x|)) (subnormal for x below -87, never 0 or NaN there).
// Thread-safety: pure functions.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

namespace radlads::cpu {
namespace vec_detail {

inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;     // ln 2 = kLn2Hi + kLn2Lo, kLn2Hi exact in
inline constexpr float kLn2Lo = -2.12194440e-4f;  // few bits so n * kLn2Hi is exact
inline constexpr float kRound = 12582912.0f;      // 1.5 * 2^23: adding it rounds to an integer

// n = round(x / ln 2) (as a float holding an integer, |x| <= ~104) and r = x - n ln 2.
inline float ReduceLn2(float x, float& r) {
  const float n = (x * kLog2e + kRound) - kRound;
  r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  return n;
}

// exp(r) - 1 for |r| <= ln2/2: r + r^2 P(r), Cephes expf's polynomial.
inline float Expm1Reduced(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * (r * r) + r;
}

// 2^n for integer n in [-126, 127] (n = -127 gives +0, n = 128 gives +inf).
inline float Pow2(std::int32_t n) { return std::bit_cast<float>((n + 127) << 23); }

// Cephes logf for a normal y > 0 (frexp through the exponent bits).
inline float LogPositive(float y) {
  const std::int32_t bits = std::bit_cast<std::int32_t>(y);
  std::int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const bool lo = m < 0.707106781186547524f;
  e = lo ? e - 1 : e;
  m = lo ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float yv = p * m * z;
  yv = yv + fe * kLn2Lo;
  yv = yv - 0.5f * z;
  return (m + yv) + fe * kLn2Hi;
}

}  // namespace vec_detail

// exp(x) with std::exp's edge behaviour (subnormals, +inf, NaN).
inline float Exp(float x) {
  using namespace vec_detail;
  float xc = x > -104.0f ? x : -104.0f;  // NaN takes -104 here and is restored below
  xc = xc < 89.0f ? xc : 89.0f;
  float r;
  const float n = ReduceLn2(xc, r);
  const float y = Expm1Reduced(r) + 1.0f;
  const auto ni = static_cast<std::int32_t>(n);
  const std::int32_t n1 = ni >> 1;  // two steps keep both factors normal for n in [-150, 128]
  const float v = (y * Pow2(n1)) * Pow2(ni - n1);
  return x != x ? x : (x < -103.972f ? 0.0f : v);
}

// exp(x), 0 where the result would be subnormal, saturating at exp(88): see the header comment.
inline float ExpFinite(float x) {
  using namespace vec_detail;
  constexpr float kMinArg = -87.336544f;  // exp(kMinArg) ~ FLT_MIN
  float xc = x > kMinArg ? x : kMinArg;   // NaN takes kMinArg here and is restored below
  xc = xc < 88.0f ? xc : 88.0f;
  float r;
  const float n = ReduceLn2(xc, r);
  const float v = (Expm1Reduced(r) + 1.0f) * Pow2(static_cast<std::int32_t>(n));
  return x != x ? x : (x < kMinArg ? 0.0f : v);
}

// exp(x) - 1, accurate near 0.
inline float Expm1(float x) {
  using namespace vec_detail;
  float xc = x > -88.0f ? x : -88.0f;  // NaN takes -88 here and is restored below
  xc = xc < 89.0f ? xc : 89.0f;
  float r;
  const float n = ReduceLn2(xc, r);
  const float em = Expm1Reduced(r);
  const auto ni = static_cast<std::int32_t>(n);
  // n <= 24: 2^n em + (2^n - 1) (exact 2^n - 1, no cancellation; n = -127 gives 0 - 1 = -1).
  const float t = Pow2(ni < 24 ? ni : 24);
  const float small = t * em + (t - 1.0f);
  // n > 24: the -1 is below half an ulp; exp(x) in two steps so 2^128 can overflow to +inf.
  const std::int32_t n1 = ni >> 1;
  const float big = ((em + 1.0f) * Pow2(n1)) * Pow2(ni - n1);
  return x != x ? x : (ni > 24 ? big : small);
}

// log(1 + x) for x >= -1, accurate near 0.
inline float Log1p(float x) {
  using namespace vec_detail;
  const float y = 1.0f + x;
  const float c = x - (y - 1.0f);  // the rounding error of 1 + x
  const float ys = y > std::numeric_limits<float>::min() ? y : 1.0f;  // keep the bit tricks sane
  float v = LogPositive(ys) + c / ys;
  v = y == std::numeric_limits<float>::infinity() ? y : v;
  v = y == 0.0f ? -std::numeric_limits<float>::infinity() : v;
  v = y < 0.0f ? std::numeric_limits<float>::quiet_NaN() : v;
  return x != x ? x : v;
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + Exp(-x)); }
inline float Silu(float x) { return x * Sigmoid(x); }

// With e = expm1(2|x|): e / (e + 2) below |x| = 0.625 (full relative accuracy near 0), above it
// 1 - 2 / (e + 2), whose absolute error is a fraction of an ulp of 1 (what tanh's backward,
// 1 - y^2, needs as y approaches 1).
inline float Tanh(float x) {
  float ax = x < 0.0f ? -x : x;
  ax = ax < 9.5f ? ax : 9.5f;  // tanh rounds to 1 beyond ~9.01
  const float e = Expm1(2.0f * ax);
  const float d = e + 2.0f;
  const float r = ax < 0.625f ? e / d : 1.0f - 2.0f / d;
  return x != x ? x : (x < 0.0f ? -r : r);
}

inline float Softplus(float x) {
  const float ax = x < 0.0f ? -x : x;
  return (x > 0.0f ? x : 0.0f) + Log1p(Exp(-ax));
}

}  // namespace radlads::cpu
