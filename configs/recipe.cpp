// The recipe schema: field tables for student, steps, optimizer and data, and their checks.
#include "configs/recipe.h"

#include "configs/config_files.h"
#include "configs/named_config.h"

namespace radlads {
namespace {

using config::ConfigNode;
using config::FieldDoc;
using config::FieldInfo;
using config::IntRange;
using config::MapView;
using config::RealRange;
using config::Schema;
using config::ValueContext;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr IntRange kPositive{1};
constexpr IntRange kNonNegative{0};
constexpr IntRange kSeqLen{1, 1 << 20};
constexpr std::int64_t kMaxTokensPerStep = std::int64_t{1} << 40;
constexpr IntRange kRank{1, 65536};
constexpr RealRange kLrInit{0.0, 1.0, /*min_open=*/true};
constexpr RealRange kLrFinal{0.0, 1.0};
constexpr RealRange kNonNegativeReal{0.0, kInf};
constexpr RealRange kBeta{0.0, 1.0, false, /*max_open=*/true};
constexpr RealRange kPositiveReal{0.0, kInf, true};

FieldInfo Req(std::string doc, std::string source) {
  return FieldInfo{true, "", std::move(doc), std::move(source)};
}
FieldInfo Opt(std::string def, std::string doc, std::string source) {
  return FieldInfo{false, std::move(def), std::move(doc), std::move(source)};
}

// ----------------------------------------------------------------------------------- student

Status CheckStudent(StudentSettings* s, const MapView& m) {
  const StudentSettings d = DefaultStudentSettings(s->architecture);
  if (!m.Has("use_rope")) s->use_rope = d.use_rope;
  if (!m.Has("use_tokenshift")) s->use_tokenshift = d.use_tokenshift;
  if (!m.Has("gate_rank_type")) s->gate_rank_type = d.gate_rank_type;
  if (!m.Has("balance_state")) s->balance_state = d.balance_state;
  if (!m.Has("groupnorm_att")) s->groupnorm_att = d.groupnorm_att;
  if (!m.Has("reinit_att")) s->reinit_att = d.reinit_att;

  const std::string arch(StudentArchName(s->architecture));
  const bool v7 = s->architecture == StudentArch::kRwkv7;
  if (v7 && s->use_tokenshift) {
    return m.Error("use_tokenshift",
                   "rad-rwkv7 has no tokenshift (docs/spec.md §3.4, §3.5: removed, \"essentially "
                   "no benefit\"); remove the key or set it to false");
  }
  if (!v7) {
    for (const char* k : {"lora_ranks.iclr", "lora_ranks.value_residual_mix"}) {
      if (m.Has(k)) {
        return m.Error(k, "applies only to rad-rwkv7 (docs/spec.md §3.4); this student is " + arch +
                              "; remove the key");
      }
    }
  }
  if (m.Has("lora_ranks.tokenshift") && (v7 || !s->use_tokenshift)) {
    return m.Error("lora_ranks.tokenshift",
                   v7 ? "applies only to rad-rwkv6 (docs/spec.md §3.3); remove the key"
                      : "applies only when use_tokenshift is true; remove the key");
  }
  if (m.Has("lora_ranks.gate") && s->gate_rank_type != GateRankType::kLora) {
    return m.Error("lora_ranks.gate", "applies only when gate_rank_type is lora (2); here it is " +
                                          std::string(GateRankTypeName(s->gate_rank_type)) +
                                          "; remove the key");
  }
  return Status::Ok();
}

Schema<StudentSettings> StudentSchema() {
  Schema<LoraRankSettings> ranks;
  const std::string formula = "r(e, m) = 32·max(1, round(D^e·m/32))";
  ranks.IntOrAuto(
      "decay", &LoraRankSettings::decay, kRank,
      Opt("auto", "Decay LoRA rank; auto: " + formula + " with (0.5, 1.8).", "docs/spec.md §3.0"));
  ranks.IntOrAuto("iclr", &LoraRankSettings::iclr, kRank,
                  Opt("auto", "In-context-LR LoRA rank (rad-rwkv7 only); auto: (0.5, 1.8).",
                      "docs/spec.md §3.0, §3.4"));
  ranks.IntOrAuto("value_residual_mix", &LoraRankSettings::value_residual_mix, kRank,
                  Opt("auto", "Value-residual LoRA rank (rad-rwkv7 only); auto: (0.5, 1.3).",
                      "docs/spec.md §3.0, §3.4"));
  ranks.IntOrAuto(
      "gate", &LoraRankSettings::gate, kRank,
      Opt("auto", "Gate LoRA rank (gate_rank_type lora only); auto: (0.8, 0.6).", "docs/spec.md §3.0"));
  ranks.IntOrAuto("tokenshift", &LoraRankSettings::tokenshift, kRank,
                  Opt("auto",
                      "Tokenshift LoRA rank (rad-rwkv6 with use_tokenshift only); auto: "
                      "(0.5, 1.8).",
                      "docs/spec.md §3.0, §3.3"));

  Schema<StudentSettings> s;
  s.Enum<StudentArch>(
      "architecture", &StudentSettings::architecture,
      {{"rad-rwkv6", StudentArch::kRwkv6}, {"rad-rwkv7", StudentArch::kRwkv7}},
      Req("The student mixer: RAD-RWKV6 (RADFinch) or RAD-RWKV7 (RADGoose).", "docs/spec.md §3.3, §3.4"));
  s.Bool("use_rope", &StudentSettings::use_rope,
         Opt("rad-rwkv6: false; rad-rwkv7: true", "RoPE on r and k where the teacher applies it.",
             "docs/spec.md §2.0, §3.3, §3.4"));
  s.Bool("use_tokenshift", &StudentSettings::use_tokenshift,
         Opt("rad-rwkv6: true; rad-rwkv7: false (true is refused)",
             "Data-dependent tokenshift (RAD-RWKV6 only).", "docs/spec.md §3.3, §3.5"));
  s.Enum<GateRankType>("gate_rank_type", &StudentSettings::gate_rank_type,
                       {{"none", GateRankType::kNone},
                        {"full", GateRankType::kFull},
                        {"lora", GateRankType::kLora},
                        {"0", GateRankType::kNone, true},
                        {"1", GateRankType::kFull, true},
                        {"2", GateRankType::kLora, true}},
                       Opt("rad-rwkv6: full; rad-rwkv7: lora",
                           "Output gate: none (0), full-rank D×D (1) or LoRA (2); the ints are "
                           "accepted too.",
                           "docs/spec.md §1, §3.5"));
  s.Bool("balance_state", &StudentSettings::balance_state,
         Opt("true", "Key pre-scaling k·(1−w) (v6) / k·(1−w+a) (v7) instead of a norm.",
             "docs/spec.md §3.3, §3.4, §6.1"));
  s.Bool("groupnorm_att", &StudentSettings::groupnorm_att,
         Opt("false", "Per-head GroupNorm on the mixer output (unstable at ≥14B).",
             "docs/spec.md §3.4, §6.1"));
  s.Bool("reinit_att", &StudentSettings::reinit_att,
         Opt("false", "De-novo Q/K/V/O instead of the teacher's (the ablation; worse).",
             "docs/spec.md §3.3, §6.6"));
  s.Struct<LoraRankSettings>("lora_ranks", &StudentSettings::lora_ranks, ranks,
                             Opt("all auto",
                                 "LoRA ranks of the new parameters; each `auto` or an "
                                 "integer. Keys that do not apply are refused.",
                                 "docs/spec.md §3.0"));
  s.Check(CheckStudent);
  return s;
}

// ------------------------------------------------------------------------------------- steps

Status CheckLr(RecipeLr* lr, const MapView& m) {
  const bool constant = lr->type == LrScheduleType::kConstant;
  for (const char* group : {"", "mixer."}) {
    const std::string init_key = std::string(group) + "init";
    const std::string final_key = std::string(group) + "final";
    RecipeLrGroup& g = *group ? lr->mixer : lr->main;
    if (*group && !m.Has(init_key)) g.init = lr->main.init;
    if (constant) {
      if (m.Has(final_key) && g.final != g.init) {
        return m.Error(final_key, "must equal " + init_key + " (" + config::FormatReal(g.init) +
                                      ") for type constant, or be left out");
      }
      g.final = g.init;
    } else if (!m.Has(final_key)) {
      if (*group) {
        g.final = lr->main.final;
      } else {
        return m.Error("",
                       "missing required key `final` (the LR at the end of the schedule; "
                       "only type constant may leave it out)");
      }
    }
    if (lr->type == LrScheduleType::kExp && !(g.final > 0)) {
      return m.Error(final_key, "must be positive for type exp");
    }
  }
  if (!(lr->wait < lr->endpoint)) {
    return m.Error("endpoint", "must be greater than wait (" + config::FormatReal(lr->wait) +
                                   "), got " + config::FormatReal(lr->endpoint));
  }
  return Status::Ok();
}

Schema<RecipeLr> LrSchema() {
  Schema<RecipeLrGroup> mixer;
  mixer.Real("init", &RecipeLrGroup::init, kLrInit,
             Opt("lr.init", "Initial LR of the mixer group.", "docs/spec.md §2.6 lr2_init"));
  mixer.Real("final", &RecipeLrGroup::final, kLrFinal,
             Opt("lr.final", "Final LR of the mixer group.", "docs/spec.md §2.6 lr2_final"));

  Schema<RecipeLr> s;
  s.Enum<LrScheduleType>("type", &RecipeLr::type,
                         {{"cos", LrScheduleType::kCos},
                          {"linear", LrScheduleType::kLinear},
                          {"constant", LrScheduleType::kConstant},
                          {"exp", LrScheduleType::kExp},
                          {"oneminussqrt", LrScheduleType::kOneMinusSqrt}},
                         Opt("cos",
                             "Decay shape over progress p: cos = quarter-cosine "
                             "final+(init−final)·cos(πp/2) (not the half-cosine); linear; "
                             "constant (= init); exp; oneminussqrt (1−√p).",
                             "docs/spec.md §2.6"));
  s.Real(
      "init", [](RecipeLr& c) -> double& { return c.main.init; }, kLrInit,
      Req("Initial LR of the main group (everything outside the mixer).",
          "docs/spec.md §2.1, §2.2, §2.6 lr_init"));
  s.Real(
      "final", [](RecipeLr& c) -> double& { return c.main.final; }, kLrFinal,
      Opt("required unless type is constant (then = init)", "LR of the main group at p = 1.",
          "docs/spec.md §2.6 lr_final"));
  s.Int("warmup_steps", &RecipeLr::warmup_steps, kNonNegative,
        Opt("50", "Optimizer steps of warmup; the LR is multiplied by 0.01 + 0.99·step/warmup.",
            "docs/spec.md §2.1, §2.6"));
  s.Real("wait", &RecipeLr::wait, RealRange{0.0, 1.0, false, true},
         Opt("0", "lr_wait: progress fraction before the decay starts.", "docs/spec.md §2.3, §2.6"));
  s.Real(
      "endpoint", &RecipeLr::endpoint, RealRange{0.0, 1.0, true, false},
      Opt("1", "lr_endpoint: progress fraction where the decay ends; > wait.", "docs/spec.md §2.3, §2.6"));
  s.Struct<RecipeLrGroup>("mixer", &RecipeLr::mixer, mixer,
                          Opt("= main group",
                              "Second parameter group: names containing `.self_attn.` "
                              "(the whole replacement mixer).",
                              "docs/spec.md §2.6"));
  s.Check(CheckLr);
  return s;
}

Status ReadTemperature(const ConfigNode& n, const ValueContext& at, RecipeDistillLoss* out) {
  double t = 0;
  RADLADS_RETURN_IF_ERROR(config::ReadRealValue(n, at, kPositiveReal, &t));
  if (t != 1.0) {
    return at.Error("expected 1, got " + n.Describe() +
                    " (docs/spec.md §2.2: the KL is taken at temperature 1; the protocol has no "
                    "temperature parameter)");
  }
  out->temperature = t;
  return Status::Ok();
}

Schema<RecipeDistillLoss> DistillLossSchema() {
  Schema<RecipeDistillLoss> s;
  s.Real("kl_weight", &RecipeDistillLoss::kl_weight, kNonNegativeReal,
         Opt("1.0",
             "Weight of forward KL(teacher ‖ student), summed over the vocabulary, "
             "averaged over tokens.",
             "docs/spec.md §2.2"));
  s.Real("ce_weight", &RecipeDistillLoss::ce_weight, kNonNegativeReal,
         Opt("0.0", "Weight of next-token cross-entropy.", "docs/spec.md §2.2"));
  s.Custom("temperature", "number", "= 1",
           Opt("1", "Softmax temperature; only 1 is accepted.", "docs/spec.md §2.2"), ReadTemperature);
  s.Int(
      "kl_chunk_tokens", &RecipeDistillLoss::kl_chunk_tokens, kPositive,
      Opt("512", "Tokens per chunk of the KL (fp32 accumulation), to bound memory.", "docs/spec.md §2.2"));
  s.Check([](RecipeDistillLoss* l, const MapView& m) {
    if (l->kl_weight + l->ce_weight > 0) return Status::Ok();
    return m.Error("kl_weight", "kl_weight and ce_weight are both 0; the step would have no loss");
  });
  return s;
}

std::string WholeStepsHint(std::int64_t tokens, std::int64_t tps) {
  const std::int64_t steps = tokens / tps;
  const std::int64_t rem = tokens % tps;
  std::string msg =
      std::to_string(tokens) +
      " is not a whole number of optimizer steps of seq_len·batch = " + std::to_string(tps) +
      " tokens (" + std::to_string(steps) + " steps + " + std::to_string(rem) + " tokens); use ";
  if (steps > 0) msg += std::to_string(steps * tps) + " (" + std::to_string(steps) + " steps) or ";
  msg += std::to_string((steps + 1) * tps) + " (" + std::to_string(steps + 1) + " steps)";
  return msg;
}

Status CheckStep(RecipeStep* s, const MapView& m) {
  if (s->enabled) {
    for (const char* k : {"tokens", "seq_len", "batch", "lr"}) {
      if (!m.Has(k)) {
        return m.Error(
            "", "missing required key `" + std::string(k) + "` (needed when the step is enabled)");
      }
    }
  } else if (!(m.Has("tokens") && m.Has("seq_len") && m.Has("batch"))) {
    return Status::Ok();  // a disabled step may stay a stub
  }
  if (s->batch > kMaxTokensPerStep / s->seq_len) {
    return m.Error("batch", "seq_len·batch = " + std::to_string(s->seq_len) + "·" +
                                std::to_string(s->batch) + " tokens per step is beyond 2^40");
  }
  const std::int64_t tps = s->TokensPerStep();
  if (s->tokens % tps != 0) return m.Error("tokens", WholeStepsHint(s->tokens, tps));
  if (m.Has("micro_batch") && s->batch % s->micro_batch != 0) {
    return m.Error("micro_batch", std::to_string(s->micro_batch) + " must divide batch (" +
                                      std::to_string(s->batch) +
                                      "): batch = micro_batch · data-parallel ranks · "
                                      "accumulation");
  }
  if (m.Has("lr") && s->lr.type != LrScheduleType::kConstant &&
      s->lr.warmup_steps >= s->OptimizerSteps()) {
    return m.Error("lr.warmup_steps",
                   std::to_string(s->lr.warmup_steps) + " warmup steps leave no room for the " +
                       std::string(LrScheduleTypeName(s->lr.type)) + " decay: the step has " +
                       std::to_string(s->OptimizerSteps()) + " optimizer steps");
  }
  return Status::Ok();
}

Schema<RecipeStep> StepSchema(RecipeStepKind kind) {
  const bool optional_step = kind == RecipeStepKind::kFinetune;
  auto need = [optional_step](std::string doc, std::string source) {
    return optional_step ? Opt("required when enabled", std::move(doc), std::move(source))
                         : Req(std::move(doc), std::move(source));
  };
  std::string src;
  switch (kind) {
    case RecipeStepKind::kAlign: src = "docs/spec.md §2.1"; break;
    case RecipeStepKind::kDistill: src = "docs/spec.md §2.2"; break;
    case RecipeStepKind::kFinetune: src = "docs/spec.md §2.4"; break;
  }
  Schema<RecipeStep> s;
  if (optional_step) {
    s.Bool("enabled", &RecipeStep::enabled,
           Opt("false", "Run step 3 (long-context CE fine-tune, no teacher).", "docs/spec.md §2.4, §5"));
  }
  s.Int(
      "tokens", &RecipeStep::tokens, kPositive,
      need("Exact token budget; a whole number of optimizer steps of seq_len·batch tokens.", src));
  s.Int("seq_len", &RecipeStep::seq_len, kSeqLen, need("Tokens per training sequence.", src));
  s.Int("batch", &RecipeStep::batch, kPositive, need("Global sequences per optimizer step.", src));
  s.Int("micro_batch", &RecipeStep::micro_batch, kPositive,
        Opt("chosen by the planner", "Sequences per worker per forward pass; divides batch.", src));
  if (optional_step) {
    s.StructIfPresent<RecipeLr>("lr", &RecipeStep::lr, LrSchema(),
                                need("Learning-rate schedule of both parameter groups.", src));
  } else {
    s.Struct<RecipeLr>("lr", &RecipeStep::lr, LrSchema(),
                       need("Learning-rate schedule of both parameter groups.", src));
  }
  if (kind == RecipeStepKind::kDistill) {
    s.Struct<RecipeDistillLoss>("loss", &RecipeStep::loss, DistillLossSchema(),
                                Opt("KL 1.0, CE 0.0, T 1, chunk 512", "Step-2 loss.", "docs/spec.md §2.2"));
  }
  s.Check(CheckStep);
  return s;
}

Schema<RecipeSteps> StepsSchema() {
  Schema<RecipeSteps> s;
  s.Struct<RecipeStep>("align", &RecipeSteps::align, StepSchema(RecipeStepKind::kAlign),
                       Req("Step 1: attention hidden-state alignment.", "docs/spec.md §2.1"));
  s.Struct<RecipeStep>("distill", &RecipeSteps::distill, StepSchema(RecipeStepKind::kDistill),
                       Req("Step 2: knowledge distillation on logits.", "docs/spec.md §2.2"));
  s.Struct<RecipeStep>("finetune", &RecipeSteps::finetune, StepSchema(RecipeStepKind::kFinetune),
                       Opt("disabled", "Step 3: long-context fine-tune.", "docs/spec.md §2.4"));
  return s;
}

// --------------------------------------------------------------------- optimizer, data, top

Schema<RecipeOptimizer> OptimizerSchema() {
  Schema<RecipeOptimizer> s;
  s.Real("beta1", &RecipeOptimizer::beta1, kBeta, Opt("0.9", "AdamW β1.", "docs/spec.md §2.1"));
  s.Real("beta2", &RecipeOptimizer::beta2, kBeta, Opt("0.95", "AdamW β2.", "docs/spec.md §2.1"));
  s.Real("eps", &RecipeOptimizer::eps, kPositiveReal, Opt("1e-8", "AdamW ε.", "docs/spec.md §2.1"));
  s.Real("weight_decay", &RecipeOptimizer::weight_decay, kNonNegativeReal,
         Opt("0", "Decoupled weight decay.", "docs/spec.md §2.1, §2.6"));
  s.Real("grad_clip", &RecipeOptimizer::grad_clip, kNonNegativeReal,
         Opt("1.0", "Global gradient-norm clip; 0 turns clipping off.", "docs/spec.md §2.6"));
  s.Bool("bias_correction", &RecipeOptimizer::bias_correction,
         Opt("true", "Adam bias correction (FusedAdam bias_correction=True).", "docs/spec.md §2.1"));
  return s;
}

Schema<RecipeData> DataSchema() {
  Schema<RecipeData> s;
  s.Enum<SamplingMode>(
      "sampler", &RecipeData::sampler,
      {{"magic_prime", SamplingMode::kMagicPrime}, {"sequential", SamplingMode::kSequential}},
      Opt("magic_prime",
          "Window sampler: the LinearAttentionArena magic-prime "
          "walk, or consecutive windows.",
          "docs/spec.md §2.5"));
  s.Int("seed", &RecipeData::seed, kNonNegative,
        Opt("0", "Seed for new-parameter inits and any data-order randomness.", "-"));
  return s;
}

Schema<Recipe> BuildRecipeSchema() {
  Schema<Recipe> s;
  s.String("description", &Recipe::description,
           Opt("\"\"", "One line describing the recipe, shown by `plan`.", "-"));
  s.String("teacher", &Recipe::teacher,
           Opt("\"\" (any)", "Model preset the recipe was written for (configs/models/).", "-"));
  s.Struct<StudentSettings>("student", &Recipe::student, StudentSchema(),
                            Req("The student architecture and its flags.", "docs/spec.md §1, §3"));
  s.Struct<RecipeSteps>("steps", &Recipe::steps, StepsSchema(),
                        Req("The protocol steps and their budgets.", "docs/spec.md §1, §2"));
  s.Struct<RecipeOptimizer>(
      "optimizer", &Recipe::optimizer, OptimizerSchema(),
      Opt("AdamW defaults", "Optimizer settings shared by all steps.", "docs/spec.md §2.6"));
  s.Struct<RecipeData>("data", &Recipe::data, DataSchema(),
                       Opt("defaults", "Sampling knobs that belong to the recipe.", "docs/spec.md §2.5"));
  return s;
}

const Schema<Recipe>& RecipeSchema() {
  static const Schema<Recipe> schema = BuildRecipeSchema();
  return schema;
}

}  // namespace

Result<Recipe> ParseRecipeYaml(std::string_view text, std::string_view source) {
  return ParseNamedConfig(text, source, RecipeSchema());
}

Result<Recipe> LoadRecipe(std::string_view name_or_path) {
  return LoadNamedConfig(ConfigKind::kRecipe, name_or_path, RecipeSchema());
}

std::vector<config::FieldDoc> RecipeFieldDocs() { return RecipeSchema().Docs(); }

}  // namespace radlads
