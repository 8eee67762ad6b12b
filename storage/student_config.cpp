#include "storage/student_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "storage/json_fields.h"
#include "storage/qwen2_fields.h"

namespace radlads {
namespace {

std::string PathOrConfig(const std::string& dir_or_file) {
  return IsDirectory(dir_or_file) ? JoinPath(dir_or_file, "config.json") : dir_or_file;
}

Status Bad(std::string_view source, std::string_view key, const std::string& what) {
  return Status::InvalidArgument(std::string(source) + ": " + std::string(key) + ": " + what);
}

}  // namespace

std::string_view StudentModelType(StudentArch a) {
  return a == StudentArch::kRwkv6 ? "rwkv6qwen2" : "rwkv7qwen2";
}

std::string_view StudentArchName(StudentArch a) {
  return a == StudentArch::kRwkv6 ? "rad-rwkv6" : "rad-rwkv7";
}

std::int64_t LoraRankFormula(std::int64_t hidden, double e, double m) {
  double x = std::pow(static_cast<double>(hidden), e) * m / 32.0;
  double r = std::nearbyint(x);  // round-half-even, as Python's round()
  return 32 * std::max<std::int64_t>(1, static_cast<std::int64_t>(r));
}

std::int64_t DefaultLoraRank(StudentArch arch, std::string_view which, std::int64_t hidden) {
  if (which == "gate") return LoraRankFormula(hidden, 0.8, 0.6);
  if (arch == StudentArch::kRwkv7) {
    if (which == "decay" || which == "iclr") return LoraRankFormula(hidden, 0.5, 1.8);
    if (which == "value_residual_mix") return LoraRankFormula(hidden, 0.5, 1.3);
    return 0;
  }
  if (which == "tokenshift") return hidden < 4096 ? 32 : 64;
  if (which == "decay") return hidden < 4096 ? 64 : 128;
  return 0;
}

StudentConfig StudentConfig::Defaults(StudentArch arch, const Qwen2Config& base) {
  StudentConfig c;
  c.arch = arch;
  c.base = base;
  const std::int64_t d = base.hidden_size;
  c.lora_rank_decay = DefaultLoraRank(arch, "decay", d);
  c.lora_rank_gate = DefaultLoraRank(arch, "gate", d);
  if (arch == StudentArch::kRwkv6) {
    c.use_rope = false;
    c.gate_rank_type = 1;
    c.use_tokenshift = true;
    c.lora_rank_tokenshift = DefaultLoraRank(arch, "tokenshift", d);
  } else {
    c.use_rope = false;
    c.gate_rank_type = 2;
    c.use_tokenshift = false;
    c.lora_rank_iclr = DefaultLoraRank(arch, "iclr", d);
    c.lora_rank_value_residual_mix = DefaultLoraRank(arch, "value_residual_mix", d);
  }
  c.balance_state = true;
  c.groupnorm_att = false;
  return c;
}

Status ValidateStudentConfig(const StudentConfig& c, std::string_view source) {
  RADLADS_RETURN_IF_ERROR(ValidateQwen2Config(c.base, source));
  if (c.gate_rank_type < 0 || c.gate_rank_type > 2) {
    return Bad(source, "gate_rank_type",
               std::to_string(c.gate_rank_type) + " is not 0 (none), 1 (full) or 2 (LoRA)");
  }
  if (c.arch == StudentArch::kRwkv7 && c.use_tokenshift) {
    return Bad(source, "use_tokenshift",
               "true is not supported for rwkv7qwen2 (RAD-RWKV7 has no tokenshift)");
  }
  auto positive = [&](std::string_view key, std::int64_t v) -> Status {
    if (v <= 0) return Bad(source, key, std::to_string(v) + " must be a positive rank");
    return Status::Ok();
  };
  RADLADS_RETURN_IF_ERROR(positive("lora_rank_decay", c.lora_rank_decay));
  if (c.gate_rank_type == 2) RADLADS_RETURN_IF_ERROR(positive("lora_rank_gate", c.lora_rank_gate));
  if (c.arch == StudentArch::kRwkv6 && c.use_tokenshift) {
    RADLADS_RETURN_IF_ERROR(positive("lora_rank_tokenshift", c.lora_rank_tokenshift));
  }
  if (c.arch == StudentArch::kRwkv7) {
    RADLADS_RETURN_IF_ERROR(positive("lora_rank_iclr", c.lora_rank_iclr));
    RADLADS_RETURN_IF_ERROR(positive("lora_rank_value_residual_mix", c.lora_rank_value_residual_mix));
  }
  return Status::Ok();
}

Result<StudentConfig> ParseStudentConfigJson(std::string_view json_text, std::string_view source) {
  RADLADS_ASSIGN_OR_RETURN(nlohmann::json j, ParseJsonObject(json_text, source));
  JsonFields f(j, source);
  std::string model_type;
  RADLADS_RETURN_IF_ERROR(f.String("model_type", &model_type));
  StudentArch arch;
  if (model_type == "rwkv6qwen2") {
    arch = StudentArch::kRwkv6;
  } else if (model_type == "rwkv7qwen2") {
    arch = StudentArch::kRwkv7;
  } else {
    return Bad(source, "model_type",
               "\"" + model_type + "\" is not a student; expected \"rwkv6qwen2\" or \"rwkv7qwen2\"");
  }
  Qwen2Config base;
  RADLADS_RETURN_IF_ERROR(ParseQwen2CommonFields(j, source, &base));
  base.model_type = "qwen2";
  base.architectures = {"Qwen2ForCausalLM"};
  StudentConfig c = StudentConfig::Defaults(arch, base);

  RADLADS_RETURN_IF_ERROR(f.Bool("use_rope", &c.use_rope));
  RADLADS_RETURN_IF_ERROR(f.Bool("attention_bias", &c.attention_bias));
  RADLADS_RETURN_IF_ERROR(f.Bool("attention_output_bias", &c.attention_output_bias));
  std::int64_t grt = c.gate_rank_type;
  RADLADS_RETURN_IF_ERROR(f.Int("gate_rank_type", &grt));
  c.gate_rank_type = static_cast<int>(grt);
  RADLADS_RETURN_IF_ERROR(f.Bool("balance_state", &c.balance_state));
  RADLADS_RETURN_IF_ERROR(f.Bool("groupnorm_att", &c.groupnorm_att));
  RADLADS_RETURN_IF_ERROR(f.Bool("use_tokenshift", &c.use_tokenshift));
  RADLADS_RETURN_IF_ERROR(f.Int("lora_rank_decay", &c.lora_rank_decay));
  RADLADS_RETURN_IF_ERROR(f.Int("lora_rank_gate", &c.lora_rank_gate));
  if (arch == StudentArch::kRwkv6) {
    RADLADS_RETURN_IF_ERROR(f.Int("lora_rank_tokenshift", &c.lora_rank_tokenshift));
  } else {
    RADLADS_RETURN_IF_ERROR(f.Int("lora_rank_iclr", &c.lora_rank_iclr));
    RADLADS_RETURN_IF_ERROR(
        f.Int("lora_rank_value_residual_mix", &c.lora_rank_value_residual_mix));
    std::int64_t attn_layers = 0;
    RADLADS_RETURN_IF_ERROR(f.Int("num_attention_layers", &attn_layers));
    if (attn_layers != 0) {
      return Bad(source, "num_attention_layers",
                 std::to_string(attn_layers) +
                     ": hybrid students with softmax-attention layers are not supported; expected 0");
    }
  }
  RADLADS_RETURN_IF_ERROR(ValidateStudentConfig(c, source));
  return c;
}

Result<StudentConfig> LoadStudentConfig(const std::string& dir_or_file) {
  std::string path = PathOrConfig(dir_or_file);
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseStudentConfigJson(text, path);
}

Result<std::string> ReadModelType(const std::string& dir_or_file) {
  std::string path = PathOrConfig(dir_or_file);
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  RADLADS_ASSIGN_OR_RETURN(nlohmann::json j, ParseJsonObject(text, path));
  std::string model_type;
  RADLADS_RETURN_IF_ERROR(JsonFields(j, path).String("model_type", &model_type));
  if (model_type.empty()) {
    return Status::InvalidArgument(path + ": model_type: missing; expected \"qwen2\", "
                                          "\"rwkv6qwen2\" or \"rwkv7qwen2\"");
  }
  return model_type;
}

std::string StudentConfigToJson(const StudentConfig& c) {
  const Qwen2Config& b = c.base;
  const bool v6 = c.arch == StudentArch::kRwkv6;
  const std::string n = v6 ? "6" : "7";
  nlohmann::ordered_json j;
  j["architectures"] = {"RWKV" + n + "Qwen2ForCausalLM"};
  j["auto_map"] = {
      {"AutoConfig", "configuration_rwkv" + n + "qwen2.RWKV" + n + "Qwen2Config"},
      {"AutoModelForCausalLM", "modeling_rwkv" + n + "qwen2.RWKV" + n + "Qwen2ForCausalLM"}};
  j["model_type"] = std::string(StudentModelType(c.arch));
  j["attention_bias"] = c.attention_bias;
  j["attention_dropout"] = b.attention_dropout;
  j["attention_output_bias"] = c.attention_output_bias;
  j["balance_state"] = c.balance_state;
  j["bos_token_id"] = b.bos_token_id >= 0 ? nlohmann::ordered_json(b.bos_token_id)
                                          : nlohmann::ordered_json(nullptr);
  if (b.eos_token_ids.size() == 1) j["eos_token_id"] = b.eos_token_ids[0];
  else if (b.eos_token_ids.empty()) j["eos_token_id"] = nullptr;
  else j["eos_token_id"] = b.eos_token_ids;
  j["gate_rank_type"] = c.gate_rank_type;
  j["groupnorm_att"] = c.groupnorm_att;
  j["head_dim"] = b.head_dim;
  j["hidden_act"] = b.hidden_act;
  j["hidden_size"] = b.hidden_size;
  j["intermediate_size"] = b.intermediate_size;
  j["lora_rank_decay"] = c.lora_rank_decay;
  j["lora_rank_gate"] = c.lora_rank_gate;
  if (v6) {
    j["lora_rank_tokenshift"] = c.lora_rank_tokenshift;
  } else {
    j["lora_rank_iclr"] = c.lora_rank_iclr;
    j["lora_rank_value_residual_mix"] = c.lora_rank_value_residual_mix;
    j["num_attention_layers"] = 0;
  }
  j["max_position_embeddings"] = b.max_position_embeddings;
  j["num_attention_heads"] = b.num_attention_heads;
  j["num_hidden_layers"] = b.num_hidden_layers;
  j["num_key_value_heads"] = b.num_key_value_heads;
  j["rms_norm_eps"] = b.rms_norm_eps;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = b.rope_theta;
  j["tie_word_embeddings"] = b.tie_word_embeddings;
  j["torch_dtype"] = b.torch_dtype;
  j["use_cache"] = true;
  j["use_rope"] = c.use_rope;
  j["use_tokenshift"] = c.use_tokenshift;
  j["vocab_size"] = b.vocab_size;
  return j.dump(2) + "\n";
}

}  // namespace radlads
