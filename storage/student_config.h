// Hugging Face `config.json` of converted students, in the layout of the models the RADLADS
// paper released (model_type "rwkv6qwen2" / "rwkv7qwen2"; docs/spec.md §9.1), so users load
// our students with the code they already have, and we load theirs.
//
// - Parsing applies the released modeling code's defaults, including its per-type LoRA-rank
//   defaults when a `lora_rank_*` key is null (they differ between the two types: see
//   DefaultLoraRank). Serialising writes every key explicitly, ranks included.
// - Settings the engine cannot honour are rejected with an error naming the key (hybrid
//   `num_attention_layers` > 0, tokenshift on rwkv7qwen2, rope_scaling).
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/hf_config.h"

namespace radlads {

enum class StudentArch { kRwkv6, kRwkv7 };

// "rwkv6qwen2" / "rwkv7qwen2".
std::string_view StudentModelType(StudentArch a);
// "rad-rwkv6" / "rad-rwkv7" (the recipe's names).
std::string_view StudentArchName(StudentArch a);

struct StudentConfig {
  StudentArch arch = StudentArch::kRwkv7;
  Qwen2Config base;  // sizes, norms, RoPE theta, special tokens (model_type is ignored)

  bool use_rope = false;
  bool attention_bias = true;          // q/k/v projections have biases
  bool attention_output_bias = false;  // o_proj bias
  int gate_rank_type = 2;              // 0 none, 1 full-rank `gate`, 2 LoRA g1/g2
  bool balance_state = true;
  bool groupnorm_att = false;
  bool use_tokenshift = false;
  // Resolved LoRA ranks (never 0 after parsing; 0 in a field that does not apply).
  std::int64_t lora_rank_decay = 0;
  std::int64_t lora_rank_gate = 0;
  std::int64_t lora_rank_tokenshift = 0;          // rwkv6 only
  std::int64_t lora_rank_iclr = 0;                // rwkv7 only
  std::int64_t lora_rank_value_residual_mix = 0;  // rwkv7 only

  // Defaults of the released modeling code for `arch` (flags and null-rank defaults).
  static StudentConfig Defaults(StudentArch arch, const Qwen2Config& base);
};

// r(e, m) = 32 * max(1, round(D^e * m / 32)) (docs/spec.md §3.0; Python's round-half-even).
std::int64_t LoraRankFormula(std::int64_t hidden, double e, double m);

// The rank the released modeling code uses when `lora_rank_<which>` is null. `which` is one of
// "decay", "gate", "tokenshift", "iclr", "value_residual_mix".
std::int64_t DefaultLoraRank(StudentArch arch, std::string_view which, std::int64_t hidden);

Status ValidateStudentConfig(const StudentConfig& c, std::string_view source);

Result<StudentConfig> ParseStudentConfigJson(std::string_view json_text, std::string_view source);
// Reads DIR/config.json (or the json file itself).
Result<StudentConfig> LoadStudentConfig(const std::string& dir_or_file);

// Every key explicit, with model_type, architectures and auto_map of the released layout.
std::string StudentConfigToJson(const StudentConfig& c);

// Reads the model_type of DIR/config.json: "qwen2", "rwkv6qwen2", "rwkv7qwen2" or whatever the
// file says (callers reject the rest).
Result<std::string> ReadModelType(const std::string& dir_or_file);

}  // namespace radlads
