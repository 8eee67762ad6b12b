// `radlads-model init` (cli/init_command.h): transformers' Qwen2 init at a preset's or a
// config.json's shapes, per-tensor seeds (layer 0 is the same at any depth), bf16 and f32,
// sharding with an index, the tokenizer copied uncompressed, and the errors that name the flag.
#include "cli/init_command.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "base/file.h"
#include "base/gzip.h"
#include "configs/model_preset.h"
#include "pipeline/model_io.h"
#include "storage/model_weights.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// The sample standard deviation of N(0, 0.02^2) over ~50k values is within a few percent.
constexpr double kStdRelTol = 0.05;

// A small preset with Qwen2.5's vocabulary and tokenizer, so the tokenizer copy is exercised
// without a 136M-parameter embedding (151936 x 32 here).
std::string WriteQwenVocabPreset(const testing::ScratchDir& dir) {
  const std::string path = dir.File("small-qwen.yaml");
  testing::WriteBytes(path, "num_hidden_layers: 3\nhidden_size: 32\nnum_attention_heads: 4\n"
                            "num_key_value_heads: 2\nintermediate_size: 64\nvocab_size: 151936\n"
                            "rms_norm_eps: 1.0e-6\nrope_theta: 1000000\ntie_word_embeddings: true\n"
                            "max_position_embeddings: 512\nbos_token_id: 151643\neos_token_id: 151645\n"
                            "torch_dtype: bfloat16\ntokenizer: " + std::string(RADLADS_SOURCE_DIR) +
                                "/data/qwen2.5-tokenizer\n");
  return path;
}

Result<Qwen2Teacher> Init(const cli::InitArgs& a) {
  Status st = cli::RunInit(a, nullptr);
  if (!st.ok()) return st;
  return LoadQwen2Teacher(a.out);
}

double StdDev(const Tensor& t) {
  double s = 0, s2 = 0;
  const float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    s += p[i];
    s2 += static_cast<double>(p[i]) * p[i];
  }
  const double n = static_cast<double>(t.numel());
  return std::sqrt(s2 / n - (s / n) * (s / n));
}

TEST(InitCommand, TinyPresetFollowsTransformersInitAndLoads) {
  testing::ScratchDir dir;
  cli::InitArgs a;
  a.preset = "tiny";
  a.out = dir.File("model");
  auto t = Init(a);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto preset = LoadModelPreset("tiny");
  ASSERT_TRUE(preset.ok());
  EXPECT_EQ(Qwen2ConfigToJson(t->config), Qwen2ConfigToJson(preset->config)) << "f32 preset: config unchanged";
  for (const Param* p : t->params->params()) {
    SCOPED_TRACE(p->name);
    const Tensor& v = p->value;
    if (p->name.find("norm.weight") != std::string::npos) {
      for (std::int64_t i = 0; i < v.numel(); ++i) ASSERT_EQ(v.f32()[i], 1.0f);
    } else if (p->name.find(".bias") != std::string::npos) {
      for (std::int64_t i = 0; i < v.numel(); ++i) ASSERT_EQ(v.f32()[i], 0.0f);
    } else if (v.numel() >= 40'000) {
      EXPECT_NEAR(StdDev(v), 0.02, 0.02 * kStdRelTol);
    }
  }
  EXPECT_TRUE(PathExists(dir.File("model/init.json")));
  EXPECT_FALSE(PathExists(dir.File("model/tokenizer.json"))) << "the tiny preset names no tokenizer";
  // Different seeds, different weights.
  a.out = dir.File("other");
  a.seed = 7;
  auto u = Init(a);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_NE(std::as_const(*u->params).Get("model.embed_tokens.weight").value.f32()[0],
            std::as_const(*t->params).Get("model.embed_tokens.weight").value.f32()[0]);
}

TEST(InitCommand, LayersOverrideKeepsEachTensorsValuesAndBf16IsSharded) {
  testing::ScratchDir dir;
  const std::string preset = WriteQwenVocabPreset(dir);
  cli::InitArgs a;
  a.preset = preset;
  a.layers = 1;
  a.out = dir.File("one");
  auto one = Init(a);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->config.num_hidden_layers, 1);
  EXPECT_EQ(one->config.torch_dtype, "bfloat16") << "the preset's dtype by default";
  a.layers = 0;
  a.out = dir.File("three");
  a.max_shard_bytes = 4'000'000;  // the 9.7 MB embedding gets a shard of its own
  auto three = Init(a);
  ASSERT_TRUE(three.ok()) << three.status().ToString();
  EXPECT_EQ(three->config.num_hidden_layers, 3);
  EXPECT_TRUE(PathExists(dir.File("three/model.safetensors.index.json")));
  EXPECT_FALSE(PathExists(dir.File("three/model.safetensors")));
  auto w = ModelWeights::Open(dir.File("three"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->sharded());
  EXPECT_EQ(w->Find("model.layers.2.mlp.up_proj.weight")->info->dtype, DType::kBF16);
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "model.norm.weight"}) {
    SCOPED_TRACE(name);
    const Tensor& x = std::as_const(*one->params).Get(name).value;
    const Tensor& y = std::as_const(*three->params).Get(name).value;
    ASSERT_EQ(x.numel(), y.numel());
    EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0) << "seeded by (seed, name), not by position";
  }
  // The tokenizer: tokenizer.json inflated from the vendored .gz, tokenizer_config.json as is.
  auto want = ReadMaybeGzipFile(std::string(RADLADS_SOURCE_DIR) + "/data/qwen2.5-tokenizer/tokenizer.json.gz");
  auto got = ReadFileToString(dir.File("three/tokenizer.json"));
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_TRUE(*want == *got);
  EXPECT_TRUE(PathExists(dir.File("three/tokenizer_config.json")));
}

TEST(InitCommand, FromAConfigJsonInF32) {
  testing::ScratchDir dir;
  auto preset = LoadModelPreset("tiny");
  ASSERT_TRUE(preset.ok());
  Qwen2Config c = preset->config;
  c.torch_dtype = "bfloat16";
  testing::WriteBytes(dir.File("config.json"), Qwen2ConfigToJson(c));
  cli::InitArgs a;
  a.config = dir.File("config.json");
  a.dtype = "f32";
  a.out = dir.File("model");
  auto t = Init(a);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->config.torch_dtype, "float32") << "config.json says the dtype written";
  auto w = ModelWeights::Open(dir.File("model"));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->Find("model.embed_tokens.weight")->info->dtype, DType::kF32);
}

TEST(InitCommand, BadInputNamesTheFlagAndWritesNothing) {
  testing::ScratchDir dir;
  auto expect_error = [&](cli::InitArgs a, const std::string& want) {
    Status st = cli::RunInit(a, nullptr);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
  };
  cli::InitArgs a;
  a.out = dir.File("model");
  expect_error(a, "exactly one of --preset");
  a.preset = "tiny";
  a.config = dir.File("config.json");
  expect_error(a, "exactly one of --preset");
  a.config.clear();
  a.dtype = "f16";
  expect_error(a, "--dtype: expected bf16 or f32, got 'f16'");
  a.dtype.clear();
  a.layers = -2;
  expect_error(a, "--layers");
  EXPECT_FALSE(PathExists(dir.File("model")));
  a.layers = 0;
  ASSERT_TRUE(CreateDirectories(dir.File("model")).ok());
  testing::WriteBytes(dir.File("model/keep.txt"), "mine");
  expect_error(a, "is not an empty directory");
  EXPECT_FALSE(PathExists(dir.File("model/config.json")));
  // A config.json error names the file and the key.
  ASSERT_TRUE(CreateDirectories(dir.File("bad")).ok());
  testing::WriteBytes(dir.File("bad/config.json"), "{\"model_type\": \"qwen2\", \"hidden_size\": \"wide\"}");
  a.preset.clear();
  a.config = dir.File("bad");
  a.out = dir.File("fresh");
  Status st = cli::RunInit(a, nullptr);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("config.json"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("hidden_size"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace radlads
