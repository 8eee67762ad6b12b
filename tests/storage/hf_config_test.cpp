#include "storage/hf_config.h"

#include <gtest/gtest.h>

#include "base/file.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

std::string Minimal(const std::string& extra = "") {
  return R"({"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4,
             "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 320)" +
         extra + "}";
}

void ExpectError(const std::string& json, Status::Code code, const std::string& fragment) {
  auto r = ParseQwen2ConfigJson(json, "t/config.json");
  ASSERT_FALSE(r.ok()) << json;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find("t/config.json"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().ToString();
}

TEST(HfConfig, ReadsQwen25_7bInstruct) {
  auto c = LoadQwen2Config(testing::TestDataPath("hf_config/qwen2.5-7b-instruct.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_hidden_layers, 28);
  EXPECT_EQ(c->hidden_size, 3584);
  EXPECT_EQ(c->num_attention_heads, 28);
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 128) << "derived as hidden/heads when absent";
  EXPECT_EQ(c->intermediate_size, 18944);
  EXPECT_EQ(c->vocab_size, 152064);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_FALSE(c->tie_word_embeddings);
  ASSERT_EQ(c->eos_token_ids.size(), 1u);
  EXPECT_EQ(c->eos_token_ids[0], 151645);
  // 7.62B parameters, as published for Qwen2.5-7B.
  EXPECT_NEAR(static_cast<double>(c->ParameterCount()) / 1e9, 7.6156, 0.001);
}

TEST(HfConfig, ReadsTiedQwen25_05b) {
  auto c = LoadQwen2Config(testing::TestDataPath("hf_config/qwen2.5-0.5b.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->group_size(), 7);
  // Qwen2.5-0.5B: 494M parameters with the tied head.
  EXPECT_NEAR(static_cast<double>(c->ParameterCount()) / 1e6, 494.0, 1.0);
}

TEST(HfConfig, DefaultsAsTransformersAppliesThem) {
  auto c = ParseQwen2ConfigJson(Minimal(), "t/config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_key_value_heads, 4) << "defaults to num_attention_heads";
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  auto nulls = ParseQwen2ConfigJson(Minimal(R"(, "num_key_value_heads": null, "eos_token_id": [1, 2])"),
                                    "t/config.json");
  ASSERT_TRUE(nulls.ok());
  EXPECT_EQ(nulls->num_key_value_heads, 4);
  EXPECT_EQ(nulls->eos_token_ids, (std::vector<std::int64_t>{1, 2}));
  auto hd = ParseQwen2ConfigJson(Minimal(R"(, "head_dim": 32)"), "t/config.json");
  ASSERT_TRUE(hd.ok());
  EXPECT_EQ(hd->head_dim, 32);
  EXPECT_EQ(hd->q_dim(), 128);
}

TEST(HfConfig, JsonRoundTrip) {
  auto c = LoadQwen2Config(testing::TestDataPath("hf_config/qwen2.5-7b-instruct.json"));
  ASSERT_TRUE(c.ok());
  auto back = ParseQwen2ConfigJson(Qwen2ConfigToJson(*c), "roundtrip");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(Qwen2ConfigToJson(*back), Qwen2ConfigToJson(*c));
  EXPECT_EQ(back->ParameterCount(), c->ParameterCount());
}

TEST(HfConfig, RejectsBadInputWithFileAndKey) {
  ExpectError("{", Status::Code::kInvalidArgument, "not valid JSON");
  ExpectError("[1,2]", Status::Code::kInvalidArgument, "JSON object");
  // A number beyond a double: the JSON library throws out_of_range, not parse_error (found by
  // tests/fuzz/json_documents_fuzz.cpp; it used to end the process).
  ExpectError(Minimal(R"(, "rope_theta": 165e2637)"), Status::Code::kInvalidArgument, "number overflow");
  ExpectError(R"({"hidden_size": 64})", Status::Code::kInvalidArgument, "model_type: missing");
  ExpectError(R"({"model_type": "llama"})", Status::Code::kInvalidArgument, "\"llama\"");
  ExpectError(Minimal(R"(, "num_key_value_heads": 3)"), Status::Code::kInvalidArgument,
              "num_key_value_heads: 3 does not divide");
  ExpectError(Minimal(R"(, "hidden_size": "64")"), Status::Code::kInvalidArgument,
              "hidden_size: expected an integer, got \"64\"");
  ExpectError(Minimal(R"(, "vocab_size": -5)"), Status::Code::kInvalidArgument, "vocab_size");
  ExpectError(Minimal(R"(, "tie_word_embeddings": 1)"), Status::Code::kInvalidArgument,
              "tie_word_embeddings: expected true or false");
  ExpectError(Minimal(R"(, "rope_scaling": {"type": "yarn", "factor": 4.0})"),
              Status::Code::kInvalidArgument, "rope_scaling");
  ExpectError(Minimal(R"(, "use_sliding_window": true)"), Status::Code::kInvalidArgument,
              "use_sliding_window");
  ExpectError(Minimal(R"(, "hidden_act": "gelu")"), Status::Code::kInvalidArgument, "hidden_act");
  ExpectError(Minimal(R"(, "rms_norm_eps": 0)"), Status::Code::kInvalidArgument, "rms_norm_eps");
  ExpectError(Minimal(R"(, "head_dim": 15)"), Status::Code::kInvalidArgument, "head_dim");
  ExpectError(Minimal(R"(, "eos_token_id": 999)"), Status::Code::kInvalidArgument, "eos_token_id");
}

TEST(HfConfig, MissingFileIsNotFound) {
  testing::ScratchDir dir;
  auto r = LoadQwen2Config(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("config.json"), std::string::npos);
}

}  // namespace
}  // namespace radlads

namespace radlads {
namespace {

TEST(HfConfig, ReadsTransformers5Layout) {
  std::string j = R"({"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4,
      "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 320, "dtype": "bfloat16",
      "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
      "layer_types": ["full_attention", "full_attention"], "sliding_window": null})";
  auto c = ParseQwen2ConfigJson(j, "t5/config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  auto yarn = ParseQwen2ConfigJson(
      R"({"model_type": "qwen2", "rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn"}})",
      "t5/config.json");
  EXPECT_NE(yarn.status().message().find("rope_parameters.rope_type"), std::string::npos);
  auto sliding = ParseQwen2ConfigJson(
      R"({"model_type": "qwen2", "layer_types": ["full_attention", "sliding_attention"]})",
      "t5/config.json");
  EXPECT_NE(sliding.status().message().find("layer_types[1]"), std::string::npos);
}

}  // namespace
}  // namespace radlads
