// The RAD-RWKV6 mixer ("RADFinch", QRWKV6; docs/spec.md §3.3, §9.2-9.3): the student's
// replacement for one teacher attention layer. x is the normed input [B,T,C]; H heads, KV kv
// heads of N channels, A = H*N. Under `prefix` = "model.layers.{l}.self_attn.":
//
//   1. tokenshift (use_tokenshift): delta_t = x_{t-1} - x_t (x_{-1} = 0 at the window start),
//        xx = x + delta * time_maa_x,
//        m_{r,k,v,w,g} = block i of tanh(xx time_maa_w1) times time_maa_w2[i]  (order r,k,v,w,g),
//        x_c = x + delta * (time_maa_c + m_c)  for c in r,k,v,w,g.   Without it: x_c = x.
//   2. r = x_r Wq^T + bq (H heads);  k' = x_k Wk^T + bk,  v = x_v Wv^T + bv (KV heads);
//      RoPE on r and k' (use_rope; ctx.rope at ctx.pos0) BEFORE the GQA expansion of k', v.
//   3. decay: d = time_decay + tanh(x_w time_decay_w1) time_decay_w2 (A channels),
//      log w = max(-exp(d), -5), w = exp(log w).
//   4. balance_state: k = k' * (1 - w) after GQA expansion; else k = k'.
//   5. p = GLA(r, k, v, log w, scale = N^-1/2) from a zero state (kernels/ops/gla.h; the one
//      N^-1/2 factor of §3.3's note).
//   6. groupnorm_att: p = GroupNorm(p; H groups, eps = N * 1e-5, ln_x.weight, ln_x.bias).
//   7. gate: gate_rank_type 1: g = sigmoid(x_g gate.weight^T); 2: g = sigmoid(x_g g1) g2;
//      0: no gate.  p = p * g.
//   8. y = p o_proj.weight^T (+ o_proj.bias when attention_output_bias).
//
// Parameters (all F32, names = the released rwkv6qwen2 names; *_proj.weight and gate.weight are
// [out, in], the LoRA factors [in, out]):
//   q_proj.weight [A, C]   (+ q_proj.bias [A] iff attention_bias)
//   k_proj.weight [KV*N, C] (+ bias),  v_proj.weight [KV*N, C] (+ bias)
//   o_proj.weight [C, A]   (+ o_proj.bias [C] iff attention_output_bias)
//   gate.weight [A, C] (gate_rank_type 1) or g1 [C, r_g], g2 [r_g, A] (gate_rank_type 2)
//   ln_x.weight, ln_x.bias [A] (groupnorm_att)
//   time_maa_{x,r,k,v,w,g} [1,1,C], time_maa_w1 [C, 5 r_ts], time_maa_w2 [5, r_ts, C]
//     (use_tokenshift)
//   time_decay [1,1,A], time_decay_w1 [C, r_d], time_decay_w2 [r_d, A]
// The gate's LoRA output width and ln_x are A (= H*N), which equals C for every Qwen2.5 model;
// §9.2 writes D for both.
//
// The Mixer contract (pipeline/mixer.h) applies: Forward keeps what Backward needs when
// ctx.need_backward; Backward ACCUMULATES into *dx and into the gradients of the trainable
// parameters (a frozen parameter, whose grad is undefined, is skipped but still carries the
// gradient through to dx). Parameter handles are bound at construction: call
// ParamSet::SetTrainable before constructing.
// Thread-safety: none (the ops parallelise internally).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/init.h"
#include "pipeline/mixer.h"
#include "pipeline/param_set.h"
#include "storage/student_config.h"

namespace radlads {

struct Rwkv6MixerOptions {
  // GLA chunk length: 0 = the recurrent form, else the chunked form with this chunk length
  // (~2x faster for training; same results to fp32 rounding).
  std::int64_t gla_chunk = 16;
};

// "model.layers.{layer}.self_attn."
std::string Rwkv6MixerPrefix(int layer);

// Adds every parameter of layer `layer`'s mixer to `params` with its exact shape, as zeros.
void DeclareRwkv6MixerParams(const StudentConfig& cfg, int layer, ParamSet& params);

// The §3.3 init of the parameters with no teacher equivalent (the parameters must exist):
//   time_maa_x = 1; time_maa_{r,k,v,w,g} = 0; time_maa_w1 = 0; time_maa_w2 ~ U(-0.01, 0.01);
//   time_decay[n] = -6 + 5 (n/(A-1))^(0.7 + 1.3 l/(L-1))  (n/(A-1) := 0 when A = 1,
//     l/(L-1) := 0 when L = 1); time_decay_w1 = 0; time_decay_w2 ~ U(-0.01, 0.01);
//   gate.weight = 0 (g = 0.5); LoRA gate (gate_rank_type 2, not in RWKV6's released init):
//     g1 = 0, g2 = orth x 0.1 as RWKV7's gate (§3.4); ln_x.weight = 1, ln_x.bias = 0;
//   o_proj.bias (attention_output_bias; the Qwen2 teacher has none) = 0.
// Random draws come from `rng` in the order time_maa_w2, time_decay_w2, g2.
// The projections q/k/v/o (and the q/k/v biases) are left alone: the caller copies them from
// the teacher (docs/spec.md §2.0; Rwkv6TeacherCopiedNames).
void InitRwkv6MixerNewParams(const StudentConfig& cfg, int layer, ParamSet& params, InitRng& rng);

// Name suffixes (under the prefix) copied unchanged from the teacher's attention at step 0:
// q_proj.weight, q_proj.bias, k_proj.weight, k_proj.bias, v_proj.weight, v_proj.bias,
// o_proj.weight. The biases exist only when attention_bias; copy the names the student has.
std::vector<std::string> Rwkv6TeacherCopiedNames();

class Rwkv6Mixer : public Mixer {
 public:
  // Binds the layer's parameters from `params` (they must exist with the config's shapes).
  Rwkv6Mixer(const StudentConfig& cfg, int layer, ParamSet& params,
             const Rwkv6MixerOptions& opts = {});

  void Forward(const Tensor& x, MixerContext& ctx, Tensor& y) override;
  void Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) override;
  std::string kind() const override { return "rad-rwkv6"; }

  const Rwkv6MixerOptions& options() const { return opts_; }

 private:
  struct Weight {
    Tensor value;
    Tensor grad;  // undefined when frozen or absent
    Tensor* g() { return grad.defined() ? &grad : nullptr; }
  };
  static constexpr int kShifts = 5;  // r, k, v, w, g

  StudentConfig cfg_;
  Rwkv6MixerOptions opts_;
  std::int64_t C_, H_, KV_, N_, A_, Akv_, r_ts_, r_d_, r_g_;
  Weight wq_, bq_, wk_, bk_, wv_, bv_, wo_, bo_;
  Weight gate_, g1_, g2_, ln_w_, ln_b_;
  Weight maa_x_, maa_[kShifts], maa_w1_, maa_w2_;
  Weight decay_, decay_w1_, decay_w2_;

  // Saved by a training Forward.
  bool saved_ = false;
  Tensor x_;           // [B,T,C]
  Tensor delta_, xx_;  // [B,T,C] (tokenshift)
  Tensor ts_h_;        // [B*T, 5 r_ts] tanh(xx W1)
  Tensor ts_m_;        // [5, B*T, C]
  Tensor xs_[kShifts]; // x_r, x_k, x_v, x_w, x_g (tokenshift; else x)
  Tensor r_;           // [B,T,H,N] after RoPE
  Tensor k_exp_;       // [B,T,H,N] k' after RoPE and GQA expansion (before balancing)
  Tensor k_;           // [B,T,H,N] the GLA key (balanced or k_exp_)
  Tensor v_exp_;       // [B,T,H,N]
  Tensor decay_h_;     // [B*T, r_d] tanh(x_w D1)
  Tensor d_;           // [B,T,A] decay pre-activation
  Tensor logw_;        // [B,T,A]
  Tensor p_;           // [B,T,A] GLA output
  Tensor gn_mean_, gn_rstd_, pn_;  // GroupNorm stats [B*T, H] and output [B,T,A]
  Tensor gate_h_;      // [B*T, r_g] sigmoid(x_g G1) (gate_rank_type 2)
  Tensor g_;           // [B,T,A] gate
  Tensor pg_;          // [B,T,A] o_proj input
};

}  // namespace radlads
