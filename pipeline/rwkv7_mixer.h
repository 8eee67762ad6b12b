// The RAD-RWKV7 ("RADGoose") mixer: the student's replacement for one teacher attention layer
// (docs/spec.md §3.4, §9.2-9.3), forward and backward, its parameters and their init.
//
// Math, x = the normed input [B,T,C]; H heads, KV kv heads, N head dim, A = H*N, c = e^-0.5:
//   r  = x Wq^T + bq (H heads);  k = x Wk^T + bk, v' = x Wv^T + bv (KV heads)
//   r, k <- RoPE(r, k) at positions pos0.. (use_rope; before GQA), then k, v' expanded to H heads
//   w_raw = w0 + tanh(x W1) W2;  log w = -c * sigmoid(w_raw);  w = exp(log w) in (0.545, 1)
//   a  = sigmoid(a0 + x A1 A2)                                           (in-context LR)
//   layer 0: v = v' and ctx.v_first = v;  layer l >= 1: nu = sigmoid(v0 + x V1 V2),
//            v = v' + nu * (ctx.v_first - v')
//   gate_rank_type 2: g = sigmoid(x G1) G2;  1: g = sigmoid(x Wg^T);  0: no gate
//   balance_state:  kappa = k / max(|k|, 1e-12) per head,        k~ = k * (1 - w + a)
//   otherwise:      kappa = normalize(k * k_k) per head,          k~ = k * (1 + (a - 1) * k_a)
//   p  = DPLR(r, log w, k~, v, -kappa, kappa * a) with scale N^-1/2 (kernels/ops/dplr.h; the
//        spec's [value,key] form S_t = S_{t-1}(diag(w) - kappa^T (a kappa)) + v^T k~, p = S r^T,
//        transposed), or with scale 1 followed by GroupNorm(H groups, eps N*1e-5, ln_x) when
//        groupnorm_att
//   y  = (p * g) Wo^T (+ o_proj.bias when attention_output_bias)
//
// Parameters, under "model.layers.{l}.self_attn." (shapes as the released rwkv7qwen2 layout;
// *_proj.weight and gate.weight are [out, in], LoRA factors [in, out]):
//   q_proj.weight [A, C] (+ q_proj.bias [A] iff attention_bias), k_proj / v_proj .weight
//   [KV*N, C] (+ .bias [KV*N] iff attention_bias), o_proj.weight [C, A] (+ o_proj.bias [C] iff
//   attention_output_bias), w0 a0 v0 k_k k_a [1, 1, A], w1 [C, r_d], w2 [r_d, A], a1 [C, r_a],
//   a2 [r_a, A], v1 [C, r_v], v2 [r_v, A] (every layer; used from layer 1 on, so layer 0's get
//   no gradient), r_k [H, N] (present, unused: the mixer has no bonus term), gate: g1 [C, r_g] +
//   g2 [r_g, A] (type 2) or gate.weight [A, C] (type 1), ln_x.weight / ln_x.bias [A] iff
//   groupnorm_att.
//
// Contract (pipeline/mixer.h): Forward with ctx.need_backward keeps what Backward needs (handles
// to x and, for layers >= 1, to ctx.v_first). Backward ACCUMULATES into *dx, into the gradients
// of the trainable parameters (a frozen parameter has no gradient and is skipped; its path still
// reaches dx), and, for layers >= 1, into ctx.dv_first when it is defined; layer 0's Backward
// adds ctx.dv_first (when defined) into its value path. Trainable flags are read at
// construction: call ParamSet::SetTrainable first.
// Thread-safety: none (the ops parallelise internally). Deterministic for a fixed thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops/dplr.h"
#include "pipeline/init.h"
#include "pipeline/mixer.h"
#include "pipeline/param_set.h"
#include "storage/student_config.h"

namespace radlads {

struct Rwkv7MixerOptions {
  // DPLR form: 0 = recurrent (fastest on the CPU for head dims <= 64), else the chunk length of
  // the chunked form (16 is close to recurrent at head dim 128).
  std::int64_t dplr_chunk = 0;
  // Recurrent backward: steps between saved states.
  std::int64_t dplr_checkpoint = 16;
};

// "model.layers.{l}.self_attn."
std::string Rwkv7MixerPrefix(int layer);

// Adds every parameter of layer `layer`'s mixer to `params` with its exact shape, zero-filled.
void DeclareRwkv7MixerParams(const StudentConfig& cfg, int layer, ParamSet& params);

// Spec init (§3.4) of the parameters with no teacher equivalent; q/k/v/o_proj weights and the
// q/k/v biases are left to the caller (copied from the teacher). Values:
//   w0[n] = -7 + 5 (n/(A-1))^(0.85 + sqrt(l/(L-1))) + 0.5 (the ratios are 0 when A = 1 or L = 1),
//   w1 = 0, w2 = orth x 0.1;  a0 = 0, a1 = 0, a2 = orth x 0.1;  v0 = 1, v1 = 0, v2 = orth x 0.1;
//   g1 = 0, g2 = orth x 0.1 (type 2) or gate.weight = 0 (type 1: g = 0.5, as RAD-RWKV6's
//   W_g = 0, §3.3);  k_k = 0.85, k_a = 1, r_k = 0;  ln_x.weight = 1, ln_x.bias = 0;
//   o_proj.bias (attention_output_bias; the teacher has none) = 0.
// The orthogonal draws are taken from `rng` in the order w2, a2, v2, g2.
void InitRwkv7MixerNewParams(const StudentConfig& cfg, int layer, ParamSet& params, InitRng& rng);

// Suffixes (under Rwkv7MixerPrefix) of the parameters copied unchanged from the teacher's
// attention: q/k/v_proj.{weight,bias} and o_proj.weight. The biases exist in the student only
// when attention_bias; callers copy those the student declares.
std::vector<std::string> Rwkv7TeacherCopiedNames();

class Rwkv7Mixer : public Mixer {
 public:
  // Looks the parameters up in `params` (they must exist with the config's shapes).
  Rwkv7Mixer(const StudentConfig& cfg, int layer, ParamSet& params,
             const Rwkv7MixerOptions& opts = {});

  void Forward(const Tensor& x, MixerContext& ctx, Tensor& y) override;
  void Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) override;
  std::string kind() const override { return "rad-rwkv7"; }

  int layer() const { return layer_; }

  // Intermediates of the last training forward, [B,T,A] (probes and tests; undefined before a
  // training forward): log w, the ICLR a, the value-residual mix nu (undefined at layer 0), the
  // gate g (undefined for gate_rank_type 0).
  const Tensor& log_decay() const { return logw_; }
  const Tensor& iclr() const { return a_; }
  const Tensor& value_mix() const { return nu_; }
  const Tensor& gate() const { return g_; }

 private:
  struct P {
    Tensor value, grad;  // grad undefined when frozen or absent
    Tensor* g() { return grad.defined() ? &grad : nullptr; }
  };

  // From kx, a, log w: kappa and its pre-normalisation norm [B*T, H] (when nrm != nullptr; else
  // kappa is read), then the DPLR inputs k~, a = -kappa, b = kappa * a. Deterministic: the
  // backward's recomputation is bitwise the forward's.
  void DplrKeys(const Tensor& kx, const Tensor& a, const Tensor& logw, Tensor& kappa, Tensor* nrm,
                Tensor& ktil, Tensor& ad, Tensor& bd) const;
  DplrOptions DplrOpts() const;

  StudentConfig cfg_;
  int layer_;
  Rwkv7MixerOptions opts_;
  std::int64_t C_, H_, KV_, N_, A_;

  P wq_, bq_, wk_, bk_, wv_, bv_, wo_, bo_;
  P w0_, w1_, w2_, a0_, a1_, a2_, v0_, v1_, v2_, g1_, g2_, wg_, k_k_, k_a_, lnw_, lnb_;

  // Saved by a training forward.
  bool saved_ = false;
  std::int64_t B_ = 0, T_ = 0, pos0_ = 0;
  const ops::RopeTable* rope_ = nullptr;
  Tensor x_;              // [B,T,C]
  Tensor r_;              // [B,T,H,N] receptance after RoPE
  Tensor kx_;             // [B,T,H,N] key after RoPE and GQA expansion
  Tensor vx_;             // [B,T,H,N] value v' after GQA expansion
  Tensor vfirst_;         // handle to ctx.v_first (layers >= 1)
  Tensor hw_, ha_, hv_, hg_;  // LoRA hidden activations
  Tensor logw_, a_, nu_, g_;  // [B,T,A]
  Tensor kappa_, nrm_;    // [B,T,H,N], [B*T,H] (norm of k or k*k_k)
  Tensor v_;              // DPLR value (== vx_ at layer 0)
  Tensor o_;              // DPLR output [B,T,H,N]
  Tensor p_, gn_mean_, gn_rstd_;  // after GroupNorm (p_ == o_ without it)
};

}  // namespace radlads
