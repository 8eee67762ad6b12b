// Conversion recipes: configs/recipes/<name>.yaml say which student to build (RAD-RWKV6 or
// RAD-RWKV7 and its flags) and how to train it through the RADLADS steps (docs/spec.md §1-§3):
// step 1 `align` (attention hidden-state alignment), step 2 `distill` (logit KD) and the optional
// step 3 `finetune` (long-context CE), with the optimizer and the data-sampling knobs.
//
// Contract:
// - Strict reading as in configs/yaml_reader.h; every message is "<file>:<line>: <key.path>: ...".
// - Architecture defaults are applied for flags the file leaves out (DefaultStudentSettings). A key
//   that does not apply to the chosen architecture or gate type is an error naming it, never
//   ignored (e.g. `student.lora_ranks.iclr` for rad-rwkv6, `use_tokenshift: true` for
//   rad-rwkv7).
// - Token budgets are exact: a step's `tokens` must be a whole number of optimizer steps of
//   seq_len * batch tokens. The error says by how much it is not and gives the two nearest
//   valid budgets. The shipped paper recipes round the paper's budgets UP to whole steps, which
//   is what the reference trainer consumed (it stops once tokens_seen >= the budget).
// - The LR schedule of a step is in configs/lr_schedule.h; LoRA ranks resolve with
//   ResolveLoraRanks below.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "configs/yaml_reader.h"
#include "storage/student_config.h"
#include "storage/window_sampler.h"

namespace radlads {

// The student architecture is storage's StudentArch (storage/student_config.h: kRwkv6 =
// "rad-rwkv6", kRwkv7 = "rad-rwkv7", StudentArchName, StudentModelType), and the LoRA rank
// formula is storage's LoraRankFormula, so the recipe and the exported config.json agree.

// 0: no output gate; 1: full-rank D x D gate; 2: LoRA gate (docs/spec.md §1, §3.3, §3.4).
enum class GateRankType { kNone = 0, kFull = 1, kLora = 2 };

// "none" / "full" / "lora".
std::string_view GateRankTypeName(GateRankType type);

// LoRA ranks as written in the recipe; 0 means `auto` (the formula of docs/spec.md §3.0).
struct LoraRankSettings {
  std::int64_t decay = 0;
  std::int64_t iclr = 0;                // rad-rwkv7 only
  std::int64_t value_residual_mix = 0;  // rad-rwkv7 only
  std::int64_t gate = 0;                // gate_rank_type lora only
  std::int64_t tokenshift = 0;          // rad-rwkv6 with use_tokenshift only
};

struct StudentSettings {
  StudentArch architecture = StudentArch::kRwkv7;
  bool use_rope = true;         // RoPE on r and k, where the teacher applies it
  bool use_tokenshift = false;  // data-dependent tokenshift (RAD-RWKV6)
  GateRankType gate_rank_type = GateRankType::kLora;
  bool balance_state = true;   // key pre-scaling k*(1-w) / k*(1-w+a) instead of a norm
  bool groupnorm_att = false;  // per-head GroupNorm on the mixer output
  bool reinit_att = false;     // de-novo Q/K/V/O (the ablation), not copied from the teacher
  LoraRankSettings lora_ranks;
};

// The released settings of each architecture (docs/spec.md §3.3, §3.4, §9.1): rad-rwkv6: tokenshift on,
// full-rank gate, balance_state on, groupnorm off, RoPE off; rad-rwkv7: tokenshift off, LoRA
// gate, balance_state on, groupnorm off, RoPE on (the paper's models).
StudentSettings DefaultStudentSettings(StudentArch arch);

// Resolved ranks; 0 means the student has no such LoRA.
struct LoraRanks {
  std::int64_t decay = 0;
  std::int64_t iclr = 0;
  std::int64_t value_residual_mix = 0;
  std::int64_t gate = 0;
  std::int64_t tokenshift = 0;
};

// Every applicable rank, with `auto` resolved by r(e, m) = 32 * max(1, round(D^e * m / 32))
// (LoraRankFormula) as in docs/spec.md §3.0: decay and iclr (0.5, 1.8), value residual (0.5, 1.3),
// gate (0.8, 0.6), RAD-RWKV6 tokenshift (0.5, 1.8). The formula is used for RAD-RWKV6 too (the
// spec's table), not the released rwkv6qwen2 code's fixed null-rank defaults (§9.1); export
// writes the resolved ranks explicitly. Explicit values are returned as written.
LoraRanks ResolveLoraRanks(const StudentSettings& student, std::int64_t hidden_size);

enum class RecipeStepKind { kAlign, kDistill, kFinetune };
// "align" / "distill" / "finetune".
std::string_view RecipeStepKindName(RecipeStepKind kind);

// `cos` is the quarter-cosine of docs/spec.md §2.6, not the half-cosine.
enum class LrScheduleType { kCos, kLinear, kConstant, kExp, kOneMinusSqrt };
std::string_view LrScheduleTypeName(LrScheduleType type);

struct RecipeLrGroup {
  double init = 0.0;
  double final = 0.0;
};

struct RecipeLr {
  LrScheduleType type = LrScheduleType::kCos;
  RecipeLrGroup main;   // every trainable parameter outside the mixer (docs/spec.md §2.6 lr_*)
  RecipeLrGroup mixer;  // names containing ".self_attn." (lr2_*); defaults to `main`
  std::int64_t warmup_steps = 50;
  double wait = 0.0;      // lr_wait: fraction of progress before the decay starts
  double endpoint = 1.0;  // lr_endpoint: fraction of progress where it ends
};

// Step 2's loss (docs/spec.md §2.2): forward KL(teacher || student) at temperature 1, in chunks.
struct RecipeDistillLoss {
  double kl_weight = 1.0;
  double ce_weight = 0.0;
  double temperature = 1.0;  // fixed by the spec; the reader refuses anything else
  std::int64_t kl_chunk_tokens = 512;
};

struct RecipeStep {
  RecipeStepKind kind = RecipeStepKind::kAlign;
  bool enabled = true;
  std::int64_t tokens = 0;       // exact budget: a whole number of optimizer steps
  std::int64_t seq_len = 0;      // tokens per sequence (ctx_len)
  std::int64_t batch = 0;        // global sequences per optimizer step
  std::int64_t micro_batch = 0;  // sequences per worker per forward; 0: the planner chooses
  RecipeLr lr;
  RecipeDistillLoss loss;  // read for `distill` only

  std::int64_t TokensPerStep() const { return seq_len * batch; }
  std::int64_t OptimizerSteps() const { return TokensPerStep() > 0 ? tokens / TokensPerStep() : 0; }
};

struct RecipeSteps {
  RecipeStep align{RecipeStepKind::kAlign};
  RecipeStep distill{RecipeStepKind::kDistill};
  RecipeStep finetune{RecipeStepKind::kFinetune, /*enabled=*/false};
};

// AdamW as the reference runs it (docs/spec.md §2.1 table, §2.6).
struct RecipeOptimizer {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // global gradient-norm clip; 0 turns it off
  bool bias_correction = true;
};

struct RecipeData {
  SamplingMode sampler = SamplingMode::kMagicPrime;  // storage/window_sampler.h; docs/spec.md §2.5
  std::int64_t seed = 0;
};

struct Recipe {
  std::string name;  // file stem
  std::string description;
  std::string teacher;  // model preset name this recipe was written for ("" = any)
  StudentSettings student;
  RecipeSteps steps;
  RecipeOptimizer optimizer;
  RecipeData data;

  // The enabled steps in protocol order.
  std::vector<const RecipeStep*> EnabledSteps() const;
};

inline LoraRanks ResolveLoraRanks(const Recipe& recipe, std::int64_t hidden_size) {
  return ResolveLoraRanks(recipe.student, hidden_size);
}

// Parses recipe YAML text; `source` names the file in messages.
Result<Recipe> ParseRecipeYaml(std::string_view text, std::string_view source);

// Loads a recipe by name ("qwen2.5-7b-rwkv7") or path (configs/config_files.h).
Result<Recipe> LoadRecipe(std::string_view name_or_path);

// The recipe schema's reference rows (docs/configs.md).
std::vector<config::FieldDoc> RecipeFieldDocs();

}  // namespace radlads
