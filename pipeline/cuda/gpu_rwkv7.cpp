// The RAD-RWKV7 mixer on the device: pipeline/rwkv7_mixer.cpp's math, parameters and order of
// operations (docs/spec.md §3.4), over the CUDA kernels. The DPLR recurrence runs in its chunked
// form with fp32 I/O (kernels/cuda/dplr.h); its key inputs are recomputed in the backward from
// the saved kappa, as on the CPU. See pipeline/cuda/gpu_model.h for the precision.
#include <cmath>
#include <string>

#include "base/check.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dplr.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/norms.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rwkv_glue.h"
#include "pipeline/cuda/gpu_model.h"
#include "pipeline/cuda/gpu_ops.h"

namespace radlads::cuda {
namespace {

const float* F(const GpuParam* p) { return p != nullptr ? p->f() : nullptr; }
float* G(const GpuParam* p) { return p != nullptr ? p->g() : nullptr; }

class GpuRwkv7 : public GpuMixer {
 public:
  GpuRwkv7(const StudentConfig& cfg, int layer, const GpuParamStore& store) : cfg_(cfg), layer_(layer) {
    RADLADS_CHECK(cfg.arch == StudentArch::kRwkv7) << "RAD-RWKV7 mixer needs an rwkv7qwen2 config";
    RADLADS_CHECK(!cfg.use_tokenshift) << "RAD-RWKV7 has no tokenshift";
    const Qwen2Config& b = cfg.base;
    C_ = b.hidden_size;
    H_ = b.num_attention_heads;
    KV_ = b.num_key_value_heads;
    N_ = b.head_dim;
    A_ = H_ * N_;
    Akv_ = KV_ * N_;
    RADLADS_CHECK(KV_ > 0 && H_ % KV_ == 0) << H_ << " heads, " << KV_ << " kv heads";
    const std::string why = DplrCudaValidate(DplrCudaDims{1, 1, H_, N_}, DplrConfig());
    RADLADS_CHECK(why.empty()) << "CUDA RAD-RWKV7: " << why;
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
    w0_ = req("w0");
    w1_ = req("w1");
    w2_ = req("w2");
    a0_ = req("a0");
    a1_ = req("a1");
    a2_ = req("a2");
    v0_ = req("v0");
    v1_ = req("v1");
    v2_ = req("v2");
    if (cfg.gate_rank_type == 2) {
      g1_ = req("g1");
      g2_ = req("g2");
    } else if (cfg.gate_rank_type == 1) {
      wg_ = req("gate.weight");
    }
    k_k_ = req("k_k");
    k_a_ = req("k_a");
    if (cfg.groupnorm_att) {
      lnw_ = req("ln_x.weight");
      lnb_ = req("ln_x.bias");
    }
  }

  void Forward(const float* x, GpuMixerCtx& ctx, float* y, bool keep) override {
    sv_ = Saved();
    const std::int64_t B = ctx.B, T = ctx.T, n = B * T, NC = n * C_, NA = n * A_;
    cudaStream_t s = ctx.s;
    Saved sv;
    sv.x_bf = ToBf16(x, NC, s);
    const bf16* xb = sv.x_bf.bf16();
    // Projections, RoPE before the GQA expansion.
    sv.r = EmptyF32(NA, s);
    DeviceTensor kp = EmptyF32(n * Akv_, s), vp = EmptyF32(n * Akv_, s);
    LinearForward(xb, n, C_, wq_->b(), F(bq_), A_, sv.r.f32(), s);
    LinearForward(xb, n, C_, wk_->b(), F(bk_), Akv_, kp.f32(), s);
    LinearForward(xb, n, C_, wv_->b(), F(bv_), Akv_, vp.f32(), s);
    if (cfg_.use_rope) {
      RopeForward(sv.r.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, H_, N_, ctx.pos0, sv.r.f32(), s);
      RopeForward(kp.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, KV_, N_, ctx.pos0, kp.f32(), s);
    }
    sv.kx = EmptyF32(NA, s);
    sv.vx = EmptyF32(NA, s);
    GqaExpandForward(kp.f32(), n, KV_, H_ / KV_, N_, sv.kx.f32(), s);
    GqaExpandForward(vp.f32(), n, KV_, H_ / KV_, N_, sv.vx.f32(), s);
    kp.Reset();
    vp.Reset();
    // Decay: log w = -e^-0.5 sigmoid(w0 + tanh(x W1) W2).
    sv.hw = EmptyF32(n * cfg_.lora_rank_decay, s);
    sv.logw = EmptyF32(NA, s);
    LoraForward(xb, n, DecayLora(), LoraAct::kTanh, sv.hw.f32(), sv.logw.f32(), s);
    Rwkv7DecayForward<float>(sv.logw.f32(), NA, s);
    // In-context learning rate a = sigmoid(a0 + x A1 A2).
    sv.ha = EmptyF32(n * cfg_.lora_rank_iclr, s);
    sv.a = EmptyF32(NA, s);
    LoraForward(xb, n, IclrLora(), LoraAct::kNone, sv.ha.f32(), sv.a.f32(), s);
    ActivationForward<float>(Activation::kSigmoid, sv.a.f32(), NA, sv.a.f32(), s);
    // Value residual.
    const float* v = sv.vx.f32();
    if (layer_ == 0) {
      if (ctx.v_first != nullptr) CopyF32(sv.vx.f32(), NA, ctx.v_first, s);
    } else {
      RADLADS_CHECK(ctx.v_first != nullptr) << "GpuRwkv7 layer " << layer_ << ": no v_first";
      sv.hv = EmptyF32(n * cfg_.lora_rank_value_residual_mix, s);
      sv.nu = EmptyF32(NA, s);
      LoraForward(xb, n, VmixLora(), LoraAct::kNone, sv.hv.f32(), sv.nu.f32(), s);
      ActivationForward<float>(Activation::kSigmoid, sv.nu.f32(), NA, sv.nu.f32(), s);
      sv.v = EmptyF32(NA, s);
      Rwkv7ValueMixForward<float>(sv.vx.f32(), ctx.v_first, sv.nu.f32(), NA, sv.v.f32(), s);
      v = sv.v.f32();
    }
    // Gate.
    if (cfg_.gate_rank_type == 2) {
      sv.hg = EmptyF32(n * cfg_.lora_rank_gate, s);
      sv.g = EmptyF32(NA, s);
      LoraForward(xb, n, GateLora(), LoraAct::kSigmoid, sv.hg.f32(), sv.g.f32(), s);
    } else if (cfg_.gate_rank_type == 1) {
      sv.g = EmptyF32(NA, s);
      LinearForward(xb, n, C_, wg_->b(), nullptr, A_, sv.g.f32(), s);
      ActivationForward<float>(Activation::kSigmoid, sv.g.f32(), NA, sv.g.f32(), s);
    }
    // Keys and the recurrence.
    sv.kappa = EmptyF32(NA, s);
    sv.nrm = EmptyF32(n * H_, s);
    {
      DeviceTensor ktil = EmptyF32(NA, s), ad = EmptyF32(NA, s), bd = EmptyF32(NA, s);
      Rwkv7DplrKeys<float>(sv.kx.f32(), sv.a.f32(), sv.logw.f32(), k_k_->f(), k_a_->f(), n * H_, H_, N_,
                           cfg_.balance_state, sv.kappa.f32(), sv.nrm.f32(), ktil.f32(), ad.f32(), bd.f32(), s);
      sv.o = EmptyF32(NA, s);
      const DplrCudaDims dims{B, T, H_, N_};
      const DplrCudaConfig dc = DplrConfig();
      const std::size_t wsb = DplrCudaForwardWorkspaceBytes(dims, dc);
      DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
      DplrCudaForwardArgs args;
      args.r = sv.r.f32();
      args.g = sv.logw.f32();
      args.k = ktil.f32();
      args.v = v;
      args.a = ad.f32();
      args.b = bd.f32();
      args.o = sv.o.f32();
      DplrCudaForward(dims, dc, args, ws.raw(), wsb, s);
    }
    // Normalisation, gate, output projection.
    const float* p = sv.o.f32();
    if (cfg_.groupnorm_att) {
      sv.p = EmptyF32(NA, s);
      sv.gn_mean = EmptyF32(n * H_, s);
      sv.gn_rstd = EmptyF32(n * H_, s);
      GroupNormForward(sv.o.f32(), lnw_->f(), lnb_->f(), n, A_, H_, static_cast<float>(static_cast<double>(N_) * 1e-5),
                       sv.p.f32(), sv.gn_mean.f32(), sv.gn_rstd.f32(), s);
      p = sv.p.f32();
    }
    DeviceTensor pg;
    const float* pgp = p;
    if (sv.g.defined()) {
      pg = EmptyF32(NA, s);
      Mul<float>(p, sv.g.f32(), NA, pg.f32(), s);
      pgp = pg.f32();
    }
    sv.pg_bf = ToBf16(pgp, NA, s);
    LinearForward(sv.pg_bf.bf16(), n, A_, wo_->b(), F(bo_), C_, y, s);
    if (keep) {
      sv.valid = true;
      sv.B = B;
      sv.T = T;
      sv.pos0 = ctx.pos0;
      sv_ = std::move(sv);
    }
  }

  void Backward(const float* dy, GpuMixerCtx& ctx, float* dx) override {
    RADLADS_CHECK(sv_.valid && sv_.B == ctx.B && sv_.T == ctx.T) << "GpuRwkv7::Backward without a training Forward";
    RADLADS_CHECK(dx != nullptr) << "GpuRwkv7::Backward needs dx";
    Saved& sv = sv_;
    const std::int64_t B = sv.B, T = sv.T, n = B * T, NA = n * A_;
    cudaStream_t s = ctx.s;
    const bf16* xb = sv.x_bf.bf16();
    const float* p = cfg_.groupnorm_att ? sv.p.f32() : sv.o.f32();
    // Output projection and gate.
    DeviceTensor dpg = EmptyF32(NA, s);
    LinearBackward(sv.pg_bf.bf16(), dy, n, A_, C_, wo_->b(), dpg.f32(), false, G(wo_), G(bo_), s);
    DeviceTensor dp_t;
    const float* dp = dpg.f32();
    if (sv.g.defined()) {
      dp_t = ZerosF32(NA, s);
      DeviceTensor dgate = ZerosF32(NA, s);
      MulBackward<float>(p, sv.g.f32(), dpg.f32(), NA, dp_t.f32(), dgate.f32(), s);
      if (cfg_.gate_rank_type == 2) {
        LoraBackward(xb, n, GateLora(), LoraAct::kSigmoid, sv.hg.f32(), dgate.f32(), dx,
                     LoraGrads{G(g1_), G(g2_), nullptr}, s);
      } else {
        DeviceTensor dgpre = ZerosF32(NA, s);
        ActivationBackward<float>(Activation::kSigmoid, sv.g.f32(), dgate.f32(), NA, dgpre.f32(), s);
        LinearBackward(xb, dgpre.f32(), n, C_, A_, wg_->b(), dx, true, G(wg_), nullptr, s);
      }
      dp = dp_t.f32();
    }
    DeviceTensor d_o_t;
    const float* d_o = dp;
    if (cfg_.groupnorm_att) {
      d_o_t = ZerosF32(NA, s);
      DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, A_), s);
      GroupNormBackward(sv.o.f32(), lnw_->f(), sv.gn_mean.f32(), sv.gn_rstd.f32(), dp, n, A_, H_, d_o_t.f32(),
                        G(lnw_), G(lnb_), static_cast<double*>(ws.raw()), s);
      d_o = d_o_t.f32();
    }
    // Recurrence (its key inputs recomputed from kappa).
    DeviceTensor dr = ZerosF32(NA, s), dlogw = ZerosF32(NA, s), dktil = ZerosF32(NA, s), dv = ZerosF32(NA, s),
                 dad = ZerosF32(NA, s), dbd = ZerosF32(NA, s);
    {
      DeviceTensor ktil = EmptyF32(NA, s), ad = EmptyF32(NA, s), bd = EmptyF32(NA, s);
      Rwkv7DplrKeys<float>(sv.kx.f32(), sv.a.f32(), sv.logw.f32(), k_k_->f(), k_a_->f(), n * H_, H_, N_,
                           cfg_.balance_state, sv.kappa.f32(), nullptr, ktil.f32(), ad.f32(), bd.f32(), s);
      const DplrCudaDims dims{B, T, H_, N_};
      const DplrCudaConfig dc = DplrConfig();
      const std::size_t wsb = DplrCudaBackwardWorkspaceBytes(dims, dc);
      DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
      DplrCudaBackwardArgs args;
      args.r = sv.r.f32();
      args.g = sv.logw.f32();
      args.k = ktil.f32();
      args.v = sv.v.defined() ? sv.v.f32() : sv.vx.f32();
      args.a = ad.f32();
      args.b = bd.f32();
      args.dout = d_o;
      args.dr = dr.f32();
      args.dg = dlogw.f32();
      args.dk = dktil.f32();
      args.dv = dv.f32();
      args.da = dad.f32();
      args.db = dbd.f32();
      DplrCudaBackward(dims, dc, args, ws.raw(), wsb, s);
    }
    dpg.Reset();
    dp_t.Reset();
    d_o_t.Reset();
    // Keys, decay and ICLR.
    const bool balance = cfg_.balance_state;
    DeviceTensor dkx = EmptyF32(NA, s), da = EmptyF32(NA, s), dkk_e, dka_e;
    if (!balance && G(k_k_) != nullptr) dkk_e = EmptyF32(NA, s);
    if (!balance && G(k_a_) != nullptr) dka_e = EmptyF32(NA, s);
    Rwkv7KeysBackward<float>(sv.kx.f32(), sv.kappa.f32(), sv.nrm.f32(), sv.a.f32(), sv.logw.f32(), k_k_->f(),
                             k_a_->f(), dktil.f32(), dad.f32(), dbd.f32(), n * H_, H_, N_, balance, dlogw.f32(),
                             dkx.f32(), da.f32(), dkk_e.defined() ? dkk_e.f32() : nullptr,
                             dka_e.defined() ? dka_e.f32() : nullptr, s);
    dktil.Reset();
    dad.Reset();
    dbd.Reset();
    if (dkk_e.defined() || dka_e.defined()) {
      DeviceTensor ws = DeviceTensor::Bytes(ColSumWorkspaceBytes(n, A_), s);
      if (dkk_e.defined()) SumRows<float>(dkk_e.f32(), n, A_, G(k_k_), static_cast<double*>(ws.raw()), s);
      if (dka_e.defined()) SumRows<float>(dka_e.f32(), n, A_, G(k_a_), static_cast<double*>(ws.raw()), s);
    }
    LoraBackward(xb, n, DecayLora(), LoraAct::kTanh, sv.hw.f32(), dlogw.f32(), dx,
                 LoraGrads{G(w1_), G(w2_), G(w0_)}, s);
    LoraBackward(xb, n, IclrLora(), LoraAct::kNone, sv.ha.f32(), da.f32(), dx, LoraGrads{G(a1_), G(a2_), G(a0_)},
                 s);
    dlogw.Reset();
    da.Reset();
    // Value path.
    DeviceTensor dvx_t;
    const float* dvx = dv.f32();
    if (layer_ == 0) {
      if (ctx.dv_first != nullptr) AddScaled<float>(dv.f32(), 1.0f, ctx.dv_first, NA, dv.f32(), s);
    } else {
      RADLADS_CHECK(ctx.v_first != nullptr) << "GpuRwkv7 layer " << layer_ << ": no v_first in the backward";
      dvx_t = EmptyF32(NA, s);
      DeviceTensor dnu = EmptyF32(NA, s);
      Rwkv7ValueMixBackward<float>(dv.f32(), sv.vx.f32(), ctx.v_first, sv.nu.f32(), NA, dvx_t.f32(), dnu.f32(),
                                   ctx.dv_first, s);
      LoraBackward(xb, n, VmixLora(), LoraAct::kNone, sv.hv.f32(), dnu.f32(), dx, LoraGrads{G(v1_), G(v2_), G(v0_)},
                   s);
      dvx = dvx_t.f32();
    }
    // GQA, RoPE, projections.
    DeviceTensor dkp = ZerosF32(n * Akv_, s), dvp = ZerosF32(n * Akv_, s);
    GqaExpandBackward(dkx.f32(), n, KV_, H_ / KV_, N_, dkp.f32(), s);
    GqaExpandBackward(dvx, n, KV_, H_ / KV_, N_, dvp.f32(), s);
    if (cfg_.use_rope) {
      DeviceTensor dr0 = ZerosF32(NA, s), dk0 = ZerosF32(n * Akv_, s);
      RopeBackward(dr.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, H_, N_, sv.pos0, dr0.f32(), s);
      RopeBackward(dkp.f32(), ctx.rope->cos(), ctx.rope->sin(), B, T, KV_, N_, sv.pos0, dk0.f32(), s);
      dr = std::move(dr0);
      dkp = std::move(dk0);
    }
    LinearBackward(xb, dr.f32(), n, C_, A_, wq_->b(), dx, true, G(wq_), G(bq_), s);
    LinearBackward(xb, dkp.f32(), n, C_, Akv_, wk_->b(), dx, true, G(wk_), G(bk_), s);
    LinearBackward(xb, dvp.f32(), n, C_, Akv_, wv_->b(), dx, true, G(wv_), G(bv_), s);
    sv_ = Saved();
  }

 private:
  struct Saved {
    bool valid = false;
    std::int64_t B = 0, T = 0, pos0 = 0;
    DeviceTensor x_bf, r, kx, vx, hw, ha, hv, hg, logw, a, nu, g, kappa, nrm, v, o, p, gn_mean, gn_rstd, pg_bf;
  };

  DplrCudaConfig DplrConfig() const {
    DplrCudaConfig c;
    c.form = DplrForm::kChunked;
    c.dtype = DplrDType::kF32;
    c.scale = cfg_.groupnorm_att ? 1.0f : 1.0f / std::sqrt(static_cast<float>(N_));
    c.chunk = 16;
    return c;
  }
  LoraWeights DecayLora() const { return LoraWeights{w1_->b(), w2_->b(), C_, cfg_.lora_rank_decay, A_, 1, w0_->f()}; }
  LoraWeights IclrLora() const { return LoraWeights{a1_->b(), a2_->b(), C_, cfg_.lora_rank_iclr, A_, 1, a0_->f()}; }
  LoraWeights VmixLora() const {
    return LoraWeights{v1_->b(), v2_->b(), C_, cfg_.lora_rank_value_residual_mix, A_, 1, v0_->f()};
  }
  LoraWeights GateLora() const { return LoraWeights{g1_->b(), g2_->b(), C_, cfg_.lora_rank_gate, A_, 1, nullptr}; }

  StudentConfig cfg_;
  int layer_ = 0;
  std::int64_t C_ = 0, H_ = 0, KV_ = 0, N_ = 0, A_ = 0, Akv_ = 0;
  const GpuParam *wq_ = nullptr, *bq_ = nullptr, *wk_ = nullptr, *bk_ = nullptr, *wv_ = nullptr, *bv_ = nullptr,
                 *wo_ = nullptr, *bo_ = nullptr;
  const GpuParam *w0_ = nullptr, *w1_ = nullptr, *w2_ = nullptr, *a0_ = nullptr, *a1_ = nullptr, *a2_ = nullptr,
                 *v0_ = nullptr, *v1_ = nullptr, *v2_ = nullptr, *g1_ = nullptr, *g2_ = nullptr, *wg_ = nullptr,
                 *k_k_ = nullptr, *k_a_ = nullptr, *lnw_ = nullptr, *lnb_ = nullptr;
  Saved sv_;
};

}  // namespace

std::unique_ptr<GpuMixer> MakeGpuRwkv7(const StudentConfig& cfg, int layer, const GpuParamStore& store) {
  return std::make_unique<GpuRwkv7>(cfg, layer, store);
}

}  // namespace radlads::cuda
