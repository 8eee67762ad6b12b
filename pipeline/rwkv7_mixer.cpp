#include "pipeline/rwkv7_mixer.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/dplr.h"
#include "kernels/ops/elementwise.h"
#include "kernels/ops/gqa.h"
#include "kernels/ops/groupnorm.h"
#include "kernels/ops/linear.h"
#include "kernels/ops/lora.h"
#include "kernels/ops/rope.h"

namespace radlads {
namespace {

// log w = -kDecayScale * sigmoid(w_raw) (= -exp(-0.5 - softplus(-w_raw))).
constexpr float kDecayScale = 0.60653065971263342f;  // e^-0.5
// F.normalize's eps: kappa = k / max(|k|, eps).
constexpr float kNormEps = 1e-12f;

struct Sizes {
  std::int64_t C, H, KV, N, A, L;
};

Sizes SizesOf(const StudentConfig& cfg) {
  const Qwen2Config& b = cfg.base;
  return Sizes{b.hidden_size,  b.num_attention_heads, b.num_key_value_heads,
               b.head_dim,     b.num_attention_heads * b.head_dim, b.num_hidden_layers};
}

void CheckConfig(const StudentConfig& cfg, int layer) {
  const Sizes s = SizesOf(cfg);
  RADLADS_CHECK(cfg.arch == StudentArch::kRwkv7) << "RAD-RWKV7 mixer needs an rwkv7qwen2 config";
  RADLADS_CHECK(!cfg.use_tokenshift) << "RAD-RWKV7 has no tokenshift";
  RADLADS_CHECK(s.C > 0 && s.H > 0 && s.KV > 0 && s.N > 0 && s.H % s.KV == 0)
      << "RAD-RWKV7: bad head layout: " << s.H << " heads, " << s.KV << " kv heads, head dim "
      << s.N;
  RADLADS_CHECK(!cfg.use_rope || s.N % 2 == 0) << "RoPE needs an even head dim, got " << s.N;
  RADLADS_CHECK(cfg.gate_rank_type >= 0 && cfg.gate_rank_type <= 2)
      << "gate_rank_type " << cfg.gate_rank_type;
  RADLADS_CHECK(cfg.lora_rank_decay > 0 && cfg.lora_rank_iclr > 0 &&
                cfg.lora_rank_value_residual_mix > 0 &&
                (cfg.gate_rank_type != 2 || cfg.lora_rank_gate > 0))
      << "RAD-RWKV7: LoRA ranks must be positive";
  RADLADS_CHECK(layer >= 0 && (s.L <= 0 || layer < s.L))
      << "layer " << layer << " of " << s.L;
}

Tensor* Opt(Tensor& t) { return t.defined() ? &t : nullptr; }

// A [1,1,A] / [A] parameter (or gradient) as [A]; undefined stays undefined.
Tensor Flat(const Tensor& t) { return t.defined() ? t.View({t.numel()}) : Tensor(); }

}  // namespace

std::string Rwkv7MixerPrefix(int layer) {
  return "model.layers." + std::to_string(layer) + ".self_attn.";
}

void DeclareRwkv7MixerParams(const StudentConfig& cfg, int layer, ParamSet& params) {
  CheckConfig(cfg, layer);
  const Sizes s = SizesOf(cfg);
  const std::string pre = Rwkv7MixerPrefix(layer);
  auto add = [&](const char* name, Shape shape) { params.Add(pre + name, Tensor::Zeros(std::move(shape))); };
  const std::int64_t kvd = s.KV * s.N;
  add("q_proj.weight", {s.A, s.C});
  if (cfg.attention_bias) add("q_proj.bias", {s.A});
  add("k_proj.weight", {kvd, s.C});
  if (cfg.attention_bias) add("k_proj.bias", {kvd});
  add("v_proj.weight", {kvd, s.C});
  if (cfg.attention_bias) add("v_proj.bias", {kvd});
  add("o_proj.weight", {s.C, s.A});
  if (cfg.attention_output_bias) add("o_proj.bias", {s.C});
  add("w0", {1, 1, s.A});
  add("w1", {s.C, cfg.lora_rank_decay});
  add("w2", {cfg.lora_rank_decay, s.A});
  add("a0", {1, 1, s.A});
  add("a1", {s.C, cfg.lora_rank_iclr});
  add("a2", {cfg.lora_rank_iclr, s.A});
  add("v0", {1, 1, s.A});
  add("v1", {s.C, cfg.lora_rank_value_residual_mix});
  add("v2", {cfg.lora_rank_value_residual_mix, s.A});
  if (cfg.gate_rank_type == 2) {
    add("g1", {s.C, cfg.lora_rank_gate});
    add("g2", {cfg.lora_rank_gate, s.A});
  } else if (cfg.gate_rank_type == 1) {
    add("gate.weight", {s.A, s.C});
  }
  add("k_k", {1, 1, s.A});
  add("k_a", {1, 1, s.A});
  add("r_k", {s.H, s.N});
  if (cfg.groupnorm_att) {
    add("ln_x.weight", {s.A});
    add("ln_x.bias", {s.A});
  }
}

void InitRwkv7MixerNewParams(const StudentConfig& cfg, int layer, ParamSet& params, InitRng& rng) {
  CheckConfig(cfg, layer);
  const Sizes s = SizesOf(cfg);
  const std::string pre = Rwkv7MixerPrefix(layer);
  auto val = [&](const char* name) -> Tensor& { return params.Get(pre + name).value; };
  // Decay ramp over all A channels.
  {
    const double ratio = s.L > 1 ? static_cast<double>(layer) / static_cast<double>(s.L - 1) : 0.0;
    const double expo = 0.85 + std::sqrt(ratio);
    float* w0 = val("w0").f32();
    for (std::int64_t n = 0; n < s.A; ++n) {
      const double frac = s.A > 1 ? static_cast<double>(n) / static_cast<double>(s.A - 1) : 0.0;
      w0[n] = static_cast<float>(-7.0 + 5.0 * std::pow(frac, expo) + 0.5);
    }
  }
  val("w1").SetZero();
  InitOrthogonal(val("w2"), 0.1, rng);
  val("a0").SetZero();
  val("a1").SetZero();
  InitOrthogonal(val("a2"), 0.1, rng);
  val("v0").Fill(1.0f);
  val("v1").SetZero();
  InitOrthogonal(val("v2"), 0.1, rng);
  if (cfg.gate_rank_type == 2) {
    val("g1").SetZero();
    InitOrthogonal(val("g2"), 0.1, rng);
  } else if (cfg.gate_rank_type == 1) {
    val("gate.weight").SetZero();
  }
  val("k_k").Fill(0.85f);
  val("k_a").Fill(1.0f);
  val("r_k").SetZero();
  if (cfg.groupnorm_att) {
    val("ln_x.weight").Fill(1.0f);
    val("ln_x.bias").SetZero();
  }
  if (cfg.attention_output_bias) val("o_proj.bias").SetZero();
}

std::vector<std::string> Rwkv7TeacherCopiedNames() {
  return {"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
          "v_proj.weight", "v_proj.bias", "o_proj.weight"};
}

Rwkv7Mixer::Rwkv7Mixer(const StudentConfig& cfg, int layer, ParamSet& params,
                       const Rwkv7MixerOptions& opts)
    : cfg_(cfg), layer_(layer), opts_(opts) {
  CheckConfig(cfg, layer);
  RADLADS_CHECK(opts.dplr_chunk >= 0 && opts.dplr_checkpoint >= 1)
      << "Rwkv7MixerOptions: chunk " << opts.dplr_chunk << ", checkpoint " << opts.dplr_checkpoint;
  const Sizes s = SizesOf(cfg);
  C_ = s.C;
  H_ = s.H;
  KV_ = s.KV;
  N_ = s.N;
  A_ = s.A;
  const std::string pre = Rwkv7MixerPrefix(layer);
  auto get = [&](const char* name, P& p, const Shape& shape) {
    Param& q = params.Get(pre + name);
    RADLADS_CHECK(q.value.shape() == shape)
        << q.name << ": shape " << ShapeToString(q.value.shape()) << ", expected "
        << ShapeToString(shape);
    p.value = q.value;
    p.grad = q.trainable ? q.grad : Tensor();
  };
  const std::int64_t kvd = KV_ * N_;
  get("q_proj.weight", wq_, {A_, C_});
  get("k_proj.weight", wk_, {kvd, C_});
  get("v_proj.weight", wv_, {kvd, C_});
  if (cfg.attention_bias) {
    get("q_proj.bias", bq_, {A_});
    get("k_proj.bias", bk_, {kvd});
    get("v_proj.bias", bv_, {kvd});
  }
  get("o_proj.weight", wo_, {C_, A_});
  if (cfg.attention_output_bias) get("o_proj.bias", bo_, {C_});
  get("w0", w0_, {1, 1, A_});
  get("w1", w1_, {C_, cfg.lora_rank_decay});
  get("w2", w2_, {cfg.lora_rank_decay, A_});
  get("a0", a0_, {1, 1, A_});
  get("a1", a1_, {C_, cfg.lora_rank_iclr});
  get("a2", a2_, {cfg.lora_rank_iclr, A_});
  get("v0", v0_, {1, 1, A_});
  get("v1", v1_, {C_, cfg.lora_rank_value_residual_mix});
  get("v2", v2_, {cfg.lora_rank_value_residual_mix, A_});
  if (cfg.gate_rank_type == 2) {
    get("g1", g1_, {C_, cfg.lora_rank_gate});
    get("g2", g2_, {cfg.lora_rank_gate, A_});
  } else if (cfg.gate_rank_type == 1) {
    get("gate.weight", wg_, {A_, C_});
  }
  get("k_k", k_k_, {1, 1, A_});
  get("k_a", k_a_, {1, 1, A_});
  if (cfg.groupnorm_att) {
    get("ln_x.weight", lnw_, {A_});
    get("ln_x.bias", lnb_, {A_});
  }
  // r_k exists (released layout) but nothing reads it: it never gets a gradient.
  RADLADS_CHECK(params.Find(pre + "r_k") != nullptr) << "no parameter named " << pre << "r_k";
}

void Rwkv7Mixer::DplrKeys(const Tensor& kx, const Tensor& a, const Tensor& logw, Tensor& kappa,
                          Tensor* nrm, Tensor& ktil, Tensor& ad, Tensor& bd) const {
  const std::int64_t H = H_, N = N_, rows = kx.numel() / N;
  const bool balance = cfg_.balance_state;
  const float* kxp = kx.f32();
  const float* ap = a.f32();
  const float* lwp = logw.f32();
  const float* kkp = k_k_.value.f32();
  const float* kap = k_a_.value.f32();
  float* kapp = kappa.f32();
  float* nrmp = nrm != nullptr ? nrm->f32() : nullptr;
  float* ktp = ktil.f32();
  float* adp = ad.f32();
  float* bdp = bd.f32();
  // Per (token, head) row; `balance` is hoisted out of the element loops so they vectorise
  // (cpu::Exp is the vectorisable exp). The norm accumulates in double.
  cpu::ParallelFor(rows, ops::RowGrain(N), [&](std::int64_t q0, std::int64_t q1) {
    for (std::int64_t q = q0; q < q1; ++q) {
      const std::int64_t off = q * N, ch = (q % H) * N;
      const float* __restrict kq = kxp + off;
      const float* __restrict kk = kkp + ch;
      const float* __restrict ka = kap + ch;
      const float* __restrict aq = ap + off;
      const float* __restrict lwq = lwp + off;
      float* __restrict kapq = kapp + off;
      float* __restrict ktq = ktp + off;
      float* __restrict adq = adp + off;
      float* __restrict bdq = bdp + off;
      if (nrmp != nullptr) {
        double ss = 0.0;
        if (balance) {
#pragma omp simd reduction(+ : ss)
          for (std::int64_t j = 0; j < N; ++j) ss += static_cast<double>(kq[j]) * kq[j];
        } else {
#pragma omp simd reduction(+ : ss)
          for (std::int64_t j = 0; j < N; ++j) {
            const double t = static_cast<double>(kq[j]) * kk[j];
            ss += t * t;
          }
        }
        const float nr = static_cast<float>(std::sqrt(ss));
        nrmp[q] = nr;
        const float inv = 1.0f / std::fmax(nr, kNormEps);
        if (balance) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) kapq[j] = kq[j] * inv;
        } else {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) kapq[j] = kq[j] * kk[j] * inv;
        }
      }
      if (balance) {
#pragma omp simd
        for (std::int64_t j = 0; j < N; ++j) {
          const float aj = aq[j], kapj = kapq[j];
          ktq[j] = kq[j] * (1.0f - cpu::Exp(lwq[j]) + aj);
          adq[j] = -kapj;
          bdq[j] = kapj * aj;
        }
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < N; ++j) {
          const float aj = aq[j], kapj = kapq[j];
          ktq[j] = kq[j] * (1.0f + (aj - 1.0f) * ka[j]);
          adq[j] = -kapj;
          bdq[j] = kapj * aj;
        }
      }
    }
  });
}

DplrOptions Rwkv7Mixer::DplrOpts() const {
  DplrOptions o;
  o.scale = cfg_.groupnorm_att ? 1.0f : 1.0f / std::sqrt(static_cast<float>(N_));
  o.chunk = opts_.dplr_chunk;
  o.checkpoint = opts_.dplr_checkpoint;
  return o;
}

void Rwkv7Mixer::Forward(const Tensor& x, MixerContext& ctx, Tensor& y) {
  const std::int64_t B = ctx.batch, T = ctx.time, n = B * T;
  const std::int64_t H = H_, N = N_, A = A_;
  RADLADS_CHECK(x.shape() == Shape({B, T, C_}))
      << "Rwkv7Mixer: x " << x.DebugString() << ", want [" << B << ", " << T << ", " << C_ << "]";
  RADLADS_CHECK(y.shape() == Shape({B, T, C_})) << "Rwkv7Mixer: y " << y.DebugString();
  const bool rope = cfg_.use_rope;
  if (rope) {
    RADLADS_CHECK(ctx.rope != nullptr && ctx.rope->head_dim() == N)
        << "Rwkv7Mixer: use_rope needs a RoPE table of head dim " << N;
  }

  // Projections, RoPE before the GQA expansion.
  Tensor r = Tensor::Empty({B, T, H, N});
  Tensor kp = Tensor::Empty({B, T, KV_, N});
  Tensor vp = Tensor::Empty({B, T, KV_, N});
  {
    Tensor rf = r.View({B, T, A}), kf = kp.View({B, T, KV_ * N}), vf = vp.View({B, T, KV_ * N});
    ops::LinearForward(x, wq_.value, bq_.value, rf);
    ops::LinearForward(x, wk_.value, bk_.value, kf);
    ops::LinearForward(x, wv_.value, bv_.value, vf);
  }
  if (rope) {
    ops::RopeForward(r, *ctx.rope, ctx.pos0, r);
    ops::RopeForward(kp, *ctx.rope, ctx.pos0, kp);
  }
  Tensor kx = Tensor::Empty({B, T, H, N});
  Tensor vx = Tensor::Empty({B, T, H, N});
  ops::GqaExpandForward(kp, kx);
  ops::GqaExpandForward(vp, vx);

  // Decay: log w = -e^-0.5 sigmoid(w0 + tanh(x W1) W2).
  Tensor hw = Tensor::Empty({n, cfg_.lora_rank_decay});
  Tensor logw = Tensor::Empty({B, T, A});
  ops::LoraForward(x, w1_.value, w2_.value, Flat(w0_.value), ops::LoraActivation::kTanh, hw, logw);
  {
    float* lw = logw.f32();
    cpu::ParallelFor(n * A, 1 << 14, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) lw[i] = -kDecayScale * ops::SigmoidScalar(lw[i]);
    });
  }

  // In-context learning rate a = sigmoid(a0 + x A1 A2).
  Tensor ha = Tensor::Empty({n, cfg_.lora_rank_iclr});
  Tensor a = Tensor::Empty({B, T, A});
  ops::LoraForward(x, a1_.value, a2_.value, Flat(a0_.value), ops::LoraActivation::kNone, ha, a);
  ops::SigmoidForward(a, a);

  // Value residual.
  Tensor v, hv, nu, vfirst;
  if (layer_ == 0) {
    v = vx;
    ctx.v_first = vx.View({B, T, A});
  } else {
    RADLADS_CHECK(ctx.v_first.defined() && ctx.v_first.shape() == Shape({B, T, A}))
        << "Rwkv7Mixer layer " << layer_ << ": ctx.v_first must hold layer 0's value [" << B
        << ", " << T << ", " << A << "], got "
        << (ctx.v_first.defined() ? ctx.v_first.DebugString() : std::string("undefined"));
    vfirst = ctx.v_first;
    hv = Tensor::Empty({n, cfg_.lora_rank_value_residual_mix});
    nu = Tensor::Empty({B, T, A});
    ops::LoraForward(x, v1_.value, v2_.value, Flat(v0_.value), ops::LoraActivation::kNone, hv, nu);
    ops::SigmoidForward(nu, nu);
    v = Tensor::Empty({B, T, H, N});
    const float* vxp = vx.f32();
    const float* vfp = vfirst.f32();
    const float* nup = nu.f32();
    float* vpp = v.f32();
    cpu::ParallelFor(n * A, 1 << 14, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) vpp[i] = vxp[i] + nup[i] * (vfp[i] - vxp[i]);
    });
  }

  // Gate.
  Tensor g, hg;
  if (cfg_.gate_rank_type == 2) {
    hg = Tensor::Empty({n, cfg_.lora_rank_gate});
    g = Tensor::Empty({B, T, A});
    ops::LoraForward(x, g1_.value, g2_.value, Tensor(), ops::LoraActivation::kSigmoid, hg, g);
  } else if (cfg_.gate_rank_type == 1) {
    g = Tensor::Empty({B, T, A});
    ops::LinearForward(x, wg_.value, Tensor(), g);
    ops::SigmoidForward(g, g);
  }

  // Keys: removal key kappa (unit norm per head), replacement key k~, and the DPLR low-rank
  // pair a = -kappa, b = kappa * iclr.
  Tensor kappa = Tensor::Empty({B, T, H, N});
  Tensor nrm = Tensor::Empty({n, H});
  Tensor ktil = Tensor::Empty({B, T, H, N});
  Tensor ad = Tensor::Empty({B, T, H, N});
  Tensor bd = Tensor::Empty({B, T, H, N});
  DplrKeys(kx, a, logw, kappa, &nrm, ktil, ad, bd);

  // Recurrence.
  Tensor o = Tensor::Empty({B, T, H, N});
  DplrForward(r, logw.View({B, T, H, N}), ktil, v, ad, bd, Tensor(), DplrOpts(), o, nullptr);

  // Normalisation, gate, output projection.
  Tensor p = o.View({B, T, A});
  Tensor gn_mean, gn_rstd;
  if (cfg_.groupnorm_att) {
    p = Tensor::Empty({B, T, A});
    gn_mean = Tensor::Empty({n, H});
    gn_rstd = Tensor::Empty({n, H});
    ops::GroupNormForward(o.View({B, T, A}), lnw_.value, lnb_.value, H,
                          static_cast<float>(static_cast<double>(N) * 1e-5), p, gn_mean, gn_rstd);
  }
  Tensor pg = p;
  if (g.defined()) {
    pg = Tensor::Empty({B, T, A});
    ops::Mul(p, g, pg);
  }
  ops::LinearForward(pg, wo_.value, bo_.value, y);

  if (ctx.need_backward) {
    saved_ = true;
    B_ = B;
    T_ = T;
    pos0_ = ctx.pos0;
    rope_ = ctx.rope;
    x_ = x;
    r_ = r;
    kx_ = kx;
    vx_ = vx;
    vfirst_ = vfirst;
    hw_ = hw;
    ha_ = ha;
    hv_ = hv;
    hg_ = hg;
    logw_ = logw;
    a_ = a;
    nu_ = nu;
    g_ = g;
    kappa_ = kappa;
    nrm_ = nrm;
    v_ = v;
    o_ = o;
    p_ = p;
    gn_mean_ = gn_mean;
    gn_rstd_ = gn_rstd;
  } else {
    saved_ = false;
    rope_ = nullptr;
    x_ = r_ = kx_ = vx_ = vfirst_ = hw_ = ha_ = hv_ = hg_ = logw_ = a_ = nu_ = g_ = kappa_ = nrm_ =
        v_ = o_ = p_ = gn_mean_ = gn_rstd_ = Tensor();
  }
}

void Rwkv7Mixer::Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) {
  RADLADS_CHECK(saved_) << "Rwkv7Mixer layer " << layer_ << ": Backward without a training Forward";
  const std::int64_t B = B_, T = T_, n = B * T;
  const std::int64_t H = H_, N = N_, A = A_;
  RADLADS_CHECK(dy.shape() == Shape({B, T, C_})) << "Rwkv7Mixer: dy " << dy.DebugString();
  if (dx != nullptr) {
    RADLADS_CHECK(dx->shape() == Shape({B, T, C_})) << "Rwkv7Mixer: dx " << dx->DebugString();
  }

  // Output projection and gate.
  Tensor pg = p_;
  if (g_.defined()) {
    pg = Tensor::Empty({B, T, A});
    ops::Mul(p_, g_, pg);
  }
  Tensor dpg = Tensor::Zeros({B, T, A});
  ops::LinearBackward(pg, wo_.value, dy, &dpg, wo_.g(), bo_.g());
  Tensor dp = dpg;
  if (g_.defined()) {
    dp = Tensor::Zeros({B, T, A});
    Tensor dgate = Tensor::Zeros({B, T, A});
    ops::MulBackward(p_, g_, dpg, &dp, &dgate);
    if (cfg_.gate_rank_type == 2) {
      ops::LoraBackward(x_, g1_.value, g2_.value, ops::LoraActivation::kSigmoid, hg_, dgate, dx,
                        g1_.g(), g2_.g(), nullptr);
    } else {
      Tensor dgpre = Tensor::Zeros({B, T, A});
      ops::SigmoidBackward(g_, dgate, dgpre);
      ops::LinearBackward(x_, wg_.value, dgpre, dx, wg_.g(), nullptr);
    }
  }
  Tensor d_o = dp.View({B, T, H, N});
  if (cfg_.groupnorm_att) {
    d_o = Tensor::Zeros({B, T, H, N});
    Tensor d_o_flat = d_o.View({B, T, A});
    ops::GroupNormBackward(o_.View({B, T, A}), lnw_.value, gn_mean_, gn_rstd_, dp, &d_o_flat,
                           lnw_.g(), lnb_.g());
  }

  // Recurrence (its key inputs recomputed from kappa rather than kept since the forward).
  const Shape hs = {B, T, H, N};
  Tensor ktil = Tensor::Empty(hs), ad = Tensor::Empty(hs), bd = Tensor::Empty(hs);
  DplrKeys(kx_, a_, logw_, kappa_, nullptr, ktil, ad, bd);
  Tensor dr = Tensor::Zeros(hs), dlogw = Tensor::Zeros(hs), dktil = Tensor::Zeros(hs);
  Tensor dv = Tensor::Zeros(hs), dad = Tensor::Zeros(hs), dbd = Tensor::Zeros(hs);
  DplrBackward(r_, logw_.View(hs), ktil, v_, ad, bd, Tensor(), d_o, Tensor(), DplrOpts(), dr,
               dlogw, dktil, dv, dad, dbd, nullptr);
  ktil = ad = bd = Tensor();

  // Keys, decay and ICLR, fused per (token, head): dkx (key after expansion), the
  // pre-sigmoid ICLR gradient into da, the pre-activation decay gradient into dlogw (in place),
  // and the per-element terms of dk_k / dk_a.
  const bool balance = cfg_.balance_state;
  Tensor dkx = Tensor::Empty(hs);
  Tensor da = Tensor::Empty({B, T, A});
  Tensor dkk_e, dka_e;
  if (!balance && k_k_.grad.defined()) dkk_e = Tensor::Empty({n, A});
  if (!balance && k_a_.grad.defined()) dka_e = Tensor::Empty({n, A});
  {
    const float* kxp = kx_.f32();
    const float* kapp = kappa_.f32();
    const float* nrmp = nrm_.f32();
    const float* ap = a_.f32();
    const float* lwp = logw_.f32();
    const float* kkp = k_k_.value.f32();
    const float* kap = k_a_.value.f32();
    const float* dktp = dktil.f32();
    const float* dadp = dad.f32();
    const float* dbdp = dbd.f32();
    float* dlwp = dlogw.f32();
    float* dkxp = dkx.f32();
    float* dap = da.f32();
    float* dkkp = dkk_e.defined() ? dkk_e.f32() : nullptr;
    float* dkae = dka_e.defined() ? dka_e.f32() : nullptr;
    // `balance` is hoisted out of the element loops so they vectorise.
    cpu::ParallelFor(n * H, ops::RowGrain(N), [&](std::int64_t q0, std::int64_t q1) {
      for (std::int64_t q = q0; q < q1; ++q) {
        const std::int64_t off = q * N, ch = (q % H) * N;
        const float* __restrict aq = ap + off;
        const float* __restrict kq = kxp + off;
        const float* __restrict kapq = kapp + off;
        const float* __restrict lwq = lwp + off;
        const float* __restrict dktq = dktp + off;
        const float* __restrict dadq = dadp + off;
        const float* __restrict dbdq = dbdp + off;
        float* __restrict dlwq = dlwp + off;
        float* __restrict dkxq = dkxp + off;
        float* __restrict daq = dap + off;
        // d kappa = -d a_dplr + d b_dplr * iclr; its projection for the normalisation.
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (std::int64_t j = 0; j < N; ++j) {
          const float dkap = -dadq[j] + dbdq[j] * aq[j];
          dot += static_cast<double>(kapq[j]) * dkap;
        }
        const float nr = nrmp[q];
        const bool proj = nr > kNormEps;
        const float inv = 1.0f / std::fmax(nr, kNormEps);
        const float dotf = proj ? static_cast<float>(dot) : 0.0f;
        if (balance) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) {
            const float aj = aq[j], kj = kq[j], kapj = kapq[j];
            const float dkap = -dadq[j] + dbdq[j] * aj;
            // Gradient wrt the normalised vector k.
            const float dnj = (dkap - kapj * dotf) * inv;
            const float dkt = dktq[j];
            const float wj = cpu::Exp(lwq[j]);
            dkxq[j] = dkt * (1.0f - wj + aj) + dnj;
            const float dlw = dlwq[j] - dkt * kj * wj;
            const float daj = dbdq[j] * kapj + dkt * kj;
            daq[j] = daj * aj * (1.0f - aj);
            // log w = -c s, s = sigmoid(w_raw): d w_raw = d log w * (-c) s (1 - s).
            const float s = -lwq[j] / kDecayScale;
            dlwq[j] = dlw * (-kDecayScale) * s * (1.0f - s);
          }
        } else {
          for (std::int64_t j = 0; j < N; ++j) {
            const std::int64_t i = off + j;
            const float aj = aq[j], kj = kq[j], kapj = kapq[j];
            const float dkap = -dadq[j] + dbdq[j] * aj;
            // Gradient wrt the normalised vector k * k_k.
            const float dnj = (dkap - kapj * dotf) * inv;
            const float dkt = dktq[j];
            const float kaj = kap[ch + j];
            dkxq[j] = dkt * (1.0f + (aj - 1.0f) * kaj) + dnj * kkp[ch + j];
            const float daj = dbdq[j] * kapj + dkt * kj * kaj;
            if (dkae != nullptr) dkae[i] = dkt * kj * (aj - 1.0f);
            if (dkkp != nullptr) dkkp[i] = dnj * kj;
            daq[j] = daj * aj * (1.0f - aj);
            const float s = -lwq[j] / kDecayScale;
            dlwq[j] = dlwq[j] * (-kDecayScale) * s * (1.0f - s);
          }
        }
      }
    });
  }
  if (dkk_e.defined()) {
    Tensor dkk = Flat(k_k_.grad);
    ops::SumRows(dkk_e, dkk);
  }
  if (dka_e.defined()) {
    Tensor dka = Flat(k_a_.grad);
    ops::SumRows(dka_e, dka);
  }
  {
    Tensor dw0 = Flat(w0_.grad);
    ops::LoraBackward(x_, w1_.value, w2_.value, ops::LoraActivation::kTanh, hw_,
                      dlogw.View({B, T, A}), dx, w1_.g(), w2_.g(), Opt(dw0));
    Tensor da0 = Flat(a0_.grad);
    ops::LoraBackward(x_, a1_.value, a2_.value, ops::LoraActivation::kNone, ha_, da, dx, a1_.g(),
                      a2_.g(), Opt(da0));
  }

  // Value path.
  Tensor dvx = dv;
  if (layer_ == 0) {
    if (ctx.dv_first.defined()) {
      RADLADS_CHECK(ctx.dv_first.numel() == dv.numel())
          << "Rwkv7Mixer: ctx.dv_first " << ctx.dv_first.DebugString() << " for value "
          << dv.DebugString();
      ops::Add(dv, ctx.dv_first.View(hs), dvx);
    }
  } else {
    Tensor dvf_t;
    if (ctx.dv_first.defined()) {
      RADLADS_CHECK(ctx.dv_first.numel() == dv.numel())
          << "Rwkv7Mixer: ctx.dv_first " << ctx.dv_first.DebugString() << " for value "
          << dv.DebugString();
      dvf_t = ctx.dv_first;
    }
    dvx = Tensor::Empty(hs);
    Tensor dnu = Tensor::Empty({B, T, A});
    const float* dvp = dv.f32();
    const float* nup = nu_.f32();
    const float* vxp = vx_.f32();
    const float* vfp = vfirst_.f32();
    float* dvxp = dvx.f32();
    float* dnup = dnu.f32();
    float* dvfp = dvf_t.defined() ? dvf_t.f32() : nullptr;
    cpu::ParallelFor(n * A, 1 << 14, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        const float d = dvp[i], u = nup[i];
        dvxp[i] = d * (1.0f - u);
        dnup[i] = d * (vfp[i] - vxp[i]) * u * (1.0f - u);
        if (dvfp != nullptr) dvfp[i] += d * u;
      }
    });
    Tensor dv0 = Flat(v0_.grad);
    ops::LoraBackward(x_, v1_.value, v2_.value, ops::LoraActivation::kNone, hv_, dnu, dx,
                      v1_.g(), v2_.g(), Opt(dv0));
  }

  // GQA, RoPE, projections.
  Tensor dkp = Tensor::Zeros({B, T, KV_, N});
  Tensor dvp = Tensor::Zeros({B, T, KV_, N});
  ops::GqaExpandBackward(dkx, dkp);
  ops::GqaExpandBackward(dvx, dvp);
  if (cfg_.use_rope) {
    Tensor dr0 = Tensor::Zeros(hs);
    Tensor dk0 = Tensor::Zeros({B, T, KV_, N});
    ops::RopeBackward(dr, *rope_, pos0_, dr0);
    ops::RopeBackward(dkp, *rope_, pos0_, dk0);
    dr = dr0;
    dkp = dk0;
  }
  const std::int64_t kvd = KV_ * N;
  ops::LinearBackward(x_, wq_.value, dr.View({B, T, A}), dx, wq_.g(), bq_.g());
  ops::LinearBackward(x_, wk_.value, dkp.View({B, T, kvd}), dx, wk_.g(), bk_.g());
  ops::LinearBackward(x_, wv_.value, dvp.View({B, T, kvd}), dx, wv_.g(), bv_.g());
}

}  // namespace radlads
