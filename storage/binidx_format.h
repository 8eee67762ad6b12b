// The Megatron / GPT-NeoX / RWKV "binidx" on-disk constants, shared by the reader and the writer
// in storage/binidx.{h,cpp}. The full byte layout and the leniency rules are in
// docs/formats/datasets.md; this header only names the numbers.
//
// PREFIX.idx (all fields little-endian):
//   offset 0   9 bytes  magic "MMIDIDX\0\0"
//   offset 9   u64      version = 1
//   offset 17  u8       dtype code of the tokens in PREFIX.bin (table below)
//   offset 18  u64      S = sequence count
//   offset 26  u64      D = doc_idx length
//   offset 34  i32[S]   sizes (tokens per sequence)
//   34+4S      i64[S]   pointers (byte offset of each sequence in PREFIX.bin)
//   34+12S     i64[D]   doc_idx (sequence indices bounding documents)
//   34+12S+8D  i8[S]    optional Megatron-core multimodal modes (tolerated, ignored)
// PREFIX.bin: no header, the concatenated token arrays.
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace radlads {

inline constexpr std::array<char, 9> kBinidxMagic = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr std::uint64_t kBinidxVersion = 1;

// Field offsets of the fixed header.
inline constexpr std::size_t kBinidxVersionOffset = 9;
inline constexpr std::size_t kBinidxDTypeOffset = 17;
inline constexpr std::size_t kBinidxSequenceCountOffset = 18;
inline constexpr std::size_t kBinidxDocCountOffset = 26;
inline constexpr std::size_t kBinidxHeaderSize = 34;  // 9 + 8 + 1 + 8 + 8

// Megatron's dtype codes. 6 and 7 are floats (7 is float32 in Megatron-core but float64 in the
// RWKV-LM / GPT-NeoX copies); they are never valid for tokens. There is no uint32 code.
enum class BinidxDTypeCode : std::uint8_t {
  kUint8 = 1,
  kInt8 = 2,
  kInt16 = 3,
  kInt32 = 4,
  kInt64 = 5,
  kFloat64 = 6,
  kFloat32OrFloat64 = 7,
  kUint16 = 8,
};

// Bytes per token for a code we accept for tokens (1-5, 8); nullopt for 6, 7 and unknown codes.
constexpr std::optional<std::size_t> BinidxTokenItemSize(std::uint8_t code) {
  switch (code) {
    case 1: return 1;
    case 2: return 1;
    case 3: return 2;
    case 4: return 4;
    case 5: return 8;
    case 8: return 2;
    default: return std::nullopt;
  }
}

// "uint8", "int32", ...; "float64"/"float32-or-float64" for 6/7; "unknown" otherwise.
constexpr std::string_view BinidxDTypeName(std::uint8_t code) {
  switch (code) {
    case 1: return "uint8";
    case 2: return "int8";
    case 3: return "int16";
    case 4: return "int32";
    case 5: return "int64";
    case 6: return "float64";
    case 7: return "float32-or-float64";
    case 8: return "uint16";
    default: return "unknown";
  }
}

// The writer's choice (Megatron's optimal_dtype, RADLADS make_data_hf.py): uint16 when every id
// fits (vocab_size <= 65535, so the largest id is <= 65534), else int32.
constexpr BinidxDTypeCode BinidxWriterDTypeFor(std::uint64_t vocab_size) {
  return vocab_size <= 65535 ? BinidxDTypeCode::kUint16 : BinidxDTypeCode::kInt32;
}

}  // namespace radlads
