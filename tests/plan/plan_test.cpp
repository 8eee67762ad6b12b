// The planner's DAG, layout and data rules (plan/plan.h, docs/planner.md).
#include "plan/plan.h"
#include "plan/drain_estimate.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plan/plan_report.h"
#include "tests/plan/plan_test_util.h"

namespace radlads {
namespace {

using testing::ExpectWellFormedDag;
using testing::QuietOptions;
using testing::ShippedInputs;
using testing::WithLayout;

struct Shipped {
  const char* recipe;
  const char* preset;
};
constexpr Shipped kShipped[] = {
    {"qwen2.5-0.5b-rwkv6", "qwen2.5-0.5b"}, {"qwen2.5-0.5b-rwkv7", "qwen2.5-0.5b"},
    {"qwen2.5-7b-rwkv6", "qwen2.5-7b"},   {"qwen2.5-7b-rwkv7", "qwen2.5-7b"},
    {"qwen2.5-32b-rwkv6", "qwen2.5-32b"}, {"qwen2.5-32b-rwkv7", "qwen2.5-32b"},
    {"qwen2.5-72b-rwkv6", "qwen2.5-72b"}, {"qwen2.5-72b-rwkv7", "qwen2.5-72b"},
};
constexpr const char* kGpuClusters[] = {"8x-mi300x", "8x-h100", "4x8-h100"};

// Every shipped recipe on every shipped GPU cluster ends in a valid plan: the best layout of
// the cluster's own workers (--auto-layout), or, where none fits, the allocation the planner
// suggests. The DAG is then checked against the rules from scratch.
TEST(Plan, ShippedRecipesOnShippedClusters) {
  for (const Shipped& s : kShipped) {
    for (const char* cluster : kGpuClusters) {
      SCOPED_TRACE(std::string(s.recipe) + " on " + cluster);
      PlanInputs in = ShippedInputs(s.recipe, s.preset, cluster);
      PlanOptions opt = QuietOptions();
      opt.auto_layout = true;
      Result<Plan> plan = BuildPlan(in, opt);
      if (!plan.ok()) {
        // Only "nothing of this allocation fits": then the suggested allocation must plan.
        EXPECT_EQ(plan.status().code(), Status::Code::kInvalidArgument);
        EXPECT_NE(plan.status().message().find("smallest allocation that does"), std::string::npos)
            << plan.status().message();
        std::vector<LayoutCandidate> c = SuggestLayouts(in, opt);
        ASSERT_FALSE(c.empty());
        EXPECT_GT(c.front().nodes, in.cluster.nodes);
        in.cluster.nodes = c.front().nodes;
        in.recipe.steps.distill.micro_batch = c.front().distill_micro_batch;
        if (c.front().finetune_micro_batch) {
          in.recipe.steps.finetune.micro_batch = c.front().finetune_micro_batch;
        }
        plan = BuildPlan(in, WithLayout(c.front().layout.tp, c.front().layout.pp, c.front().layout.dp));
      }
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      ExpectWellFormedDag(*plan);
      for (const MemoryBreakdown& m : plan->memory) EXPECT_TRUE(m.fits()) << m.what;
      EXPECT_TRUE(ValidatePlanGraph(*plan).ok());
    }
  }
}

TEST(Plan, TinyOnLocalCpu) {
  for (const char* recipe : {"tiny-rwkv6", "tiny-rwkv7"}) {
    SCOPED_TRACE(recipe);
    Result<Plan> plan = BuildPlan(ShippedInputs(recipe, "tiny", "local-cpu", 10'000'000), QuietOptions());
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ExpectWellFormedDag(*plan);
    EXPECT_FALSE(plan->worker.gpu);
    EXPECT_DOUBLE_EQ(plan->worker.capacity_bytes, 8.0 * kGiB);  // 16 GiB / 2 workers
    // fp32 cache on CPUs: 4 B x 128 x (2 x 4 layers + 1 stage output) + a 4-byte token id.
    EXPECT_EQ(plan->cache.bytes_per_token, 4 * 128 * 9 + 4);
    // 72 steps of 4,096 tokens are 1.27 GiB: the 4 GiB budget keeps the whole cache, split into
    // the minimum of 8 segments of 9 steps, all resident (W = 8).
    EXPECT_TRUE(plan->cache.kept);
    EXPECT_EQ(plan->cache.segments.size(), 8u);
    EXPECT_EQ(plan->cache.max_segment_steps, 9);
    EXPECT_EQ(plan->cache.window, 8);
    EXPECT_EQ(plan->tasks.size(), 4u + 8u + 4u * 8u + 3u);
    std::map<TaskType, int> c = plan->TaskCounts();
    EXPECT_EQ(c[TaskType::kTransfer], 4);
    EXPECT_EQ(c[TaskType::kFinetune], 0);
    EXPECT_EQ(plan->layout.dp, 2);
    EXPECT_FALSE(plan->estimate.cost_usd.has_value());
  }
}

TEST(Plan, SevenBOnMi300xFitsWithThePapersLayout) {
  // The paper ran 7B with DeepSpeed ZeRO-1 over the 8 GPUs: tp 1, dp 8.
  Result<Plan> plan =
      BuildPlan(ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x"), WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ExpectWellFormedDag(*plan);
  ASSERT_EQ(plan->memory.size(), 4u);  // cache task, align task, distill rank, finetune rank
  for (const MemoryBreakdown& m : plan->memory) {
    EXPECT_TRUE(m.fits()) << m.what << " " << m.total_bytes / kGiB;
    EXPECT_DOUBLE_EQ(m.usable_bytes, 192.0 * kGiB * 0.9);
  }
  EXPECT_EQ(plan->layout_source, LayoutSource::kOverride);
  const StepPlan* d = plan->Step(RecipeStepKind::kDistill);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->micro_batch, 12);  // the recipe's
  EXPECT_EQ(d->grad_accum, 1);    // 96 = 8 x 12
  EXPECT_EQ(d->optimizer_steps, 10173);
  EXPECT_EQ(plan->Step(RecipeStepKind::kAlign)->grad_accum, 8);  // 32 / 4 on one worker
  // 408,580 B/token x 16,384 tokens per step: 2,000 GiB hold 320 steps; a window of 9 (8
  // workers + 1) gives 35 steps per segment: 6,104 steps in 175 segments of 34-35, W = 9.
  EXPECT_EQ(plan->cache.segments.size(), 175u);
  EXPECT_EQ(plan->cache.min_segment_steps, 34);
  EXPECT_EQ(plan->cache.max_segment_steps, 35);
  EXPECT_EQ(plan->cache.window, 9);
  EXPECT_EQ(plan->tasks.size(), 28u + 175u + 28u * 175u + 4u);
  ASSERT_TRUE(plan->estimate.cost_usd.has_value());
}

TEST(Plan, TpMustDivideHeads) {
  // The shipped 8x-mi300x layout is tp 8; Qwen2.5-7B has 28 heads.
  Result<Plan> plan = BuildPlan(ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x"),
                                QuietOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Status::Code::kInvalidArgument);
  const std::string& m = plan.status().message();
  EXPECT_NE(m.find("tp 8 does not divide num_attention_heads 28"), std::string::npos) << m;
  EXPECT_NE(m.find("Layouts of the 8 GPUs that fit:"), std::string::npos) << m;
  EXPECT_NE(m.find("1. tp 1 x pp 1 x dp 8"), std::string::npos) << m;
}

TEST(Plan, TpAboveKvHeadsIsRefusedAsReplication) {
  // 72B: 64 heads, 8 KV heads; tp 16 divides the heads but would replicate KV heads.
  Result<Plan> plan = BuildPlan(ShippedInputs("qwen2.5-72b-rwkv6", "qwen2.5-72b", "4x8-h100"),
                                WithLayout(16, 2, 1));
  ASSERT_FALSE(plan.ok());
  const std::string& m = plan.status().message();
  EXPECT_NE(m.find("tp 16 is more than the teacher's 8 KV heads"), std::string::npos) << m;
  EXPECT_NE(m.find("replicated on 2 TP ranks, which radlads does not support"), std::string::npos) << m;
}

TEST(Plan, PpMustNotExceedLayersAndDpMustDivideBatch) {
  PlanInputs in = ShippedInputs("tiny-rwkv7", "tiny", "local-cpu", 10'000'000);
  in.cluster.cpu_workers = 8;
  Result<Plan> p = BuildPlan(in, WithLayout(1, 8, 1));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("pp 8 is more than the 4 layers"), std::string::npos)
      << p.status().message();
  in.recipe.steps.distill.batch = 36;  // 36 % 8 != 0
  in.recipe.steps.distill.tokens = 36 * 128 * 10;
  p = BuildPlan(in, WithLayout(1, 1, 8));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("dp 8 does not divide steps.distill.batch 36"),
            std::string::npos)
      << p.status().message();
}

TEST(Plan, SeventyTwoBOnOneH100NodeSuggestsALargerAllocationThatPlans) {
  PlanInputs in = ShippedInputs("qwen2.5-72b-rwkv6", "qwen2.5-72b", "8x-h100");
  PlanOptions opt = WithLayout(1, 1, 8);
  Result<Plan> plan = BuildPlan(in, opt);
  ASSERT_FALSE(plan.ok());
  const std::string& m = plan.status().message();
  EXPECT_EQ(plan.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(m.find("step 2 (distill) on tp 1 x pp 1 x dp 8 does not fit"), std::string::npos) << m;
  EXPECT_NE(m.find("short by"), std::string::npos) << m;
  EXPECT_NE(m.find("No TP x PP x DP layout of the 8 GPUs fits"), std::string::npos) << m;

  std::vector<LayoutCandidate> c = SuggestLayouts(in, opt);
  ASSERT_FALSE(c.empty());
  const LayoutCandidate& best = c.front();
  EXPECT_NE(m.find(best.Describe()), std::string::npos) << m;
  EXPECT_GT(best.nodes, 1);
  // The suggestion itself validates.
  in.cluster.nodes = best.nodes;
  in.recipe.steps.distill.micro_batch = best.distill_micro_batch;
  Result<Plan> fixed = BuildPlan(in, WithLayout(best.layout.tp, best.layout.pp, best.layout.dp));
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  ExpectWellFormedDag(*fixed);
  EXPECT_LE(fixed->memory[2].total_bytes, fixed->memory[2].usable_bytes);
}

TEST(Plan, AutoLayoutTakesTheBestFittingLayout) {
  PlanOptions opt = QuietOptions();
  opt.auto_layout = true;
  Result<Plan> plan = BuildPlan(ShippedInputs("qwen2.5-7b-rwkv6", "qwen2.5-7b", "8x-h100"), opt);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->layout_source, LayoutSource::kAuto);
  EXPECT_EQ(plan->layout.tp * plan->layout.pp * plan->layout.dp, 8);
  EXPECT_EQ(28 % plan->layout.tp, 0);
  EXPECT_FALSE(plan->warnings.empty());
}

TEST(Plan, DatasetTooSmallForTheBudget) {
  PlanInputs in = ShippedInputs("tiny-rwkv7", "tiny", "local-cpu", 200'000);
  in.data.path = "austen.u32";
  Result<Plan> plan = BuildPlan(in, QuietOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Status::Code::kInvalidArgument);
  const std::string& m = plan.status().message();
  // 294,912 tokens at seq_len 256 = 1,152 windows; 200k tokens give the prime 773.
  EXPECT_NE(m.find("dataset austen.u32 (200,000 tokens) is too small for step 1 (align)"),
            std::string::npos) << m;
  EXPECT_NE(m.find("294,912 tokens needs 1,152 windows of 257 tokens"), std::string::npos) << m;
  EXPECT_NE(m.find("magic_prime sampler has 773 distinct windows"), std::string::npos) << m;

  PlanOptions allow = QuietOptions();
  allow.allow_data_repeats = true;
  Result<Plan> repeated = BuildPlan(in, allow);
  ASSERT_TRUE(repeated.ok()) << repeated.status().ToString();
  EXPECT_FALSE(repeated->warnings.empty());

  in.data.tokens = 100;  // not even one window of 257 tokens
  plan = BuildPlan(in, QuietOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("one window is seq_len + 1 = 257 tokens"),
            std::string::npos) << plan.status().message();
}

TEST(Plan, StepOneTokensAreExactWhateverTheSegmentSize) {
  PlanInputs in = ShippedInputs("tiny-rwkv6", "tiny", "local-cpu", 10'000'000);
  for (std::int64_t g : {1, 7, 100, 1023, 1024, 5000}) {
    SCOPED_TRACE(g);
    PlanOptions opt = QuietOptions();
    opt.segment_steps = g;
    in.cluster.cache_disk_budget_gib = 100;
    Result<Plan> plan = BuildPlan(in, opt);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ExpectWellFormedDag(*plan);
    const std::int64_t steps = std::min<std::int64_t>(g, 72);  // the tiny recipe's step 1
    EXPECT_EQ(plan->cache.segments.size(), static_cast<std::size_t>((72 + steps - 1) / steps));
  }
}

TEST(Plan, CacheWindowFollowsTheDiskBudget) {
  PlanInputs in = ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x");
  // 7B, pp 1: 2 B x 3584 x (56 + 1) + 4 = 408,580 B/token; a step is 16,384 tokens.
  const std::int64_t step_bytes = 408'580LL * 16'384;
  in.cluster.cache_disk_budget_gib = 2000;
  Result<Plan> plan = BuildPlan(in, WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->cache.bytes_per_token, 408'580);
  EXPECT_EQ(plan->cache.step_bytes, step_bytes);
  EXPECT_FALSE(plan->cache.kept);
  // W = floor(budget / largest segment), and the rule aimed at workers + 1 = 9 segments.
  EXPECT_EQ(plan->cache.window,
            plan->cache.budget_bytes / (plan->cache.max_segment_steps * step_bytes));
  EXPECT_GE(plan->cache.window, 9);

  in.cluster.cache_disk_budget_gib = 100'000;  // holds the whole 40 TB cache
  plan = BuildPlan(in, WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->cache.kept);
  EXPECT_EQ(plan->cache.window, static_cast<std::int64_t>(plan->cache.segments.size()));
  EXPECT_NE(FormatPlanTable(*plan).find("the whole cache is kept"), std::string::npos);

  in.cluster.cache_disk_budget_gib = 5;  // less than one optimizer step (6.2 GiB)
  plan = BuildPlan(in, WithLayout(1, 1, 8));
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("raise it to at least 6.2 GiB"), std::string::npos)
      << plan.status().message();

  in.cluster.cache_disk_budget_gib = 10;  // one step fits, two do not: a window of 1
  plan = BuildPlan(in, WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->cache.window, 1);
  EXPECT_EQ(plan->cache.max_segment_steps, 1);
}

TEST(Plan, PipelineStagesAreBalancedAndCacheTasksChain) {
  EXPECT_EQ(BalancedStages(80, 3).size(), 3u);
  EXPECT_EQ(BalancedStages(80, 3)[0].layers(), 27);
  EXPECT_EQ(BalancedStages(80, 3)[2].layers(), 26);
  EXPECT_EQ(BalancedStages(80, 3)[2].last_layer, 80);
  Result<Plan> plan =
      BuildPlan(ShippedInputs("qwen2.5-72b-rwkv6", "qwen2.5-72b", "4x8-h100"), WithLayout(8, 4, 1));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ExpectWellFormedDag(*plan);
  ASSERT_EQ(plan->stages.size(), 4u);
  for (const StageRange& r : plan->stages) EXPECT_EQ(r.layers(), 20);
  EXPECT_EQ(plan->cache.bytes_per_token, 2 * 8192 * (160 + 4) + 16);
}

TEST(Plan, IsDeterministic) {
  PlanInputs in = ShippedInputs("qwen2.5-7b-rwkv6", "qwen2.5-7b", "4x8-h100");
  Result<Plan> a = BuildPlan(in, WithLayout(4, 1, 8));
  Result<Plan> b = BuildPlan(in, WithLayout(4, 1, 8));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(PlanJsonText(*a), PlanJsonText(*b));
}

TEST(Plan, JsonRoundTrip) {
  Result<Plan> plan =
      BuildPlan(ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x"), WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok());
  const std::string text = PlanJsonText(*plan);
  nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["schema"], "radlads.plan");
  EXPECT_EQ(j["version"], kPlanSchemaVersion);
  EXPECT_EQ(j["layout"]["tp"], 1);
  EXPECT_EQ(j["layout"]["dp"], 8);
  EXPECT_EQ(j["layout"]["stages"].size(), 1u);
  EXPECT_EQ(j["teacher"]["params"].get<std::int64_t>(), plan->teacher.ParameterCount());
  EXPECT_EQ(j["student"]["params"].get<std::int64_t>(), plan->sizes.StudentTotal());
  EXPECT_EQ(j["steps"].size(), 3u);
  EXPECT_EQ(j["steps"][1]["tokens"].get<std::int64_t>(), 500'023'296);
  EXPECT_EQ(j["steps"][0]["unique_windows"].get<std::uint64_t>(), 2'929'793u);  // docs/spec.md §2.5
  EXPECT_EQ(j["steps"][2]["magic_prime"].get<std::uint64_t>(), 91'541u);
  EXPECT_EQ(j["cache"]["window"].get<std::int64_t>(), plan->cache.window);
  EXPECT_EQ(j["cache"]["segments"].size(), plan->cache.segments.size());
  EXPECT_EQ(j["task_counts"]["align"].get<int>(), plan->TaskCounts()[TaskType::kAlign]);
  EXPECT_EQ(j["memory"]["tasks"].size(), plan->memory.size());
  EXPECT_EQ(j["memory"]["tasks"][2]["what"], "distill rank");
  EXPECT_NEAR(j["estimate"]["seconds"].get<double>(), plan->estimate.seconds, plan->estimate.seconds * 1e-3);
  ASSERT_EQ(j["tasks"].size(), plan->tasks.size());

  Result<std::vector<TaskSpec>> tasks = ParsePlanTasks(text, "plan.json");
  ASSERT_TRUE(tasks.ok()) << tasks.status().ToString();
  ASSERT_EQ(tasks->size(), plan->tasks.size());
  for (std::size_t i = 0; i < tasks->size(); ++i) EXPECT_TRUE((*tasks)[i] == plan->tasks[i]) << i;
  EXPECT_EQ(j["inputs"]["host_memory_gib"], nullptr);  // not given to BuildPlan
  // A task that does not parse is named with its path.
  nlohmann::json bad = j;
  bad["tasks"][3]["optimizer_steps"] = "many";
  Result<std::vector<TaskSpec>> refused = ParsePlanTasks(bad.dump(), "plan.json");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("plan.json: tasks[3].optimizer_steps: expected an integer"),
            std::string::npos) << refused.status().ToString();
  // Another version of the document is refused naming both versions.
  nlohmann::json v1 = j;
  v1["version"] = 1;
  refused = ParsePlanTasks(v1.dump(), "plan.json");
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("radlads.plan version 1; this build reads version 2"),
            std::string::npos) << refused.status().ToString();
  EXPECT_FALSE(ParsePlanTasks("{\"schema\": \"other\"}", "x.json").ok());
  EXPECT_FALSE(ParsePlanTasks("[1,", "x.json").ok());
}

TEST(Plan, DifferenceNamesTheField) {
  PlanInputs in = ShippedInputs("tiny-rwkv7", "tiny", "local-cpu", 10'000'000);
  Result<Plan> a = BuildPlan(in, QuietOptions());
  PlanOptions other = QuietOptions();
  other.segment_steps = 64;
  Result<Plan> b = BuildPlan(in, other);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DescribePlanDifference(PlanToJson(*a), PlanToJson(*a)), "");
  const std::string d = DescribePlanDifference(PlanToJson(*a), PlanToJson(*b));
  EXPECT_EQ(d.rfind("cache.", 0), 0u) << d;
}

}  // namespace
}  // namespace radlads

namespace radlads {
namespace {

// plan/drain_estimate.h: the drain is the longest optimizer step plus one node's checkpoints at
// the storage bandwidth, and the Slurm lead is twice that plus the margin, never below the floor.
TEST(DrainEstimate, FollowsThePlansStepTimesCheckpointSizesAndBandwidth) {
  PlanInputs in = ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x");
  Result<Plan> plan = BuildPlan(in, WithLayout(2, 1, 4));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const DrainEstimate d = EstimateDrain(*plan);
  double longest = 0.0;
  for (const StepEstimate& e : plan->estimate.steps) longest = std::max(longest, e.optimizer_step_seconds);
  EXPECT_DOUBLE_EQ(d.step_seconds, longest);
  EXPECT_GT(d.step_seconds, 0.0);
  // 8 ranks on the node, each the student / tp 2, fp32 weights + two Adam moments.
  const double expected = 8.0 * static_cast<double>(plan->sizes.StudentTotal()) / 2.0 * 12.0;
  EXPECT_NEAR(d.checkpoint_bytes, expected, expected * 1e-12);
  EXPECT_DOUBLE_EQ(d.write_gbps, kAssumedWriteGbps);
  EXPECT_NEAR(d.write_seconds, expected / 0.5e9, 1e-6);
  EXPECT_DOUBLE_EQ(d.seconds, d.step_seconds + d.write_seconds);
  EXPECT_NE(d.Describe().find("at 0.5 GB/s"), std::string::npos) << d.Describe();
  // A faster filesystem shortens the drain.
  PlanOptions fast = WithLayout(2, 1, 4);
  fast.cost.storage_gbps_per_node = 10.0;
  Result<Plan> fast_plan = BuildPlan(in, fast);
  ASSERT_TRUE(fast_plan.ok());
  EXPECT_NEAR(EstimateDrain(*fast_plan).write_seconds, expected / 10e9, 1e-6);
  // The lead.
  const std::int64_t derived = static_cast<std::int64_t>(std::ceil(2.0 * d.seconds)) + kDrainMarginSeconds;
  EXPECT_EQ(SignalLeadSeconds(d, 10), derived);
  EXPECT_EQ(SignalLeadSeconds(d, derived + 100), derived + 100);
  DrainEstimate zero;
  EXPECT_EQ(SignalLeadSeconds(zero, 0), kDrainMarginSeconds);
}

}  // namespace
}  // namespace radlads
