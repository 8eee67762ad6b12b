// Element types shared by tensors (kernels/) and file formats (storage/), and the exact
// conversions between them.
//
// - Names follow safetensors ("F32", "BF16", ...); DTypeFromName rejects anything unknown.
// - BF16 is the top 16 bits of an IEEE f32; f32 -> bf16 rounds to nearest even, NaN stays NaN.
// - F16 is IEEE binary16; f32 -> f16 rounds to nearest even, with subnormals and overflow to inf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace radlads {

enum class DType : std::uint8_t {
  kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64,
  kF8E4M3, kF8E5M2,
};

// Bytes per element.
std::size_t DTypeSize(DType t);
// Canonical safetensors name ("BF16").
std::string_view DTypeName(DType t);
// Parses a safetensors dtype name; nullopt for names we do not know (e.g. F4, F8_E8M0).
std::optional<DType> DTypeFromName(std::string_view name);
bool IsFloatingPoint(DType t);

float Bf16ToF32(std::uint16_t b);
std::uint16_t F32ToBf16(float f);  // round to nearest even
float F16ToF32(std::uint16_t h);
std::uint16_t F32ToF16(float f);   // round to nearest even

// Converts n elements of `src` (any of F32, F16, BF16, F64, I32, I64, U8, U16, U32, I8, I16,
// BOOL) to f32. Returns false for a dtype that cannot be read as numbers (F8 variants, U64).
bool ConvertToF32(DType src_type, const void* src, float* dst, std::size_t n);

}  // namespace radlads
