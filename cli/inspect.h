// `radlads-model inspect PATH`: what is at PATH, for a human or (with --json) a script.
//   - a model directory (config.json + model.safetensors or shards): the config, a check of
//     every tensor against what the config implies, and the tensor table;
//   - a .safetensors file: metadata and the tensor table;
//   - a tokenized dataset (binidx prefix, .npy, .u32): format and token statistics.
// Returns a Status; the CLI maps it to the exit code (2 for invalid input naming the path).
#pragma once

#include <cstdio>
#include <string>

#include "base/status.h"

namespace radlads::cli {

struct InspectOptions {
  bool json = false;
  bool all_tensors = false;   // print every tensor row (default: the first 40)
  std::string format;         // dataset format override ("", "binidx", "npy", "u32", "u16")
};

Status Inspect(const std::string& path, const InspectOptions& opts, std::FILE* out);

}  // namespace radlads::cli
