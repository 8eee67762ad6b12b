#include "pipeline/rwkv6_mixer.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/elementwise.h"
#include "kernels/ops/gla.h"
#include "kernels/ops/gqa.h"
#include "kernels/ops/groupnorm.h"
#include "kernels/ops/linear.h"
#include "kernels/ops/lora.h"
#include "kernels/ops/rope.h"

namespace radlads {
namespace {

// Tokenshift mixes in the order of time_maa_w2's blocks.
constexpr const char* kShiftNames[5] = {"r", "k", "v", "w", "g"};
constexpr std::int64_t kElemGrain = 1 << 14;
constexpr float kLogDecayMin = -5.0f;  // log w = max(-exp(d), -5) (RADLADS-SPEC §3.3)

struct Dims {
  std::int64_t C, H, KV, N, A, Akv;
};

Dims DimsOf(const StudentConfig& cfg) {
  const Qwen2Config& b = cfg.base;
  Dims d{};
  d.C = b.hidden_size;
  d.H = b.num_attention_heads;
  d.KV = b.num_key_value_heads;
  d.N = b.head_dim;
  d.A = d.H * d.N;
  d.Akv = d.KV * d.N;
  return d;
}

void CheckRwkv6(const StudentConfig& cfg) {
  RADLADS_CHECK(cfg.arch == StudentArch::kRwkv6) << "RAD-RWKV6 mixer for a non-rwkv6 config";
  RADLADS_CHECK(cfg.gate_rank_type >= 0 && cfg.gate_rank_type <= 2)
      << "gate_rank_type " << cfg.gate_rank_type;
  const Qwen2Config& b = cfg.base;
  RADLADS_CHECK(b.num_key_value_heads > 0 && b.num_attention_heads % b.num_key_value_heads == 0)
      << b.num_attention_heads << " heads, " << b.num_key_value_heads << " kv heads";
}

// Every parameter of the mixer: suffix and shape, in declaration order.
std::vector<std::pair<std::string, Shape>> ParamShapes(const StudentConfig& cfg) {
  CheckRwkv6(cfg);
  const Dims d = DimsOf(cfg);
  std::vector<std::pair<std::string, Shape>> out;
  out.emplace_back("q_proj.weight", Shape{d.A, d.C});
  if (cfg.attention_bias) out.emplace_back("q_proj.bias", Shape{d.A});
  out.emplace_back("k_proj.weight", Shape{d.Akv, d.C});
  if (cfg.attention_bias) out.emplace_back("k_proj.bias", Shape{d.Akv});
  out.emplace_back("v_proj.weight", Shape{d.Akv, d.C});
  if (cfg.attention_bias) out.emplace_back("v_proj.bias", Shape{d.Akv});
  out.emplace_back("o_proj.weight", Shape{d.C, d.A});
  if (cfg.attention_output_bias) out.emplace_back("o_proj.bias", Shape{d.C});
  if (cfg.gate_rank_type == 1) {
    out.emplace_back("gate.weight", Shape{d.A, d.C});
  } else if (cfg.gate_rank_type == 2) {
    RADLADS_CHECK(cfg.lora_rank_gate > 0) << "lora_rank_gate " << cfg.lora_rank_gate;
    out.emplace_back("g1", Shape{d.C, cfg.lora_rank_gate});
    out.emplace_back("g2", Shape{cfg.lora_rank_gate, d.A});
  }
  if (cfg.groupnorm_att) {
    out.emplace_back("ln_x.weight", Shape{d.A});
    out.emplace_back("ln_x.bias", Shape{d.A});
  }
  if (cfg.use_tokenshift) {
    const std::int64_t r = cfg.lora_rank_tokenshift;
    RADLADS_CHECK(r > 0) << "lora_rank_tokenshift " << r;
    out.emplace_back("time_maa_x", Shape{1, 1, d.C});
    for (const char* s : kShiftNames) out.emplace_back(std::string("time_maa_") + s, Shape{1, 1, d.C});
    out.emplace_back("time_maa_w1", Shape{d.C, 5 * r});
    out.emplace_back("time_maa_w2", Shape{5, r, d.C});
  }
  RADLADS_CHECK(cfg.lora_rank_decay > 0) << "lora_rank_decay " << cfg.lora_rank_decay;
  out.emplace_back("time_decay", Shape{1, 1, d.A});
  out.emplace_back("time_decay_w1", Shape{d.C, cfg.lora_rank_decay});
  out.emplace_back("time_decay_w2", Shape{cfg.lora_rank_decay, d.A});
  return out;
}

Tensor& ParamValue(ParamSet& params, const std::string& name) {
  return params.Get(name).value;
}

Tensor GradView(const Tensor& g, const Shape& shape) { return g.defined() ? g.View(shape) : Tensor(); }
Tensor* Opt(Tensor& t) { return t.defined() ? &t : nullptr; }

}  // namespace

std::string Rwkv6MixerPrefix(int layer) {
  return "model.layers." + std::to_string(layer) + ".self_attn.";
}

void DeclareRwkv6MixerParams(const StudentConfig& cfg, int layer, ParamSet& params) {
  const std::string prefix = Rwkv6MixerPrefix(layer);
  for (const auto& [name, shape] : ParamShapes(cfg)) params.Add(prefix + name, Tensor::Zeros(shape));
}

void InitRwkv6MixerNewParams(const StudentConfig& cfg, int layer, ParamSet& params, InitRng& rng) {
  CheckRwkv6(cfg);
  const Dims d = DimsOf(cfg);
  const std::string p = Rwkv6MixerPrefix(layer);
  if (cfg.use_tokenshift) {
    ParamValue(params, p + "time_maa_x").Fill(1.0f);
    for (const char* s : kShiftNames) ParamValue(params, p + "time_maa_" + s).Fill(0.0f);
    ParamValue(params, p + "time_maa_w1").Fill(0.0f);
    InitUniform(ParamValue(params, p + "time_maa_w2"), -0.01f, 0.01f, rng);
  }
  // time_decay[n] = -6 + 5 (n/(A-1))^(0.7 + 1.3 l/(L-1)), the RWKV-6 ramp over all A channels.
  {
    Tensor& td = ParamValue(params, p + "time_decay");
    const std::int64_t L = cfg.base.num_hidden_layers;
    const double ratio = L > 1 ? static_cast<double>(layer) / static_cast<double>(L - 1) : 0.0;
    const double expo = 0.7 + 1.3 * ratio;
    float* v = td.f32();
    for (std::int64_t n = 0; n < d.A; ++n) {
      const double frac = d.A > 1 ? static_cast<double>(n) / static_cast<double>(d.A - 1) : 0.0;
      v[n] = static_cast<float>(-6.0 + 5.0 * std::pow(frac, expo));
    }
  }
  ParamValue(params, p + "time_decay_w1").Fill(0.0f);
  InitUniform(ParamValue(params, p + "time_decay_w2"), -0.01f, 0.01f, rng);
  if (cfg.gate_rank_type == 1) {
    ParamValue(params, p + "gate.weight").Fill(0.0f);
  } else if (cfg.gate_rank_type == 2) {
    ParamValue(params, p + "g1").Fill(0.0f);
    InitOrthogonal(ParamValue(params, p + "g2"), 0.1, rng);
  }
  if (cfg.groupnorm_att) {
    ParamValue(params, p + "ln_x.weight").Fill(1.0f);
    ParamValue(params, p + "ln_x.bias").Fill(0.0f);
  }
  if (cfg.attention_output_bias) ParamValue(params, p + "o_proj.bias").Fill(0.0f);
}

std::vector<std::string> Rwkv6TeacherCopiedNames() {
  return {"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
          "v_proj.weight", "v_proj.bias", "o_proj.weight"};
}

Rwkv6Mixer::Rwkv6Mixer(const StudentConfig& cfg, int layer, ParamSet& params,
                       const Rwkv6MixerOptions& opts)
    : cfg_(cfg), opts_(opts) {
  CheckRwkv6(cfg);
  RADLADS_CHECK(opts.gla_chunk >= 0) << "gla_chunk " << opts.gla_chunk;
  const Dims d = DimsOf(cfg);
  C_ = d.C;
  H_ = d.H;
  KV_ = d.KV;
  N_ = d.N;
  A_ = d.A;
  Akv_ = d.Akv;
  r_ts_ = cfg.use_tokenshift ? cfg.lora_rank_tokenshift : 0;
  r_d_ = cfg.lora_rank_decay;
  r_g_ = cfg.gate_rank_type == 2 ? cfg.lora_rank_gate : 0;
  const std::string prefix = Rwkv6MixerPrefix(layer);
  auto bind = [&](const std::string& name, const Shape& shape, Weight& w) {
    Param& p = params.Get(prefix + name);
    RADLADS_CHECK(p.value.shape() == shape) << p.name << ": shape " << ShapeToString(p.value.shape())
                                            << ", expected " << ShapeToString(shape);
    w.value = p.value;
    w.grad = p.trainable ? p.grad : Tensor();
  };
  Weight* slots[] = {&wq_, &bq_, &wk_, &bk_, &wv_, &bv_, &wo_, &bo_, &gate_, &g1_, &g2_,
                     &ln_w_, &ln_b_, &decay_, &decay_w1_, &decay_w2_, &maa_x_, &maa_w1_, &maa_w2_};
  const char* slot_names[] = {"q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                              "v_proj.weight", "v_proj.bias", "o_proj.weight", "o_proj.bias",
                              "gate.weight", "g1", "g2", "ln_x.weight", "ln_x.bias", "time_decay",
                              "time_decay_w1", "time_decay_w2", "time_maa_x", "time_maa_w1",
                              "time_maa_w2"};
  for (const auto& [name, shape] : ParamShapes(cfg)) {
    Weight* w = nullptr;
    for (std::size_t i = 0; i < std::size(slot_names); ++i)
      if (name == slot_names[i]) w = slots[i];
    for (int i = 0; i < kShifts; ++i)
      if (name == std::string("time_maa_") + kShiftNames[i]) w = &maa_[i];
    RADLADS_CHECK(w != nullptr) << "unbound parameter " << name;
    bind(name, shape, *w);
  }
}

void Rwkv6Mixer::Forward(const Tensor& x, MixerContext& ctx, Tensor& y) {
  const std::int64_t B = ctx.batch, T = ctx.time, BT = B * T;
  RADLADS_CHECK(x.shape() == (Shape{B, T, C_})) << "Rwkv6Mixer x " << x.DebugString() << " for B="
                                                << B << " T=" << T << " C=" << C_;
  RADLADS_CHECK(y.shape() == x.shape()) << "Rwkv6Mixer y " << y.DebugString();
  // Drop the previous forward's activations before allocating new ones.
  saved_ = false;
  x_ = delta_ = xx_ = ts_h_ = ts_m_ = r_ = k_exp_ = k_ = v_exp_ = decay_h_ = d_ = logw_ = p_ =
      gn_mean_ = gn_rstd_ = pn_ = gate_h_ = g_ = pg_ = Tensor();
  for (Tensor& t : xs_) t = Tensor();

  // 1. Tokenshift.
  Tensor xs[kShifts];
  Tensor delta, xx, ts_h, ts_m;
  if (cfg_.use_tokenshift) {
    delta = Tensor::Empty({B, T, C_});
    ops::TokenShiftDeltaForward(x, delta);
    xx = Tensor::Empty({B, T, C_});
    ops::LerpForward(x, delta, maa_x_.value.View({C_}), Tensor(), xx);
    ts_h = Tensor::Empty({BT, kShifts * r_ts_});
    ts_m = Tensor::Empty({kShifts, BT, C_});
    ops::LoraForward(xx, maa_w1_.value, maa_w2_.value, Tensor(), ops::LoraActivation::kTanh, ts_h,
                     ts_m);
    for (int i = 0; i < kShifts; ++i) {
      xs[i] = Tensor::Empty({B, T, C_});
      ops::LerpForward(x, delta, maa_[i].value.View({C_}), ts_m.Rows(i, i + 1).View({B, T, C_}),
                       xs[i]);
    }
  } else {
    for (Tensor& t : xs) t = x;
  }

  // 2. Projections, RoPE, GQA expansion.
  Tensor r = Tensor::Empty({B, T, H_, N_});
  Tensor kp = Tensor::Empty({B, T, KV_, N_});
  Tensor vp = Tensor::Empty({B, T, KV_, N_});
  {
    Tensor r_flat = r.View({B, T, A_}), k_flat = kp.View({B, T, Akv_}), v_flat = vp.View({B, T, Akv_});
    ops::LinearForward(xs[0], wq_.value, bq_.value, r_flat);
    ops::LinearForward(xs[1], wk_.value, bk_.value, k_flat);
    ops::LinearForward(xs[2], wv_.value, bv_.value, v_flat);
  }
  if (cfg_.use_rope) {
    RADLADS_CHECK(ctx.rope != nullptr) << "use_rope needs a RoPE table in the MixerContext";
    ops::RopeForward(r, *ctx.rope, ctx.pos0, r);
    ops::RopeForward(kp, *ctx.rope, ctx.pos0, kp);
  }
  Tensor k_exp = Tensor::Empty({B, T, H_, N_});
  Tensor v_exp = Tensor::Empty({B, T, H_, N_});
  ops::GqaExpandForward(kp, k_exp);
  ops::GqaExpandForward(vp, v_exp);

  // 3. Decay, 4. state balancing.
  Tensor decay_h = Tensor::Empty({BT, r_d_});
  Tensor d = Tensor::Empty({B, T, A_});
  ops::LoraForward(xs[3], decay_w1_.value, decay_w2_.value, decay_.value.View({A_}),
                   ops::LoraActivation::kTanh, decay_h, d);
  Tensor logw = Tensor::Empty({B, T, H_, N_});
  Tensor k = cfg_.balance_state ? Tensor::Empty({B, T, H_, N_}) : k_exp;
  {
    const float* dp = d.f32();
    float* lwp = logw.f32();
    const float* kep = k_exp.f32();
    float* kp_out = cfg_.balance_state ? k.f32() : nullptr;
    cpu::ParallelFor(BT * A_, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        const float lw = std::max(-std::exp(dp[i]), kLogDecayMin);
        lwp[i] = lw;
        if (kp_out != nullptr) kp_out[i] = kep[i] * -std::expm1(lw);  // k' (1 - w)
      }
    });
  }

  // 5. GLA recurrence.
  GlaOptions gla;
  gla.scale = 1.0f / std::sqrt(static_cast<float>(N_));
  gla.chunk = opts_.gla_chunk;
  Tensor p = Tensor::Empty({B, T, H_, N_});
  GlaForward(r, k, v_exp, logw, Tensor(), gla, p, nullptr);
  Tensor p_flat = p.View({B, T, A_});

  // 6. GroupNorm.
  Tensor pn = p_flat, gn_mean, gn_rstd;
  if (cfg_.groupnorm_att) {
    pn = Tensor::Empty({B, T, A_});
    gn_mean = Tensor::Empty({BT, H_});
    gn_rstd = Tensor::Empty({BT, H_});
    ops::GroupNormForward(p_flat, ln_w_.value, ln_b_.value, H_,
                          static_cast<float>(static_cast<double>(N_) * 1e-5), pn, gn_mean, gn_rstd);
  }

  // 7. Gate.
  Tensor g, gate_h, pg = pn;
  if (cfg_.gate_rank_type != 0) {
    g = Tensor::Empty({B, T, A_});
    if (cfg_.gate_rank_type == 1) {
      ops::LinearForward(xs[4], gate_.value, Tensor(), g);
      ops::SigmoidForward(g, g);
    } else {
      gate_h = Tensor::Empty({BT, r_g_});
      ops::LoraForward(xs[4], g1_.value, g2_.value, Tensor(), ops::LoraActivation::kSigmoid, gate_h, g);
    }
    pg = Tensor::Empty({B, T, A_});
    ops::Mul(pn, g, pg);
  }

  // 8. Output projection.
  ops::LinearForward(pg, wo_.value, bo_.value, y);

  if (ctx.need_backward) {
    saved_ = true;
    x_ = x;
    delta_ = delta;
    xx_ = xx;
    ts_h_ = ts_h;
    ts_m_ = ts_m;
    for (int i = 0; i < kShifts; ++i) xs_[i] = xs[i];
    r_ = r;
    k_exp_ = k_exp;
    k_ = k;
    v_exp_ = v_exp;
    decay_h_ = decay_h;
    d_ = d;
    logw_ = logw;
    p_ = p_flat;
    gn_mean_ = gn_mean;
    gn_rstd_ = gn_rstd;
    pn_ = pn;
    gate_h_ = gate_h;
    g_ = g;
    pg_ = pg;
  }
}

void Rwkv6Mixer::Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) {
  RADLADS_CHECK(saved_) << "Rwkv6Mixer::Backward without a training Forward";
  const std::int64_t B = ctx.batch, T = ctx.time, BT = B * T;
  RADLADS_CHECK(x_.shape() == (Shape{B, T, C_})) << "Rwkv6Mixer::Backward: context B=" << B
                                                 << " T=" << T << " for x " << x_.DebugString();
  RADLADS_CHECK(dy.shape() == x_.shape()) << "Rwkv6Mixer dy " << dy.DebugString();
  // Every branch's input gradient flows into dx (a scratch buffer when the caller needs none:
  // the tokenshift parameters' gradients still depend on it).
  Tensor dx_local;
  if (dx == nullptr) dx_local = Tensor::Zeros({B, T, C_});
  Tensor& dxr = dx != nullptr ? *dx : dx_local;
  RADLADS_CHECK(dxr.shape() == x_.shape()) << "Rwkv6Mixer dx " << dxr.DebugString();

  // With tokenshift, a branch's gradient wrt its x_c goes through the lerp
  // x_c = x + delta (mu_c + m_c): dx += dxc, ddelta += dxc (mu_c + m_c), dmu_c, dm_c.
  const bool ts = cfg_.use_tokenshift;
  Tensor dxc, ddelta, dm;
  if (ts) {
    dxc = Tensor::Empty({B, T, C_});
    ddelta = Tensor::Zeros({B, T, C_});
    dm = Tensor::Zeros({kShifts, BT, C_});
  }
  auto branch_grad = [&]() -> Tensor& {
    if (!ts) return dxr;
    dxc.SetZero();
    return dxc;
  };
  auto finish_branch = [&](int i) {
    if (!ts) return;
    Tensor dmu = GradView(maa_[i].grad, {C_});
    Tensor dmi = dm.Rows(i, i + 1).View({B, T, C_});
    ops::LerpBackward(delta_, maa_[i].value.View({C_}), ts_m_.Rows(i, i + 1).View({B, T, C_}), dxc,
                      &dxr, &ddelta, Opt(dmu), &dmi);
  };

  // 8. Output projection.
  Tensor d_pg = Tensor::Zeros({B, T, A_});
  ops::LinearBackward(pg_, wo_.value, dy, &d_pg, wo_.g(), bo_.g());

  // 7. Gate.
  Tensor d_pn = d_pg;
  if (cfg_.gate_rank_type != 0) {
    d_pn = Tensor::Zeros({B, T, A_});
    Tensor dg = Tensor::Zeros({B, T, A_});
    ops::MulBackward(pn_, g_, d_pg, &d_pn, &dg);
    Tensor& dxg = branch_grad();
    if (cfg_.gate_rank_type == 1) {
      Tensor dz = Tensor::Zeros({B, T, A_});
      ops::SigmoidBackward(g_, dg, dz);
      ops::LinearBackward(xs_[4], gate_.value, dz, &dxg, gate_.g(), nullptr);
    } else {
      ops::LoraBackward(xs_[4], g1_.value, g2_.value, ops::LoraActivation::kSigmoid, gate_h_, dg,
                        &dxg, g1_.g(), g2_.g(), nullptr);
    }
    finish_branch(4);
  }
  d_pg = Tensor();

  // 6. GroupNorm.
  Tensor d_p = d_pn;
  if (cfg_.groupnorm_att) {
    d_p = Tensor::Zeros({B, T, A_});
    ops::GroupNormBackward(p_, ln_w_.value, gn_mean_, gn_rstd_, d_pn, &d_p, ln_w_.g(), ln_b_.g());
  }
  d_pn = Tensor();

  // 5. GLA.
  GlaOptions gla;
  gla.scale = 1.0f / std::sqrt(static_cast<float>(N_));
  gla.chunk = opts_.gla_chunk;
  Tensor dr = Tensor::Zeros({B, T, H_, N_});
  Tensor dk = Tensor::Zeros({B, T, H_, N_});
  Tensor dv = Tensor::Zeros({B, T, H_, N_});
  Tensor dlogw = Tensor::Zeros({B, T, H_, N_});
  GlaBackward(r_, k_, v_exp_, logw_, Tensor(), d_p.View({B, T, H_, N_}), Tensor(), gla, dr, dk, dv,
              dlogw, nullptr);
  d_p = Tensor();

  // 4. State balancing and 3. the clamped decay: k = k'(1 - w), w = exp(log w),
  // log w = max(-exp(d), -5). dk' = dk (1 - w); dlog w += -dk k' w; dd = dlog w * (-exp(d))
  // where the clamp is inactive, 0 where it is. dk becomes dk', dlogw becomes dd (in place).
  {
    const bool balance = cfg_.balance_state;
    const float* dp = d_.f32();
    const float* lwp = logw_.f32();
    const float* kep = k_exp_.f32();
    float* dkp = dk.f32();
    float* dlp = dlogw.f32();
    cpu::ParallelFor(BT * A_, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        float dlw = dlp[i];
        if (balance) {
          const float lw = lwp[i];
          dlw -= dkp[i] * kep[i] * std::exp(lw);
          dkp[i] *= -std::expm1(lw);
        }
        const float e = -std::exp(dp[i]);
        dlp[i] = e >= kLogDecayMin ? dlw * e : 0.0f;
      }
    });
  }
  {
    Tensor& dxw = branch_grad();
    Tensor ddecay = GradView(decay_.grad, {A_});
    ops::LoraBackward(xs_[3], decay_w1_.value, decay_w2_.value, ops::LoraActivation::kTanh, decay_h_,
                      dlogw.View({B, T, A_}), &dxw, decay_w1_.g(), decay_w2_.g(), Opt(ddecay));
    finish_branch(3);
  }
  dlogw = Tensor();

  // 2. GQA expansion, RoPE, projections.
  Tensor dkp = Tensor::Zeros({B, T, KV_, N_});
  Tensor dvp = Tensor::Zeros({B, T, KV_, N_});
  ops::GqaExpandBackward(dk, dkp);
  ops::GqaExpandBackward(dv, dvp);
  dk = dv = Tensor();
  if (cfg_.use_rope) {
    RADLADS_CHECK(ctx.rope != nullptr) << "use_rope needs a RoPE table in the MixerContext";
    Tensor dr_pre = Tensor::Zeros(dr.shape());
    Tensor dk_pre = Tensor::Zeros(dkp.shape());
    ops::RopeBackward(dr, *ctx.rope, ctx.pos0, dr_pre);
    ops::RopeBackward(dkp, *ctx.rope, ctx.pos0, dk_pre);
    dr = dr_pre;
    dkp = dk_pre;
  }
  {
    Tensor& dxq = branch_grad();
    ops::LinearBackward(xs_[0], wq_.value, dr.View({B, T, A_}), &dxq, wq_.g(), bq_.g());
    finish_branch(0);
  }
  {
    Tensor& dxk = branch_grad();
    ops::LinearBackward(xs_[1], wk_.value, dkp.View({B, T, Akv_}), &dxk, wk_.g(), bk_.g());
    finish_branch(1);
  }
  {
    Tensor& dxv = branch_grad();
    ops::LinearBackward(xs_[2], wv_.value, dvp.View({B, T, Akv_}), &dxv, wv_.g(), bv_.g());
    finish_branch(2);
  }

  // 1. Tokenshift: xx = x + delta mu_x, m = LoRA(xx), delta = shift(x) - x.
  if (ts) {
    Tensor dxx = Tensor::Zeros({B, T, C_});
    ops::LoraBackward(xx_, maa_w1_.value, maa_w2_.value, ops::LoraActivation::kTanh, ts_h_, dm, &dxx,
                      maa_w1_.g(), maa_w2_.g(), nullptr);
    Tensor dmu = GradView(maa_x_.grad, {C_});
    ops::LerpBackward(delta_, maa_x_.value.View({C_}), Tensor(), dxx, &dxr, &ddelta, Opt(dmu), nullptr);
    ops::TokenShiftDeltaBackward(ddelta, dxr);
  }
}

}  // namespace radlads
