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
// Frozen weights (a teacher, pipeline/frozen_weights.h): frozen parameters may be read-only
// views of a mapped file, F32 (used in place) or BF16/F16. For the latter, the model converts
// the norms, the final norm and the LM head (with a tied embedding: the embedding) to resident
// fp32 when it is built; an untied embedding is gathered row by row from the file; each layer's
// matrices are converted into one scratch right before the layer runs (forward, and backward if
// ever asked), so the model holds one layer in fp32 at a time, never the whole. The arithmetic
// is the same as over fully converted parameters (the conversion is exact). Trainable
// parameters must be F32.
//
// Forward/Backward follow the Mixer contract: Forward with need_backward keeps activations;
// Backward consumes them and ACCUMULATES into the trainable parameters' gradients.
// The stack can also run a layer range on given hidden states (pipeline stages, the step-1
// activation cache).
//
// Model parallelism (DecoderShard): a model may hold one shard of the whole, for a rank of a
// gang (worker/gang.h):
// - pipeline: the layers [first_layer, last_layer) of one stage; the first stage holds the
//   embedding, the last the final norm and the LM head. StageForward / StageBackward run the
//   stage on activations received from the stage before (and RAD-RWKV7's v_first with them).
// - tensor: `cfg` is the local slice (num_attention_heads, num_key_value_heads,
//   intermediate_size and vocab_size divided by tp; head_dim explicit) and the parameters are
//   the local slices (pipeline/model_shard.h). The mixer's and the MLP's outputs are partial
//   sums over the tp group (row-parallel o_proj and down_proj) and are summed there; in the
//   backward the gradients of their inputs are; the embedding holds the vocabulary rows
//   [vocab_begin, vocab_begin + cfg.vocab_size) (ids outside give zero rows, then the sum). With
//   no tp group the arithmetic is exactly that of the whole model.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/collectives.h"
#include "kernels/ops/rope.h"
#include "pipeline/frozen_weights.h"
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

struct DecoderShard {
  int first_layer = 0;
  int last_layer = -1;          // -1: every layer
  bool first_stage = true;      // holds model.embed_tokens
  bool last_stage = true;       // holds model.norm and the LM head
  std::int64_t vocab_begin = 0; // first row of the full vocabulary held here
  Communicator* tp = nullptr;   // the tensor-parallel group (null: tp = 1); not owned
};

// What flows between pipeline stages: the hidden states and RAD-RWKV7's v_first (undefined for
// the other mixers, and before layer 0 has run).
struct StageActivations {
  Tensor hidden;   // [B, T, C]
  Tensor v_first;  // [B, T, H_local * N] or undefined
};

struct DecoderForwardOptions {
  std::int64_t pos0 = 0;
  bool need_backward = false;
  LayerHook hook;  // optional
};

class DecoderModel {
 public:
  using MixerFactory = std::function<std::unique_ptr<Mixer>(int layer)>;

  // `cfg` is the local configuration (the slice for tp > 1); `params` holds this shard's
  // parameters only.
  DecoderModel(const Qwen2Config& cfg, ParamSet& params, const MixerFactory& make_mixer,
               const DecoderShard& shard = {});

  const Qwen2Config& config() const { return cfg_; }
  Mixer& mixer(int layer) { return *mixers_[static_cast<std::size_t>(layer)]; }

  // ids [B, T] I32 -> hidden [B, T, C] after the final norm (the head's input).
  Tensor Forward(const Tensor& ids, const DecoderForwardOptions& opts);
  // Gradient of the loss wrt Forward's hidden; accumulates parameter gradients.
  void Backward(const Tensor& dhidden);

  // A pipeline stage in training: the first stage embeds `ids` (its input is ignored); the
  // last applies the final norm (its output is the head's input). With need_backward the
  // stage keeps what StageBackward needs (one stage forward in flight).
  StageActivations StageForward(const StageActivations& in, const Tensor& ids, bool need_backward,
                                std::int64_t pos0 = 0);
  // Gradient of the stage's output (and of the v_first it passed on) -> gradient of its input
  // (and of the v_first it received); accumulates the parameter gradients, the embedding's on
  // the first stage.
  StageActivations StageBackward(const StageActivations& dout);
  const DecoderShard& shard() const { return shard_; }

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
  void MlpRowBlocks(const Tensor& w_gate, const Tensor& w_up, const Tensor& w_down, const Tensor& n2,
                    const Tensor& h, Tensor& out);
  void BlockForward(int l, const Tensor& x, MixerContext& ctx, bool keep, const LayerHook& hook,
                    Tensor& out);
  void BlockBackward(int l, const Tensor& dout, MixerContext& ctx, Tensor& dx);
  const ops::RopeTable& Rope(std::int64_t needed);
  // Sums a partial result over the tp group (nothing without one).
  void TpSum(Tensor& t);
  int first() const { return shard_.first_layer; }
  int last() const { return shard_.last_layer; }

  Qwen2Config cfg_;
  DecoderShard shard_;
  std::vector<Layer> layers_;
  std::vector<std::unique_ptr<Mixer>> mixers_;
  Tensor embed_, d_embed_, final_norm_, d_final_norm_, head_w_, head_dw_;
  ops::RopeTable rope_;
  // Saved by a training Forward.
  Tensor ids_, x_last_, final_rstd_;
  MixerContext ctx_;
  bool trained_forward_ = false;
  // One layer's matrices in fp32 when the parameters are frozen bf16/f16 views (reused by
  // every layer; empty for fp32 parameters).
  FrozenWeightScratch scratch_;
};

}  // namespace radlads
