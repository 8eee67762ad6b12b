// Model presets: configs/models/<name>.yaml describe a Qwen2-architecture teacher by its shapes
// (docs/spec.md §3.0) without needing its checkpoint: the planner sizes memory, time and cost
// from them, and the tiny default's teacher is defined by one.
//
// Contract:
// - A preset produces exactly the Qwen2Config (storage/hf_config.h) that the checkpoint's
//   config.json would produce, and passes ValidateQwen2Config. Its keys are config.json's own
//   names; keys transformers allows but the math cannot honour (hidden_act, rope_scaling,
//   use_sliding_window, attention_bias) are not part of the schema and are refused as unknown.
// - `tokenizer` (optional) names the directory holding the model's tokenizer files, relative to
//   the preset file's directory; LoadModelPreset resolves it (tokenizer_dir) and checks that it
//   holds a tokenizer.json or tokenizer.json.gz. `radlads-model init` copies it into the models
//   it writes.
// - Strict reading as in configs/yaml_reader.h: errors are "<file>:<line>: <key>: ...".
// - A preset is addressed by name ("qwen2.5-7b", looked up in ConfigsDir()/models) or by path.
// Thread-safety: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "configs/yaml_reader.h"
#include "storage/hf_config.h"

namespace radlads {

struct ModelPreset {
  std::string name;         // file stem ("qwen2.5-7b"); for text input, the stem of `source`
  std::string description;  // one line for `plan` output
  std::string hf_repo;      // the checkpoint whose config.json the preset mirrors (informational)
  // RMS eps of the base (non-instruct) checkpoint of the same size, when it differs
  // (docs/spec.md §6.3). Informational: the teacher's own config.json always wins.
  double base_rms_norm_eps = 0.0;  // 0: same as config.rms_norm_eps
  std::string tokenizer;      // the `tokenizer` key as written ("" when absent)
  std::string tokenizer_dir;  // `tokenizer` resolved against the preset file's directory
  Qwen2Config config;
};

// Parses preset YAML text; `source` names the file in messages.
Result<ModelPreset> ParseModelPresetYaml(std::string_view text, std::string_view source);

// Loads a preset by name or path (configs/config_files.h).
Result<ModelPreset> LoadModelPreset(std::string_view name_or_path);

// The preset schema's reference rows (docs/configs.md).
std::vector<config::FieldDoc> ModelPresetFieldDocs();

}  // namespace radlads
