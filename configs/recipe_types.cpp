// Pure functions over the recipe types: names, student defaults, LoRA ranks (configs/recipe.h).
#include <algorithm>
#include <cmath>

#include "configs/recipe.h"

namespace radlads {

std::string_view GateRankTypeName(GateRankType type) {
  switch (type) {
    case GateRankType::kNone: return "none";
    case GateRankType::kFull: return "full";
    case GateRankType::kLora: return "lora";
  }
  return "?";
}

StudentSettings DefaultStudentSettings(StudentArch arch) {
  StudentSettings s;
  s.architecture = arch;
  s.balance_state = true;
  s.groupnorm_att = false;
  s.reinit_att = false;
  if (arch == StudentArch::kRwkv6) {
    // qwerky6.yaml and the rwkv6qwen2 defaults [docs/spec.md §3.3, §9.1].
    s.use_tokenshift = true;
    s.gate_rank_type = GateRankType::kFull;
    s.use_rope = false;
  } else {
    // Paper v4 form and the released QRWKV7 models: RoPE on, LoRA gate [docs/spec.md §3.4, §9.1].
    s.use_tokenshift = false;
    s.gate_rank_type = GateRankType::kLora;
    s.use_rope = true;
  }
  return s;
}

LoraRanks ResolveLoraRanks(const StudentSettings& s, std::int64_t hidden_size) {
  auto pick = [hidden_size](std::int64_t written, double e, double m) {
    return written > 0 ? written : LoraRankFormula(hidden_size, e, m);
  };
  LoraRanks r;
  r.decay = pick(s.lora_ranks.decay, 0.5, 1.8);
  if (s.architecture == StudentArch::kRwkv7) {
    r.iclr = pick(s.lora_ranks.iclr, 0.5, 1.8);
    r.value_residual_mix = pick(s.lora_ranks.value_residual_mix, 0.5, 1.3);
  }
  if (s.gate_rank_type == GateRankType::kLora) r.gate = pick(s.lora_ranks.gate, 0.8, 0.6);
  if (s.architecture == StudentArch::kRwkv6 && s.use_tokenshift) {
    r.tokenshift = pick(s.lora_ranks.tokenshift, 0.5, 1.8);
  }
  return r;
}

std::string_view RecipeStepKindName(RecipeStepKind kind) {
  switch (kind) {
    case RecipeStepKind::kAlign: return "align";
    case RecipeStepKind::kDistill: return "distill";
    case RecipeStepKind::kFinetune: return "finetune";
  }
  return "?";
}

std::string_view LrScheduleTypeName(LrScheduleType type) {
  switch (type) {
    case LrScheduleType::kCos: return "cos";
    case LrScheduleType::kLinear: return "linear";
    case LrScheduleType::kConstant: return "constant";
    case LrScheduleType::kExp: return "exp";
    case LrScheduleType::kOneMinusSqrt: return "oneminussqrt";
  }
  return "?";
}

std::vector<const RecipeStep*> Recipe::EnabledSteps() const {
  std::vector<const RecipeStep*> out;
  for (const RecipeStep* s : {&steps.align, &steps.distill, &steps.finetune}) {
    if (s->enabled) out.push_back(s);
  }
  return out;
}

}  // namespace radlads
