// The Qwen2 teacher's attention sublayer (docs/spec.md §3.2), as a Mixer:
//   q = x Wq^T + bq, k = x Wk^T + bk, v = x Wv^T + bv   (q: H heads, k/v: Hkv heads of size D)
//   q, k <- RoPE(q, k) at positions pos0 .. pos0+T-1
//   o = causal softmax attention (scale D^-1/2, GQA), y = o Wo^T
// Parameters are handles into a ParamSet under `prefix` ("model.layers.3.self_attn."):
// q_proj.{weight,bias}, k_proj.{weight,bias}, v_proj.{weight,bias}, o_proj.weight.
// Frozen parameters may be BF16/F16 views of a mapped file (pipeline/frozen_weights.h): the
// biases are converted once here, the matrices into ctx.frozen_scratch (or the mixer's own
// scratch) at each Forward/Backward. Trainable parameters must be F32.
#pragma once

#include <string>

#include "pipeline/frozen_weights.h"
#include "pipeline/mixer.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"

namespace radlads {

class AttentionMixer : public Mixer {
 public:
  // Looks the parameters up in `params` (they must exist with the config's shapes).
  AttentionMixer(const Qwen2Config& cfg, ParamSet& params, const std::string& prefix);

  void Forward(const Tensor& x, MixerContext& ctx, Tensor& y) override;
  void Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) override;
  std::string kind() const override { return "attention"; }

  // The pre-o_proj attention output of the last forward, [B,T,H*D] (for tests and probes).
  const Tensor& last_attention() const { return o_; }

 private:
  std::int64_t heads_, kv_heads_, head_dim_, hidden_;
  Tensor wq_, bq_, wk_, bk_, wv_, bv_, wo_;
  Tensor dwq_, dbq_, dwk_, dbk_, dwv_, dbv_, dwo_;
  FrozenWeightScratch own_scratch_;  // when the context brings none
  // Saved by Forward.
  Tensor x_, q_, k_, v_, o_, lse_;
};

}  // namespace radlads
