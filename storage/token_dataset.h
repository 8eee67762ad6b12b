// TokenDataset: one read-only view of a flat token stream, whatever the file format, with the
// vocabulary check the converter runs before training. Zero-copy: files are memory-mapped.
//
// Format detection (OpenTokenDataset with TokenFileFormat::kAuto), first rule that matches:
//   1. path ends in ".npy"                      -> NumPy, must be 1-D (<u2 <u4 <i4 <i8 |u1)
//   2. path ends in ".u32"                      -> raw little-endian uint32, no header
//   3. PATH.idx and PATH.bin both exist         -> binidx with prefix PATH
//   4. path ends in ".idx" or ".bin" and the other file of the pair exists
//                                               -> binidx with the suffix stripped
//   otherwise InvalidArgument (a lone ".bin" is ambiguous: ask for kRawU16 for a nanoGPT file).
// kBinidx, kNpy, kRawU32 and kRawU16 skip detection (kBinidx also takes "PREFIX.bin"/".idx").
// Raw files must be a whole number of elements long.
//
// The token stream is the whole data area in file order (for binidx the concatenated
// sequences, which is how RWKV-LM reads it: documents are packed back to back). Document
// boundaries are known for binidx only (see BinidxIndex::DocumentStartTokens).
//
// Values: tokens are read as stored (uint8 ... int64). The checked accessors (TokenAt,
// CopyTokens, MaxTokenId, CheckVocabulary) report a negative value, or one that does not fit
// the requested output type, as Corruption naming the file and the token index.
//
// Ownership and lifetime: a TokenDataset owns its mapping (or its vector); spans it returns
// are valid while it lives. Move-only.
// Thread-safety: all const methods may be called from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/file.h"
#include "base/status.h"

namespace radlads {

enum class TokenFileFormat { kAuto, kBinidx, kNpy, kRawU32, kRawU16, kMemory };

// "auto", "binidx", "npy", "u32", "u16", "memory".
std::string_view TokenFileFormatName(TokenFileFormat f);
// Parses the names above except "memory" (for flags and configs). InvalidArgument otherwise.
Result<TokenFileFormat> ParseTokenFileFormat(std::string_view name);

class TokenDataset {
 public:
  // Opens a token file; see the detection rule above. Errors: NotFound, InvalidArgument (cannot
  // tell the format, or an .npy that is not 1-D / not an integer dtype), Corruption (the
  // format's own rules), IOError.
  static Result<TokenDataset> Open(const std::string& path,
                                   TokenFileFormat format = TokenFileFormat::kAuto);

  // An in-memory dataset that owns `tokens` (tests, and tokens produced on the fly).
  static TokenDataset FromTokens(std::vector<std::uint32_t> tokens, std::string name = "<memory>");

  TokenDataset(TokenDataset&&) noexcept = default;
  TokenDataset& operator=(TokenDataset&&) noexcept = default;
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  TokenFileFormat format() const { return format_; }
  // Element type as stored: kU8, kI8, kI16, kU16, kI32, kU32 or kI64.
  DType dtype() const { return dtype_; }
  // Total tokens.
  std::uint64_t size() const { return count_; }
  // The file holding the tokens (PREFIX.bin for binidx), used in every error message.
  const std::string& path() const { return name_; }

  // The stored value of token i, unchecked. Precondition: i < size().
  std::int64_t RawTokenAt(std::uint64_t i) const;

  // Token i as uint32. InvalidArgument if i >= size(); Corruption if the value is negative or
  // above UINT32_MAX.
  Result<std::uint32_t> TokenAt(std::uint64_t i) const;

  // Copies tokens [start, start + out.size()) into out. InvalidArgument if the range leaves the
  // dataset; Corruption for a value that does not fit the output type (negative, or above
  // UINT32_MAX / INT32_MAX). On error, out's contents are unspecified.
  Status CopyTokens(std::uint64_t start, std::span<std::uint32_t> out) const;
  Status CopyTokens(std::uint64_t start, std::span<std::int32_t> out) const;

  // Token offsets where documents start, ascending, first 0; empty when unknown (npy, raw,
  // memory) or when the dataset is empty.
  std::span<const std::uint64_t> document_starts() const { return doc_starts_; }
  bool has_document_boundaries() const { return !doc_starts_.empty(); }

  // The largest token id (a full scan). InvalidArgument for an empty dataset; Corruption for a
  // negative value.
  Result<std::uint64_t> MaxTokenId() const;

  // OK when every token is in [0, vocab_size). Otherwise InvalidArgument naming the file, the
  // first offending token's index and value, and vocab_size (a full scan).
  Status CheckVocabulary(std::uint64_t vocab_size) const;

 private:
  TokenDataset() = default;
  const std::byte* ElementPtr(std::uint64_t i) const { return data_ + i * item_size_; }

  TokenFileFormat format_ = TokenFileFormat::kMemory;
  DType dtype_ = DType::kU32;
  std::size_t item_size_ = 4;
  std::uint64_t count_ = 0;
  const std::byte* data_ = nullptr;
  std::string name_;
  MappedFile file_;
  std::vector<std::uint32_t> owned_;
  std::vector<std::uint64_t> doc_starts_;
};

// Same as TokenDataset::Open.
inline Result<TokenDataset> OpenTokenDataset(const std::string& path,
                                             TokenFileFormat format = TokenFileFormat::kAuto) {
  return TokenDataset::Open(path, format);
}

}  // namespace radlads
