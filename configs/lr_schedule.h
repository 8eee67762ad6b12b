// The learning-rate schedule of a RADLADS step, exactly as docs/spec.md §2.6 gives it.
//
// For optimizer step s (0-based: the number of optimizer steps already taken) with T tokens
// already consumed in this step, budget E = step.tokens and W = warmup_steps:
//   warmup_tokens = W · seq_len · batch
//   p_raw = clamp((T − warmup_tokens) / (E − warmup_tokens), 0, 1)
//   p     = clamp((p_raw − wait) / (endpoint − wait), 0, 1)
//   cos:          lr = final + (init − final) · cos(π/2 · p)     (a quarter-cosine)
//   linear:       lr = final + (init − final) · (1 − p)
//   oneminussqrt: lr = final + (init − final) · (1 − √p)
//   exp:          lr = init · exp(ln(final / init) · p)
//   constant:     lr = init
//   and, while s < W, lr is multiplied by 0.01 + 0.99 · s / W.
// The main group uses lr.main, the mixer group (".self_attn.") lr.mixer; both share p and the
// warmup. When E ≤ warmup_tokens, p_raw is 1 once T ≥ E and 0 before.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "configs/recipe.h"

namespace radlads {

struct StepLearningRates {
  double main = 0.0;   // everything outside the mixer
  double mixer = 0.0;  // parameter names containing ".self_attn."
};

// p of the formulas above (after wait/endpoint), in [0, 1].
double LrProgress(const RecipeStep& step, std::int64_t tokens_seen);

// The warmup multiplier at optimizer step `optimizer_step` (1 once warmup is over).
double WarmupMultiplier(const RecipeLr& lr, std::int64_t optimizer_step);

// The LR of both groups for the optimizer step about to be taken.
StepLearningRates LearningRate(const RecipeStep& step, std::int64_t optimizer_step,
                               std::int64_t tokens_seen);

// Convenience for whole steps: tokens_seen = optimizer_step · seq_len · batch.
inline StepLearningRates LearningRateAtStep(const RecipeStep& step, std::int64_t optimizer_step) {
  return LearningRate(step, optimizer_step, optimizer_step * step.TokensPerStep());
}

}  // namespace radlads
