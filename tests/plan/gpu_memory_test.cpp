// The one-GPU memory model (plan/gpu_memory.h): its terms recomputed by hand at the tiny
// teacher's and Qwen2.5-7B's widths, its scaling with the micro-batch, and the plan's steps.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "plan/gpu_memory.h"
#include "plan/memory_model.h"
#include "plan/plan.h"
#include "tests/plan/plan_test_util.h"

namespace radlads {
namespace {

ModelSizes Sizes(const char* recipe, const char* preset) {
  Result<Recipe> r = LoadRecipe(recipe);
  Result<ModelPreset> m = LoadModelPreset(preset);
  EXPECT_TRUE(r.ok() && m.ok());
  return ComputeModelSizes(m->config, StudentConfigFromRecipe(*r, m->config));
}

std::map<std::string, double> Terms(const MemoryBreakdown& b) {
  std::map<std::string, double> t;
  for (const MemoryTerm& m : b.terms) t[m.name] = m.bytes;
  return t;
}

double Sum(const MemoryBreakdown& b) {
  double s = 0;
  for (const MemoryTerm& m : b.terms) s += m.bytes;
  return s;
}

OneGpuQuery Query(OneGpuStep step, std::int64_t mb, std::int64_t T, std::int64_t rows = 512) {
  OneGpuQuery q;
  q.step = step;
  q.micro_batch = mb;
  q.seq_len = T;
  q.loss_rows = rows;
  return q;
}

TEST(OneGpuMemory, DistillTermsAtTheTinyWidths) {
  for (const char* recipe : {"tiny-rwkv6", "tiny-rwkv7"}) {
    const ModelSizes s = Sizes(recipe, "tiny");
    const MemoryBreakdown b = OneGpuTrainingMemory(s, Query(OneGpuStep::kDistill, 16, 256));
    const auto t = Terms(b);
    const double P = static_cast<double>(s.StudentTotal()), tok = 16.0 * 256.0, D = 128.0;
    EXPECT_EQ(b.what, "distill (one GPU)");
    // 18 B per trainable parameter: fp32 master 4, bf16 2, gradient 4, m and v 8.
    EXPECT_DOUBLE_EQ(t.at("fp32 master weights") + t.at("bf16 weights (GEMM operands)") + t.at("gradients (fp32)") +
                         t.at("AdamW m, v (fp32)"),
                     18.0 * P);
    // Teacher: tiny is 4 layers, D 128, 4 x 32 query and 2 x 32 kv heads, V 320, untied.
    const double vec = 4.0 * (2 * 128 + 128 + 2 * 64) + 128;
    EXPECT_DOUBLE_EQ(t.at("teacher weights (frozen: matrices bf16, vectors fp32)"),
                     2.0 * (static_cast<double>(s.TeacherTotal()) + vec));
    EXPECT_DOUBLE_EQ(t.at("every layer's saved input x_0..x_L (fp32)"), 5.0 * tok * 4.0 * D);
    // Head loss: 512 rows x (320 vocabulary x (4 + 4 + 2) B + 48 B of row statistics).
    EXPECT_DOUBLE_EQ(t.at("head loss workspace [rows, vocabulary chunk]"), 512.0 * (320.0 * 10.0 + 48.0));
    EXPECT_DOUBLE_EQ(t.at("final hidden states (student, teacher; fp32 + bf16) and their gradient"),
                     tok * 16.0 * D);
    EXPECT_EQ(t.count("v_first and its gradient (fp32)"), std::string(recipe) == "tiny-rwkv7" ? 1u : 0u);
    EXPECT_DOUBLE_EQ(t.at("cuBLASLt workspace (cudaMalloc, outside the allocator: not counted)"), 0.0);
    EXPECT_DOUBLE_EQ(b.total_bytes, Sum(b));
    // The tiny conversion is small: tens of MiB, not the multi-GiB fixed workspace of the
    // cluster model.
    EXPECT_GT(b.total_bytes, 20.0 * 1024 * 1024) << recipe;
    EXPECT_LT(b.total_bytes, 400.0 * 1024 * 1024) << recipe;
  }
}

TEST(OneGpuMemory, FinetuneHasNoTeacherAndACrossEntropyWorkspace) {
  const ModelSizes s = Sizes("tiny-rwkv6", "tiny");
  const auto kd = Terms(OneGpuTrainingMemory(s, Query(OneGpuStep::kDistill, 4, 64)));
  const MemoryBreakdown ft = OneGpuTrainingMemory(s, Query(OneGpuStep::kFinetune, 4, 64));
  const auto t = Terms(ft);
  EXPECT_EQ(ft.what, "finetune (one GPU)");
  EXPECT_EQ(t.count("teacher weights (frozen: matrices bf16, vectors fp32)"), 0u);
  EXPECT_EQ(t.count("teacher forward working set (one layer, fp32)"), 0u);
  // 256 tokens < 512 rows: one block of 256 rows, fp32 logits and bf16 dz (no teacher logits).
  EXPECT_DOUBLE_EQ(t.at("head loss workspace [rows, vocabulary chunk]"), 256.0 * (320.0 * 6.0 + 48.0));
  EXPECT_DOUBLE_EQ(kd.at("head loss workspace [rows, vocabulary chunk]"), 256.0 * (320.0 * 10.0 + 48.0));
  EXPECT_DOUBLE_EQ(t.at("every layer's saved input x_0..x_L (fp32)"),
                   kd.at("every layer's saved input x_0..x_L (fp32)"));
}

TEST(OneGpuMemory, AlignTaskIsOneMixer) {
  for (const char* recipe : {"tiny-rwkv6", "tiny-rwkv7"}) {
    const ModelSizes s = Sizes(recipe, "tiny");
    const MemoryBreakdown b = OneGpuTrainingMemory(s, Query(OneGpuStep::kAlign, 16, 256));
    const auto t = Terms(b);
    const double M = static_cast<double>(s.mixer), tok = 16.0 * 256.0;
    const bool v7 = std::string(recipe) == "tiny-rwkv7";
    EXPECT_EQ(b.what, "align task (one GPU)");
    EXPECT_DOUBLE_EQ(t.at("fp32 master weights"), 4.0 * M);
    EXPECT_DOUBLE_EQ(t.at("AdamW m, v (fp32)"), 8.0 * M);
    EXPECT_DOUBLE_EQ(t.at("micro-batch, output and their gradients (fp32)"),
                     tok * 4.0 * (5.0 * 128 + (v7 ? 128.0 : 0.0)));
    // tiny: D = A = 128, K = 64, 4 heads of 32; RAD-RWKV6 with tokenshift (chunk 64), RAD-RWKV7
    // (chunk 16).
    const double R = static_cast<double>(s.lora_width);
    const double mixer = v7 ? 2.0 * 128 + 130.0 * 128 + 16.0 * 64 + 8.0 * R + 8.0 * 4 * 32 * 32 / 16
                            : 56.0 * 128 + 68.0 * 128 + 16.0 * 64 + 8.0 * R + 8.0 * 4 * 32 * 32 / 64;
    EXPECT_DOUBLE_EQ(GpuMixerBytesPerToken(s), mixer);
    EXPECT_DOUBLE_EQ(t.at("mixer activations and backward buffers"), tok * mixer);
    EXPECT_EQ(t.count("head loss workspace [rows, vocabulary chunk]"), 0u);
    EXPECT_DOUBLE_EQ(b.total_bytes, Sum(b));
  }
}

TEST(OneGpuMemory, LinearInTheTokensOnceTheHeadBlockIsFull) {
  const ModelSizes s = Sizes("tiny-rwkv7", "tiny");
  for (OneGpuStep step : {OneGpuStep::kAlign, OneGpuStep::kDistill, OneGpuStep::kFinetune}) {
    const double a = OneGpuTrainingMemory(s, Query(step, 2, 256)).total_bytes;
    const double b = OneGpuTrainingMemory(s, Query(step, 4, 256)).total_bytes;
    const double c = OneGpuTrainingMemory(s, Query(step, 6, 256)).total_bytes;
    EXPECT_GT(b, a);
    EXPECT_NEAR(c - b, b - a, 1e-6 * c);
  }
}

TEST(OneGpuMemory, SevenBillionOnOneGpuIsDominatedByTheOptimizerState) {
  const ModelSizes s = Sizes("qwen2.5-7b-rwkv7", "qwen2.5-7b");
  const MemoryBreakdown b = OneGpuTrainingMemory(s, Query(OneGpuStep::kDistill, 1, 512));
  const double state = 18.0 * static_cast<double>(s.StudentTotal());
  EXPECT_GT(b.total_bytes, state);
  EXPECT_LT(b.total_bytes, state + 2.0 * static_cast<double>(s.TeacherTotal()) + 8.0 * kGiB);
  // Logits are never whole: the head workspace is 512 rows x 8192 vocabulary entries.
  EXPECT_DOUBLE_EQ(Terms(b).at("head loss workspace [rows, vocabulary chunk]"), 512.0 * (8192.0 * 10.0 + 48.0));
}

TEST(OneGpuMemory, ThePlansStepsAtTheirMicroBatches) {
  PlanInputs in = testing::ShippedInputs("tiny-rwkv6", "tiny", "local-process", 2'000'000);
  Result<Plan> p = BuildPlan(in, testing::QuietOptions());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const std::vector<MemoryBreakdown> m = OneGpuPlanMemory(*p);
  ASSERT_EQ(m.size(), p->steps.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    const StepPlan& sp = p->steps[i];
    OneGpuQuery q = Query(sp.kind == RecipeStepKind::kAlign     ? OneGpuStep::kAlign
                          : sp.kind == RecipeStepKind::kDistill ? OneGpuStep::kDistill
                                                                : OneGpuStep::kFinetune,
                          sp.micro_batch, sp.seq_len);
    if (sp.kind == RecipeStepKind::kDistill) q.loss_rows = p->recipe.steps.distill.loss.kl_chunk_tokens;
    EXPECT_DOUBLE_EQ(m[i].total_bytes, OneGpuTrainingMemory(p->sizes, q).total_bytes) << i;
  }
  EXPECT_EQ(m.front().what, "align task (one GPU)");
  EXPECT_EQ(m.back().what, "distill (one GPU)");  // the tiny recipe has no step 3
}

}  // namespace
}  // namespace radlads
