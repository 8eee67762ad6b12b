// The planner's memory and cost models (plan/memory_model.h, cost_model.h), and the
// calibration of the time model against the paper's hours (docs/spec.md §5, docs/planner.md).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "plan/cost_model.h"
#include "plan/memory_model.h"
#include "plan/plan.h"
#include "plan/plan_report.h"
#include "tests/plan/plan_test_util.h"

namespace radlads {
namespace {

using testing::ShippedInputs;
using testing::WithLayout;

ModelSizes SizesFor(const char* recipe, const char* preset) {
  Result<Recipe> r = LoadRecipe(recipe);
  Result<ModelPreset> m = LoadModelPreset(preset);
  EXPECT_TRUE(r.ok() && m.ok());
  return ComputeModelSizes(m->config, StudentConfigFromRecipe(*r, m->config));
}

TEST(MemoryModel, ParameterCountsFollowTheShapes) {
  for (const char* preset : {"qwen2.5-0.5b", "qwen2.5-7b", "qwen2.5-32b", "qwen2.5-72b", "tiny"}) {
    Result<ModelPreset> m = LoadModelPreset(preset);
    ASSERT_TRUE(m.ok());
    for (StudentArch arch : {StudentArch::kRwkv6, StudentArch::kRwkv7}) {
      Recipe r;
      r.student = DefaultStudentSettings(arch);
      const ModelSizes s = ComputeModelSizes(m->config, StudentConfigFromRecipe(r, m->config));
      EXPECT_EQ(s.TeacherTotal(), m->config.ParameterCount()) << preset;
      EXPECT_GT(s.StudentTotal(), s.TeacherTotal()) << preset;
    }
  }
  // docs/spec.md §3.4 (derived): RAD-RWKV7 at 7B adds 2·D·(96+96+64+416) ≈ 4.8M per layer.
  const ModelSizes v7 = SizesFor("qwen2.5-7b-rwkv7", "qwen2.5-7b");
  EXPECT_EQ(v7.mixer_matmul - v7.teacher_attention_matmul, 2 * 3584 * (96 + 96 + 64 + 416));
  // §3.3: RAD-RWKV6 at 7B adds about 17M per layer (gate 12.8M, tokenshift 3.5M, decay 0.7M).
  const ModelSizes v6 = SizesFor("qwen2.5-7b-rwkv6", "qwen2.5-7b");
  const double added = static_cast<double>(v6.mixer - v6.teacher_attention);
  EXPECT_NEAR(added, 17.0e6, 0.5e6);
}

TEST(MemoryModel, GangTermsScaleWithTheLayout) {
  const ModelSizes s = SizesFor("qwen2.5-72b-rwkv6", "qwen2.5-72b");
  WorkerMemory w{true, 192.0 * kGiB};
  MemoryModelOptions o;
  GangQuery q;
  q.tp = 8;
  q.layers_per_stage = {80};
  q.micro_batch = 1;
  q.seq_len = 512;
  MemoryBreakdown b = GangMemory(s, q, w, o);
  // 16 B per student parameter (fp32 master, gradients, m, v) and 2 per teacher one, over 8.
  const double states = 16.0 * static_cast<double>(s.StudentTotal()) / 8.0;
  const double teacher = 2.0 * static_cast<double>(s.TeacherTotal()) / 8.0;
  EXPECT_GT(b.total_bytes, states + teacher);
  EXPECT_LT(b.total_bytes, (states + teacher) * 1.05 + 2.0 * kGiB);
  EXPECT_DOUBLE_EQ(b.usable_bytes, 192.0 * kGiB * 0.9);
  double sum = 0;
  for (const MemoryTerm& t : b.terms) sum += t.bytes;
  EXPECT_DOUBLE_EQ(sum, b.total_bytes);

  // Two stages: the worst is reported, each holding about half.
  q.tp = 4;
  q.pp = 2;
  q.layers_per_stage = {40, 40};
  MemoryBreakdown two = GangMemory(s, q, w, o);
  EXPECT_NEAR(two.total_bytes, b.total_bytes, 0.05 * b.total_bytes);
  EXPECT_NE(two.detail.find("stage"), std::string::npos);

  // Checkpointing off keeps every layer's activations.
  o.activation_checkpointing = false;
  q.micro_batch = 8;
  MemoryBreakdown full = GangMemory(s, q, w, o);
  o.activation_checkpointing = true;
  MemoryBreakdown ckpt = GangMemory(s, q, w, o);
  EXPECT_GT(full.total_bytes, ckpt.total_bytes);
  // The distributed optimizer shards master + moments over dp.
  q.tp = 1;
  q.pp = 1;
  q.dp = 8;
  q.layers_per_stage = {80};
  MemoryBreakdown plain = GangMemory(s, q, w, o);
  o.shard_optimizer_over_dp = true;
  MemoryBreakdown zero1 = GangMemory(s, q, w, o);
  EXPECT_NEAR(plain.total_bytes - zero1.total_bytes,
              12.0 * static_cast<double>(s.StudentTotal()) * 7.0 / 8.0, 1e6);
}

TEST(MemoryModel, StepOneTasks) {
  const ModelSizes s = SizesFor("qwen2.5-72b-rwkv6", "qwen2.5-72b");
  WorkerMemory h100{true, 79.6 * kGiB};
  MemoryModelOptions o;
  MemoryBreakdown align = AlignTaskMemory(s, 4, 512, h100, o);
  EXPECT_TRUE(align.fits());
  EXPECT_GT(align.total_bytes, 18.0 * static_cast<double>(s.mixer));
  // 80 teacher layers (145 GB) cannot sit on one H100: the cache task streams them.
  MemoryBreakdown cache = CacheTaskMemory(s, 80, 0, 1, 4, 512, h100, o);
  EXPECT_TRUE(cache.fits());
  EXPECT_NE(cache.detail.find("streamed"), std::string::npos);
  WorkerMemory mi300x{true, 192.0 * kGiB};
  MemoryBreakdown resident = CacheTaskMemory(s, 20, 1, 4, 4, 512, mi300x, o);
  EXPECT_EQ(resident.detail.find("streamed"), std::string::npos);
  EXPECT_EQ(CacheBytesPerToken(s, 1, 2), 2 * 8192 * 161 + 4);
}

TEST(CostModel, FlopsPerToken) {
  const ModelSizes s = SizesFor("qwen2.5-7b-rwkv7", "qwen2.5-7b");
  // Step 2 is about 2 P_teacher + 6 P_student (docs/kernels.md §4: "6·7.6e9" for the student).
  const FlopsPerToken d = DistillFlopsPerToken(s, 512);
  const double p_t = static_cast<double>(s.TeacherTotal() - s.embed);
  const double p_s = static_cast<double>(s.StudentTotal() - s.embed);
  EXPECT_NEAR(d.teacher, 2.0 * p_t, 0.02 * 2.0 * p_t);
  EXPECT_NEAR(d.student, 6.0 * p_s, 0.02 * 6.0 * p_s);
  // Step 1: the teacher's forward without its LM head, plus the mixers' training.
  const FlopsPerToken a = AlignFlopsPerToken(s, 512);
  EXPECT_LT(a.teacher, d.teacher);
  EXPECT_DOUBLE_EQ(a.student, 28.0 * MixerTrainFlops(s));
  // The chunked recurrence adds under 10% to the mixer's matmuls at T-independent cost.
  EXPECT_NEAR(a.student, 28.0 * 6.0 * static_cast<double>(s.mixer_matmul), 0.1 * a.student);
  // Step 3 has no teacher.
  EXPECT_EQ(FinetuneFlopsPerToken(s, 16384).teacher, 0.0);
  // Attention grows with T.
  EXPECT_GT(TeacherLayerForwardFlops(s, 4096), TeacherLayerForwardFlops(s, 512));
}

// One row of the calibration table.
struct Calibration {
  std::string model;
  RecipeStepKind step;
  double estimate_h;
  double paper_h;
};

// Qwen2.5-7B and -72B on 8x MI300X with the layouts the paper used (docs/spec.md §5: DeepSpeed ZeRO-1
// over 8 GPUs at 7B; FSDP at 72B, here tp 8), against the paper's hours.
std::vector<Calibration> CalibrationRows() {
  struct Case {
    const char* recipe;
    const char* preset;
    ClusterParallel layout;
    double paper[3];
  };
  const Case cases[] = {
      {"qwen2.5-7b-rwkv6", "qwen2.5-7b", {1, 1, 8}, {0.75, 5.5, 1.0}},
      {"qwen2.5-7b-rwkv7", "qwen2.5-7b", {1, 1, 8}, {0.75, 5.5, 1.0}},
      {"qwen2.5-72b-rwkv6", "qwen2.5-72b", {8, 1, 1}, {7.5, 54.0, 6.0}},
      {"qwen2.5-72b-rwkv7", "qwen2.5-72b", {8, 1, 1}, {7.5, 54.0, 6.0}},
  };
  std::vector<Calibration> rows;
  for (const Case& c : cases) {
    PlanInputs in = ShippedInputs(c.recipe, c.preset, "8x-mi300x");
    Result<Plan> plan = BuildPlan(in, WithLayout(c.layout.tp, c.layout.pp, c.layout.dp));
    EXPECT_TRUE(plan.ok()) << c.recipe << ": " << plan.status().ToString();
    if (!plan.ok()) continue;
    const std::string name = std::string(c.recipe).substr(8);  // "7b-rwkv6"
    for (const StepEstimate& e : plan->estimate.steps) {
      rows.push_back({name, e.kind, e.seconds / 3600.0, c.paper[static_cast<int>(e.kind)]});
    }
    if (!in.recipe.steps.finetune.enabled) {
      // 72B ships with step 3 off (it does not fit one node at 16k); estimate its time anyway.
      RecipeStep ft = in.recipe.steps.finetune;
      const std::int64_t accum = ft.batch / (c.layout.dp * 1);
      StepEstimate e = EstimateGangStep(plan->sizes, ft, c.layout, accum, in.cluster, CostModelOptions{});
      rows.push_back({name, RecipeStepKind::kFinetune, e.seconds / 3600.0, c.paper[2]});
    }
  }
  return rows;
}

TEST(CostModel, CalibratedWithinTwoXOfThePaper) {
  const std::vector<Calibration> rows = CalibrationRows();
  ASSERT_EQ(rows.size(), 12u);
  const bool print = std::getenv("RADLADS_PRINT_CALIBRATION") != nullptr;
  if (print) std::printf("| model | step | estimate (h) | paper (h) | ratio |\n|---|---|---|---|---|\n");
  for (const Calibration& r : rows) {
    const double ratio = r.estimate_h / r.paper_h;
    if (print) {
      std::printf("| %s | %s | %.2f | %.2f | %.2f |\n", r.model.c_str(),
                  std::string(RecipeStepKindName(r.step)).c_str(), r.estimate_h, r.paper_h, ratio);
    }
    EXPECT_GE(ratio, 0.5) << r.model << " " << RecipeStepKindName(r.step);
    EXPECT_LE(ratio, 2.0) << r.model << " " << RecipeStepKindName(r.step);
  }
}

TEST(CostModel, CostAndPipelineBubble) {
  Result<Plan> plan =
      BuildPlan(ShippedInputs("qwen2.5-7b-rwkv7", "qwen2.5-7b", "8x-mi300x"), WithLayout(1, 1, 8));
  ASSERT_TRUE(plan.ok());
  const RunEstimate& e = plan->estimate;
  ASSERT_TRUE(e.cost_usd.has_value());
  EXPECT_NEAR(*e.cost_usd, e.worker_hours * 3.70, 1e-6);
  EXPECT_NEAR(e.worker_hours, e.seconds / 3600.0 * 8.0, 1e-9);
  for (const StepEstimate& s : e.steps) EXPECT_DOUBLE_EQ(s.bubble, 1.0);

  const ModelSizes z = plan->sizes;
  RecipeStep d = plan->recipe.steps.distill;
  const StepEstimate flat = EstimateGangStep(z, d, {8, 1, 1}, 96, plan->cluster, {});
  const StepEstimate piped = EstimateGangStep(z, d, {2, 4, 1}, 12, plan->cluster, {});
  EXPECT_DOUBLE_EQ(piped.bubble, (12.0 + 3.0) / 12.0);
  EXPECT_NEAR(piped.seconds / flat.seconds, piped.bubble, 1e-9);
}

}  // namespace
}  // namespace radlads
