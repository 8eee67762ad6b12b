// Small random decoders for the whole-model tests (tests/pipeline/model_gradient_test.cpp,
// tests/mpi/gang_trainer_test.cpp): a Qwen2 configuration of given sizes, the students with the
// recipes' defaults for their architecture and small distinct LoRA ranks, and fresh random
// values at scales where every path matters.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "pipeline/param_set.h"
#include "storage/hf_config.h"
#include "storage/student_config.h"
#include "tests/testing/test_util.h"

namespace radlads::testing {

struct SmallSizes {
  std::int64_t vocab, hidden, intermediate, heads, kv_heads, head_dim, layers;
};

inline Qwen2Config SmallQwen2Config(const SmallSizes& z, bool tied) {
  Qwen2Config c;
  c.vocab_size = z.vocab;
  c.hidden_size = z.hidden;
  c.intermediate_size = z.intermediate;
  c.num_hidden_layers = z.layers;
  c.num_attention_heads = z.heads;
  c.num_key_value_heads = z.kv_heads;
  c.head_dim = z.head_dim;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  return c;
}

// The students with the recipes' defaults for their architecture (configs/recipe_types.cpp):
// RAD-RWKV6 with tokenshift, a full-rank gate, balance_state, no RoPE; RAD-RWKV7 with RoPE, the
// LoRA gate, balance_state. LoRA ranks small and distinct.
inline StudentConfig SmallStudentConfig(StudentArch arch, const Qwen2Config& base) {
  StudentConfig c = StudentConfig::Defaults(arch, base);
  if (arch == StudentArch::kRwkv6) {
    c.use_tokenshift = true;
    c.gate_rank_type = 1;
    c.use_rope = false;
    c.lora_rank_tokenshift = 3;
    c.lora_rank_decay = 4;
    c.lora_rank_gate = 5;
    return c;
  }
  c.use_rope = true;
  c.gate_rank_type = 2;
  c.lora_rank_decay = 4;
  c.lora_rank_iclr = 3;
  c.lora_rank_value_residual_mix = 5;
  c.lora_rank_gate = 3;
  return c;
}

// Fresh random values for the decoder's own tensors: unit-order activations, logits of std ~1.5
// (softmax neither flat nor one-hot), norm weights away from 1. Mixer tensors are left alone
// (their own helpers fill them).
inline void RandomizeDecoderParams(const Qwen2Config& cfg, ParamSet& params, Rng& rng) {
  const double C = static_cast<double>(cfg.hidden_size);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(0.5, 1.5);
  for (Param* p : params.params()) {
    const std::string& s = p->name;
    float* v = p->value.f32();
    const std::int64_t n = p->value.numel();
    auto normal = [&](double std) {
      for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std * nd(rng));
    };
    if (s == "model.embed_tokens.weight" || s == "lm_head.weight") {
      normal(1.5 / std::sqrt(C));  // also the head when tied; x_0 is normalised by the block
    } else if (s.ends_with("norm.weight")) {
      for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(ud(rng));
    } else if (s.ends_with("mlp.down_proj.weight")) {
      normal(1.0 / std::sqrt(static_cast<double>(cfg.intermediate_size)));
    } else if (s.ends_with("mlp.gate_proj.weight") || s.ends_with("mlp.up_proj.weight")) {
      normal(1.0 / std::sqrt(C));
    } else if (s.find(".self_attn.") == std::string::npos) {
      ADD_FAILURE() << "no random scale for " << s;
    }
  }
}

// The teacher's attention tensors (q/k/v/o and the biases).
inline void RandomizeTeacherAttention(const Qwen2Config& cfg, ParamSet& params, Rng& rng) {
  const double C = static_cast<double>(cfg.hidden_size);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (Param* p : params.params()) {
    const std::string& s = p->name;
    if (s.find(".self_attn.") == std::string::npos) continue;
    float* v = p->value.f32();
    double std = 1.0 / std::sqrt(C);
    if (s.ends_with(".bias")) std = 0.3;
    else if (s.ends_with("o_proj.weight")) std = 1.0 / std::sqrt(static_cast<double>(cfg.q_dim()));
    for (std::int64_t i = 0; i < p->value.numel(); ++i) v[i] = static_cast<float>(std * nd(rng));
  }
}

}  // namespace radlads::testing
