// `radlads-model logits --model DIR --tokens 1,2,3|FILE [--out FILE.npy]`: the float32 logits
// [T, vocab] of any supported model directory (a Qwen2 teacher, or a student in the released
// rwkv6qwen2 / rwkv7qwen2 layout, including ones we did not write), so anyone can check us
// against another implementation.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/status.h"
#include "kernels/tensor.h"

namespace radlads::cli {

// Parses "1,2,3" (commas and/or whitespace), or reads a file: a 1-D integer .npy, or text with
// integers separated by commas/whitespace. Errors name the source and the offending entry.
Result<std::vector<std::int32_t>> ParseTokenList(const std::string& spec);

// Logits of `tokens` (one sequence, positions 0..T-1) for the model in `dir`: [T, vocab] F32.
Result<Tensor> ComputeLogits(const std::string& dir, const std::vector<std::int32_t>& tokens);

struct LogitsArgs {
  std::string model;
  std::string tokens;
  std::string out;  // empty: print a summary to stdout
};

Status RunLogits(const LogitsArgs& args, std::FILE* out);

}  // namespace radlads::cli
