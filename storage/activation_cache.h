// The step-1 activation cache (docs/design.md §3 `cache(s, p)`): for one token segment s and one
// pipeline stage p, the teacher's mixer input (the input_layernorm output) and attention output
// of every layer in the stage, plus the stage's output hidden states (the next stage's input),
// in one HDF5 file. Layout and rules: docs/formats/activation_cache.md.
//
// Contract:
// - Files are written to a temporary name and renamed into place after HDF5 has flushed and
//   the file is fsynced; the directory is fsynced. Finish() returns the XXH3-64 checksum of the
//   finished file, which the caller records in the run state; Open() verifies it when given.
// - Every dataset is chunked per sample with HDF5's Fletcher32 filter, so a flipped byte in a
//   chunk fails the read with Corruption (even without the whole-file checksum).
// - The file carries magic, version and its shape attributes; a reader refuses a file whose
//   attributes disagree with what the caller expects (segment, stage, layers, shapes).
// - Values are stored as F32 or BF16 (rounded to nearest even), converted to F32 on read.
// Thread-safety: one thread per object (the HDF5 library serialises calls internally).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/dtype.h"
#include "base/status.h"
#include "kernels/tensor.h"

namespace radlads {

inline constexpr char kActivationCacheMagic[] = "radlads-activation-cache";
inline constexpr std::int64_t kActivationCacheVersion = 1;

struct ActivationCacheMeta {
  std::int64_t segment = 0;
  std::int64_t stage = 0;
  std::int64_t first_layer = 0;  // layers [first_layer, last_layer)
  std::int64_t last_layer = 0;
  std::int64_t samples = 0;       // sequences in the segment
  std::int64_t seq_len = 0;       // tokens per sequence
  std::int64_t hidden = 0;        // channels
  std::int64_t sample_begin = 0;  // global sample index of the segment's first sequence
  DType dtype = DType::kF32;      // storage type: F32 or BF16
  // RAD-RWKV7 students: width A of /value_first (layer 0's value on the teacher stream, expanded
  // to the query heads), carried by every stage's file so align tasks of any stage can read it;
  // 0 when the file has none.
  std::int64_t value_first_width = 0;

  std::int64_t layers() const { return last_layer - first_layer; }
  // Bytes of the datasets' payload (mixer in/out for every layer + stage output + tokens).
  std::int64_t PayloadBytes() const;
};

bool operator==(const ActivationCacheMeta& a, const ActivationCacheMeta& b);

class ActivationCacheWriter {
 public:
  static Result<std::unique_ptr<ActivationCacheWriter>> Create(const std::string& path,
                                                               const ActivationCacheMeta& meta);
  ~ActivationCacheWriter();  // abandons (removes) an unfinished file

  // Writes samples [first, first + n) of one layer: mixer_in and mixer_out are [n, T, C] F32.
  Status WriteLayer(std::int64_t layer, std::int64_t first, const Tensor& mixer_in,
                    const Tensor& mixer_out);
  // Writes samples [first, first + n) of the stage output [n, T, C] and their input tokens
  // [n, T] I32.
  Status WriteStageOutput(std::int64_t first, const Tensor& hidden, const Tensor& tokens);
  // Writes samples [first, first + n) of /value_first: [n, T, value_first_width] F32.
  Status WriteValueFirst(std::int64_t first, const Tensor& v_first);
  // Closes, fsyncs and renames into place. Returns the file's checksum.
  Result<std::uint64_t> Finish();

 private:
  struct Impl;
  explicit ActivationCacheWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class ActivationCacheReader {
 public:
  // Opens and checks magic, version and (when given) the expected metadata and checksum.
  static Result<std::unique_ptr<ActivationCacheReader>> Open(
      const std::string& path, const std::optional<ActivationCacheMeta>& expect = std::nullopt,
      std::optional<std::uint64_t> checksum = std::nullopt);
  ~ActivationCacheReader();

  const ActivationCacheMeta& meta() const;
  // Reads samples [first, first + n) of a layer into mixer_in / mixer_out [n, T, C] F32.
  Status ReadLayer(std::int64_t layer, std::int64_t first, Tensor& mixer_in, Tensor& mixer_out) const;
  Status ReadStageOutput(std::int64_t first, Tensor& hidden, Tensor& tokens) const;
  // Samples [first, first + n) of /value_first into [n, T, value_first_width].
  Status ReadValueFirst(std::int64_t first, Tensor& v_first) const;

 private:
  struct Impl;
  explicit ActivationCacheReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace radlads
