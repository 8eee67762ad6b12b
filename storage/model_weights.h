// Model weights as Hugging Face stores them: one `model.safetensors`, or
// `model.safetensors.index.json` plus shards `model-0000K-of-0000N.safetensors`. Uniform
// lookup by tensor name across shards, and a sharded writer. Layout and rules:
// docs/formats/safetensors.md (section "Model directories").
//
// Contract (reader):
// - ModelWeights::Open(path) accepts a directory, a single .safetensors file, or an index
//   .json file (shards are then looked up next to it). In a directory, `model.safetensors`
//   wins over the index when both exist (as in transformers).
// - The index must be a JSON object with `weight_map` (tensor name -> shard file name, no
//   duplicate names) and may have `metadata.total_size`. Shard names must be plain file names
//   (no '/', '\', "..", NUL, not empty). Every shard must exist and be a valid safetensors file;
//   every tensor the index names must be in its shard, every tensor of a shard must be mapped to
//   that shard (a tensor in two shards is an error naming both). Errors: NotFound for a missing
//   directory entry or shard, Corruption for a broken index or an index/shard disagreement
//   (messages name the index, the shard and the tensor), plus the reader's own errors.
// - `total_size` is not validated (HF files are sometimes off): index_total_size() exposes it
//   and total_size_matches() compares it to the sum of tensor bytes.
// - A ModelWeights owns its mapped shards. ModelTensor pointers and spans stay valid while the
//   ModelWeights lives (moving it keeps them valid).
// Contract (writer):
// - WriteModelWeights validates every tensor first (as WriteSafetensors does, across all
//   shards), creates `dir` if needed, splits tensors into shards with HF's greedy rule over the
//   caller's order (PlanModelShards), and writes either one `model.safetensors` (everything fits
//   in max_shard_bytes) or N shards followed by the index, last. Each file is written atomically;
//   every file gets `"format": "pt"` in __metadata__ unless the caller's metadata sets "format".
//   Afterwards it removes the other layout's files and stale `model-*-of-*.safetensors` shards
//   left in `dir` by an earlier write. A crash while overwriting an existing sharded directory
//   can leave new shards beside the old index; the reader's cross-checks then report it.
// Thread-safety: a ModelWeights is immutable after Open; const methods may run concurrently.
// WriteModelWeights must not run concurrently with another writer of the same directory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/safetensors.h"
#include "storage/safetensors_writer.h"

namespace radlads {

// A parsed model.safetensors.index.json.
struct ModelIndex {
  std::optional<std::uint64_t> total_size;        // metadata.total_size, when present
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
};

// Parses and checks an index file's text (JSON syntax, types, duplicate keys, shard names).
// Does not touch the file system. `source` prefixes error messages. Never throws.
Result<ModelIndex> ParseModelIndex(std::string_view text, std::string_view source);

// One tensor of a model: its header entry, its bytes, and the file that holds it.
struct ModelTensor {
  const SafetensorsTensorInfo* info = nullptr;  // name, dtype, shape
  std::span<const std::byte> data;
  const SafetensorsFile* file = nullptr;
};

class ModelWeights {
 public:
  static Result<ModelWeights> Open(const std::string& path);

  ModelWeights(ModelWeights&&) noexcept = default;
  ModelWeights& operator=(ModelWeights&&) noexcept = default;
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;

  // The path Open was given.
  const std::string& path() const { return path_; }
  // True when the weights came from an index.
  bool sharded() const { return index_path_.has_value(); }
  const std::optional<std::string>& index_path() const { return index_path_; }
  // The safetensors files, in shard-name order (one for an unsharded model).
  std::size_t num_files() const { return files_.size(); }
  const SafetensorsFile& file(std::size_t i) const { return *files_[i]; }

  std::size_t num_tensors() const { return tensors_.size(); }
  // All tensor names, sorted.
  std::vector<std::string> TensorNames() const;
  // nullptr when absent.
  const ModelTensor* Find(std::string_view name) const;
  // NotFound naming the model path and the tensor when absent.
  Result<ModelTensor> Get(std::string_view name) const;
  // Looks up and converts to f32 (a copy); see SafetensorsFile::ReadAsF32.
  Result<std::vector<float>> ReadAsF32(std::string_view name) const;

  // Sum of every tensor's byte size.
  std::uint64_t tensor_bytes() const { return tensor_bytes_; }
  // The index's metadata.total_size (nullopt without an index or without the field).
  std::optional<std::uint64_t> index_total_size() const { return index_total_size_; }
  // False only when the index states a total_size that differs from tensor_bytes().
  bool total_size_matches() const {
    return !index_total_size_ || *index_total_size_ == tensor_bytes_;
  }

 private:
  ModelWeights() = default;
  Status AddFile(std::unique_ptr<SafetensorsFile> file);

  std::string path_;
  std::optional<std::string> index_path_;
  std::optional<std::uint64_t> index_total_size_;
  std::uint64_t tensor_bytes_ = 0;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, ModelTensor, std::less<>> tensors_;
};

// "model-00002-of-00005.safetensors" for k = 2, n = 5 (k is 1-based).
std::string ModelShardFileName(std::size_t k, std::size_t n);

// HF's greedy split (huggingface_hub split_state_dict_into_shards): walk tensors in the given
// order; a tensor larger than max_shard_bytes gets a shard of its own; otherwise a new shard
// starts when adding the tensor would exceed max_shard_bytes. Sizes are data bytes only
// (headers are not counted). Returns the tensor indices of each shard, in shard order.
std::vector<std::vector<std::size_t>> PlanModelShards(
    std::span<const SafetensorsWriteTensor> tensors, std::uint64_t max_shard_bytes);

struct ModelWeightsWriteResult {
  bool sharded = false;
  std::vector<std::string> files;  // safetensors files written, names relative to dir
  std::uint64_t total_size = 0;    // sum of tensor bytes (the index's metadata.total_size)
};

// Writes `tensors` into `dir`; see the contract above. InvalidArgument for bad input
// (including max_shard_bytes == 0 or more than 99,999 shards); IOError from the file system.
Result<ModelWeightsWriteResult> WriteModelWeights(const std::string& dir,
                                                  std::span<const SafetensorsWriteTensor> tensors,
                                                  std::uint64_t max_shard_bytes,
                                                  const SafetensorsMetadata& metadata = {});

// Fills tensor `index`'s bytes (exactly prod(shape) x DTypeSize(dtype) of them, little-endian).
using ModelTensorFill = std::function<Status(std::size_t index, std::span<std::byte> out)>;

// WriteModelWeights for models too large to hold in memory (radlads-model init at 7B and up):
// `tensors` carry names, dtypes and shapes only (their data spans are ignored). Shards are
// planned from the sizes by the same rule and written one at a time: before a file is written,
// `fill` produces the data of its tensors, which are released once it is written, so at most
// one shard (max_shard_bytes, or the largest tensor) is held. Same files, atomicity and cleanup
// as WriteModelWeights; names and shapes are checked first (duplicates, negative or overflowing
// shapes), every other check happens as each file is written, and an error of `fill` is returned
// as is (files written before it stay).
Result<ModelWeightsWriteResult> WriteModelWeightsStreamed(const std::string& dir,
                                                          std::span<const SafetensorsWriteTensor> tensors,
                                                          std::uint64_t max_shard_bytes,
                                                          const ModelTensorFill& fill,
                                                          const SafetensorsMetadata& metadata = {});

}  // namespace radlads
