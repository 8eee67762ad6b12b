// Megatron / GPT-NeoX / RWKV "binidx" token files (PREFIX.bin + PREFIX.idx): a validating index
// parser and a streaming, atomic writer. Layout constants: storage/binidx_format.h; the full
// format and leniency rules: docs/formats/datasets.md.
//
// Reading (ParseBinidxIndex) accepts what Megatron, GPT-NeoX, RWKV-LM and RADLADS'
// make_data_hf.py write and rejects everything else with a Status naming the file and the field:
//   - magic "MMIDIDX\0\0", version 1;
//   - token dtype codes 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 8 uint16 (6/7 are floats and
//     rejected; unknown codes rejected);
//   - S and D must fit the .idx (checked without overflow, so a lying count fails cleanly before
//     any allocation);
//   - sizes >= 0; pointers[i] == sum(sizes[0..i)) * itemsize exactly (first mismatch reported);
//   - every sequence inside the .bin, and the sequences cover the .bin exactly (a .bin that is
//     longer than its index says is reported as a mismatched pair);
//   - doc_idx lenient: non-decreasing, every entry in [0, S]; it may end at S (Megatron), stop
//     one short (make_data_hf.py writes range(S)) or be empty;
//   - after doc_idx, either nothing or exactly S bytes (Megatron-core multimodal modes, ignored).
// Negative token values in signed dtypes are not checked here (that needs the .bin); TokenDataset
// reports them when tokens are read or range-checked.
//
// Writing (BinidxWriter) produces the strict Megatron form: one sequence per document, doc_idx =
// 0..S inclusive, dtype uint16 (code 8) when vocab_size <= 65535 else int32 (code 4). Both files
// are written through temp + fsync + rename; the .idx is renamed last and any old PREFIX.idx is
// removed before the new .bin replaces the old one, so a PREFIX.idx on disk always belongs to the
// PREFIX.bin beside it (a crash can leave a .bin with no .idx, never a mismatched pair).
//
// Thread-safety: ParseBinidxIndex is pure and thread-safe; a BinidxIndex is a value. A
// BinidxWriter is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/status.h"
#include "storage/binidx_format.h"

namespace radlads {

// The parsed, validated contents of a PREFIX.idx.
struct BinidxIndex {
  BinidxDTypeCode dtype_code = BinidxDTypeCode::kInt32;
  DType token_dtype = DType::kI32;  // the same type as a base DType (kU8, kI8, kI16, kI32, kI64, kU16)
  std::size_t item_size = 4;        // bytes per token
  std::vector<std::int32_t> sizes;     // [S] tokens per sequence, all >= 0
  std::vector<std::int64_t> pointers;  // [S] byte offset of each sequence in the .bin
  std::vector<std::int64_t> doc_idx;   // [D] as stored (validated, lenient)
  bool has_modes = false;              // a trailing i8[S] modes array was present
  std::uint64_t token_count = 0;       // sum(sizes) == bin_bytes / item_size

  std::uint64_t sequence_count() const { return sizes.size(); }

  // Token offsets where documents start: ascending, unique, starting at 0 when there are tokens.
  // Derived from the doc_idx entries < S (an entry equal to S closes the last document); when
  // doc_idx is empty, every sequence is taken as a document. Empty for an empty dataset.
  std::vector<std::uint64_t> DocumentStartTokens() const;
};

// Validates the bytes of a .idx against the size of its .bin. `idx_name` and `bin_name` are used
// in error messages only (bin_name defaults to idx_name with ".idx" replaced by ".bin").
// Errors: Corruption for any rule above. Never allocates more than a small multiple of idx.size().
Result<BinidxIndex> ParseBinidxIndex(std::span<const std::byte> idx, std::uint64_t bin_bytes,
                                     std::string_view idx_name, std::string_view bin_name = {});

// Reads and validates PREFIX.idx against the size of PREFIX.bin. NotFound if either is missing.
Result<BinidxIndex> ReadBinidxIndex(const std::string& prefix);

struct BinidxWriterOptions {
  // Every token must be < vocab_size (required, >= 1). Picks the dtype: uint16 when
  // vocab_size <= 65535, else int32 (ids must then be <= INT32_MAX).
  std::uint64_t vocab_size = 0;
  // Appended after each document's tokens when set (RADLADS appends eos_token_id). Must be
  // < vocab_size.
  std::optional<std::uint32_t> eos_id;
};

// Streams documents into PREFIX.bin (through a temp file) and writes PREFIX.idx on Finish().
// Memory: 12 bytes per document (sizes + pointers) plus a 1 MiB write buffer.
// Destroying an unfinished writer removes its temp file and leaves any existing pair untouched.
class BinidxWriter {
 public:
  // Creates "<prefix>.bin.tmp.<pid>.<n>" in the prefix's directory (which must exist).
  // Errors: InvalidArgument for bad options, IOError/NotFound from the filesystem.
  static Result<BinidxWriter> Create(const std::string& prefix, const BinidxWriterOptions& options);

  BinidxWriter(BinidxWriter&& other) noexcept;
  BinidxWriter& operator=(BinidxWriter&& other) noexcept;
  BinidxWriter(const BinidxWriter&) = delete;
  BinidxWriter& operator=(const BinidxWriter&) = delete;
  ~BinidxWriter();

  // Appends one document (one sequence): its tokens, then eos_id when set. A token >= vocab_size
  // is InvalidArgument and writes nothing (the writer stays usable). After an I/O error every
  // later call returns that error. FailedPrecondition after Finish().
  Status AppendDocument(std::span<const std::uint32_t> tokens);

  // Flushes and fsyncs the .bin, removes any old PREFIX.idx, renames the .bin into place, then
  // writes PREFIX.idx atomically. Call once.
  Status Finish();

  BinidxDTypeCode dtype_code() const { return dtype_code_; }
  std::uint64_t document_count() const { return sizes_.size(); }
  std::uint64_t token_count() const { return token_count_; }

 private:
  BinidxWriter() = default;
  Status Flush();
  void Abandon();

  std::string prefix_;
  std::string tmp_bin_;
  int fd_ = -1;
  BinidxWriterOptions options_;
  BinidxDTypeCode dtype_code_ = BinidxDTypeCode::kInt32;
  std::size_t item_size_ = 4;
  std::vector<std::byte> buffer_;
  std::vector<std::int32_t> sizes_;
  std::vector<std::int64_t> pointers_;
  std::uint64_t token_count_ = 0;
  Status error_;          // sticky I/O error
  bool finished_ = false;
};

}  // namespace radlads
