#include "storage/hf_config.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "storage/json_fields.h"
#include "storage/qwen2_fields.h"

namespace radlads {

std::int64_t Qwen2Config::ParameterCount() const {
  const std::int64_t d = hidden_size;
  std::int64_t attn = d * q_dim() + q_dim()          // q_proj + bias
                      + 2 * (d * kv_dim() + kv_dim())  // k_proj, v_proj + biases
                      + q_dim() * d;                  // o_proj
  std::int64_t mlp = 3 * d * intermediate_size;
  std::int64_t layer = attn + mlp + 2 * d;  // + two RMSNorm weights
  std::int64_t emb = vocab_size * d;
  return emb + (tie_word_embeddings ? 0 : emb) + num_hidden_layers * layer + d;
}

Status ValidateQwen2Config(const Qwen2Config& c, std::string_view source) {
  auto bad = [&](std::string_view key, const std::string& what) {
    return Status::InvalidArgument(std::string(source) + ": " + std::string(key) + ": " + what);
  };
  struct Pos { std::string_view key; std::int64_t v; };
  for (Pos p : {Pos{"vocab_size", c.vocab_size}, Pos{"hidden_size", c.hidden_size},
                Pos{"intermediate_size", c.intermediate_size},
                Pos{"num_hidden_layers", c.num_hidden_layers},
                Pos{"num_attention_heads", c.num_attention_heads},
                Pos{"num_key_value_heads", c.num_key_value_heads}, Pos{"head_dim", c.head_dim},
                Pos{"max_position_embeddings", c.max_position_embeddings}}) {
    if (p.v <= 0) return bad(p.key, std::to_string(p.v) + " must be a positive integer");
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return bad("num_key_value_heads", std::to_string(c.num_key_value_heads) +
                                          " does not divide num_attention_heads (" +
                                          std::to_string(c.num_attention_heads) + ")");
  }
  if (c.head_dim % 2 != 0) {
    return bad("head_dim", std::to_string(c.head_dim) + " must be even (rotate-half RoPE)");
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    return bad("rms_norm_eps", "must be a positive finite number");
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    return bad("rope_theta", "must be a positive finite number");
  }
  if (c.hidden_act != "silu") {
    return bad("hidden_act", "\"" + c.hidden_act + "\" is not supported; Qwen2 uses \"silu\"");
  }
  if (c.use_sliding_window) {
    return bad("use_sliding_window",
               "true is not supported (sliding-window attention teachers cannot be converted)");
  }
  if (c.bos_token_id >= c.vocab_size) {
    return bad("bos_token_id", std::to_string(c.bos_token_id) + " is outside the vocabulary (" +
                                   std::to_string(c.vocab_size) + ")");
  }
  for (std::int64_t e : c.eos_token_ids) {
    if (e < 0 || e >= c.vocab_size) {
      return bad("eos_token_id", std::to_string(e) + " is outside the vocabulary (" +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  return Status::Ok();
}

Status ParseQwen2CommonFields(const nlohmann::json& j, std::string_view source, Qwen2Config* out) {
  JsonFields f(j, source);
  Qwen2Config& c = *out;
  RADLADS_RETURN_IF_ERROR(f.StringList("architectures", &c.architectures));
  RADLADS_RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
  RADLADS_RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
  RADLADS_RETURN_IF_ERROR(f.Int("intermediate_size", &c.intermediate_size));
  RADLADS_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_hidden_layers));
  RADLADS_RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;  // transformers' default when absent or null
  RADLADS_RETURN_IF_ERROR(f.Int("num_key_value_heads", &c.num_key_value_heads));
  if (c.num_attention_heads <= 0) {
    return Status::InvalidArgument(std::string(source) +
                                   ": num_attention_heads: must be a positive integer");
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  RADLADS_RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim));
  RADLADS_RETURN_IF_ERROR(f.String("hidden_act", &c.hidden_act));
  RADLADS_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c.max_position_embeddings));
  RADLADS_RETURN_IF_ERROR(f.Number("rms_norm_eps", &c.rms_norm_eps));
  RADLADS_RETURN_IF_ERROR(f.Number("rope_theta", &c.rope_theta));
  RADLADS_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  RADLADS_RETURN_IF_ERROR(f.Bool("use_sliding_window", &c.use_sliding_window));
  RADLADS_RETURN_IF_ERROR(f.Int("sliding_window", &c.sliding_window));
  RADLADS_RETURN_IF_ERROR(f.Int("max_window_layers", &c.max_window_layers));
  RADLADS_RETURN_IF_ERROR(f.Number("attention_dropout", &c.attention_dropout));
  RADLADS_RETURN_IF_ERROR(f.Int("bos_token_id", &c.bos_token_id));
  RADLADS_RETURN_IF_ERROR(f.IntOrIntList("eos_token_id", &c.eos_token_ids));
  RADLADS_RETURN_IF_ERROR(f.String("torch_dtype", &c.torch_dtype));
  RADLADS_RETURN_IF_ERROR(f.String("dtype", &c.torch_dtype));  // transformers >= 5 name
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return Status::InvalidArgument(std::string(source) +
                                   ": rope_scaling: only null is supported (got " +
                                   j["rope_scaling"].dump() + ")");
  }
  // transformers >= 5 writes the RoPE settings as rope_parameters {rope_type, rope_theta}.
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return f.TypeError("rope_parameters", "an object");
    JsonFields rp(*it, std::string(source) + ": rope_parameters");
    std::string type = "default";
    RADLADS_RETURN_IF_ERROR(rp.String("rope_type", &type));
    if (type != "default") {
      return Status::InvalidArgument(std::string(source) + ": rope_parameters.rope_type: \"" + type +
                                     "\" is not supported; expected \"default\" (plain RoPE)");
    }
    RADLADS_RETURN_IF_ERROR(rp.Number("rope_theta", &c.rope_theta));
  }
  if (auto it = j.find("layer_types"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return f.TypeError("layer_types", "a list of strings");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& t = (*it)[i];
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        return Status::InvalidArgument(std::string(source) + ": layer_types[" + std::to_string(i) +
                                       "]: " + t.dump() +
                                       " is not supported; every layer must be \"full_attention\"");
      }
    }
  }
  return Status::Ok();
}

Result<Qwen2Config> ParseQwen2ConfigJson(std::string_view json_text, std::string_view source) {
  RADLADS_ASSIGN_OR_RETURN(nlohmann::json j, ParseJsonObject(json_text, source));
  JsonFields f(j, source);
  Qwen2Config c;
  if (!j.contains("model_type")) {
    return Status::InvalidArgument(std::string(source) +
                                   ": model_type: missing; expected \"qwen2\"");
  }
  RADLADS_RETURN_IF_ERROR(f.String("model_type", &c.model_type));
  if (c.model_type != "qwen2") {
    return Status::InvalidArgument(std::string(source) + ": model_type: \"" + c.model_type +
                                   "\" is not a Qwen2 teacher; expected \"qwen2\"");
  }
  RADLADS_RETURN_IF_ERROR(ParseQwen2CommonFields(j, source, &c));
  if (j.contains("attention_bias")) {
    RADLADS_RETURN_IF_ERROR(f.Bool("attention_bias", &c.attention_bias));
    if (!c.attention_bias) {
      return Status::InvalidArgument(std::string(source) +
                                     ": attention_bias: Qwen2 has q/k/v biases; false is not a "
                                     "Qwen2 model");
    }
  }
  RADLADS_RETURN_IF_ERROR(ValidateQwen2Config(c, source));
  return c;
}

Result<Qwen2Config> LoadQwen2Config(const std::string& dir_or_file) {
  std::string path = IsDirectory(dir_or_file) ? JoinPath(dir_or_file, "config.json") : dir_or_file;
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseQwen2ConfigJson(text, path);
}

std::string Qwen2ConfigToJson(const Qwen2Config& c) {
  nlohmann::ordered_json j;
  j["architectures"] = c.architectures;
  j["attention_dropout"] = c.attention_dropout;
  j["bos_token_id"] = c.bos_token_id >= 0 ? nlohmann::ordered_json(c.bos_token_id)
                                          : nlohmann::ordered_json(nullptr);
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (c.eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = c.hidden_act;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["max_window_layers"] = c.max_window_layers;
  j["model_type"] = c.model_type;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = c.rope_theta;
  j["sliding_window"] = c.sliding_window;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["use_cache"] = true;
  j["use_sliding_window"] = c.use_sliding_window;
  j["vocab_size"] = c.vocab_size;
  return j.dump(2) + "\n";
}

std::string DescribeQwen2Config(const Qwen2Config& c) {
  char buf[512];
  double params = static_cast<double>(c.ParameterCount());
  const char* unit = "";
  double scaled = params;
  if (params >= 1e9) { scaled = params / 1e9; unit = "B"; }
  else if (params >= 1e6) { scaled = params / 1e6; unit = "M"; }
  else if (params >= 1e3) { scaled = params / 1e3; unit = "K"; }
  std::snprintf(buf, sizeof(buf),
                "%s: %lld layers, hidden %lld, %lld heads / %lld kv (head_dim %lld), mlp %lld, "
                "vocab %lld, %s, %.2f%s params",
                c.model_type.c_str(), static_cast<long long>(c.num_hidden_layers),
                static_cast<long long>(c.hidden_size),
                static_cast<long long>(c.num_attention_heads),
                static_cast<long long>(c.num_key_value_heads), static_cast<long long>(c.head_dim),
                static_cast<long long>(c.intermediate_size), static_cast<long long>(c.vocab_size),
                c.tie_word_embeddings ? "tied" : "untied", scaled, unit);
  return buf;
}

}  // namespace radlads
