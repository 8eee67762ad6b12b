// safetensors writer: byte-valid files in the same layout as the reference Rust `serialize`.
// Layout and rules: docs/formats/safetensors.md.
//
// Contract:
// - Tensors are written in the reference order: dtype rank descending (SafetensorsDTypeRank:
//   U64, I64, F64, F32, U32, I32, BF16, F16, U16, I16, F8_E4M3, F8_E5M2, I8, U8, BOOL), then name
//   ascending (bytewise). Their data are contiguous, offsets ascend, and there are no holes.
// - The header is compact JSON: `{"__metadata__":{...},"name":{"dtype":..,"shape":[..],
//   "data_offsets":[b,e]},...}`, __metadata__ first (omitted when empty, keys sorted), tensors
//   in write order; then spaces so that 8 + N is a multiple of 8.
// - Inputs are validated before anything is written; every problem is an InvalidArgument that
//   names the tensor and the field: duplicate names, the name "__metadata__", names or metadata
//   that are not UTF-8, negative dims, a shape whose byte size overflows, a data span whose
//   size differs from prod(shape) x sizeof(dtype), a header above the 100 MB limit.
// - WriteSafetensors is atomic (AtomicWriteFileWith: temp file, fsync, rename, directory
//   fsync) and streams each tensor's span straight to the file; it never builds the whole file
//   in memory. On any error `path` is untouched.
// - Borrowing: SafetensorsWriteTensor only points at the caller's bytes; they must stay valid
//   for the duration of the call.
// Thread-safety: the functions are reentrant; callers must not modify the spans concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/file.h"
#include "base/status.h"

namespace radlads {

struct SafetensorsWriteTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;  // {} for a scalar
  std::span<const std::byte> data;  // prod(shape) * DTypeSize(dtype) bytes, little-endian
};

using SafetensorsMetadata = std::map<std::string, std::string>;

// Checks the tensors (and metadata) as the writer would, without writing anything.
Status ValidateSafetensorsTensors(std::span<const SafetensorsWriteTensor> tensors,
                                  const SafetensorsMetadata& metadata = {});

// Indices into `tensors` in the order the writer lays them out.
std::vector<std::size_t> SafetensorsWriteOrder(std::span<const SafetensorsWriteTensor> tensors);

// Streams a complete file (prefix, padded header, data) through `write`.
Status WriteSafetensorsTo(const WriteFn& write, std::span<const SafetensorsWriteTensor> tensors,
                          const SafetensorsMetadata& metadata = {});

// The same bytes as one string; for small data (tests, fuzz round trips).
Result<std::string> SerializeSafetensors(std::span<const SafetensorsWriteTensor> tensors,
                                         const SafetensorsMetadata& metadata = {});

// Writes `path` atomically.
Status WriteSafetensors(const std::string& path, std::span<const SafetensorsWriteTensor> tensors,
                        const SafetensorsMetadata& metadata = {});

}  // namespace radlads
