// Helpers for the RAD-RWKV6 mixer tests: small student configs, random parameters at scales
// where every path of the mixer matters, and fp32 ParamSet <-> fp64 reference parameter maps.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "pipeline/param_set.h"
#include "pipeline/ref/rwkv6_mixer_ref.h"
#include "pipeline/rwkv6_mixer.h"
#include "storage/student_config.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads::testing {

struct Rwkv6Flags {
  bool use_tokenshift = true;
  int gate_rank_type = 1;
  bool balance_state = true;
  bool groupnorm_att = false;
  bool use_rope = false;
  bool attention_bias = true;
  bool attention_output_bias = false;
};

struct Rwkv6Sizes {
  std::int64_t C = 40, H = 4, KV = 2, N = 10;
  std::int64_t r_ts = 6, r_d = 8, r_g = 5;
  std::int64_t layers = 3;
};

inline StudentConfig MakeRwkv6Config(const Rwkv6Sizes& s, const Rwkv6Flags& f) {
  Qwen2Config base;
  base.vocab_size = 64;
  base.hidden_size = s.C;
  base.intermediate_size = 2 * s.C;
  base.num_hidden_layers = s.layers;
  base.num_attention_heads = s.H;
  base.num_key_value_heads = s.KV;
  base.head_dim = s.N;
  base.max_position_embeddings = 1024;
  base.rope_theta = 10000.0;
  StudentConfig c = StudentConfig::Defaults(StudentArch::kRwkv6, base);
  c.use_tokenshift = f.use_tokenshift;
  c.gate_rank_type = f.gate_rank_type;
  c.balance_state = f.balance_state;
  c.groupnorm_att = f.groupnorm_att;
  c.use_rope = f.use_rope;
  c.attention_bias = f.attention_bias;
  c.attention_output_bias = f.attention_output_bias;
  c.lora_rank_tokenshift = s.r_ts;
  c.lora_rank_decay = s.r_d;
  c.lora_rank_gate = s.r_g;
  return c;
}

inline std::string FlagsString(const StudentConfig& c) {
  return "tokenshift=" + std::to_string(c.use_tokenshift) + " gate=" + std::to_string(c.gate_rank_type) +
         " balance=" + std::to_string(c.balance_state) + " groupnorm=" + std::to_string(c.groupnorm_att) +
         " rope=" + std::to_string(c.use_rope) + " qkv_bias=" + std::to_string(c.attention_bias) +
         " o_bias=" + std::to_string(c.attention_output_bias);
}

// The name suffix of a mixer parameter ("q_proj.weight" of "model.layers.1.self_attn.q_proj.weight").
inline std::string MixerSuffix(const std::string& name) {
  const std::string key = ".self_attn.";
  const auto at = name.find(key);
  return at == std::string::npos ? name : name.substr(at + key.size());
}

// Channels a with a % kClampEvery == 2 get time_decay ~ 3 (exp(3) = 20 > 5: log w clamped at -5
// at every position); the others time_decay in [-3, 0.3] (never near the kink at ln 5 = 1.61).
inline constexpr std::int64_t kClampEvery = 5;
inline bool IsClampedChannel(std::int64_t a) { return a % kClampEvery == 2; }

// Fresh random values for every parameter of `layer`'s mixer (declared beforehand), at scales
// where each path contributes with x ~ N(0, 1): projections ~ 1/sqrt(fan_in), biases 0.3,
// tokenshift mixes ~0.5, decay LoRA small enough that no channel crosses the clamp's kink.
inline void RandomizeRwkv6Params(const StudentConfig& cfg, int layer, ParamSet& params, Rng& rng) {
  const std::string prefix = Rwkv6MixerPrefix(layer);
  const double C = static_cast<double>(cfg.base.hidden_size);
  const double A = static_cast<double>(cfg.base.num_attention_heads * cfg.base.head_dim);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  for (Param* p : params.params()) {
    if (p->name.rfind(prefix, 0) != 0) continue;
    const std::string s = MixerSuffix(p->name);
    float* v = p->value.f32();
    const std::int64_t n = p->value.numel();
    auto normal = [&](double mean, double std) {
      for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(mean + std * nd(rng));
    };
    if (s == "q_proj.weight" || s == "k_proj.weight" || s == "v_proj.weight" || s == "gate.weight" ||
        s == "g1" || s == "time_maa_w1" || s == "time_decay_w1") {
      normal(0.0, 1.0 / std::sqrt(C));
    } else if (s == "o_proj.weight") {
      normal(0.0, 1.0 / std::sqrt(A));
    } else if (s.ends_with(".bias")) {
      normal(0.0, 0.3);
    } else if (s == "ln_x.weight") {
      normal(1.0, 0.3);
    } else if (s == "g2") {
      normal(0.0, 0.5);
    } else if (s == "time_maa_w2") {
      normal(0.0, 0.3);
    } else if (s.rfind("time_maa_", 0) == 0) {
      normal(0.0, 0.5);
    } else if (s == "time_decay") {
      for (std::int64_t a = 0; a < n; ++a)
        v[a] = static_cast<float>(IsClampedChannel(a) ? 3.0 + 0.3 * (2 * ud(rng) - 1) : -3.0 + 3.3 * ud(rng));
    } else if (s == "time_decay_w2") {
      normal(0.0, 0.05);
    } else {
      ADD_FAILURE() << "no random scale for " << p->name;
    }
  }
}

// The mixer's parameters of `layer` as the fp64 reference wants them (exact copies).
inline ref::Rwkv6RefParams RefParamsOf(const ParamSet& params, int layer) {
  const std::string prefix = Rwkv6MixerPrefix(layer);
  ref::Rwkv6RefParams out;
  for (const Param* p : params.params())
    if (p->name.rfind(prefix, 0) == 0) out[MixerSuffix(p->name)] = ToF64(p->value);
  return out;
}

}  // namespace radlads::testing
