// AdamW over the trainable parameters of a ParamSet, with RADLADS' two parameter groups
// (docs/spec.md §2.6: names containing ".self_attn." follow the mixer learning rate) and
// global gradient-norm clipping. Moments live in each Param (adam_m, adam_v), so a checkpoint
// of the ParamSet carries the optimizer state by name.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "pipeline/param_set.h"

namespace radlads {

struct OptimizerSettings {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // global norm; 0 disables clipping
  bool bias_correction = true;
};

struct OptimizerStepResult {
  double grad_norm = 0.0;  // before clipping
  bool applied = false;    // false when the norm was not finite: parameters untouched
};

class AdamWOptimizer {
 public:
  AdamWOptimizer(ParamSet& params, const OptimizerSettings& settings);

  // Clips the trainable gradients by global norm, then applies AdamW with lr_main (group 0) or
  // lr_mixer (group 1), and zeroes the gradients. Skips the update (and says so) when the
  // gradient norm is NaN or Inf. The step counter advances only on applied updates.
  OptimizerStepResult Step(double lr_main, double lr_mixer);

  std::int64_t step() const { return step_; }
  void set_step(std::int64_t s) { step_ = s; }  // on resume from a checkpoint

  // Replaces how the global gradient norm is taken (default: GlobalGradNorm of the trainable
  // gradients), e.g. over every rank of a model-parallel group (pipeline/gang_trainer.h).
  using GradNormFn = std::function<double(const std::vector<Param*>& trainable)>;
  void set_grad_norm(GradNormFn f) { grad_norm_ = std::move(f); }

 private:
  ParamSet& params_;
  OptimizerSettings settings_;
  std::int64_t step_ = 0;
  GradNormFn grad_norm_;
};

}  // namespace radlads
