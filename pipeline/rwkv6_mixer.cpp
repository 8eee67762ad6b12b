#include "pipeline/rwkv6_mixer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/gemm.h"
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
constexpr float kLogDecayMin = -5.0f;  // log w = max(-exp(d), -5) (docs/spec.md §3.3)

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

// ops::LinearBackward, except that dx is OVERWRITTEN with dy W (a GEMM with beta = 0: the caller
// need not zero-fill it). dW and db accumulate as usual.
void LinearBackwardInto(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor* dw,
                        Tensor* db) {
  const std::int64_t out = w.dim(0), in = w.dim(1), n = dx.numel() / in;
  RADLADS_CHECK(dx.numel() == n * in && dy.numel() == n * out && x.numel() == n * in)
      << "LinearBackwardInto: x " << x.DebugString() << ", w " << w.DebugString() << ", dy "
      << dy.DebugString() << ", dx " << dx.DebugString();
  Gemm(false, false, n, in, out, 1.0f, dy.f32(), out, w.f32(), in, 0.0f, dx.f32(), in);
  if (dw != nullptr || db != nullptr) ops::LinearBackward(x, w, dy, nullptr, dw, db);
}

// Column ranges for the fused passes that also reduce over rows: each thread owns whole columns
// and walks the rows in order, so the fp64 column sums are independent of the thread count.
constexpr std::int64_t kColGrain = 16;

// 1. Tokenshift backward (the math of ops::LerpBackward for the five branches and for xx, and of
// ops::TokenShiftDeltaBackward), in two fused passes around the LoRA backward:
//   x_c = x + delta (mu_c + m_c) (c = r, k, v, w, g), m = LoRA(xx), xx = x + delta mu_x,
//   delta_t = x_{t-1} - x_t.
// The passes split the columns over the threads and walk the rows in order, so the fp64 sums
// of dmu_c are independent of the thread count.
struct TokenShiftSaved {
  const Tensor& x;      // [B,T,C]
  const Tensor& delta;  // [B,T,C]
  const Tensor& xx;     // [B,T,C]
  const Tensor& ts_h;   // [B*T, 5 r]
  const Tensor& ts_m;   // [5, B*T, C]
  const Tensor& w1;     // time_maa_w1 and its gradient (undefined: frozen)
  const Tensor& w2;
  Tensor* dw1;
  Tensor* dw2;
  const Tensor& mu_x;   // time_maa_x and its gradient
  float* dmu_x;
  const float* mu[5];   // time_maa_{r,k,v,w,g} and their gradients (null: frozen)
  float* dmu[5];
};

void TokenShiftBackward(const TokenShiftSaved& sv, const Tensor& dxs, Tensor& dxr) {
  constexpr int kShifts = 5;
  const std::int64_t C = sv.x.dim(2), BT = dxr.numel() / C, T = sv.x.dim(1), plane = BT * C;
  Tensor dm = Tensor::Empty({kShifts, BT, C});
  Tensor ddelta = Tensor::Empty({BT, C});  // the five branches' part
  {
    const float* gp = dxs.f32();
    const float* dlp = sv.delta.f32();
    const float* mp = sv.ts_m.f32();
    float* dmp = dm.f32();
    float* ddp = ddelta.f32();
    float* dxp = dxr.f32();
    const float* const* mu = sv.mu;
    float* const* dmu = sv.dmu;
    cpu::ParallelFor(C, kColGrain, [&](std::int64_t c0, std::int64_t c1) {
      const std::int64_t w = c1 - c0;
      std::vector<double> acc(static_cast<std::size_t>(kShifts * w), 0.0);
      double* __restrict ap = acc.data();
      for (std::int64_t r = 0; r < BT; ++r) {
        const std::int64_t o = r * C + c0;
#pragma omp simd
        for (std::int64_t j = 0; j < w; ++j) {
          const float dl = dlp[o + j];
          float sdx = 0.0f, sdd = 0.0f;
          for (int i = 0; i < kShifts; ++i) {
            const float g = gp[i * plane + o + j];
            sdx += g;
            sdd += g * (mu[i][c0 + j] + mp[i * plane + o + j]);
            dmp[i * plane + o + j] = g * dl;
            ap[i * w + j] += static_cast<double>(g) * dl;
          }
          dxp[o + j] += sdx;
          ddp[o + j] = sdd;
        }
      }
      for (int i = 0; i < kShifts; ++i) {
        if (dmu[i] == nullptr) continue;
        for (std::int64_t j = 0; j < w; ++j) dmu[i][c0 + j] += static_cast<float>(ap[i * w + j]);
      }
    });
  }
  Tensor dxx = Tensor::Zeros(sv.xx.shape());
  ops::LoraBackward(sv.xx, sv.w1, sv.w2, ops::LoraActivation::kTanh, sv.ts_h, dm, &dxx, sv.dw1,
                    sv.dw2, nullptr);
  dm = Tensor();
  {
    // xx's lerp (dx += dxx, ddelta += dxx mu_x, dmu_x) and delta's shift
    // (dx_t += ddelta_{t+1} - ddelta_t), with ddelta's final value formed on the fly.
    const float* gp = dxx.f32();
    const float* dlp = sv.delta.f32();
    const float* ddp = ddelta.f32();
    const float* mux = sv.mu_x.f32();
    float* dmux = sv.dmu_x;
    float* dxp = dxr.f32();
    cpu::ParallelFor(C, kColGrain, [&](std::int64_t c0, std::int64_t c1) {
      const std::int64_t w = c1 - c0;
      std::vector<double> acc(static_cast<std::size_t>(w), 0.0);
      double* __restrict ap = acc.data();
      for (std::int64_t r = 0; r < BT; ++r) {
        const std::int64_t o = r * C + c0;
        const bool last = (r + 1) % T == 0;
#pragma omp simd
        for (std::int64_t j = 0; j < w; ++j) {
          const float g = gp[o + j];
          const float mj = mux[c0 + j];
          const float f0 = ddp[o + j] + g * mj;
          const float f1 = last ? 0.0f : ddp[o + C + j] + gp[o + C + j] * mj;
          dxp[o + j] += g;
          dxp[o + j] += f1 - f0;
          ap[j] += static_cast<double>(g) * dlp[o + j];
        }
      }
      if (dmux != nullptr) {
        for (std::int64_t j = 0; j < w; ++j) dmux[c0 + j] += static_cast<float>(ap[j]);
      }
    });
  }
}

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
    // Fused passes (the math of ops::TokenShiftDeltaForward and ops::LerpForward): delta and xx
    // in one pass, then the five mixed inputs in one pass.
    delta = Tensor::Empty({B, T, C_});
    xx = Tensor::Empty({B, T, C_});
    const std::int64_t C = C_;
    {
      const float* xp = x.f32();
      const float* mux = maa_x_.value.f32();
      float* dp = delta.f32();
      float* xxp = xx.f32();
      cpu::ParallelFor(BT, ops::RowGrain(C), [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          const float* __restrict xr = xp + r * C;
          const float* __restrict xprev = r % T == 0 ? nullptr : xr - C;  // x_{-1} = 0
          float* __restrict dr = dp + r * C;
          float* __restrict xxr = xxp + r * C;
          if (xprev == nullptr) {
#pragma omp simd
            for (std::int64_t j = 0; j < C; ++j) {
              dr[j] = 0.0f - xr[j];
              xxr[j] = xr[j] + dr[j] * mux[j];
            }
          } else {
#pragma omp simd
            for (std::int64_t j = 0; j < C; ++j) {
              dr[j] = xprev[j] - xr[j];
              xxr[j] = xr[j] + dr[j] * mux[j];
            }
          }
        }
      });
    }
    ts_h = Tensor::Empty({BT, kShifts * r_ts_});
    ts_m = Tensor::Empty({kShifts, BT, C_});
    ops::LoraForward(xx, maa_w1_.value, maa_w2_.value, Tensor(), ops::LoraActivation::kTanh, ts_h,
                     ts_m);
    Tensor xs_all = Tensor::Empty({kShifts, BT, C_});
    {
      const float* xp = x.f32();
      const float* dp = delta.f32();
      const float* mp = ts_m.f32();
      float* yp = xs_all.f32();
      const float* mu[kShifts];
      for (int i = 0; i < kShifts; ++i) mu[i] = maa_[i].value.f32();
      cpu::ParallelFor(BT, ops::RowGrain(kShifts * C), [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          const float* __restrict xr = xp + r * C;
          const float* __restrict dr = dp + r * C;
          for (int i = 0; i < kShifts; ++i) {
            const float* __restrict mr = mp + (i * BT + r) * C;
            const float* __restrict mui = mu[i];
            float* __restrict yr = yp + (i * BT + r) * C;
#pragma omp simd
            for (std::int64_t j = 0; j < C; ++j) yr[j] = xr[j] + dr[j] * (mui[j] + mr[j]);
          }
        }
      });
    }
    for (int i = 0; i < kShifts; ++i) xs[i] = xs_all.Rows(i, i + 1).View({B, T, C_});
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
    // cpu::Exp / cpu::Expm1 (kernels/cpu/vec_math.h) vectorise, std::exp / std::expm1 do not.
    cpu::ParallelFor(BT * A_, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
      if (kp_out != nullptr) {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) {
          const float e = -cpu::Exp(dp[i]);
          const float lw = e > kLogDecayMin ? e : kLogDecayMin;
          lwp[i] = lw;
          kp_out[i] = kep[i] * -cpu::Expm1(lw);  // k' (1 - w)
        }
      } else {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) {
          const float e = -cpu::Exp(dp[i]);
          lwp[i] = e > kLogDecayMin ? e : kLogDecayMin;
        }
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
    pg = Tensor::Empty({B, T, A_});
    if (cfg_.gate_rank_type == 1) {
      ops::LinearForward(xs[4], gate_.value, Tensor(), g);
      // g = sigmoid(z) in place and pg = pn * g, one pass.
      float* gp = g.f32();
      const float* pnp = pn.f32();
      float* pgp = pg.f32();
      cpu::ParallelFor(BT * A_, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) {
          const float gi = cpu::Sigmoid(gp[i]);
          gp[i] = gi;
          pgp[i] = pnp[i] * gi;
        }
      });
    } else {
      gate_h = Tensor::Empty({BT, r_g_});
      ops::LoraForward(xs[4], g1_.value, g2_.value, Tensor(), ops::LoraActivation::kSigmoid, gate_h, g);
      ops::Mul(pn, g, pg);
    }
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

  // With tokenshift, branch c's gradient wrt its input x_c = x + delta (mu_c + m_c) goes into
  // its own slot of dxs [5, B*T, C]; one fused pass at the end applies the five lerp backwards
  // (dx += dx_c, ddelta += dx_c (mu_c + m_c), dmu_c, dm_c = dx_c delta). Without tokenshift the
  // branches accumulate into dx directly.
  const bool ts = cfg_.use_tokenshift;
  Tensor dxs;
  if (ts) dxs = Tensor::Empty({kShifts, BT, C_});
  auto slot = [&](int i) { return dxs.Rows(i, i + 1).View({B, T, C_}); };
  // Where an accumulating op (LoRA) writes branch i's input gradient.
  auto acc_slot = [&](int i) -> Tensor {
    if (!ts) return dxr;
    Tensor t = slot(i);
    t.SetZero();
    return t;
  };
  auto linear_branch = [&](int i, const Tensor& w, const Tensor& d, Tensor* dw, Tensor* db) {
    if (ts) {
      Tensor si = slot(i);
      LinearBackwardInto(xs_[i], w, d, si, dw, db);
    } else {
      ops::LinearBackward(xs_[i], w, d, &dxr, dw, db);
    }
  };

  // 8. Output projection.
  Tensor d_pg = Tensor::Empty({B, T, A_});
  LinearBackwardInto(pg_, wo_.value, dy, d_pg, wo_.g(), bo_.g());

  // 7. Gate.
  Tensor d_pn = d_pg;
  if (cfg_.gate_rank_type == 1) {
    // pg = pn g, g = sigmoid(z): d_pn = d_pg g, dz = d_pg pn g (1 - g), one pass.
    d_pn = Tensor::Empty({B, T, A_});
    Tensor dz = Tensor::Empty({B, T, A_});
    const float* dpgp = d_pg.f32();
    const float* gp = g_.f32();
    const float* pnp = pn_.f32();
    float* dpnp = d_pn.f32();
    float* dzp = dz.f32();
    cpu::ParallelFor(BT * A_, kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
      for (std::int64_t i = i0; i < i1; ++i) {
        const float gi = gp[i];
        dpnp[i] = dpgp[i] * gi;
        dzp[i] = dpgp[i] * pnp[i] * (gi * (1.0f - gi));
      }
    });
    linear_branch(4, gate_.value, dz, gate_.g(), nullptr);
  } else if (cfg_.gate_rank_type == 2) {
    d_pn = Tensor::Zeros({B, T, A_});
    Tensor dg = Tensor::Zeros({B, T, A_});
    ops::MulBackward(pn_, g_, d_pg, &d_pn, &dg);
    Tensor dxg = acc_slot(4);
    ops::LoraBackward(xs_[4], g1_.value, g2_.value, ops::LoraActivation::kSigmoid, gate_h_, dg,
                      &dxg, g1_.g(), g2_.g(), nullptr);
  } else if (ts) {
    slot(4).SetZero();  // no gate: x_g feeds nothing
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
      if (balance) {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) {
          const float lw = lwp[i];
          const float em1 = cpu::Expm1(lw);  // w - 1
          const float dlw = dlp[i] - dkp[i] * kep[i] * (em1 + 1.0f);
          dkp[i] *= -em1;
          const float e = -cpu::Exp(dp[i]);
          dlp[i] = e >= kLogDecayMin ? dlw * e : 0.0f;
        }
      } else {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) {
          const float e = -cpu::Exp(dp[i]);
          dlp[i] = e >= kLogDecayMin ? dlp[i] * e : 0.0f;
        }
      }
    });
  }
  {
    Tensor dxw = acc_slot(3);
    Tensor ddecay = GradView(decay_.grad, {A_});
    ops::LoraBackward(xs_[3], decay_w1_.value, decay_w2_.value, ops::LoraActivation::kTanh, decay_h_,
                      dlogw.View({B, T, A_}), &dxw, decay_w1_.g(), decay_w2_.g(), Opt(ddecay));
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
  linear_branch(0, wq_.value, dr.View({B, T, A_}), wq_.g(), bq_.g());
  linear_branch(1, wk_.value, dkp.View({B, T, Akv_}), wk_.g(), bk_.g());
  linear_branch(2, wv_.value, dvp.View({B, T, Akv_}), wv_.g(), bv_.g());
  dr = dkp = dvp = Tensor();
  if (ts) {
    TokenShiftSaved sv{x_,           delta_,       xx_,          ts_h_,
                       ts_m_,        maa_w1_.value, maa_w2_.value, maa_w1_.g(),
                       maa_w2_.g(),  maa_x_.value,  nullptr,      {},
                       {}};
    sv.dmu_x = maa_x_.grad.defined() ? maa_x_.grad.f32() : nullptr;
    for (int i = 0; i < kShifts; ++i) {
      sv.mu[i] = maa_[i].value.f32();
      sv.dmu[i] = maa_[i].grad.defined() ? maa_[i].grad.f32() : nullptr;
    }
    TokenShiftBackward(sv, dxs, dxr);
  }
}

}  // namespace radlads
