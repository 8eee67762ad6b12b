// fp64 reference of the whole decoder (pipeline/decoder.h) and of the two training losses, used
// only by tests: the Qwen2 teacher, a RAD-RWKV6 student and a RAD-RWKV7 student, from token ids
// to the loss a training step differentiates. It is assembled from the existing fp64 references
// and repeats none of their math (docs/style.md §1):
//
//   x_0 = embed(ids)                                   EmbeddingForwardRef
//   block l:  n1 = RMSNorm(x; input_layernorm)         RmsNormForwardRef, eps = rms_norm_eps
//             m  = Mixer_l(n1)                         see below
//             h  = x + m
//             n2 = RMSNorm(h; post_attention_layernorm)
//             x' = h + down(silu(gate n2) * up n2)     LinearForwardRef, SwiGluForwardRef
//   hidden = RMSNorm(x_L; model.norm)
//   logits = hidden head^T, head = lm_head.weight (model.embed_tokens.weight when tied)
//
// Mixers (pos0 = the RoPE position of t = 0):
//   teacher:   q/k/v = n1 W^T + b, RoPE on q and k (RopeInPlaceRef), causal softmax attention
//              with GQA and scale D^-1/2 (AttentionForwardRef), m = o o_proj^T (docs/spec.md
//              §3.2; pipeline/attention_mixer.h);
//   RAD-RWKV6: Rwkv6MixerForwardRef (pipeline/ref/rwkv6_mixer_ref.h), its clamp log w >= -5;
//   RAD-RWKV7: Rwkv7MixerRefForward (pipeline/ref/rwkv7_mixer_ref.h); layer 0's expanded value
//              is v_first for every later layer (docs/spec.md §3.4).
//
// Losses (natural log, temperature 1; docs/spec.md §2.2, §2.4, kernels/ops/head_loss.h):
//   DistillLossRef       (1/N) sum_n KL(softmax(z_t,n) || softmax(z_s,n)) over all N rows
//                        (KlFromLogitsRef); the teacher's logits are an input.
//   CrossEntropyLossRef  mean over rows with target != -1 of -log softmax(z_n)[target_n]
//                        (CrossEntropyFromLogitsRef).
//
// Differences from the fp32 model, all below fp32 rounding: every step is in double (the fp32
// RMSNorm, for one, adds a float eps to a float mean square), and RoPE uses the exact angles
// (pos0 + t) * theta^(-2i/D) instead of transformers' fp32 table (kernels/ops/rope.h: ~1e-7
// rad at the short positions tests use).
//
// Parameters are read by their full Hugging Face names, the ParamSet names of the fp32 model
// (DecoderParamSpecs + Qwen2AttentionParamSpecs or StudentParamSpecs in pipeline/model_io.h and
// pipeline/student_model.h), row-major in the same shapes. A missing or mis-sized tensor is a
// RADLADS_CHECK failure; tensors the model does not read (lm_head.weight of a tied model,
// RAD-RWKV7's r_k) may be present or absent. Token ids must lie in [0, vocab_size).
// Plain loops, no threading, no kernels/ops calls: slow, for tiny models.
// Thread-safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads::ref {

// Every parameter by full name ("model.layers.1.mlp.up_proj.weight"), row-major fp64 values.
using DecoderRefParams = std::map<std::string, std::vector<double>, std::less<>>;

struct DecoderRefOutput {
  std::vector<double> hidden;  // [B*T, C] after the final RMSNorm (the LM head's input)
  std::vector<double> logits;  // [B*T, Vc]
};

// The Qwen2 teacher (attention in every layer) on ids [B, T] (batch-major).
DecoderRefOutput Qwen2ForwardRef(const Qwen2Config& cfg, const DecoderRefParams& params,
                                 std::span<const std::int32_t> ids, std::int64_t B,
                                 std::int64_t T, std::int64_t pos0 = 0);

// A student of cfg.arch (every layer's mixer RAD-RWKV6 or RAD-RWKV7; decoder sizes, eps, RoPE
// theta and tying from cfg.base) on ids [B, T].
DecoderRefOutput StudentForwardRef(const StudentConfig& cfg, const DecoderRefParams& params,
                                   std::span<const std::int32_t> ids, std::int64_t B,
                                   std::int64_t T, std::int64_t pos0 = 0);

// The step-2 loss: mean over the n rows of KL(p_t || p_s); both logits [n, vc].
double DistillLossRef(std::span<const double> student_logits,
                      std::span<const double> teacher_logits, std::int64_t n, std::int64_t vc);

// The step-3 / pretraining loss: mean next-token CE over the rows whose target is not -1
// (0 when there are none); logits [n, vc], targets [n].
double CrossEntropyLossRef(std::span<const double> logits, std::span<const std::int32_t> targets,
                           std::int64_t n, std::int64_t vc);

}  // namespace radlads::ref
