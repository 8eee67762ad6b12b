#include "storage/student_config.h"

#include <gtest/gtest.h>

#include "tests/testing/test_util.h"

namespace radlads {
namespace {

TEST(StudentConfig, LoraRankFormulaReproducesTheSpecTable) {
  // docs/spec.md §3.0: D -> decay/iclr (0.5,1.8), value residual (0.5,1.3), gate (0.8,0.6).
  struct Row { std::int64_t d, decay, vr, gate; };
  for (Row r : {Row{3584, 96, 64, 416}, Row{5120, 128, 96, 544}, Row{8192, 160, 128, 800}}) {
    EXPECT_EQ(LoraRankFormula(r.d, 0.5, 1.8), r.decay) << r.d;
    EXPECT_EQ(LoraRankFormula(r.d, 0.5, 1.3), r.vr) << r.d;
    EXPECT_EQ(LoraRankFormula(r.d, 0.8, 0.6), r.gate) << r.d;
  }
  EXPECT_EQ(LoraRankFormula(64, 0.5, 1.3), 32) << "never below 32";
}

TEST(StudentConfig, ReadsReleasedRwkv7LayoutWithNullRanks) {
  auto c = LoadStudentConfig(testing::TestDataPath("hf_config/rwkv7qwen2-7b.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, StudentArch::kRwkv7);
  EXPECT_TRUE(c->use_rope);
  EXPECT_EQ(c->gate_rank_type, 2);
  EXPECT_EQ(c->lora_rank_decay, 96);
  EXPECT_EQ(c->lora_rank_iclr, 96);
  EXPECT_EQ(c->lora_rank_value_residual_mix, 64);
  EXPECT_EQ(c->lora_rank_gate, 416);
  EXPECT_EQ(c->base.num_key_value_heads, 4);
  EXPECT_EQ(c->base.head_dim, 128);
}

TEST(StudentConfig, Rwkv6DefaultsDifferFromRwkv7) {
  Qwen2Config base;
  base.hidden_size = 3584;
  base.num_attention_heads = 28;
  base.num_key_value_heads = 4;
  base.head_dim = 128;
  StudentConfig c = StudentConfig::Defaults(StudentArch::kRwkv6, base);
  EXPECT_EQ(c.gate_rank_type, 1);
  EXPECT_TRUE(c.use_tokenshift);
  EXPECT_FALSE(c.use_rope);
  EXPECT_EQ(c.lora_rank_tokenshift, 32);
  EXPECT_EQ(c.lora_rank_decay, 64);
  base.hidden_size = 8192;
  EXPECT_EQ(StudentConfig::Defaults(StudentArch::kRwkv6, base).lora_rank_decay, 128);
}

TEST(StudentConfig, JsonRoundTripWritesEveryKey) {
  for (StudentArch a : {StudentArch::kRwkv6, StudentArch::kRwkv7}) {
    Qwen2Config base;
    base.hidden_size = 128;
    base.num_attention_heads = 4;
    base.num_key_value_heads = 2;
    base.head_dim = 32;
    base.intermediate_size = 384;
    base.vocab_size = 320;
    base.num_hidden_layers = 4;
    base.eos_token_ids = {256};
    StudentConfig c = StudentConfig::Defaults(a, base);
    c.lora_rank_decay = 48;
    std::string json = StudentConfigToJson(c);
    for (const char* key : {"\"lora_rank_decay\": 48", "\"lora_rank_gate\": "}) {
      EXPECT_NE(json.find(key), std::string::npos) << "ranks written explicitly: " << key;
    }
    EXPECT_EQ(json.find("\"lora_rank_decay\": null"), std::string::npos);
    auto back = ParseStudentConfigJson(json, "rt/config.json");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(StudentConfigToJson(*back), json);
    EXPECT_EQ(back->lora_rank_decay, 48);
    EXPECT_EQ(back->arch, a);
  }
}

TEST(StudentConfig, RejectsWhatTheEngineCannotRun) {
  auto err = [](const std::string& extra) {
    std::string j = R"({"model_type": "rwkv7qwen2", "hidden_size": 64, "num_attention_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 320)" + extra + "}";
    return ParseStudentConfigJson(j, "s/config.json").status();
  };
  EXPECT_TRUE(err("").ok());
  EXPECT_NE(err(R"(, "num_attention_layers": 2)").message().find("num_attention_layers"),
            std::string::npos);
  EXPECT_NE(err(R"(, "use_tokenshift": true)").message().find("use_tokenshift"), std::string::npos);
  EXPECT_NE(err(R"(, "gate_rank_type": 5)").message().find("gate_rank_type"), std::string::npos);
  EXPECT_NE(err(R"(, "lora_rank_iclr": -1)").message().find("lora_rank_iclr"), std::string::npos);
  auto t = ParseStudentConfigJson(R"({"model_type": "qwen2"})", "s/config.json");
  EXPECT_NE(t.status().message().find("is not a student"), std::string::npos);
}

}  // namespace
}  // namespace radlads
