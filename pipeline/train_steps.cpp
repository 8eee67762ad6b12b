#include "pipeline/train_steps.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops/align_loss.h"
#include "kernels/ops/gqa.h"
#include "kernels/ops/head_loss.h"
#include "kernels/ops/linear.h"

namespace radlads {

Tensor ValueFirstFromTeacher(const StudentConfig& cfg, const Tensor& wv, const Tensor& bv, const Tensor& x0) {
  const Qwen2Config& b = cfg.base;
  const std::int64_t B = x0.dim(0), T = x0.dim(1);
  Tensor v = Tensor::Empty({B, T, b.num_key_value_heads, b.head_dim});
  Tensor v_flat = v.View({B, T, b.num_key_value_heads * b.head_dim});
  ops::LinearForward(x0, wv, bv, v_flat);
  Tensor vx = Tensor::Empty({B, T, b.num_attention_heads, b.head_dim});
  ops::GqaExpandForward(v, vx);
  return vx.View({B, T, b.num_attention_heads * b.head_dim});
}

AlignTrainer::AlignTrainer(const StudentConfig& cfg, int layer, ParamSet& params, Mixer& mixer,
                           const OptimizerSettings& opt)
    : cfg_(cfg), layer_(layer), mixer_(mixer), optimizer_(params, opt) {}

const ops::RopeTable& AlignTrainer::Rope(std::int64_t needed) {
  if (!rope_.cos.defined() || rope_.max_positions() < needed) {
    rope_ = ops::MakeRopeTable(std::max<std::int64_t>(needed, 512), cfg_.base.head_dim, cfg_.base.rope_theta);
  }
  return rope_;
}

double AlignTrainer::Run(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first, bool backward,
                         float grad_scale) {
  MixerContext ctx;
  ctx.batch = mixer_in.dim(0);
  ctx.time = mixer_in.dim(1);
  ctx.rope = &Rope(ctx.time);
  ctx.need_backward = backward;
  if (layer_ > 0) ctx.v_first = v_first;  // RAD-RWKV7 reads it; RAD-RWKV6 ignores it
  Tensor y = Tensor::Empty(mixer_in.shape());
  mixer_.Forward(mixer_in, ctx, y);
  double loss = AlignLossForward(target, y);
  if (backward) {
    Tensor dy = Tensor::Zeros(y.shape());
    AlignLossBackward(target, y, grad_scale, dy);
    mixer_.Backward(dy, ctx, nullptr);
  }
  return loss;
}

AlignStepStats AlignTrainer::Accumulate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first,
                                        float grad_scale) {
  AlignStepStats s;
  s.loss = Run(mixer_in, target, v_first, true, grad_scale);
  s.tokens = mixer_in.dim(0) * mixer_in.dim(1);
  return s;
}

double AlignTrainer::Evaluate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first) {
  return Run(mixer_in, target, v_first, false, 0.0f);
}

DistillTrainer::DistillTrainer(DecoderModel& student, ParamSet& student_params, DecoderModel& teacher,
                               const OptimizerSettings& opt, std::int64_t kl_chunk)
    : student_(student), teacher_(teacher), optimizer_(student_params, opt), chunk_(kl_chunk) {}

DistillStepStats DistillHeadLoss(const Tensor& student_hidden, const Tensor& w_student, const Tensor& teacher_hidden,
                                 const Tensor& w_teacher, const Tensor& targets, float grad_scale, std::int64_t chunk,
                                 const VocabShard* vocab, const HeadGrads& grads) {
  const std::int64_t N = targets.numel();
  HeadLossOptions ho;
  ho.chunk = chunk;
  ho.grad_scale = grad_scale / static_cast<float>(N);
  const bool split = vocab != nullptr && vocab->group != nullptr && vocab->group->size() > 1;
  KlResult r = split ? VocabParallelKl(student_hidden, w_student, teacher_hidden, w_teacher, &targets, grads, ho, *vocab)
                     : FusedKl(student_hidden, w_student, teacher_hidden, w_teacher, &targets, grads, ho);
  DistillStepStats s;
  s.tokens = N;
  s.kl = r.kl_sum / static_cast<double>(N);
  s.top1 = static_cast<double>(r.top1_agree) / static_cast<double>(N);
  s.student_ce = r.ce_count > 0 ? r.ce_sum / static_cast<double>(r.ce_count) : 0.0;
  return s;
}

FinetuneStepStats FinetuneHeadLoss(const Tensor& hidden, const Tensor& w, const Tensor& targets, float grad_scale,
                                   std::int64_t chunk, const VocabShard* vocab, const HeadGrads& grads) {
  // The reported loss is the mean over positions with a target (-1: ignored), so the gradient is
  // scaled by the same count.
  std::int64_t n = 0;
  const std::int32_t* tg = targets.data<std::int32_t>();
  for (std::int64_t i = 0; i < targets.numel(); ++i) n += tg[i] >= 0 ? 1 : 0;
  HeadLossOptions ho;
  ho.chunk = chunk;
  ho.grad_scale = n > 0 ? grad_scale / static_cast<float>(n) : 0.0f;
  const bool split = vocab != nullptr && vocab->group != nullptr && vocab->group->size() > 1;
  CeResult r = split ? VocabParallelCrossEntropy(hidden, w, targets, grads, ho, *vocab)
                     : FusedCrossEntropy(hidden, w, targets, grads, ho);
  FinetuneStepStats s;
  s.tokens = r.count;
  s.ce = r.count > 0 ? r.loss_sum / static_cast<double>(r.count) : 0.0;
  return s;
}

DistillStepStats DistillTrainer::Run(const LmBatch& batch, bool backward, float grad_scale) {
  DecoderForwardOptions tf;
  Tensor teacher_hidden = teacher_.Forward(batch.inputs, tf);
  DecoderForwardOptions sf;
  sf.need_backward = backward;
  Tensor student_hidden = student_.Forward(batch.inputs, sf);
  Tensor dhidden;
  Tensor dw = student_.head_grad();
  HeadGrads grads;
  if (backward) {
    dhidden = Tensor::Zeros(student_hidden.shape());
    grads.dx = &dhidden;
    grads.dw = dw.defined() ? &dw : nullptr;
  }
  const DistillStepStats s = DistillHeadLoss(student_hidden, student_.head_weight(), teacher_hidden,
                                             teacher_.head_weight(), batch.targets, grad_scale, chunk_, nullptr, grads);
  if (backward) student_.Backward(dhidden);
  return s;
}

DistillStepStats DistillTrainer::Accumulate(const LmBatch& batch, float grad_scale) {
  return Run(batch, true, grad_scale);
}

DistillStepStats DistillTrainer::Evaluate(const LmBatch& batch) { return Run(batch, false, 0.0f); }

FinetuneTrainer::FinetuneTrainer(DecoderModel& model, ParamSet& params, const OptimizerSettings& opt,
                                 std::int64_t chunk)
    : model_(model), optimizer_(params, opt), chunk_(chunk) {}

FinetuneStepStats FinetuneTrainer::Accumulate(const LmBatch& batch, float grad_scale) {
  DecoderForwardOptions fo;
  fo.need_backward = true;
  Tensor hidden = model_.Forward(batch.inputs, fo);
  Tensor dhidden = Tensor::Zeros(hidden.shape());
  Tensor dw = model_.head_grad();
  const FinetuneStepStats s = FinetuneHeadLoss(hidden, model_.head_weight(), batch.targets, grad_scale, chunk_,
                                               nullptr, HeadGrads{&dhidden, dw.defined() ? &dw : nullptr});
  model_.Backward(dhidden);
  return s;
}

}  // namespace radlads
