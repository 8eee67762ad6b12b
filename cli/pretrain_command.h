// `radlads-model pretrain`: pretrains a Qwen2-architecture teacher from scratch with the
// project's own engine and writes it in the Hugging Face layout (config.json, model.safetensors,
// tokenizer.json) plus training.json recording the exact command, seeds, tokens seen, wall time
// and held-out loss.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "pipeline/pretrain.h"

namespace radlads::cli {

struct PretrainArgs {
  std::string model;    // preset name or YAML path (configs/models/)
  std::string train;    // training token dataset
  std::string heldout;  // held-out token dataset
  std::string out;      // output model directory
  std::uint64_t init_seed = 1;
  double init_range = 0.02;
  PretrainOptions opts;
  std::string command_line;  // recorded in training.json
};

Status RunPretrain(const PretrainArgs& args);

}  // namespace radlads::cli
