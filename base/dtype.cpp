#include "base/dtype.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

namespace radlads {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  std::size_t size;
  bool floating;
};

constexpr std::array<DTypeInfo, 15> kInfo = {{
    {DType::kBool, "BOOL", 1, false},   {DType::kU8, "U8", 1, false},
    {DType::kI8, "I8", 1, false},       {DType::kI16, "I16", 2, false},
    {DType::kU16, "U16", 2, false},     {DType::kF16, "F16", 2, true},
    {DType::kBF16, "BF16", 2, true},    {DType::kI32, "I32", 4, false},
    {DType::kU32, "U32", 4, false},     {DType::kF32, "F32", 4, true},
    {DType::kF64, "F64", 8, true},      {DType::kI64, "I64", 8, false},
    {DType::kU64, "U64", 8, false},     {DType::kF8E4M3, "F8_E4M3", 1, true},
    {DType::kF8E5M2, "F8_E5M2", 1, true},
}};

const DTypeInfo& Info(DType t) { return kInfo[static_cast<std::size_t>(t)]; }

template <typename T>
void Widen(const void* src, float* dst, std::size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  for (std::size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, s + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

}  // namespace

std::size_t DTypeSize(DType t) { return Info(t).size; }
std::string_view DTypeName(DType t) { return Info(t).name; }
bool IsFloatingPoint(DType t) { return Info(t).floating; }

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.name == name) return i.type;
  return std::nullopt;
}

float Bf16ToF32(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

std::uint16_t F32ToBf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  std::uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding_bias) >> 16);
}

float F16ToF32(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t F32ToF16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero) in f16: value = abs_f / 2^-24 rounded to nearest even.
    if (abs < 0x33000000u) return sign;  // below half the smallest subnormal
    std::uint32_t exp = abs >> 23;
    std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    std::uint32_t shift = 126 - exp;  // 113 - exp + 13
    std::uint32_t half = 1u << (shift - 1);
    std::uint32_t rest = mant & ((1u << shift) - 1);
    std::uint32_t q = mant >> shift;
    if (rest > half || (rest == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits.
  std::uint32_t r = abs - (112u << 23);
  std::uint32_t rest = r & 0x1fffu;
  std::uint32_t q = r >> 13;
  if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q;
  return static_cast<std::uint16_t>(sign | q);
}

bool ConvertToF32(DType src_type, const void* src, float* dst, std::size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  switch (src_type) {
    case DType::kF32: std::memcpy(dst, src, n * 4); return true;
    case DType::kF64: Widen<double>(src, dst, n); return true;
    case DType::kBF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, s + 2 * i, 2);
        dst[i] = Bf16ToF32(v);
      }
      return true;
    case DType::kF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, s + 2 * i, 2);
        dst[i] = F16ToF32(v);
      }
      return true;
    case DType::kI32: Widen<std::int32_t>(src, dst, n); return true;
    case DType::kI64: Widen<std::int64_t>(src, dst, n); return true;
    case DType::kU32: Widen<std::uint32_t>(src, dst, n); return true;
    case DType::kU16: Widen<std::uint16_t>(src, dst, n); return true;
    case DType::kI16: Widen<std::int16_t>(src, dst, n); return true;
    case DType::kU8: case DType::kBool: Widen<std::uint8_t>(src, dst, n); return true;
    case DType::kI8: Widen<std::int8_t>(src, dst, n); return true;
    default: return false;
  }
}

}  // namespace radlads
