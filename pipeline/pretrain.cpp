#include "pipeline/pretrain.h"

#include <chrono>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "kernels/ops/head_loss.h"
#include "pipeline/init.h"
#include "pipeline/lm_batch.h"
#include "pipeline/optimizer.h"
#include "storage/window_sampler.h"

namespace radlads {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double PretrainLr(const PretrainOptions& o, std::int64_t step, std::int64_t steps) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  double p = steps > o.warmup_steps
                 ? static_cast<double>(step - o.warmup_steps) / static_cast<double>(steps - o.warmup_steps)
                 : 1.0;
  return o.lr_final + 0.5 * (o.lr - o.lr_final) * (1.0 + std::cos(std::numbers::pi * p));
}

}  // namespace

void InitQwen2Params(ParamSet& params, double initializer_range, std::uint64_t seed) {
  InitRng rng(seed);
  for (Param* p : params.params()) {
    if (EndsWith(p->name, "norm.weight")) p->value.Fill(1.0f);
    else if (EndsWith(p->name, ".bias")) p->value.Fill(0.0f);
    else InitNormal(p->value, static_cast<float>(initializer_range), rng);
  }
}

Result<double> EvaluateLoss(DecoderModel& model, const TokenDataset& data, std::int64_t seq_len,
                            std::int64_t batch, std::int64_t max_tokens) {
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler,
                           WindowSampler::Create(data.size(), {SamplingMode::kSequential,
                                                               static_cast<std::uint64_t>(seq_len), 0}));
  std::int64_t windows = static_cast<std::int64_t>(sampler.slot_count());
  if (max_tokens > 0) windows = std::min<std::int64_t>(windows, std::max<std::int64_t>(1, max_tokens / seq_len));
  double loss_sum = 0;
  std::int64_t count = 0;
  for (std::int64_t w = 0; w < windows; w += batch) {
    std::int64_t b = std::min(batch, windows - w);
    RADLADS_ASSIGN_OR_RETURN(LmBatch lb, ReadLmBatch(data, sampler, static_cast<std::uint64_t>(w), b));
    DecoderForwardOptions fo;
    Tensor hidden = model.Forward(lb.inputs, fo);
    CeResult ce = FusedCrossEntropy(hidden, model.head_weight(), lb.targets, HeadGrads{});
    loss_sum += ce.loss_sum;
    count += ce.count;
  }
  if (count == 0) return Status::InvalidArgument(data.path() + ": too short to evaluate");
  return loss_sum / static_cast<double>(count);
}

Result<PretrainResult> Pretrain(DecoderModel& model, ParamSet& params, const TokenDataset& train,
                                const TokenDataset& heldout, const PretrainOptions& opts,
                                const std::function<void(const PretrainProgress&)>& on_step) {
  const std::int64_t per_step = opts.seq_len * opts.batch;
  const std::int64_t steps = opts.tokens / per_step;
  if (steps <= 0) {
    return Status::InvalidArgument("pretrain: --tokens " + std::to_string(opts.tokens) +
                                   " is less than one step (" + std::to_string(per_step) + " tokens)");
  }
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler,
                           WindowSampler::Create(train.size(), {SamplingMode::kMagicPrime,
                                                                static_cast<std::uint64_t>(opts.seq_len), 0}));
  OptimizerSettings os;
  os.beta2 = opts.beta2;
  os.weight_decay = opts.weight_decay;
  os.grad_clip = opts.grad_clip;
  AdamWOptimizer optimizer(params, os);
  auto t0 = std::chrono::steady_clock::now();
  // The data order is a pure function of the seed: the first sample index is drawn from it.
  std::uint64_t first_g = std::mt19937_64(opts.seed)() % sampler.slot_count();
  PretrainProgress prog;
  prog.steps = steps;
  const Tensor head_grad = model.head_grad();
  for (std::int64_t s = 0; s < steps; ++s) {
    RADLADS_ASSIGN_OR_RETURN(
        LmBatch lb, ReadLmBatch(train, sampler, first_g + static_cast<std::uint64_t>(s * opts.batch), opts.batch));
    DecoderForwardOptions fo;
    fo.need_backward = true;
    Tensor hidden = model.Forward(lb.inputs, fo);
    Tensor dhidden = Tensor::Zeros(hidden.shape());
    Tensor dw = head_grad;
    HeadLossOptions ho;
    ho.grad_scale = 1.0f / static_cast<float>(per_step);
    CeResult ce = FusedCrossEntropy(hidden, model.head_weight(), lb.targets,
                                    HeadGrads{&dhidden, dw.defined() ? &dw : nullptr}, ho);
    model.Backward(dhidden);
    double lr = PretrainLr(opts, s, steps);
    OptimizerStepResult r = optimizer.Step(lr, lr);
    if (!r.applied) {
      return Status::Internal("pretrain: non-finite gradient norm at step " + std::to_string(s) +
                              " (loss " + std::to_string(ce.loss_sum / static_cast<double>(ce.count)) + ")");
    }
    prog.step = s + 1;
    prog.tokens = (s + 1) * per_step;
    prog.train_loss = ce.loss_sum / static_cast<double>(ce.count);
    prog.lr = lr;
    if (opts.eval_every > 0 && (s + 1) % opts.eval_every == 0 && s + 1 < steps) {
      RADLADS_ASSIGN_OR_RETURN(prog.heldout_loss,
                               EvaluateLoss(model, heldout, opts.seq_len, opts.batch, opts.eval_tokens));
    }
    if (on_step) on_step(prog);
  }
  PretrainResult res;
  res.steps = steps;
  res.tokens = steps * per_step;
  res.final_train_loss = prog.train_loss;
  RADLADS_ASSIGN_OR_RETURN(res.heldout_loss, EvaluateLoss(model, heldout, opts.seq_len, opts.batch, 0));
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace radlads
