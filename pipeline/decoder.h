// DecoderModel: the Qwen2 decoder stack with a pluggable mixer per layer. The teacher is a
// DecoderModel with AttentionMixer layers; a student is the same stack with RAD-RWKV mixers
// (docs/spec.md §2.0, §3.1):
//   x_0 = embed(ids)
//   block l:  n1 = RMSNorm(x; input_layernorm);  h = x + Mixer_l(n1)
//             n2 = RMSNorm(h; post_attention_layernorm);  x' = h + down(silu(gate n2) * up n2)
//   hidden = RMSNorm(x_L; model.norm);  logits = hidden lm_head^T (embed_tokens when tied)
//
// Parameters are handles into a caller-owned ParamSet with the Hugging Face names
// (model.embed_tokens.weight, model.layers.{l}.input_layernorm.weight, ...mlp.gate_proj.weight,
// model.norm.weight, lm_head.weight); the ParamSet must outlive the model and keep them.
// Trainable flags are read when the model is constructed: call ParamSet::SetTrainable first.
//
// Forward/Backward follow the Mixer contract: Forward with need_backward keeps activations;
// Backward consumes them and ACCUMULATES into the trainable parameters' gradients.
// The stack can also run a layer range on given hidden states (pipeline stages, the step-1
// activation cache).
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/ops/rope.h"
#include "pipeline/mixer.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"

namespace radlads {

// Names of the decoder's own (non-mixer) parameters.
std::string LayerPrefix(int layer);  // "model.layers.3."

// Called after each block in Forward: (layer, mixer input n1 [B,T,C], mixer output [B,T,C],
// block output [B,T,C]). Used to capture the step-1 teacher activations.
using LayerHook =
    std::function<void(int layer, const Tensor& mixer_in, const Tensor& mixer_out, const Tensor& block_out)>;

struct DecoderForwardOptions {
  std::int64_t pos0 = 0;
  bool need_backward = false;
  LayerHook hook;  // optional
};

class DecoderModel {
 public:
  using MixerFactory = std::function<std::unique_ptr<Mixer>(int layer)>;

  DecoderModel(const Qwen2Config& cfg, ParamSet& params, const MixerFactory& make_mixer);

  const Qwen2Config& config() const { return cfg_; }
  Mixer& mixer(int layer) { return *mixers_[static_cast<std::size_t>(layer)]; }

  // ids [B, T] I32 -> hidden [B, T, C] after the final norm (the head's input).
  Tensor Forward(const Tensor& ids, const DecoderForwardOptions& opts);
  // Gradient of the loss wrt Forward's hidden; accumulates parameter gradients.
  void Backward(const Tensor& dhidden);

  // Pieces, for pipeline stages and the activation cache:
  Tensor Embed(const Tensor& ids);  // [B,T] -> [B,T,C] (no backward state)
  // Runs layers [first, last) on x [B,T,C] (not modified) and returns the stack's output.
  Tensor RunLayers(const Tensor& x, int first, int last, const DecoderForwardOptions& opts);
  Tensor FinalNorm(const Tensor& x);  // inference only

  // The LM head weight [V, C] (embed_tokens when tied) and its gradient (undefined if frozen).
  Tensor head_weight() const { return head_w_; }
  Tensor head_grad() const { return head_dw_; }
  // Full logits [N, V] of hidden [N, C] (inference; small vocabularies and the logits CLI).
  Tensor Logits(const Tensor& hidden) const;

 private:
  struct Layer {
    Tensor in_norm, post_norm, w_gate, w_up, w_down;
    Tensor d_in_norm, d_post_norm, dw_gate, dw_up, dw_down;
    // Saved by a training forward.
    Tensor x, n1, rstd1, h, n2, rstd2, g, u, a;
  };
  void MlpRowBlocks(const Layer& L, const Tensor& n2, const Tensor& h, Tensor& out);
  void BlockForward(int l, const Tensor& x, MixerContext& ctx, bool keep, const LayerHook& hook,
                    Tensor& out);
  void BlockBackward(int l, const Tensor& dout, MixerContext& ctx, Tensor& dx);
  const ops::RopeTable& Rope(std::int64_t needed);

  Qwen2Config cfg_;
  std::vector<Layer> layers_;
  std::vector<std::unique_ptr<Mixer>> mixers_;
  Tensor embed_, d_embed_, final_norm_, d_final_norm_, head_w_, head_dw_;
  ops::RopeTable rope_;
  // Saved by a training Forward.
  Tensor ids_, x_last_, final_rstd_;
  MixerContext ctx_;
  bool trained_forward_ = false;
};

}  // namespace radlads
