// The LR schedule of docs/spec.md §2.6 against hand-computed values.
#include "configs/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace radlads {
namespace {

constexpr double kTol = 1e-15;

// 100 optimizer steps of 10 x 10 tokens, no warmup unless a test sets it.
RecipeStep Step(LrScheduleType type, double init, double final) {
  RecipeStep s;
  s.tokens = 10'000;
  s.seq_len = 10;
  s.batch = 10;
  s.lr.type = type;
  s.lr.main = {init, final};
  s.lr.mixer = {init, final};
  s.lr.warmup_steps = 0;
  return s;
}

TEST(LrSchedule, CosIsAQuarterCosine) {
  const RecipeStep s = Step(LrScheduleType::kCos, 1e-3, 1e-5);
  const double want = 1e-5 + (1e-3 - 1e-5) * std::cos(std::numbers::pi / 4);  // p = 0.5
  EXPECT_NEAR(LearningRate(s, 50, 5'000).main, want, kTol);
  EXPECT_NEAR(LearningRate(s, 50, 5'000).mixer, want, kTol);
  const double half_cosine = 1e-5 + 0.5 * (1e-3 - 1e-5);  // what the usual schedule would give
  EXPECT_GT(std::abs(LearningRate(s, 50, 5'000).main - half_cosine), 1e-4);
  EXPECT_NEAR(LearningRate(s, 0, 0).main, 1e-3, kTol);
  EXPECT_NEAR(LearningRate(s, 100, 10'000).main, 1e-5, kTol);
  EXPECT_NEAR(LearningRate(s, 200, 20'000).main, 1e-5, kTol) << "p clamps at 1";
}

TEST(LrSchedule, OtherShapes) {
  EXPECT_NEAR(LearningRate(Step(LrScheduleType::kLinear, 1e-3, 1e-5), 25, 2'500).main,
              1e-5 + (1e-3 - 1e-5) * 0.75, kTol);
  EXPECT_NEAR(LearningRate(Step(LrScheduleType::kOneMinusSqrt, 1e-3, 1e-5), 25, 2'500).main,
              1e-5 + (1e-3 - 1e-5) * 0.5, kTol);
  EXPECT_NEAR(LearningRate(Step(LrScheduleType::kExp, 1e-3, 1e-5), 50, 5'000).main, 1e-4, 1e-18);
  EXPECT_EQ(LearningRate(Step(LrScheduleType::kConstant, 1e-5, 1e-5), 77, 7'700).main, 1e-5);
}

TEST(LrSchedule, WarmupOnOptimizerStepsAndProgressAfterWarmupTokens) {
  RecipeStep s = Step(LrScheduleType::kCos, 1e-3, 1e-5);
  s.lr.warmup_steps = 10;  // warmup_tokens = 1000
  EXPECT_DOUBLE_EQ(WarmupMultiplier(s.lr, 0), 0.01);
  EXPECT_DOUBLE_EQ(WarmupMultiplier(s.lr, 5), 0.01 + 0.99 * 0.5);
  EXPECT_DOUBLE_EQ(WarmupMultiplier(s.lr, 10), 1.0);
  EXPECT_DOUBLE_EQ(LrProgress(s, 1'000), 0.0);
  EXPECT_DOUBLE_EQ(LrProgress(s, 5'500), 0.5);  // (5500 - 1000) / (10000 - 1000)
  EXPECT_NEAR(LearningRate(s, 0, 0).main, 1e-3 * 0.01, kTol);
  EXPECT_NEAR(LearningRate(s, 5, 500).main, 1e-3 * 0.505, kTol) << "p = 0 during warmup";
  EXPECT_NEAR(LearningRate(s, 55, 5'500).main,
              1e-5 + (1e-3 - 1e-5) * std::cos(std::numbers::pi / 4), kTol);
  EXPECT_EQ(LearningRateAtStep(s, 55).main, LearningRate(s, 55, 5'500).main);
}

TEST(LrSchedule, WaitEndpointAndTwoGroups) {
  // Step 2a of docs/spec.md §2.3: main flat 7e-6, mixer 1e-4 annealed between 83.3% and 87.5%.
  RecipeStep s = Step(LrScheduleType::kCos, 7e-6, 7e-6);
  s.lr.mixer = {1e-4, 7e-6};
  s.lr.wait = 0.833;
  s.lr.endpoint = 0.875;
  s.tokens = 1'000'000;  // 10,000 steps of 100 tokens
  for (std::int64_t seen : {0, 500'000, 833'000, 854'000, 875'000, 1'000'000}) {
    EXPECT_NEAR(LearningRate(s, seen / 100, seen).main, 7e-6, kTol) << seen;
  }
  EXPECT_NEAR(LearningRate(s, 5'000, 500'000).mixer, 1e-4, kTol);
  EXPECT_NEAR(LearningRate(s, 8'330, 833'000).mixer, 1e-4, kTol);
  EXPECT_NEAR(LrProgress(s, 854'000), 0.5, 1e-12);
  EXPECT_NEAR(LearningRate(s, 8'540, 854'000).mixer,
              7e-6 + (1e-4 - 7e-6) * std::cos(std::numbers::pi / 4), 1e-15);
  EXPECT_NEAR(LearningRate(s, 8'750, 875'000).mixer, 7e-6, kTol);
}

TEST(LrSchedule, PaperStepOne) {
  // 7B step 1 as shipped: 6104 steps of 512 x 32, 1e-3 -> 1e-5, warmup 50 (docs/spec.md §2.1, §7.2).
  RecipeStep s = Step(LrScheduleType::kCos, 1e-3, 1e-5);
  s.tokens = 100'007'936;
  s.seq_len = 512;
  s.batch = 32;
  s.lr.warmup_steps = 50;
  ASSERT_EQ(s.OptimizerSteps(), 6104);
  EXPECT_NEAR(LearningRateAtStep(s, 0).main, 1e-5, kTol) << "1e-3 x 0.01";
  EXPECT_NEAR(LearningRateAtStep(s, 50).main, 1e-3, kTol) << "warmup over, p still 0";
  EXPECT_NEAR(LearningRateAtStep(s, 6103).main, 1e-5, 1e-6);
  EXPECT_LT(LearningRateAtStep(s, 6103).main, LearningRateAtStep(s, 3000).main);
}

TEST(LrSchedule, BudgetWithinWarmupIsAStep) {
  RecipeStep s = Step(LrScheduleType::kLinear, 1e-3, 1e-5);
  s.lr.warmup_steps = 200;  // more than the 100 steps: p jumps at the budget
  EXPECT_EQ(LrProgress(s, 9'900), 0.0);
  EXPECT_EQ(LrProgress(s, 10'000), 1.0);
}

}  // namespace
}  // namespace radlads
