// Model I/O in the Hugging Face layouts: which tensors a model has (names and shapes), loading
// them from safetensors (any of F32/BF16/F16, single file or sharded) into a ParamSet, and
// saving a ParamSet as a model directory.
//
// Loading is strict: every expected tensor must be present with exactly its shape, and a tensor
// the model does not use is an error (it usually means the wrong model or config), except the
// few that Hugging Face checkpoints carry harmlessly (lm_head.weight of a tied model, rotary
// inv_freq buffers). Errors name the file, the tensor, and the expected and found shapes.
// Saving writes model.safetensors (or shards + index when larger than max_shard_bytes) through
// the atomic writer, in the ParamSet's order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "pipeline/decoder.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"
#include "storage/model_weights.h"

namespace radlads {

struct ParamSpec {
  std::string name;
  Shape shape;
};

// The decoder's non-mixer tensors (embeddings, norms, MLPs, final norm, lm_head unless tied).
std::vector<ParamSpec> DecoderParamSpecs(const Qwen2Config& cfg);
// The teacher's attention tensors of one layer (q/k/v with biases, o).
std::vector<ParamSpec> Qwen2AttentionParamSpecs(const Qwen2Config& cfg, int layer);
// Every tensor of a Qwen2 teacher: DecoderParamSpecs + attention of every layer.
std::vector<ParamSpec> Qwen2ParamSpecs(const Qwen2Config& cfg);

// Adds zero-valued parameters with these names and shapes.
void DeclareParams(const std::vector<ParamSpec>& specs, ParamSet& params);

// True for checkpoint tensors a model may carry without using them.
bool IsIgnorableExtraTensor(std::string_view name, bool tied_embeddings);

// Every disagreement between `weights` and the expected tensors, one Status each (NotFound for
// a missing tensor; InvalidArgument for a wrong shape, a non-float dtype or a tensor the model
// does not use), in a stable order. Empty when they match. `tied_embeddings` allows a stray
// lm_head.weight.
std::vector<Status> CheckModelTensors(const ModelWeights& weights, const std::vector<ParamSpec>& expected,
                                      bool tied_embeddings);

// Fills every parameter of `params` from `weights` (converted to F32), after CheckModelTensors
// found nothing wrong (otherwise its first problem is returned).
Status LoadParams(const ModelWeights& weights, ParamSet& params, bool tied_embeddings);

// Writes `params` (those for which filter(name) holds; all when filter is empty) as a model
// directory's weights in `dtype` (F32, BF16 or F16). `dir` is created if needed.
Status SaveParams(const ParamSet& params, const std::string& dir, DType dtype,
                  std::uint64_t max_shard_bytes,
                  const std::function<bool(const std::string&)>& filter = {});

// A teacher ready to run: config, parameters and the decoder built on them.
// A loaded teacher's parameters are views of `weights`' mapped files (pipeline/frozen_weights.h):
// F32 used in place, BF16/F16 converted by the model one layer at a time; `params` values may
// therefore be read-only and of any of these dtypes (read them through ResidentF32 or
// FrozenWeightScratch, or ConvertToF32). `weights` is declared first so it outlives them.
struct Qwen2Teacher {
  Qwen2Config config;
  std::shared_ptr<const ModelWeights> weights;  // null when the parameters are owned
  std::unique_ptr<ParamSet> params;
  std::unique_ptr<DecoderModel> model;
};

// Builds a teacher over already-filled parameters (which must hold Qwen2ParamSpecs, or a
// shard's share of them in the shard's configuration: pipeline/model_shard.h).
Qwen2Teacher MakeQwen2Teacher(const Qwen2Config& cfg, std::unique_ptr<ParamSet> params, const DecoderShard& shard = {});
// Reads DIR/config.json (model_type qwen2) and maps the weights (any of F32/BF16/F16, one file
// or sharded) without converting them as a whole: see Qwen2Teacher. All parameters frozen.
// Errors (a missing tensor, a wrong shape or dtype, a bad file) name the file and the tensor.
Result<Qwen2Teacher> LoadQwen2Teacher(const std::string& dir);
// The same teacher with every parameter converted to an owned fp32 copy (LoadParams): what
// LoadQwen2Teacher did before the weights stayed mapped; for tests and tools that write to
// the parameters.
Result<Qwen2Teacher> LoadQwen2TeacherF32(const std::string& dir);

}  // namespace radlads
