#include "pipeline/optimizer.h"

#include <cmath>
#include <vector>

#include "kernels/ops/adamw.h"
#include "kernels/ops/grad_norm.h"

namespace radlads {

AdamWOptimizer::AdamWOptimizer(ParamSet& params, const OptimizerSettings& settings)
    : params_(params), settings_(settings) {}

OptimizerStepResult AdamWOptimizer::Step(double lr_main, double lr_mixer) {
  std::vector<Tensor> grads;
  std::vector<Param*> trainable;
  for (Param* p : params_.params()) {
    if (!p->trainable) continue;
    trainable.push_back(p);
    grads.push_back(p->grad);
  }
  OptimizerStepResult r;
  r.grad_norm = grad_norm_ ? grad_norm_(trainable) : GlobalGradNorm(grads);
  if (!std::isfinite(r.grad_norm)) {
    params_.ZeroGrads();
    return r;
  }
  if (settings_.grad_clip > 0) ClipGradsWithNorm(grads, settings_.grad_clip, r.grad_norm);
  ++step_;
  for (Param* p : trainable) {
    if (!p->adam_m.defined()) {
      p->adam_m = Tensor::Zeros(p->value.shape());
      p->adam_v = Tensor::Zeros(p->value.shape());
    }
    AdamWConfig c;
    c.lr = p->group == 1 ? lr_mixer : lr_main;
    c.beta1 = settings_.beta1;
    c.beta2 = settings_.beta2;
    c.eps = settings_.eps;
    c.weight_decay = settings_.weight_decay;
    c.bias_correction = settings_.bias_correction;
    AdamWStep(p->value, p->grad, p->adam_m, p->adam_v, step_, c);
  }
  params_.ZeroGrads();
  r.applied = true;
  return r;
}

}  // namespace radlads
