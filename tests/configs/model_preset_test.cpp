// Model presets: the shipped shapes (docs/spec.md §3.0), equality with config.json, name lookup
// and bad input.
#include "configs/model_preset.h"

#include <gtest/gtest.h>

#include "configs/config_files.h"
#include "tests/configs/config_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using radlads::testing::ErrorAt;

// Every field of `preset` equals that of the checkpoint's config.json `json` (tests/data/hf_config).
void ExpectPresetEqualsConfigJson(const char* preset_name, const char* json) {
  SCOPED_TRACE(preset_name);
  auto preset = LoadModelPreset(preset_name);
  ASSERT_TRUE(preset.ok()) << preset.status().ToString();
  auto hf = LoadQwen2Config(testing::TestDataPath(std::string("hf_config/") + json));
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  const Qwen2Config& a = preset->config;
  const Qwen2Config& b = *hf;
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.architectures, b.architectures);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.use_sliding_window, b.use_sliding_window);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.max_window_layers, b.max_window_layers);
  EXPECT_EQ(a.attention_dropout, b.attention_dropout);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  // And the serialised form, which writes every field, agrees byte for byte.
  EXPECT_EQ(Qwen2ConfigToJson(a), Qwen2ConfigToJson(b));
  EXPECT_EQ(preset->name, preset_name);
}

TEST(ModelPreset, SevenBEqualsItsConfigJsonFieldByField) {
  ExpectPresetEqualsConfigJson("qwen2.5-7b", "qwen2.5-7b-instruct.json");
  EXPECT_EQ(LoadModelPreset("qwen2.5-7b")->hf_repo, "Qwen/Qwen2.5-7B-Instruct");
}

// Qwen2.5-0.5B-Instruct: the real widths of the default suite's end-to-end test (head_dim 64,
// GQA 14/2, tied embeddings, vocab 151936).
TEST(ModelPreset, HalfBEqualsItsConfigJsonFieldByField) {
  ExpectPresetEqualsConfigJson("qwen2.5-0.5b", "qwen2.5-0.5b-instruct.json");
  auto p = LoadModelPreset("qwen2.5-0.5b");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->hf_repo, "Qwen/Qwen2.5-0.5B-Instruct");
  EXPECT_EQ(p->config.head_dim, 64);
  EXPECT_TRUE(p->config.tie_word_embeddings);
  EXPECT_EQ(p->config.eos_token_ids, (std::vector<std::int64_t>{151645}));
  EXPECT_EQ(p->config.max_window_layers, 21);
  EXPECT_GT(p->config.ParameterCount(), 490'000'000);  // 494M with the tied embedding
  EXPECT_LT(p->config.ParameterCount(), 500'000'000);
}

TEST(ModelPreset, QwenPresetsNameTheShippedTokenizer) {
  for (const char* name : {"qwen2.5-0.5b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b"}) {
    SCOPED_TRACE(name);
    auto p = LoadModelPreset(name);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->tokenizer_dir, std::string(RADLADS_SOURCE_DIR) + "/data/qwen2.5-tokenizer");
  }
  auto tiny = LoadModelPreset("tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->tokenizer_dir, "") << "the tiny model's byte tokens need no files";
}

TEST(ModelPreset, ATokenizerDirectoryWithoutATokenizerIsRefused) {
  testing::ScratchDir dir;
  const std::string path = dir.File("mine.yaml");
  testing::WriteBytes(path,
                      "num_hidden_layers: 2\nhidden_size: 64\nnum_attention_heads: 4\n"
                      "num_key_value_heads: 2\nintermediate_size: 128\nvocab_size: 300\n"
                      "rms_norm_eps: 1.0e-5\nrope_theta: 10000\ntie_word_embeddings: false\n"
                      "max_position_embeddings: 512\ntokenizer: nowhere\n");
  auto p = LoadModelPreset(path);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(p.status().message().find("mine.yaml: tokenizer: "), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("nowhere"), std::string::npos) << p.status().message();
}

struct Shape {
  const char* name;
  std::int64_t layers, hidden, heads, kv, inter;
  double base_eps;
};

TEST(ModelPreset, ShapesMatchSpecTable) {
  // docs/spec.md §3.0.
  const Shape shapes[] = {{"qwen2.5-7b", 28, 3584, 28, 4, 18944, 1e-6},
                          {"qwen2.5-14b", 48, 5120, 40, 8, 13824, 1e-5},
                          {"qwen2.5-32b", 64, 5120, 40, 8, 27648, 1e-5},
                          {"qwen2.5-72b", 80, 8192, 64, 8, 29568, 1e-5}};
  for (const Shape& s : shapes) {
    SCOPED_TRACE(s.name);
    auto p = LoadModelPreset(s.name);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    const Qwen2Config& c = p->config;
    EXPECT_EQ(c.num_hidden_layers, s.layers);
    EXPECT_EQ(c.hidden_size, s.hidden);
    EXPECT_EQ(c.num_attention_heads, s.heads);
    EXPECT_EQ(c.num_key_value_heads, s.kv);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.hidden_size, c.num_attention_heads * 128) << "heads = n_embd / 128";
    EXPECT_EQ(c.intermediate_size, s.inter);
    EXPECT_EQ(c.vocab_size, 152064);
    EXPECT_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_EQ(p->base_rms_norm_eps, s.base_eps);
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.bos_token_id, 151643);
    EXPECT_TRUE(ValidateQwen2Config(c, s.name).ok());
  }
}

TEST(ModelPreset, TinyIsASmallUntiedQwen2) {
  auto p = LoadModelPreset("tiny");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const Qwen2Config& c = p->config;
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.num_hidden_layers, 4);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.intermediate_size, 384);
  EXPECT_EQ(c.vocab_size, 320);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 256);
  EXPECT_GT(c.ParameterCount(), 500'000);
  EXPECT_LT(c.ParameterCount(), 1'500'000);
}

TEST(ModelPreset, LoadsByPathAndDerivesHeadDim) {
  testing::ScratchDir dir;
  const std::string path = dir.File("mine.yaml");
  testing::WriteBytes(path,
                      "num_hidden_layers: 2\nhidden_size: 64\nnum_attention_heads: 4\n"
                      "num_key_value_heads: 2\nintermediate_size: 128\nvocab_size: 300\n"
                      "rms_norm_eps: 1.0e-5\nrope_theta: 10000\ntie_word_embeddings: false\n"
                      "max_position_embeddings: 512\neos_token_id: [1, 2]\n");
  auto p = LoadModelPreset(path);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->name, "mine");
  EXPECT_EQ(p->config.head_dim, 16);
  EXPECT_EQ(p->config.eos_token_ids, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(p->base_rms_norm_eps, 1e-5) << "defaults to rms_norm_eps";
  EXPECT_EQ(p->config.bos_token_id, -1);
}

TEST(ModelPreset, UnknownNameListsTheShippedOnes) {
  auto p = LoadModelPreset("qwen2.5-8b");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Status::Code::kNotFound);
  EXPECT_NE(p.status().message().find("qwen2.5-7b"), std::string::npos) << p.status().message();
  EXPECT_FALSE(LoadModelPreset("/nonexistent/p.yaml").ok());
}

constexpr const char* kBase =
    "num_hidden_layers: 2\n"           // 1
    "hidden_size: 64\n"                // 2
    "num_attention_heads: 4\n"         // 3
    "num_key_value_heads: 3\n"         // 4
    "intermediate_size: 128\n"         // 5
    "vocab_size: 300\n"                // 6
    "rms_norm_eps: 1.0e-6\n"           // 7
    "rope_theta: 10000\n"              // 8
    "tie_word_embeddings: false\n"     // 9
    "max_position_embeddings: 512\n";  // 10

TEST(ModelPreset, RelationsAreCheckedAtTheirLine) {
  auto st = ParseModelPresetYaml(kBase, "m.yaml").status();
  EXPECT_TRUE(
      ErrorAt(st, "m.yaml", 4, {"num_key_value_heads: 3 does not divide num_attention_heads (4)"}));
  std::string text = kBase;
  text.replace(text.find("heads: 3"), 8, "heads: 2");
  EXPECT_TRUE(ParseModelPresetYaml(text, "m.yaml").ok());
  st = ParseModelPresetYaml(text + "eos_token_id: 300\n", "m.yaml").status();
  EXPECT_TRUE(ErrorAt(st, "m.yaml", 11, {"eos_token_id: 300 is outside the vocabulary"}));
  st = ParseModelPresetYaml(text + "head_dim: 15\n", "m.yaml").status();
  EXPECT_TRUE(ErrorAt(st, "m.yaml", 11, {"head_dim", "even"}));
}

TEST(ModelPreset, KeysTheMathCannotHonourAreUnknown) {
  std::string text = kBase;
  text.replace(text.find("heads: 3"), 8, "heads: 2");
  auto st = ParseModelPresetYaml(text + "hidden_act: gelu\n", "m.yaml").status();
  EXPECT_TRUE(ErrorAt(st, "m.yaml", 11, {"hidden_act: unknown key"}));
  st = ParseModelPresetYaml(text + "rms_norm_epsilon: 1.0e-6\n", "m.yaml").status();
  EXPECT_TRUE(ErrorAt(st, "m.yaml", 11, {"did you mean `rms_norm_eps`?"}));
}

TEST(ModelPreset, MissingShapeKeyIsNamed) {
  std::string text = kBase;
  text.erase(text.find("vocab_size: 300\n"), 16);
  auto st = ParseModelPresetYaml(text, "m.yaml").status();
  EXPECT_TRUE(ErrorAt(st, "m.yaml", 1, {"missing required key `vocab_size`"}));
}

}  // namespace
}  // namespace radlads
