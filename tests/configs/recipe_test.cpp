// Recipes: student defaults and applicability, LoRA ranks (docs/spec.md §3.0 table), step
// budgets, LR settings, the distillation loss and the error messages for bad input.
#include "configs/recipe.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/configs/config_test_util.h"

namespace radlads {
namespace {

using radlads::testing::ErrorAt;

// Line numbers are referenced by the tests below.
constexpr const char* kRecipe =
    "student:\n"                   // 1
    "  architecture: rad-rwkv7\n"  // 2
    "steps:\n"                     // 3
    "  align:\n"                   // 4
    "    tokens: 16384\n"          // 5
    "    seq_len: 512\n"           // 6
    "    batch: 8\n"               // 7
    "    lr:\n"                    // 8
    "      init: 1.0e-3\n"         // 9
    "      final: 1.0e-5\n"        // 10
    "      warmup_steps: 1\n"      // 11
    "  distill:\n"                 // 12
    "    tokens: 8192\n"           // 13
    "    seq_len: 512\n"           // 14
    "    batch: 16\n"              // 15
    "    lr:\n"                    // 16
    "      type: constant\n"       // 17
    "      init: 1.0e-5\n";        // 18

// Replaces the first occurrence of `from` in the base recipe.
std::string With(std::string_view from, std::string_view to, std::string text = kRecipe) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

Status Parse(const std::string& text) { return ParseRecipeYaml(text, "r.yaml").status(); }

TEST(Recipe, MinimalRecipeGetsDocumentedDefaults) {
  auto r = ParseRecipeYaml(kRecipe, "recipes/minimal.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "minimal");
  EXPECT_EQ(r->steps.align.OptimizerSteps(), 4);
  EXPECT_EQ(r->steps.align.lr.type, LrScheduleType::kCos);
  EXPECT_EQ(r->steps.align.lr.mixer.init, 1e-3) << "mixer group defaults to the main group";
  EXPECT_EQ(r->steps.align.lr.mixer.final, 1e-5);
  EXPECT_EQ(r->steps.align.micro_batch, 0);
  EXPECT_EQ(r->steps.distill.lr.main.final, 1e-5) << "constant: final = init";
  EXPECT_EQ(r->steps.distill.lr.warmup_steps, 50);
  EXPECT_EQ(r->steps.distill.loss.kl_weight, 1.0);
  EXPECT_EQ(r->steps.distill.loss.ce_weight, 0.0);
  EXPECT_EQ(r->steps.distill.loss.temperature, 1.0);
  EXPECT_EQ(r->steps.distill.loss.kl_chunk_tokens, 512);
  EXPECT_FALSE(r->steps.finetune.enabled);
  EXPECT_EQ(r->EnabledSteps().size(), 2u);
  EXPECT_EQ(r->optimizer.beta1, 0.9);
  EXPECT_EQ(r->optimizer.beta2, 0.95);
  EXPECT_EQ(r->optimizer.eps, 1e-8);
  EXPECT_EQ(r->optimizer.weight_decay, 0.0);
  EXPECT_EQ(r->optimizer.grad_clip, 1.0);
  EXPECT_TRUE(r->optimizer.bias_correction);
  EXPECT_EQ(r->data.sampler, SamplingMode::kMagicPrime);
  EXPECT_EQ(r->data.seed, 0);
}

TEST(Recipe, ArchitectureDefaults) {
  auto v7 = ParseRecipeYaml(kRecipe, "r.yaml");
  ASSERT_TRUE(v7.ok()) << v7.status().ToString();
  EXPECT_EQ(v7->student.architecture, StudentArch::kRwkv7);
  EXPECT_TRUE(v7->student.use_rope);
  EXPECT_FALSE(v7->student.use_tokenshift);
  EXPECT_EQ(v7->student.gate_rank_type, GateRankType::kLora);
  EXPECT_TRUE(v7->student.balance_state);
  EXPECT_FALSE(v7->student.groupnorm_att);
  EXPECT_FALSE(v7->student.reinit_att);

  auto v6 = ParseRecipeYaml(With("rad-rwkv7", "rad-rwkv6"), "r.yaml");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->student.architecture, StudentArch::kRwkv6);
  EXPECT_FALSE(v6->student.use_rope);
  EXPECT_TRUE(v6->student.use_tokenshift);
  EXPECT_EQ(v6->student.gate_rank_type, GateRankType::kFull);
  EXPECT_TRUE(v6->student.balance_state);
  EXPECT_FALSE(v6->student.groupnorm_att);
}

TEST(Recipe, ExplicitFlagsOverrideDefaults) {
  auto r = ParseRecipeYaml(With("  architecture: rad-rwkv6\n",
                                "  architecture: rad-rwkv6\n  use_rope: true\n  gate_rank_type: 0\n"
                                "  groupnorm_att: true\n  balance_state: false\n"
                                "  reinit_att: true\n",
                                With("rad-rwkv7", "rad-rwkv6")),
                           "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->student.use_rope);
  EXPECT_EQ(r->student.gate_rank_type, GateRankType::kNone);
  EXPECT_TRUE(r->student.groupnorm_att);
  EXPECT_FALSE(r->student.balance_state);
  EXPECT_TRUE(r->student.reinit_att);
  for (auto [word, type] : {std::pair{"lora", GateRankType::kLora},
                            {"2", GateRankType::kLora},
                            {"full", GateRankType::kFull},
                            {"1", GateRankType::kFull},
                            {"none", GateRankType::kNone}}) {
    auto g = ParseRecipeYaml(
        With("rad-rwkv7\n", std::string("rad-rwkv7\n  gate_rank_type: ") + word + "\n"), "r.yaml");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->student.gate_rank_type, type) << word;
  }
}

TEST(Recipe, LoraRankFormulaReproducesSpecTable) {
  // docs/spec.md §3.0: D, decay, ICLR, value residual, gate, RWKV6 tokenshift.
  const std::int64_t table[][6] = {
      {3584, 96, 96, 64, 416, 96}, {5120, 128, 128, 96, 544, 128}, {8192, 160, 160, 128, 800, 160}};
  for (const auto& row : table) {
    SCOPED_TRACE(row[0]);
    LoraRanks v7 = ResolveLoraRanks(DefaultStudentSettings(StudentArch::kRwkv7), row[0]);
    EXPECT_EQ(v7.decay, row[1]);
    EXPECT_EQ(v7.iclr, row[2]);
    EXPECT_EQ(v7.value_residual_mix, row[3]);
    EXPECT_EQ(v7.gate, row[4]);
    EXPECT_EQ(v7.tokenshift, 0) << "rad-rwkv7 has no tokenshift";
    LoraRanks v6 = ResolveLoraRanks(DefaultStudentSettings(StudentArch::kRwkv6), row[0]);
    EXPECT_EQ(v6.decay, row[1]);
    EXPECT_EQ(v6.tokenshift, row[5]);
    EXPECT_EQ(v6.gate, 0) << "full-rank gate: no LoRA";
    EXPECT_EQ(v6.iclr, 0);
    EXPECT_EQ(v6.value_residual_mix, 0);
  }
  EXPECT_EQ(LoraRankFormula(16, 0.5, 1.3), 32) << "max(1, ...) floor";
}

TEST(Recipe, ExplicitRanksWinOverAuto) {
  auto r = ParseRecipeYaml(
      With("rad-rwkv7\n", "rad-rwkv7\n  lora_ranks:\n    decay: 64\n    gate: auto\n"), "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  LoraRanks ranks = ResolveLoraRanks(*r, 3584);
  EXPECT_EQ(ranks.decay, 64);
  EXPECT_EQ(ranks.gate, 416);
}

TEST(Recipe, InapplicableFlagsAreErrorsNamingTheKey) {
  const std::string v6 = With("rad-rwkv7", "rad-rwkv6");
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv6\n", "rad-rwkv6\n  lora_ranks:\n    iclr: 64\n", v6)),
                      "r.yaml", 4, {"student.lora_ranks.iclr: applies only to rad-rwkv7"}));
  EXPECT_TRUE(ErrorAt(
      Parse(With("rad-rwkv6\n", "rad-rwkv6\n  lora_ranks:\n    value_residual_mix: auto\n", v6)),
      "r.yaml", 4, {"student.lora_ranks.value_residual_mix: applies only to rad-rwkv7"}));
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv7\n", "rad-rwkv7\n  use_tokenshift: true\n")), "r.yaml",
                      3, {"student.use_tokenshift: rad-rwkv7 has no tokenshift", "§3.4"}));
  EXPECT_TRUE(Parse(With("rad-rwkv7\n", "rad-rwkv7\n  use_tokenshift: false\n")).ok());
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv7\n", "rad-rwkv7\n  lora_ranks:\n    tokenshift: 32\n")),
                      "r.yaml", 4, {"student.lora_ranks.tokenshift: applies only to rad-rwkv6"}));
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv6\n",
                                 "rad-rwkv6\n  use_tokenshift: false\n  lora_ranks:\n"
                                 "    tokenshift: 32\n",
                                 v6)),
                      "r.yaml", 5, {"lora_ranks.tokenshift: applies only when use_tokenshift"}));
  EXPECT_TRUE(ErrorAt(
      Parse(With("rad-rwkv6\n", "rad-rwkv6\n  lora_ranks:\n    gate: 64\n", v6)), "r.yaml", 4,
      {"student.lora_ranks.gate: applies only when gate_rank_type is lora", "here it is full"}));
}

TEST(Recipe, WrongArchitectureNameSuggests) {
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv7", "rad-rwkv5")), "r.yaml", 2,
                      {"student.architecture: expected one of `rad-rwkv6`, `rad-rwkv7`, got "
                       "rad-rwkv5",
                       "did you mean"}));
  EXPECT_TRUE(ErrorAt(Parse(With("rad-rwkv7\n", "rad-rwkv7\n  gate_rank_type: 3\n")), "r.yaml", 3,
                      {"student.gate_rank_type: expected one of `none`, `full`, `lora`, got 3"}));
}

TEST(Recipe, WrongTypeAndRangeNameTheKeyPath) {
  EXPECT_TRUE(ErrorAt(Parse(With("batch: 8", "batch: -3")), "r.yaml", 7,
                      {"steps.align.batch: expected a positive integer, got -3"}));
  EXPECT_TRUE(ErrorAt(Parse(With("init: 1.0e-3", "init: fast")), "r.yaml", 9,
                      {"steps.align.lr.init: expected a number in (0, 1], got fast"}));
  EXPECT_TRUE(ErrorAt(Parse(With("init: 1.0e-3", "init: 0")), "r.yaml", 9,
                      {"steps.align.lr.init: expected a number in (0, 1], got 0"}));
  EXPECT_TRUE(ErrorAt(Parse(With("tokens: 16384", "tokens: \"16384\"")), "r.yaml", 5,
                      {"steps.align.tokens: expected a positive integer, got \"16384\""}));
}

TEST(Recipe, UnknownKeySuggestsTheNearMiss) {
  EXPECT_TRUE(ErrorAt(Parse(With("warmup_steps: 1", "warmup_step: 1")), "r.yaml", 11,
                      {"steps.align.lr.warmup_step: unknown key", "did you mean `warmup_steps`?"}));
  EXPECT_TRUE(ErrorAt(Parse(With("      init: 1.0e-3", "      lr_init: 1.0e-3")), "r.yaml", 9,
                      {"steps.align.lr.lr_init: unknown key", "did you mean `init`?"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) + "temperature: 2\n"), "r.yaml", 19,
                      {"temperature: unknown key"}));
  // `loss` belongs to distill only.
  EXPECT_TRUE(ErrorAt(Parse(With("  distill:\n", "    loss: {}\n  distill:\n")), "r.yaml", 12,
                      {"steps.align.loss: unknown key"}));
}

TEST(Recipe, MissingRequiredKeyNamesTheMapping) {
  EXPECT_TRUE(ErrorAt(Parse(With("    seq_len: 512\n    batch: 8\n", "    batch: 8\n")), "r.yaml",
                      4, {"steps.align: missing required key `seq_len`"}));
  EXPECT_TRUE(ErrorAt(Parse(With("      final: 1.0e-5\n", "")), "r.yaml", 8,
                      {"steps.align.lr: missing required key `final`"}));
  EXPECT_TRUE(ErrorAt(Parse(With("student:\n  architecture: rad-rwkv7\n", "")), "r.yaml", 1,
                      {"missing required key `student`"}));
}

TEST(Recipe, TokenBudgetMustBeWholeSteps) {
  // 100M at 512 x 32: the paper's number is 6103.5 steps.
  EXPECT_TRUE(ErrorAt(Parse(With("tokens: 16384\n    seq_len: 512\n    batch: 8",
                                 "tokens: 100_000_000\n    seq_len: 512\n    batch: 32")),
                      "r.yaml", 5,
                      {"steps.align.tokens: 100000000 is not a whole number of optimizer steps",
                       "16384 tokens (6103 steps + 8448 tokens)",
                       "use 99991552 (6103 steps) or 100007936 (6104 steps)"}));
  EXPECT_TRUE(
      ErrorAt(Parse(With("tokens: 16384", "tokens: 100")), "r.yaml", 5, {"use 4096 (1 steps)"}));
}

TEST(Recipe, MicroBatchMustDivideBatch) {
  EXPECT_TRUE(ErrorAt(Parse(With("    batch: 8\n", "    batch: 8\n    micro_batch: 3\n")), "r.yaml",
                      8, {"steps.align.micro_batch: 3 must divide batch (8)"}));
  auto r = ParseRecipeYaml(With("    batch: 8\n", "    batch: 8\n    micro_batch: 4\n"), "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->steps.align.micro_batch, 4);
}

TEST(Recipe, WarmupMustLeaveRoomForTheDecay) {
  EXPECT_TRUE(ErrorAt(Parse(With("warmup_steps: 1", "warmup_steps: 4")), "r.yaml", 11,
                      {"steps.align.lr.warmup_steps: 4 warmup steps", "4 optimizer steps"}));
}

TEST(Recipe, LrRules) {
  EXPECT_TRUE(
      ErrorAt(Parse(With("      init: 1.0e-5\n", "      init: 1.0e-5\n      final: 2.0e-5\n")),
              "r.yaml", 19, {"steps.distill.lr.final: must equal init (1e-05) for type constant"}));
  EXPECT_TRUE(ErrorAt(Parse(With("warmup_steps: 1\n",
                                 "warmup_steps: 1\n      wait: 0.9\n"
                                 "      endpoint: 0.5\n")),
                      "r.yaml", 13, {"steps.align.lr.endpoint: must be greater than wait (0.9)"}));
  EXPECT_TRUE(ErrorAt(Parse(With("final: 1.0e-5", "final: 0\n      type: exp")), "r.yaml", 10,
                      {"steps.align.lr.final: must be positive for type exp"}));
  auto r = ParseRecipeYaml(
      With("warmup_steps: 1\n",
           "warmup_steps: 1\n      wait: 0.833\n      endpoint: 0.875\n      mixer:\n"
           "        init: 1.0e-4\n"),
      "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->steps.align.lr.mixer.init, 1e-4);
  EXPECT_EQ(r->steps.align.lr.mixer.final, 1e-5) << "unset mixer.final follows final";
  EXPECT_EQ(r->steps.align.lr.wait, 0.833);
  EXPECT_EQ(r->steps.align.lr.endpoint, 0.875);
}

TEST(Recipe, TemperatureOtherThanOneCitesTheSpec) {
  const std::string text = std::string(kRecipe) + "    loss:\n      temperature: 2\n";
  EXPECT_TRUE(ErrorAt(Parse(text), "r.yaml", 20,
                      {"steps.distill.loss.temperature: expected 1, got 2", "docs/spec.md §2.2"}));
  EXPECT_TRUE(Parse(std::string(kRecipe) + "    loss:\n      temperature: 1.0\n").ok());
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) + "    loss:\n      kl_weight: 0\n"), "r.yaml", 20,
                      {"steps.distill.loss.kl_weight", "no loss"}));
}

TEST(Recipe, FinetuneStep) {
  // Disabled: may be a stub.
  EXPECT_TRUE(Parse(std::string(kRecipe) + "  finetune:\n    enabled: false\n").ok());
  // Enabled: budget and LR are required.
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) + "  finetune:\n    enabled: true\n"), "r.yaml",
                      19, {"steps.finetune: missing required key `tokens`"}));
  auto r = ParseRecipeYaml(std::string(kRecipe) +
                               "  finetune:\n    enabled: true\n    tokens: 32768\n"
                               "    seq_len: 2048\n    batch: 16\n    lr:\n      type: constant\n"
                               "      init: 1.0e-5\n",
                           "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->steps.finetune.enabled);
  EXPECT_EQ(r->steps.finetune.OptimizerSteps(), 1);
  EXPECT_EQ(r->EnabledSteps().size(), 3u);
  EXPECT_EQ(r->EnabledSteps()[2]->kind, RecipeStepKind::kFinetune);
  // A disabled step with a full budget is still checked.
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) +
                            "  finetune:\n    tokens: 1000\n    seq_len: 2048\n    batch: 16\n"),
                      "r.yaml", 20, {"steps.finetune.tokens: 1000 is not a whole number"}));
}

TEST(Recipe, OptimizerAndDataRanges) {
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) + "optimizer:\n  beta2: 1.0\n"), "r.yaml", 20,
                      {"optimizer.beta2: expected a number in [0, 1), got 1.0"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kRecipe) + "data:\n  sampler: random\n"), "r.yaml", 20,
                      {"data.sampler: expected one of `magic_prime`, `sequential`"}));
  auto r =
      ParseRecipeYaml(std::string(kRecipe) + "data:\n  sampler: sequential\n  seed: 7\n", "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data.sampler, SamplingMode::kSequential);
  EXPECT_EQ(r->data.seed, 7);
}

}  // namespace
}  // namespace radlads
