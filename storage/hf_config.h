// Hugging Face `config.json` for Qwen2 / Qwen2.5 teachers (model_type "qwen2").
//
// Qwen2Config holds every field the math needs. Parsing applies the defaults transformers'
// Qwen2Config applies when a key is absent, so a config.json read here means what it means to
// transformers. Fields the math cannot honour (a rope_scaling, an active sliding window, an
// activation other than silu) are rejected with an error, never ignored.
//
// Errors name the file, the key and what was expected
// ("teacher/config.json: num_key_value_heads: 3 does not divide num_attention_heads (14)").
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace radlads {

struct Qwen2Config {
  std::string model_type = "qwen2";
  std::vector<std::string> architectures = {"Qwen2ForCausalLM"};
  std::int64_t vocab_size = 151936;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 22016;
  std::int64_t num_hidden_layers = 32;
  std::int64_t num_attention_heads = 32;
  std::int64_t num_key_value_heads = 32;  // transformers: defaults to num_attention_heads
  std::int64_t head_dim = 128;            // optional key; default hidden_size / heads
  std::string hidden_act = "silu";
  std::int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool use_sliding_window = false;
  std::int64_t sliding_window = 4096;
  std::int64_t max_window_layers = 28;
  double attention_dropout = 0.0;
  std::int64_t bos_token_id = -1;         // -1: absent / null
  std::vector<std::int64_t> eos_token_ids;  // config may hold an int or a list
  std::string torch_dtype = "float32";
  // Qwen2 hard-codes bias on q/k/v and none on o and the MLP; kept explicit for the student.
  bool attention_bias = true;

  // Derived sizes.
  std::int64_t q_dim() const { return num_attention_heads * head_dim; }
  std::int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  std::int64_t group_size() const { return num_attention_heads / num_key_value_heads; }
  // Parameters of the whole model (embeddings, head when untied, all layers, final norm).
  std::int64_t ParameterCount() const;
};

// Checks the relations between fields (positive sizes, heads divide, head_dim even for RoPE,
// eps and theta positive). `source` names the file or preset in messages.
Status ValidateQwen2Config(const Qwen2Config& c, std::string_view source);

// Parses config.json text. `source` is used in messages (normally the file path).
Result<Qwen2Config> ParseQwen2ConfigJson(std::string_view json_text, std::string_view source);

// Reads DIR/config.json (or a path to the json file itself).
Result<Qwen2Config> LoadQwen2Config(const std::string& dir_or_file);

// Serialises with every key explicit, in the layout transformers writes (2-space indent).
std::string Qwen2ConfigToJson(const Qwen2Config& c);

// One line for logs and `inspect`: "qwen2: 28 layers, hidden 3584, 28 heads / 4 kv (head_dim
// 128), mlp 18944, vocab 152064, untied, 7.62B params".
std::string DescribeQwen2Config(const Qwen2Config& c);

}  // namespace radlads
