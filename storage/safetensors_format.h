// The safetensors on-disk constants, shared by the reader (storage/safetensors.h), the writer
// (storage/safetensors_writer.h) and the model-directory layer (storage/model_weights.h). The
// full byte layout, what we validate and the sharded layout are in docs/formats/safetensors.md;
// this header only names the numbers.
//
//   offset 0      u64 LE   N = header length in bytes
//   offset 8      N bytes  UTF-8 JSON object, starts with '{', may be padded with spaces
//   offset 8+N    ...      data buffer; tensor data_offsets are relative to this point
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/dtype.h"

namespace radlads {

// Bytes of the little-endian u64 header-length prefix.
inline constexpr std::size_t kSafetensorsLengthPrefixBytes = 8;
// The reference reader refuses headers above this size (Rust MAX_HEADER_SIZE).
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
// The writer pads the header with kSafetensorsHeaderPad so that 8 + N is a multiple of this,
// which puts the data buffer on an 8-byte boundary. Readers do not require it.
inline constexpr std::size_t kSafetensorsAlignment = 8;
inline constexpr char kSafetensorsHeaderPad = ' ';
// Top-level key of the optional string -> string metadata map.
inline constexpr std::string_view kSafetensorsMetadataKey = "__metadata__";
// Fields of a tensor entry; no others are allowed.
inline constexpr std::string_view kSafetensorsDTypeField = "dtype";
inline constexpr std::string_view kSafetensorsShapeField = "shape";
inline constexpr std::string_view kSafetensorsOffsetsField = "data_offsets";

// Hugging Face model-directory names (transformers' SAFE_WEIGHTS_NAME and
// SAFE_WEIGHTS_INDEX_NAME) and the shard name pattern "model-%05d-of-%05d.safetensors".
inline constexpr std::string_view kModelSafetensorsFile = "model.safetensors";
inline constexpr std::string_view kModelSafetensorsIndexFile = "model.safetensors.index.json";
inline constexpr int kModelShardNumberDigits = 5;
inline constexpr std::uint64_t kModelMaxShards = 99'999;
// The __metadata__ entry HF writers put in every shard.
inline constexpr std::string_view kSafetensorsFormatKey = "format";
inline constexpr std::string_view kSafetensorsFormatPt = "pt";

// Offset of the first byte of `s` that is not part of well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or std::string_view::npos when `s` is valid.
// Headers, tensor names and metadata must be UTF-8.
constexpr std::size_t FindInvalidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
      if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong 4-byte forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Rank of a dtype in the reference implementation's `Dtype` enum (safetensors
// src/tensor.rs, "in increasing alignment order"). The writer orders tensors by this rank
// descending, then by name, exactly as the Rust `serialize` does.
constexpr int SafetensorsDTypeRank(DType t) {
  switch (t) {
    case DType::kBool:
      return 0;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 2;
    case DType::kF8E5M2:
      return 3;
    case DType::kF8E4M3:
      return 4;
    case DType::kI16:
      return 5;
    case DType::kU16:
      return 6;
    case DType::kF16:
      return 7;
    case DType::kBF16:
      return 8;
    case DType::kI32:
      return 9;
    case DType::kU32:
      return 10;
    case DType::kF32:
      return 11;
    case DType::kF64:
      return 12;
    case DType::kI64:
      return 13;
    case DType::kU64:
      return 14;
  }
  return -1;
}

}  // namespace radlads
