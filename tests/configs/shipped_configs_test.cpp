// Every YAML file shipped under configs/ loads, and the paper recipes carry the spec's numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "configs/cluster.h"
#include "configs/config_files.h"
#include "configs/model_preset.h"
#include "configs/recipe.h"

namespace radlads {
namespace {

std::vector<std::string> YamlFiles(std::string_view kind_dir) {
  std::vector<std::string> out;
  const std::filesystem::path dir =
      std::filesystem::path(RADLADS_SOURCE_DIR) / "configs" / kind_dir;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") out.push_back(e.path().string());
  }
  return out;
}

TEST(ShippedConfigs, EveryFileLoads) {
  const auto models = YamlFiles("models");
  const auto recipes = YamlFiles("recipes");
  const auto clusters = YamlFiles("clusters");
  EXPECT_GE(models.size(), 5u);
  EXPECT_GE(recipes.size(), 8u);
  EXPECT_GE(clusters.size(), 4u);
  for (const std::string& f : models) {
    auto p = LoadModelPreset(f);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
  }
  for (const std::string& f : recipes) {
    auto r = LoadRecipe(f);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // A recipe's teacher names a shipped preset.
    if (!r->teacher.empty()) {
      EXPECT_TRUE(LoadModelPreset(r->teacher).ok()) << f << ": teacher " << r->teacher;
    }
  }
  for (const std::string& f : clusters) {
    auto c = LoadCluster(f);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
  }
}

TEST(ShippedConfigs, NamesResolveInTheConfigsDir) {
  if (std::getenv("RADLADS_CONFIGS_DIR") == nullptr) {
    EXPECT_EQ(ConfigsDir(), std::string(RADLADS_SOURCE_DIR) + "/configs");
  }
  const auto names = ListConfigNames(ConfigKind::kRecipe);
  for (const char* want :
       {"qwen2.5-0.5b-rwkv6", "qwen2.5-0.5b-rwkv7", "qwen2.5-7b-rwkv6", "qwen2.5-7b-rwkv7", "qwen2.5-32b-rwkv6", "qwen2.5-32b-rwkv7",
        "qwen2.5-72b-rwkv6", "qwen2.5-72b-rwkv7", "tiny-rwkv6", "tiny-rwkv7"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
    EXPECT_TRUE(LoadRecipe(want).ok()) << want;
  }
  for (const char* want : {"8x-mi300x", "8x-h100", "4x8-h100", "local-cpu"}) {
    EXPECT_TRUE(LoadCluster(want).ok()) << want;
  }
}

TEST(ShippedConfigs, PaperRecipesCarryTheSpecNumbers) {
  for (const char* size : {"0.5b", "7b", "32b", "72b"}) {
    for (const char* arch : {"rwkv6", "rwkv7"}) {
      const std::string name = std::string("qwen2.5-") + size + "-" + arch;
      SCOPED_TRACE(name);
      auto r = LoadRecipe(name);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->teacher, std::string("qwen2.5-") + size);
      EXPECT_EQ(r->student.architecture,
                std::string(arch) == "rwkv6" ? StudentArch::kRwkv6 : StudentArch::kRwkv7);
      // Step 1 (docs/spec.md §2.1): 100M at 512 x 32, 1e-3 -> 1e-5 quarter-cosine, warmup 50.
      const RecipeStep& a = r->steps.align;
      EXPECT_EQ(a.seq_len, 512);
      EXPECT_EQ(a.batch, 32);
      EXPECT_EQ(a.OptimizerSteps(), 6104);
      EXPECT_LT(a.tokens - 100'000'000, a.TokensPerStep()) << "rounded up by less than a step";
      EXPECT_EQ(a.lr.type, LrScheduleType::kCos);
      EXPECT_EQ(a.lr.main.init, 1e-3);
      EXPECT_EQ(a.lr.main.final, 1e-5);
      EXPECT_EQ(a.lr.warmup_steps, 50);
      // Step 2 (docs/spec.md §2.2): 500M at 512 x 96, 1e-5 flat for both groups, KL at T = 1.
      const RecipeStep& d = r->steps.distill;
      EXPECT_EQ(d.seq_len, 512);
      EXPECT_EQ(d.batch, 96);
      EXPECT_EQ(d.OptimizerSteps(), 10173);
      EXPECT_EQ(d.lr.main.init, 1e-5);
      EXPECT_EQ(d.lr.main.final, 1e-5);
      EXPECT_EQ(d.lr.mixer.init, 1e-5);
      EXPECT_EQ(d.lr.mixer.final, 1e-5);
      EXPECT_EQ(d.loss.kl_weight, 1.0);
      EXPECT_EQ(d.loss.ce_weight, 0.0);
      EXPECT_EQ(d.loss.kl_chunk_tokens, 512);
      // Step 3 (docs/spec.md §2.4, §5): 100M at 16384 x 96, 1e-5 flat; not on one node at 72B.
      const RecipeStep& f = r->steps.finetune;
      EXPECT_EQ(f.seq_len, 16384);
      EXPECT_EQ(f.batch, 96);
      EXPECT_EQ(f.OptimizerSteps(), 64);
      EXPECT_EQ(f.lr.main.init, 1e-5);
      EXPECT_EQ(f.enabled, std::string(size) != "72b");
      // Optimizer (docs/spec.md §2.1, §2.6).
      EXPECT_EQ(r->optimizer.beta1, 0.9);
      EXPECT_EQ(r->optimizer.beta2, 0.95);
      EXPECT_EQ(r->optimizer.eps, 1e-8);
      EXPECT_EQ(r->optimizer.weight_decay, 0.0);
      EXPECT_EQ(r->optimizer.grad_clip, 1.0);
      EXPECT_EQ(r->data.sampler, SamplingMode::kMagicPrime);
    }
  }
}

TEST(ShippedConfigs, PaperRecipesResolveTheSpecRanks) {
  auto r = LoadRecipe("qwen2.5-7b-rwkv7");
  auto m = LoadModelPreset("qwen2.5-7b");
  ASSERT_TRUE(r.ok() && m.ok());
  LoraRanks ranks = ResolveLoraRanks(*r, m->config.hidden_size);
  EXPECT_EQ(ranks.decay, 96);
  EXPECT_EQ(ranks.iclr, 96);
  EXPECT_EQ(ranks.value_residual_mix, 64);
  EXPECT_EQ(ranks.gate, 416);
  auto r6 = LoadRecipe("qwen2.5-72b-rwkv6");
  ASSERT_TRUE(r6.ok());
  EXPECT_EQ(r6->student.gate_rank_type, GateRankType::kFull);
  EXPECT_TRUE(r6->student.use_tokenshift);
  EXPECT_FALSE(r6->student.use_rope);
  EXPECT_EQ(ResolveLoraRanks(*r6, 8192).tokenshift, 160);
  // D 896 (qwen2.5-0.5b): r(e, m) = 32 max(1, round(D^e m / 32)).
  auto r05 = LoadRecipe("qwen2.5-0.5b-rwkv7");
  ASSERT_TRUE(r05.ok()) << r05.status().ToString();
  LoraRanks small = ResolveLoraRanks(*r05, 896);
  EXPECT_EQ(small.decay, 64);
  EXPECT_EQ(small.iclr, 64);
  EXPECT_EQ(small.value_residual_mix, 32);
  EXPECT_EQ(small.gate, 128);
  auto r05v6 = LoadRecipe("qwen2.5-0.5b-rwkv6");
  ASSERT_TRUE(r05v6.ok()) << r05v6.status().ToString();
  EXPECT_EQ(ResolveLoraRanks(*r05v6, 896).tokenshift, 64);
}

TEST(ShippedConfigs, TinyDefaultRunsOnTheLocalCluster) {
  auto c = LoadCluster("local-cpu");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->HasGpus());
  EXPECT_EQ(c->WorkerCount(), 2);
  EXPECT_FALSE(c->slurm.has_value());
  for (const char* name : {"tiny-rwkv6", "tiny-rwkv7"}) {
    auto r = LoadRecipe(name);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->teacher, "tiny");
    EXPECT_FALSE(r->steps.finetune.enabled);
    EXPECT_LE(r->steps.align.tokens, 4'000'000);
    EXPECT_LE(r->steps.distill.tokens, 4'000'000);
  }
}

TEST(ShippedConfigs, ClusterNumbers) {
  auto mi = LoadCluster("8x-mi300x");
  ASSERT_TRUE(mi.ok()) << mi.status().ToString();
  EXPECT_EQ(mi->WorkerCount(), 8);
  EXPECT_EQ(mi->gpu->memory_gib, 192.0);
  EXPECT_EQ(mi->gpu->peak_tflops_bf16, 1307.4);
  auto h = LoadCluster("8x-h100");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->gpu->peak_tflops_bf16, 989.4);
  auto big = LoadCluster("4x8-h100");
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->WorkerCount(), 32);
  EXPECT_EQ(big->parallel.tp * big->parallel.pp * big->parallel.dp, 32);
}

}  // namespace
}  // namespace radlads
