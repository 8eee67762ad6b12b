// The RAD-RWKV6 mixer on the device: pipeline/rwkv6_mixer.cpp's math, parameters and order of
// operations (docs/spec.md §3.3), over the CUDA kernels. See pipeline/cuda/gpu_model.h for the
// precision (fp32 activations, bf16 GEMM operands) and the GLA recurrence's bf16 I/O
// (kernels/cuda/gla.h, chunked form).
#include <cmath>
#include <string>

#include "base/check.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gla.h"
#include "kernels/cuda/norms.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rwkv_glue.h"
#include "pipeline/cuda/gpu_model.h"
#include "pipeline/cuda/gpu_ops.h"

namespace radlads::cuda {
namespace {

constexpr int kShifts = kRwkv6Shifts;  // r, k, v, w, g
constexpr const char* kShiftNames[kShifts] = {"r", "k", "v", "w", "g"};

const float* F(const GpuParam* p) { return p != nullptr ? p->f() : nullptr; }
float* G(const GpuParam* p) { return p != nullptr ? p->g() : nullptr; }

class GpuRwkv6 : public GpuMixer {
 public:
  GpuRwkv6(const StudentConfig& cfg, int layer, const GpuParamStore& store) : cfg_(cfg) {
    RADLADS_CHECK(cfg.arch == StudentArch::kRwkv6) << "RAD-RWKV6 mixer for a non-rwkv6 config";
    const Qwen2Config& b = cfg.base;
    C_ = b.hidden_size;
    H_ = b.num_attention_heads;
    KV_ = b.num_key_value_heads;
    N_ = b.head_dim;
    A_ = H_ * N_;
    Akv_ = KV_ * N_;
    RADLADS_CHECK(N_ == 32 || N_ == 64 || N_ == 128) << "CUDA RAD-RWKV6: head dim " << N_ << " (32, 64 or 128)";
    RADLADS_CHECK(KV_ > 0 && H_ % KV_ == 0) << H_ << " heads, " << KV_ << " kv heads";
    const std::string p = "model.layers." + std::to_string(layer) + ".self_attn.";
    auto req = [&](const char* n) { return &store.Get(p + n); };
    wq_ = req("q_proj.weight");
    wk_ = req("k_proj.weight");
    wv_ = req("v_proj.weight");
    wo_ = req("o_proj.weight");
    if (cfg.attention_bias) {
      bq_ = req("q_proj.bias");
      bk_ = req("k_proj.bias");
      bv_ = req("v_proj.bias");
    }
    if (cfg.attention_output_bias) bo_ = req("o_proj.bias");
    if (cfg.gate_rank_type == 1) gate_ = req("gate.weight");
    if (cfg.gate_rank_type == 2) {
      g1_ = req("g1");
      g2_ = req("g2");
    }
    if (cfg.groupnorm_att) {
      ln_w_ = req("ln_x.weight");
      ln_b_ = req("ln_x.bias");
    }
    if (cfg.use_tokenshift) {
      maa_x_ = req("time_maa_x");
      for (int i = 0; i < kShifts; ++i) maa_[i] = req((std::string("time_maa_") + kShiftNames[i]).c_str());
      maa_w1_ = req("time_maa_w1");
      maa_w2_ = req("time_maa_w2");
    }
    decay_ = req("time_decay");
    decay_w1_ = req("time_decay_w1");
    decay_w2_ = req("time_decay_w2");
  }

  void Forward(const float* x, GpuMixerCtx& ctx, float* y, bool keep) override {
    sv_ = Saved();
    const std::int64_t B = ctx.B, T = ctx.T, n = B * T, NC = n * C_, NA = n * A_;
    cudaStream_t s = ctx.s;
    Saved sv;
    sv.x_bf = ToBf16(x, NC, s);
    const bf16* xsb[kShifts];
    // 1. Tokenshift.
    if (cfg_.use_tokenshift) {
      const std::int64_t r = cfg_.lora_rank_tokenshift;
      sv.delta = EmptyF32(NC, s);
      DeviceTensor xx = EmptyF32(NC, s);
      Rwkv6ShiftPrepare<float>(x, maa_x_->f(), B, T, C_, sv.delta.f32(), xx.f32(), s);
      sv.xx_bf = ToBf16(xx.f32(), NC, s);
      xx.Reset();
      sv.ts_h = EmptyF32(n * kShifts * r, s);
      sv.ts_m = EmptyF32(kShifts * NC, s);
      LoraForward(sv.xx_bf.bf16(), n, ShiftLora(), LoraAct::kTanh, sv.ts_h.f32(), sv.ts_m.f32(), s);
      DeviceTensor xs_all = EmptyF32(kShifts * NC, s);
      Rwkv6ShiftMix<float>(x, sv.delta.f32(), sv.ts_m.f32(), Mu(), n, C_, xs_all.f32(), s);
      sv.xs_bf = ToBf16(xs_all.f32(), kShifts * NC, s);
      for (int i = 0; i < kShifts; ++i) xsb[i] = sv.xs_bf.bf16() + i * NC;
    } else {
      for (int i = 0; i < kShifts; ++i) xsb[i] = sv.x_bf.bf16();
    }
    // 2. Projections, RoPE (before the GQA expansion), expansion.
    DeviceTensor r = EmptyF32(NA, s), kp = EmptyF32(n * Akv_, s), vp = EmptyF32(n * Akv_, s);
    LinearForward(xsb[0], n, C_, wq_->b(), F(bq_), A_, r.f32(), s);
    LinearForward(xsb[1], n, C_, wk_->b(), F(bk_), Akv_, kp.f32(), s);
    LinearForward(xsb[2], n, C_, wv_->b(), F(bv_), Akv_, vp.f32(), s);
    if (cfg_.use_rope) {
      RopeForward(r.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, H_, N_, ctx.pos0, r.f32(), s);
      RopeForward(kp.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, KV_, N_, ctx.pos0, kp.f32(), s);
    }
    sv.k_exp = EmptyF32(NA, s);
    DeviceTensor v_exp = EmptyF32(NA, s);
    GqaExpandForward(kp.f32(), n, KV_, H_ / KV_, N_, sv.k_exp.f32(), s);
    GqaExpandForward(vp.f32(), n, KV_, H_ / KV_, N_, v_exp.f32(), s);
    kp.Reset();
    vp.Reset();
    // 3. Decay, 4. state balancing.
    sv.decay_h = EmptyF32(n * cfg_.lora_rank_decay, s);
    sv.d = EmptyF32(NA, s);
    LoraForward(xsb[3], n, DecayLora(), LoraAct::kTanh, sv.decay_h.f32(), sv.d.f32(), s);
    sv.logw = EmptyF32(NA, s);
    DeviceTensor kbal;
    if (cfg_.balance_state) kbal = EmptyF32(NA, s);
    Rwkv6DecayForward<float>(sv.d.f32(), sv.k_exp.f32(), NA, sv.logw.f32(),
                             cfg_.balance_state ? kbal.f32() : nullptr, s);
    // 5. GLA (bf16 I/O, fp32 state).
    sv.r_bf = ToBf16(r.f32(), NA, s);
    sv.k_bf = ToBf16(cfg_.balance_state ? kbal.f32() : sv.k_exp.f32(), NA, s);
    sv.v_bf = ToBf16(v_exp.f32(), NA, s);
    sv.g_bf = ToBf16(sv.logw.f32(), NA, s);
    r.Reset();
    kbal.Reset();
    v_exp.Reset();
    {
      DeviceTensor o({NA}, DeviceDType::kBF16, s);
      GlaForwardArgs a;
      a.shape = GlaShapeOf(B, T);
      a.scale = Scale();
      a.r = sv.r_bf.bf16();
      a.k = sv.k_bf.bf16();
      a.v = sv.v_bf.bf16();
      a.g = sv.g_bf.bf16();
      a.o = o.bf16();
      GlaForwardCuda(a, GlaAlgo::kChunked, s);
      sv.p = EmptyF32(NA, s);
      ConvertBf16ToF32(o.bf16(), NA, sv.p.f32(), s);
    }
    // 6. GroupNorm.
    const float* pn = sv.p.f32();
    if (cfg_.groupnorm_att) {
      sv.pn = EmptyF32(NA, s);
      sv.gn_mean = EmptyF32(n * H_, s);
      sv.gn_rstd = EmptyF32(n * H_, s);
      GroupNormForward(sv.p.f32(), ln_w_->f(), ln_b_->f(), n, A_, H_, GnEps(), sv.pn.f32(), sv.gn_mean.f32(),
                       sv.gn_rstd.f32(), s);
      pn = sv.pn.f32();
    }
    // 7. Gate.
    DeviceTensor pg;
    const float* pgp = pn;
    if (cfg_.gate_rank_type != 0) {
      sv.g = EmptyF32(NA, s);
      pg = EmptyF32(NA, s);
      if (cfg_.gate_rank_type == 1) {
        LinearForward(xsb[4], n, C_, gate_->b(), nullptr, A_, sv.g.f32(), s);
        Rwkv6GateForward<float>(sv.g.f32(), pn, NA, pg.f32(), s);
      } else {
        sv.gate_h = EmptyF32(n * cfg_.lora_rank_gate, s);
        LoraForward(xsb[4], n, GateLora(), LoraAct::kSigmoid, sv.gate_h.f32(), sv.g.f32(), s);
        Mul<float>(pn, sv.g.f32(), NA, pg.f32(), s);
      }
      pgp = pg.f32();
    }
    // 8. Output projection.
    sv.pg_bf = ToBf16(pgp, NA, s);
    LinearForward(sv.pg_bf.bf16(), n, A_, wo_->b(), F(bo_), C_, y, s);
    if (keep) {
      sv.B = B;
      sv.T = T;
      sv.pos0 = ctx.pos0;
      sv.valid = true;
      sv_ = std::move(sv);
    }
  }

  void Backward(const float* dy, GpuMixerCtx& ctx, float* dx) override {
    RADLADS_CHECK(sv_.valid && sv_.B == ctx.B && sv_.T == ctx.T) << "GpuRwkv6::Backward without a training Forward";
    Saved& sv = sv_;
    const std::int64_t B = sv.B, T = sv.T, n = B * T, NC = n * C_, NA = n * A_;
    cudaStream_t s = ctx.s;
    const bool ts = cfg_.use_tokenshift;
    const bf16* xsb[kShifts];
    for (int i = 0; i < kShifts; ++i) xsb[i] = ts ? sv.xs_bf.bf16() + i * NC : sv.x_bf.bf16();
    // Branch i's input gradient: its own slot of dxs [5, n, C] with tokenshift (the lerp
    // backward runs at the end), else dx directly.
    DeviceTensor dxs;
    if (ts) dxs = EmptyF32(kShifts * NC, s);
    auto slot = [&](int i) { return dxs.f32() + i * NC; };
    auto acc_slot = [&](int i) -> float* {
      if (!ts) return dx;
      RADLADS_CUDA_CHECK(cudaMemsetAsync(slot(i), 0, static_cast<std::size_t>(NC) * sizeof(float), s));
      return slot(i);
    };
    auto linear_branch = [&](int i, const GpuParam* w, const float* d, std::int64_t out, float* dw, float* db) {
      if (ts) {
        LinearBackward(xsb[i], d, n, C_, out, w->b(), slot(i), false, dw, db, s);
      } else {
        LinearBackward(xsb[i], d, n, C_, out, w->b(), dx, true, dw, db, s);
      }
    };

    // 8. Output projection.
    DeviceTensor d_pg = EmptyF32(NA, s);
    LinearBackward(sv.pg_bf.bf16(), dy, n, A_, C_, wo_->b(), d_pg.f32(), false, G(wo_), G(bo_), s);
    // 7. Gate.
    const float* pn = cfg_.groupnorm_att ? sv.pn.f32() : sv.p.f32();
    DeviceTensor d_pn_t;
    const float* d_pn = d_pg.f32();
    if (cfg_.gate_rank_type == 1) {
      d_pn_t = EmptyF32(NA, s);
      DeviceTensor dz = EmptyF32(NA, s);
      Rwkv6GateBackward<float>(d_pg.f32(), sv.g.f32(), pn, NA, d_pn_t.f32(), dz.f32(), s);
      linear_branch(4, gate_, dz.f32(), A_, G(gate_), nullptr);
      d_pn = d_pn_t.f32();
    } else if (cfg_.gate_rank_type == 2) {
      d_pn_t = ZerosF32(NA, s);
      DeviceTensor dg = ZerosF32(NA, s);
      MulBackward<float>(pn, sv.g.f32(), d_pg.f32(), NA, d_pn_t.f32(), dg.f32(), s);
      float* dxg = acc_slot(4);
      LoraBackward(xsb[4], n, GateLora(), LoraAct::kSigmoid, sv.gate_h.f32(), dg.f32(), dxg,
                   LoraGrads{G(g1_), G(g2_), nullptr}, s);
      d_pn = d_pn_t.f32();
    } else if (ts) {
      RADLADS_CUDA_CHECK(cudaMemsetAsync(slot(4), 0, static_cast<std::size_t>(NC) * sizeof(float), s));
    }
    // 6. GroupNorm.
    DeviceTensor d_p_t;
    const float* d_p = d_pn;
    if (cfg_.groupnorm_att) {
      d_p_t = ZerosF32(NA, s);
      DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, A_), s);
      GroupNormBackward(sv.p.f32(), ln_w_->f(), sv.gn_mean.f32(), sv.gn_rstd.f32(), d_pn, n, A_, H_, d_p_t.f32(),
                        G(ln_w_), G(ln_b_), static_cast<double*>(ws.raw()), s);
      d_p = d_p_t.f32();
    }
    // 5. GLA.
    DeviceTensor dr = EmptyF32(NA, s), dk = EmptyF32(NA, s), dv = EmptyF32(NA, s), dlogw = EmptyF32(NA, s);
    {
      DeviceTensor do_bf = ToBf16(d_p, NA, s);
      DeviceTensor dr_b = DeviceTensor::Zeros({NA}, DeviceDType::kBF16, s);
      DeviceTensor dk_b = DeviceTensor::Zeros({NA}, DeviceDType::kBF16, s);
      DeviceTensor dv_b = DeviceTensor::Zeros({NA}, DeviceDType::kBF16, s);
      DeviceTensor dg_b = DeviceTensor::Zeros({NA}, DeviceDType::kBF16, s);
      const GlaShape shape = GlaShapeOf(B, T);
      const std::size_t wsb = gla_plan::BackwardWorkspaceBytes(shape, GlaAlgo::kChunked);
      DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
      GlaBackwardArgs a;
      a.shape = shape;
      a.scale = Scale();
      a.r = sv.r_bf.bf16();
      a.k = sv.k_bf.bf16();
      a.v = sv.v_bf.bf16();
      a.g = sv.g_bf.bf16();
      a.d_o = do_bf.bf16();
      a.dr = dr_b.bf16();
      a.dk = dk_b.bf16();
      a.dv = dv_b.bf16();
      a.dg = dg_b.bf16();
      GlaBackwardCuda(a, GlaAlgo::kChunked, ws.raw(), wsb, s);
      ConvertBf16ToF32(dr_b.bf16(), NA, dr.f32(), s);
      ConvertBf16ToF32(dk_b.bf16(), NA, dk.f32(), s);
      ConvertBf16ToF32(dv_b.bf16(), NA, dv.f32(), s);
      ConvertBf16ToF32(dg_b.bf16(), NA, dlogw.f32(), s);
    }
    d_pg.Reset();
    d_pn_t.Reset();
    d_p_t.Reset();
    // 4. State balancing and 3. the clamped decay (dk becomes dk', dlogw the gradient wrt d).
    Rwkv6DecayBackward<float>(sv.d.f32(), sv.logw.f32(), cfg_.balance_state ? sv.k_exp.f32() : nullptr, NA,
                              cfg_.balance_state, cfg_.balance_state ? dk.f32() : nullptr, dlogw.f32(), s);
    {
      float* dxw = acc_slot(3);
      LoraBackward(xsb[3], n, DecayLora(), LoraAct::kTanh, sv.decay_h.f32(), dlogw.f32(), dxw,
                   LoraGrads{G(decay_w1_), G(decay_w2_), G(decay_)}, s);
    }
    dlogw.Reset();
    // 2. GQA expansion, RoPE, projections.
    DeviceTensor dkp = ZerosF32(n * Akv_, s), dvp = ZerosF32(n * Akv_, s);
    GqaExpandBackward(dk.f32(), n, KV_, H_ / KV_, N_, dkp.f32(), s);
    GqaExpandBackward(dv.f32(), n, KV_, H_ / KV_, N_, dvp.f32(), s);
    dk.Reset();
    dv.Reset();
    if (cfg_.use_rope) {
      DeviceTensor dr_pre = ZerosF32(NA, s), dk_pre = ZerosF32(n * Akv_, s);
      RopeBackward(dr.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, H_, N_, sv.pos0, dr_pre.f32(), s);
      RopeBackward(dkp.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, KV_, N_, sv.pos0, dk_pre.f32(), s);
      dr = std::move(dr_pre);
      dkp = std::move(dk_pre);
    }
    linear_branch(0, wq_, dr.f32(), A_, G(wq_), G(bq_));
    linear_branch(1, wk_, dkp.f32(), Akv_, G(wk_), G(bk_));
    linear_branch(2, wv_, dvp.f32(), Akv_, G(wv_), G(bv_));
    dr.Reset();
    dkp.Reset();
    dvp.Reset();
    // 1. Tokenshift backward: the five lerps, the LoRA, then delta and xx.
    if (ts) {
      DeviceTensor ddelta = EmptyF32(NC, s), dm = EmptyF32(kShifts * NC, s);
      {
        DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, kShifts * C_), s);
        Rwkv6ShiftBackwardBranches<float>(dxs.f32(), sv.delta.f32(), sv.ts_m.f32(), Mu(), n, C_, dx, ddelta.f32(),
                                          dm.f32(), Dmu(), static_cast<double*>(ws.raw()), s);
      }
      dxs.Reset();
      DeviceTensor dxx = ZerosF32(NC, s);
      LoraBackward(sv.xx_bf.bf16(), n, ShiftLora(), LoraAct::kTanh, sv.ts_h.f32(), dm.f32(), dxx.f32(),
                   LoraGrads{G(maa_w1_), G(maa_w2_), nullptr}, s);
      dm.Reset();
      DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, C_), s);
      Rwkv6ShiftBackwardFinish<float>(dxx.f32(), sv.delta.f32(), ddelta.f32(), maa_x_->f(), B, T, C_, dx,
                                      G(maa_x_), static_cast<double*>(ws.raw()), s);
    }
    sv_ = Saved();
  }

 private:
  struct Saved {
    bool valid = false;
    std::int64_t B = 0, T = 0, pos0 = 0;
    DeviceTensor x_bf, delta, xx_bf, ts_h, ts_m, xs_bf;
    DeviceTensor k_exp, decay_h, d, logw;
    DeviceTensor r_bf, k_bf, v_bf, g_bf;  // the GLA inputs
    DeviceTensor p, pn, gn_mean, gn_rstd, gate_h, g, pg_bf;
  };

  GlaShape GlaShapeOf(std::int64_t B, std::int64_t T) const { return GlaShape{B, T, H_, N_, N_}; }
  float Scale() const { return 1.0f / std::sqrt(static_cast<float>(N_)); }
  float GnEps() const { return static_cast<float>(static_cast<double>(N_) * 1e-5); }
  LoraWeights ShiftLora() const {
    return LoraWeights{maa_w1_->b(), maa_w2_->b(), C_, cfg_.lora_rank_tokenshift, C_, kShifts, nullptr};
  }
  LoraWeights DecayLora() const {
    return LoraWeights{decay_w1_->b(), decay_w2_->b(), C_, cfg_.lora_rank_decay, A_, 1, decay_->f()};
  }
  LoraWeights GateLora() const {
    return LoraWeights{g1_->b(), g2_->b(), C_, cfg_.lora_rank_gate, A_, 1, nullptr};
  }
  Rwkv6ShiftMu Mu() const {
    Rwkv6ShiftMu m{};
    for (int i = 0; i < kShifts; ++i) m.mu[i] = maa_[i]->f();
    return m;
  }
  Rwkv6ShiftDmu Dmu() const {
    Rwkv6ShiftDmu d{};
    for (int i = 0; i < kShifts; ++i) d.dmu[i] = G(maa_[i]);
    return d;
  }

  StudentConfig cfg_;
  std::int64_t C_ = 0, H_ = 0, KV_ = 0, N_ = 0, A_ = 0, Akv_ = 0;
  const GpuParam *wq_ = nullptr, *bq_ = nullptr, *wk_ = nullptr, *bk_ = nullptr, *wv_ = nullptr, *bv_ = nullptr,
                 *wo_ = nullptr, *bo_ = nullptr;
  const GpuParam *gate_ = nullptr, *g1_ = nullptr, *g2_ = nullptr, *ln_w_ = nullptr, *ln_b_ = nullptr;
  const GpuParam *maa_x_ = nullptr, *maa_[kShifts] = {}, *maa_w1_ = nullptr, *maa_w2_ = nullptr;
  const GpuParam *decay_ = nullptr, *decay_w1_ = nullptr, *decay_w2_ = nullptr;
  Saved sv_;
};

}  // namespace

std::unique_ptr<GpuMixer> MakeGpuRwkv6(const StudentConfig& cfg, int layer, const GpuParamStore& store) {
  return std::make_unique<GpuRwkv6>(cfg, layer, store);
}

}  // namespace radlads::cuda
