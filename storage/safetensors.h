// safetensors reader: parses and validates a header, and maps a file so that tensor data are
// zero-copy spans into the map. Layout and rules: docs/formats/safetensors.md.
//
// Contract:
// - ParseSafetensorsHeader is a pure function of the bytes it is given (the whole file). It
//   accepts a file only if it follows every rule of the format: the JSON is valid UTF-8, starts
//   with '{', has no duplicate keys at any level, every entry has exactly dtype / shape /
//   data_offsets with the right types, sizes agree with shape x dtype (no overflow), and the
//   tensors tile the data buffer exactly (no overlap, no hole, no trailing byte). 8-byte
//   alignment is not required.
// - Errors: Status::Corruption for a file that breaks the format, Status::InvalidArgument for a
//   well-formed entry whose dtype this build does not know (e.g. F8_E8M0, F4). Every message
//   starts with the source name and names the tensor and the field:
//     "m.safetensors: tensor 'w': data_offsets: end 4096 is beyond the data buffer (2048 bytes)"
// - SafetensorsFile owns a read-only private mmap. Spans returned by Data() point into it and
//   stay valid while the SafetensorsFile lives (moving it keeps them valid). The file must not
//   be truncated by anyone while it is open (that would fault on access, as with any mmap).
// Thread-safety: a SafetensorsFile and a SafetensorsHeader are immutable after construction;
// all const methods may be called from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/file.h"
#include "base/status.h"

namespace radlads {

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // empty for a 0-rank scalar; dims >= 0
  // Byte range [begin, end) relative to the start of the data buffer (file offset 8 + N).
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::uint64_t num_bytes() const { return end - begin; }
  // prod(shape); 1 for a scalar, 0 when any dim is 0. Cannot overflow for a parsed header.
  std::uint64_t num_elements() const;
};

struct SafetensorsHeader {
  std::uint64_t header_size = 0;  // N, the JSON length (padding included)
  std::uint64_t data_offset = 0;  // 8 + N: file offset of the data buffer
  std::uint64_t data_size = 0;    // bytes in the data buffer (file size - 8 - N)
  // Every tensor, in ascending data offset order (ties between empty tensors: by name).
  std::vector<SafetensorsTensorInfo> tensors;
  // The __metadata__ map; empty when absent.
  std::map<std::string, std::string> metadata;
  // Indices into `tensors`, sorted by name; filled by the parser, used by Find.
  std::vector<std::size_t> by_name;

  // nullptr when no tensor has this name. O(log n).
  const SafetensorsTensorInfo* Find(std::string_view name) const;
};

// Parses and validates the header of a complete safetensors file held in `file`.
// `source_name` (usually the path) prefixes every error message. Never throws.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const std::byte> file,
                                                 std::string_view source_name);

// A tensor name as error messages show it: single-quoted, control bytes as \xNN, names
// longer than 200 bytes cut with "...".
std::string QuoteTensorName(std::string_view name);

// Converts a tensor's bytes to f32 (via ConvertToF32). InvalidArgument for dtypes that cannot
// be read as numbers (F8_E4M3, F8_E5M2, U64), naming `source_name` and the tensor.
Result<std::vector<float>> TensorBytesToF32(const SafetensorsTensorInfo& info,
                                            std::span<const std::byte> data,
                                            std::string_view source_name);

class SafetensorsFile {
 public:
  // Maps `path` and validates its header. NotFound / IOError from the OS; Corruption or
  // InvalidArgument from ParseSafetensorsHeader.
  static Result<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return map_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  // Ascending offset order.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // nullptr when absent.
  const SafetensorsTensorInfo* Find(std::string_view name) const { return header_.Find(name); }
  // NotFound naming the file and the tensor when absent.
  Result<const SafetensorsTensorInfo*> Get(std::string_view name) const;

  // The tensor's bytes inside the map. `info` must come from this file.
  std::span<const std::byte> Data(const SafetensorsTensorInfo& info) const;

  // Looks the tensor up and converts it to f32 (a copy). NotFound, or InvalidArgument for
  // dtypes ConvertToF32 cannot read.
  Result<std::vector<float>> ReadAsF32(std::string_view name) const;

 private:
  SafetensorsFile(MappedFile map, SafetensorsHeader header)
      : map_(std::move(map)), header_(std::move(header)) {}

  MappedFile map_;
  SafetensorsHeader header_;
};

}  // namespace radlads
