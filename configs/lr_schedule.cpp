#include "configs/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace radlads {
namespace {

double Clamp01(double x) { return std::clamp(x, 0.0, 1.0); }

double Decay(LrScheduleType type, const RecipeLrGroup& g, double p) {
  switch (type) {
    case LrScheduleType::kCos:
      return g.final + (g.init - g.final) * std::cos(std::numbers::pi / 2.0 * p);
    case LrScheduleType::kLinear: return g.final + (g.init - g.final) * (1.0 - p);
    case LrScheduleType::kOneMinusSqrt: return g.final + (g.init - g.final) * (1.0 - std::sqrt(p));
    case LrScheduleType::kExp: return g.init * std::exp(std::log(g.final / g.init) * p);
    case LrScheduleType::kConstant: return g.init;
  }
  return g.init;
}

}  // namespace

double LrProgress(const RecipeStep& step, std::int64_t tokens_seen) {
  const double warmup_tokens =
      static_cast<double>(step.lr.warmup_steps) * static_cast<double>(step.TokensPerStep());
  const double budget = static_cast<double>(step.tokens);
  const double seen = static_cast<double>(tokens_seen);
  double p_raw;
  if (budget <= warmup_tokens) {
    p_raw = seen >= budget ? 1.0 : 0.0;
  } else {
    p_raw = Clamp01((seen - warmup_tokens) / (budget - warmup_tokens));
  }
  const double span = step.lr.endpoint - step.lr.wait;
  if (!(span > 0)) return p_raw >= step.lr.endpoint ? 1.0 : 0.0;
  return Clamp01((p_raw - step.lr.wait) / span);
}

double WarmupMultiplier(const RecipeLr& lr, std::int64_t optimizer_step) {
  if (optimizer_step >= lr.warmup_steps || lr.warmup_steps <= 0) return 1.0;
  const double s = static_cast<double>(std::max<std::int64_t>(optimizer_step, 0));
  return 0.01 + 0.99 * s / static_cast<double>(lr.warmup_steps);
}

StepLearningRates LearningRate(const RecipeStep& step, std::int64_t optimizer_step,
                               std::int64_t tokens_seen) {
  const double p = LrProgress(step, tokens_seen);
  const double w = WarmupMultiplier(step.lr, optimizer_step);
  return StepLearningRates{Decay(step.lr.type, step.lr.main, p) * w,
                           Decay(step.lr.type, step.lr.mixer, p) * w};
}

}  // namespace radlads
