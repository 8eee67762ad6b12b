// A RADLADS student: the teacher's decoder with every attention layer replaced by a RAD-RWKV6 or
// RAD-RWKV7 mixer (docs/spec.md §2.0), its parameter layout (the released rwkv6qwen2 /
// rwkv7qwen2 names, docs/spec.md §9.2), loading and saving, and step 0: building a student
// from a teacher (q/k/v/o and biases copied, new parameters initialised per the spec).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "pipeline/decoder.h"
#include "pipeline/model_io.h"
#include "pipeline/param_set.h"
#include "storage/student_config.h"

namespace radlads {

struct StudentMixerOptions {
  std::int64_t rwkv6_chunk = 16;  // GLA chunk (0: recurrent); chunked is ~2x faster to train
  std::int64_t rwkv7_chunk = 0;   // DPLR chunk (0: recurrent, fastest on CPU at head dim <= 64)
};

// Every tensor of a student (decoder tensors + each layer's mixer), in load/save order.
std::vector<ParamSpec> StudentParamSpecs(const StudentConfig& cfg);
// The mixer tensors of one layer.
std::vector<ParamSpec> StudentMixerParamSpecs(const StudentConfig& cfg, int layer);
void DeclareStudentMixerParams(const StudentConfig& cfg, int layer, ParamSet& params);

std::unique_ptr<Mixer> MakeStudentMixer(const StudentConfig& cfg, int layer, ParamSet& params,
                                        const StudentMixerOptions& opts);

struct StudentModel {
  StudentConfig config;
  std::unique_ptr<ParamSet> params;
  std::unique_ptr<DecoderModel> model;
};

// Builds the model over filled parameters (StudentParamSpecs). Call params->SetTrainable first
// when training: trainable flags are read here.
// `cfg` and `params` are a shard's (pipeline/model_shard.h) when `shard` says so.
StudentModel MakeStudentModel(const StudentConfig& cfg, std::unique_ptr<ParamSet> params,
                              const StudentMixerOptions& opts = {}, const DecoderShard& shard = {});

// Reads DIR/config.json (rwkv6qwen2 / rwkv7qwen2) and the weights (any float dtype, sharded or
// not). All parameters frozen.
Result<StudentModel> LoadStudent(const std::string& dir, const StudentMixerOptions& opts = {});

// Writes DIR/config.json (every key explicit) and the weights in `dtype`.
Status SaveStudent(const StudentConfig& cfg, const ParamSet& params, const std::string& dir,
                   DType dtype = DType::kF32, std::uint64_t max_shard_bytes = 5ull << 30);

// Step 0, per layer: declares layer `layer`'s mixer in `student`, copies the teacher's
// q/k/v(/o) projections and biases into it and initialises the new parameters per the spec from
// a generator seeded with (seed, layer) — so each layer's transfer is reproducible on its own.
void TransferLayer(const ParamSet& teacher, const StudentConfig& cfg, int layer, std::uint64_t seed,
                   ParamSet& student);
// Step 0, everything else: deep copies of the embeddings, norms, MLPs, final norm and head.
void TransferDecoder(const ParamSet& teacher, const StudentConfig& cfg, ParamSet& student);
// The whole step 0: TransferDecoder + TransferLayer for every layer.
std::unique_ptr<ParamSet> TransferTeacher(const ParamSet& teacher, const StudentConfig& cfg,
                                          std::uint64_t seed);

}  // namespace radlads
