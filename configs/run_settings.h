// Run configs: everything `radlads-coord run CONFIG --run DIR` needs to run the whole protocol
// on one machine (configs/tiny-rwkv6.yaml, configs/tiny-rwkv7.yaml are the embedded default).
// A run config names the teacher directory, the recipe, the cluster layout, the training and
// held-out text (or token datasets), and the evaluation. Relative paths are relative to the
// config file's directory.
//
// Contract: strict reading as in configs/yaml_reader.h ("<file>:<line>: <key>: ...").
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "configs/yaml_reader.h"

namespace radlads {

struct RunDataSettings {
  std::vector<std::string> train;    // text files (.txt, .txt.gz) or one token dataset
  std::vector<std::string> heldout;  // never used for training; evaluation only
  // For text inputs and the evaluation's samples (storage/text_tokenizer.h TextTokenizer::ForRun):
  // "teacher" (the teacher directory's tokenizer.json; byte tokens without one) or "bytes".
  std::string tokenizer = "teacher";
};

struct RunEvalSettings {
  std::int64_t max_tokens = 0;  // held-out tokens evaluated; 0 = the whole held-out set
  std::int64_t seq_len = 0;     // 0 = the recipe's step-2 sequence length
  std::int64_t batch = 8;       // windows per evaluation batch
  std::string prompt = "It is a truth universally acknowledged";
  std::int64_t generate_tokens = 160;  // greedy continuation length for the summary
};

struct RunSettings {
  std::string name;         // file stem
  std::string description;
  std::string base_dir;     // directory of the config file (relative paths start here)
  std::string teacher;      // Hugging Face model directory (model_type qwen2)
  std::string recipe;       // name or path (configs/recipes/)
  std::string cluster = "local-cpu";
  RunDataSettings data;
  RunEvalSettings eval;
  std::uint64_t seed = 1;   // step-0 initialisation of the new parameters
  std::string cache_dtype = "F32";  // activation cache storage: F32 or BF16

  // base_dir joined with a relative path; absolute paths unchanged.
  std::string Resolve(const std::string& path) const;
};

Result<RunSettings> ParseRunSettingsYaml(std::string_view text, std::string_view source);
Result<RunSettings> LoadRunSettings(const std::string& path);
std::vector<config::FieldDoc> RunSettingsFieldDocs();

}  // namespace radlads
