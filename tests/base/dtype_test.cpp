#include "base/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// Reference f32 -> bf16/f16 rounding computed in double: the nearest representable value,
// ties to the one with an even last mantissa bit.
double RoundToGrid(double x, int mant_bits, int min_exp) {
  if (x == 0) return x;
  int e;
  std::frexp(std::fabs(x), &e);  // |x| = m * 2^e, m in [0.5, 1)
  int exp = std::max(e - 1, min_exp);
  double ulp = std::ldexp(1.0, exp - mant_bits);
  double q = x / ulp;
  double r = std::nearbyint(q);  // default rounding mode: nearest even
  return r * ulp;
}

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_EQ(DTypeName(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(DTypeFromName("BF16"), DType::kBF16);
  EXPECT_EQ(DTypeFromName("F8_E8M0"), std::nullopt);
  EXPECT_EQ(DTypeFromName("f32"), std::nullopt) << "names are case-sensitive";
  for (int i = 0; i <= static_cast<int>(DType::kF8E5M2); ++i) {
    auto t = static_cast<DType>(i);
    EXPECT_EQ(DTypeFromName(DTypeName(t)), t);
  }
}

TEST(DType, Bf16RoundsToNearestEvenAgainstReference) {
  testing::Rng rng(1234);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-120, 120);
  for (int i = 0; i < 100000; ++i) {
    float f = std::ldexp(mant(rng), ex(rng)) * (i % 2 ? -1.f : 1.f);
    double want = RoundToGrid(f, 7, -126);
    EXPECT_EQ(static_cast<double>(Bf16ToF32(F32ToBf16(f))), want) << "f=" << f;
  }
  // Exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7; even is 1.
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(Bf16ToF32(F32ToBf16(std::numeric_limits<float>::infinity()))));
}

TEST(DType, F16RoundTripAllHalfValues) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    float f = F16ToF32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f))));
      continue;
    }
    EXPECT_EQ(F32ToF16(f), h) << "h=" << h;
  }
}

TEST(DType, F16RoundsToNearestEvenAgainstReference) {
  testing::Rng rng(99);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-26, 15);
  for (int i = 0; i < 100000; ++i) {
    float f = std::ldexp(mant(rng), ex(rng)) * (i % 2 ? -1.f : 1.f);
    double want = RoundToGrid(f, 10, -14);
    if (std::fabs(want) > 65504.0) want = std::copysign(INFINITY, f);
    EXPECT_EQ(static_cast<double>(F16ToF32(F32ToF16(f))), want) << "f=" << f;
  }
}

TEST(DType, ConvertToF32) {
  std::int32_t i32[3] = {-7, 0, 151643};
  float out[3];
  ASSERT_TRUE(ConvertToF32(DType::kI32, i32, out, 3));
  EXPECT_EQ(out[2], 151643.f);
  std::uint16_t bf[2] = {F32ToBf16(1.5f), F32ToBf16(-2.0f)};
  ASSERT_TRUE(ConvertToF32(DType::kBF16, bf, out, 2));
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_FALSE(ConvertToF32(DType::kF8E4M3, bf, out, 1));
}

}  // namespace
}  // namespace radlads
