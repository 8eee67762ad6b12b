// `radlads-model init`: a randomly initialised Qwen2 teacher in the Hugging Face layout, for
// tests and benchmarks at real shapes without downloading a checkpoint (docs/conversion.md,
// "Real widths without a download").
//
// Contract:
// - The shape comes from a model preset (configs/models/, by name or path) or from a Hugging
//   Face config.json (a file or a model directory); `layers` (> 0) replaces num_hidden_layers.
// - Parameters follow transformers' Qwen2 init (pipeline/pretrain.h InitQwen2Params: matrices
//   N(0, init_range^2), biases 0, norm weights 1). Each tensor draws from its own generator,
//   seeded from (seed, tensor name), so a tensor's values depend on neither the layer count nor
//   the shard layout: layer 0 of a 2-layer and of a 24-layer model are the same.
// - Memory: tensors are produced one shard at a time (storage/model_weights.h
//   WriteModelWeightsStreamed), each initialised in F32 and converted to `dtype`: the peak is one
//   shard (max_shard_bytes) plus the largest tensor in F32, never the whole model (the 7B
//   preset in bf16 peaks near 7.5 GB instead of 30 GB).
// - Output, in this order: the weights (model.safetensors, or shards + model.safetensors.index.json
//   when larger than max_shard_bytes); the tokenizer files (tokenizer.json, always uncompressed,
//   and tokenizer_config.json etc. when present) from the preset's `tokenizer` directory, or from
//   the config.json's directory when it holds a tokenizer; init.json (what this is, the command,
//   the seed); config.json last, with torch_dtype saying the dtype written. Every file is
//   written atomically.
// - Refuses (InvalidArgument, naming the flag or field) an `out` that exists and is not an
//   empty directory, a dtype other than bf16/f32, both or neither of preset and config; config
//   errors name the file and the key (storage/hf_config.h, configs/model_preset.h).
// Thread-safety: one call at a time per output directory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "base/status.h"

namespace radlads::cli {

struct InitArgs {
  std::string preset;             // preset name or YAML path; or
  std::string config;             // a config.json file or a model directory holding one
  std::string out;                // the model directory to create
  std::int64_t layers = 0;        // 0: the config's num_hidden_layers
  std::string dtype;              // "bf16" | "f32"; "": bf16 when torch_dtype is bfloat16, else f32
  std::uint64_t seed = 0;
  double init_range = 0.02;       // transformers' Qwen2Config.initializer_range
  std::uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default max_shard_size "5GB"
  std::string command_line;       // recorded in init.json
};

// Writes the model; prints one line describing it to `report` (may be null).
Status RunInit(const InitArgs& args, std::FILE* report);

}  // namespace radlads::cli
