// NumPy .npy files (NEP 1, format versions 1.0, 2.0 and 3.0): a strict header parser, a
// zero-copy memory-mapped reader, and an atomic writer for N-D arrays.
//
// Reading accepts the subset the project uses and rejects the rest with a Corruption status
// naming the file and the field:
//   - descr '<u2' '<u4' '<i4' '<i8' '<f4' and '|u1' (big-endian '>..' and anything else rejected);
//   - fortran_order False only;
//   - shape a tuple of non-negative integers ('()' is a scalar, '(n,)' 1-D; a Python-2 'L'
//     suffix is tolerated); element count and byte size checked for overflow;
//   - the header is a Python dict literal with exactly the keys 'descr', 'fortran_order' and
//     'shape' (any order, trailing comma allowed), parsed by a small strict parser (no eval),
//     followed only by whitespace; header length capped at 1 MiB;
//   - the file size must equal header + count * itemsize exactly.
// The data offset is taken as found: 64-byte alignment (NumPy >= 1.14 and our writer) is not
// required, since older writers aligned to 16. Data may therefore be unaligned; readers copy
// elements with memcpy.
//
// Writing supports F32, I32, I64, U32, U16 and U8 of any shape (also used to dump float32 [T, vocab]
// logits): version 1.0 while the header fits 65535 bytes, else 2.0; magic + header padded with
// spaces and a final '\n' to a multiple of 64. Files are written with AtomicWriteFileWith
// (temp + fsync + rename + dir fsync).
//
// Thread-safety: free functions are thread-safe; an NpyArray may be read from many threads.
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

inline constexpr std::size_t kNpyAlignment = 64;
inline constexpr std::size_t kNpyMaxHeaderBytes = 1 << 20;

struct NpyHeader {
  DType dtype = DType::kF32;
  std::vector<std::uint64_t> shape;  // empty for a 0-d scalar
  std::uint64_t element_count = 1;   // product of shape (1 for a scalar)
  std::uint64_t data_offset = 0;     // file offset of the first element
  std::uint64_t data_bytes = 0;      // element_count * itemsize
  std::uint8_t major_version = 1;
};

// The descr string for a dtype ("<f4"); empty for a dtype .npy I/O here does not support.
std::string_view NpyDescr(DType dtype);

// Parses magic, version, header length and the header dict from the first bytes of a file.
// `bytes` must hold at least the whole header; the data is not looked at. Errors: Corruption.
Result<NpyHeader> ParseNpyHeader(std::span<const std::byte> bytes, std::string_view name);

// ParseNpyHeader on a whole file, plus the check that its size is data_offset + data_bytes.
Result<NpyHeader> ParseNpyFile(std::span<const std::byte> file, std::string_view name);

// A read-only memory map of a .npy file. Move-only; the data span is valid while it lives.
class NpyArray {
 public:
  static Result<NpyArray> Open(const std::string& path);

  const NpyHeader& header() const { return header_; }
  DType dtype() const { return header_.dtype; }
  const std::vector<std::uint64_t>& shape() const { return header_.shape; }
  std::uint64_t element_count() const { return header_.element_count; }
  // The raw little-endian elements (possibly unaligned).
  std::span<const std::byte> data() const {
    return file_.bytes().subspan(header_.data_offset, header_.data_bytes);
  }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  NpyHeader header_;
};

// The complete preamble (magic, version, header length, padded dict) for dtype and shape; its
// size is a multiple of kNpyAlignment. InvalidArgument for a dtype the writer does not support.
Result<std::string> NpyPreamble(DType dtype, std::span<const std::uint64_t> shape);

// Writes a .npy atomically; data.size() must equal prod(shape) * itemsize (InvalidArgument).
Status WriteNpy(const std::string& path, DType dtype, std::span<const std::uint64_t> shape,
                std::span<const std::byte> data);

// Streaming form for arrays too large to hold at once: `fill` writes exactly prod(shape) *
// itemsize bytes of little-endian elements through the callback it receives (in row-major
// order); a different count is InvalidArgument and the target is left untouched.
Status WriteNpyWith(const std::string& path, DType dtype, std::span<const std::uint64_t> shape,
                    const std::function<Status(const WriteFn&)>& fill);

// Typed conveniences.
Status WriteNpy(const std::string& path, std::span<const float> data,
                std::span<const std::uint64_t> shape);
Status WriteNpy(const std::string& path, std::span<const std::int32_t> data,
                std::span<const std::uint64_t> shape);
Status WriteNpy(const std::string& path, std::span<const std::uint32_t> data,
                std::span<const std::uint64_t> shape);
Status WriteNpy(const std::string& path, std::span<const std::uint16_t> data,
                std::span<const std::uint64_t> shape);

}  // namespace radlads
