#include "pipeline/attention_mixer.h"

#include <cmath>

#include "kernels/ops/attention.h"
#include "kernels/ops/linear.h"

namespace radlads {
namespace {

// FrozenWeightScratch slots of the attention matrices (the decoder's MLP uses the next ones).
constexpr int kSlotQ = 0, kSlotK = 1, kSlotV = 2, kSlotO = 3;

}  // namespace

AttentionMixer::AttentionMixer(const Qwen2Config& cfg, ParamSet& params, const std::string& prefix)
    : heads_(cfg.num_attention_heads),
      kv_heads_(cfg.num_key_value_heads),
      head_dim_(cfg.head_dim),
      hidden_(cfg.hidden_size) {
  auto get = [&](const char* name, Tensor& value, Tensor& grad, const Shape& shape) {
    Param& p = params.Get(prefix + name);
    RADLADS_CHECK(p.value.shape() == shape)
        << p.name << ": shape " << ShapeToString(p.value.shape()) << ", expected "
        << ShapeToString(shape);
    RADLADS_CHECK(!p.trainable || p.value.dtype() == DType::kF32)
        << p.name << ": a trainable parameter must be F32, got " << p.value.DebugString();
    // Vectors are converted once (tiny); matrices per use (FrozenWeightScratch).
    value = p.value.rank() == 1 ? ResidentF32(p.value) : p.value;
    grad = p.trainable ? p.grad : Tensor();
  };
  const std::int64_t qd = heads_ * head_dim_, kvd = kv_heads_ * head_dim_;
  get("q_proj.weight", wq_, dwq_, {qd, hidden_});
  get("q_proj.bias", bq_, dbq_, {qd});
  get("k_proj.weight", wk_, dwk_, {kvd, hidden_});
  get("k_proj.bias", bk_, dbk_, {kvd});
  get("v_proj.weight", wv_, dwv_, {kvd, hidden_});
  get("v_proj.bias", bv_, dbv_, {kvd});
  get("o_proj.weight", wo_, dwo_, {hidden_, qd});
}

void AttentionMixer::Forward(const Tensor& x, MixerContext& ctx, Tensor& y) {
  const std::int64_t B = ctx.batch, T = ctx.time;
  RADLADS_CHECK(ctx.rope != nullptr) << "attention needs a RoPE table";
  x_ = x;
  q_ = Tensor::Empty({B, T, heads_, head_dim_});
  k_ = Tensor::Empty({B, T, kv_heads_, head_dim_});
  v_ = Tensor::Empty({B, T, kv_heads_, head_dim_});
  Tensor q_flat = q_.View({B, T, heads_ * head_dim_});
  Tensor k_flat = k_.View({B, T, kv_heads_ * head_dim_});
  Tensor v_flat = v_.View({B, T, kv_heads_ * head_dim_});
  FrozenWeightScratch& scratch = ctx.frozen_scratch != nullptr ? *ctx.frozen_scratch : own_scratch_;
  ops::LinearForward(x, scratch.AsF32(kSlotQ, wq_), bq_, q_flat);
  ops::LinearForward(x, scratch.AsF32(kSlotK, wk_), bk_, k_flat);
  ops::LinearForward(x, scratch.AsF32(kSlotV, wv_), bv_, v_flat);
  ops::RopeForward(q_, *ctx.rope, ctx.pos0, q_);
  ops::RopeForward(k_, *ctx.rope, ctx.pos0, k_);
  o_ = Tensor::Empty({B, T, heads_, head_dim_});
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  if (ctx.need_backward) {
    lse_ = Tensor::Empty({B, heads_, T});
    AttentionForward(q_, k_, v_, scale, o_, &lse_);
  } else {
    AttentionForward(q_, k_, v_, scale, o_, nullptr);
  }
  ops::LinearForward(o_.View({B, T, heads_ * head_dim_}), scratch.AsF32(kSlotO, wo_), Tensor(), y);
}

void AttentionMixer::Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) {
  const std::int64_t B = ctx.batch, T = ctx.time;
  RADLADS_CHECK(lse_.defined()) << "Backward without a training Forward";
  Tensor o_flat = o_.View({B, T, heads_ * head_dim_});
  Tensor d_o = Tensor::Zeros({B, T, heads_, head_dim_});
  Tensor d_o_flat = d_o.View({B, T, heads_ * head_dim_});
  FrozenWeightScratch& scratch = ctx.frozen_scratch != nullptr ? *ctx.frozen_scratch : own_scratch_;
  ops::LinearBackward(o_flat, scratch.AsF32(kSlotO, wo_), dy, &d_o_flat, dwo_.defined() ? &dwo_ : nullptr, nullptr);
  Tensor dq = Tensor::Zeros(q_.shape());
  Tensor dk = Tensor::Zeros(k_.shape());
  Tensor dv = Tensor::Zeros(v_.shape());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  AttentionBackward(q_, k_, v_, scale, o_, lse_, d_o, dq, dk, dv);
  // dq, dk are gradients wrt the rotated q, k: rotate back.
  Tensor dq_pre = Tensor::Zeros(q_.shape());
  Tensor dk_pre = Tensor::Zeros(k_.shape());
  ops::RopeBackward(dq, *ctx.rope, ctx.pos0, dq_pre);
  ops::RopeBackward(dk, *ctx.rope, ctx.pos0, dk_pre);
  auto opt = [](Tensor& t) { return t.defined() ? &t : nullptr; };
  const std::int64_t qd = heads_ * head_dim_, kvd = kv_heads_ * head_dim_;
  ops::LinearBackward(x_, scratch.AsF32(kSlotQ, wq_), dq_pre.View({B, T, qd}), dx, opt(dwq_), opt(dbq_));
  ops::LinearBackward(x_, scratch.AsF32(kSlotK, wk_), dk_pre.View({B, T, kvd}), dx, opt(dwk_), opt(dbk_));
  ops::LinearBackward(x_, scratch.AsF32(kSlotV, wv_), dv.View({B, T, kvd}), dx, opt(dwv_), opt(dbv_));
}

}  // namespace radlads
