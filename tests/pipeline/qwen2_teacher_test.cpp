// The Qwen2 teacher forward against Hugging Face transformers: tiny random Qwen2 models saved
// with save_pretrained and their logits recorded by tools/gen_qwen2_fixtures.py
// (tests/data/qwen2/README.md). Loaded through our loader exactly as a user's checkpoint is.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "pipeline/model_io.h"
#include "storage/safetensors.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// max |ours - transformers| / max |transformers| over a whole [T, V] logits matrix.
constexpr double kTeacherLogitsMaxRelF32 = 1e-4;
// The bf16 fixture's weights are upcast exactly, so the same bound holds.

double MaxRel(const float* a, const float* b, std::int64_t n) {
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

class TeacherFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(TeacherFixture, LogitsMatchTransformers) {
  const std::string dir = testing::TestDataPath(std::string("qwen2/") + GetParam());
  auto teacher = LoadQwen2Teacher(dir);
  ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
  auto ref = SafetensorsFile::Open(dir + "/logits.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  for (int s = 0; s < 2; ++s) {
    auto tokens = ref->ReadAsF32("tokens_" + std::to_string(s));
    auto logits = ref->ReadAsF32("logits_" + std::to_string(s));
    ASSERT_TRUE(tokens.ok() && logits.ok());
    const auto T = static_cast<std::int64_t>(tokens->size());
    Tensor ids = Tensor::Empty({1, T}, DType::kI32);
    for (std::int64_t t = 0; t < T; ++t) ids.data<std::int32_t>()[t] = static_cast<std::int32_t>((*tokens)[t]);
    Tensor hidden = teacher->model->Forward(ids, DecoderForwardOptions{});
    Tensor ours = teacher->model->Logits(hidden);
    ASSERT_EQ(ours.numel(), static_cast<std::int64_t>(logits->size()));
    double rel = MaxRel(ours.f32(), logits->data(), ours.numel());
    EXPECT_LE(rel, kTeacherLogitsMaxRelF32) << GetParam() << " sequence " << s << " (T=" << T << ")";
    if (std::getenv("RADLADS_TEST_VERBOSE")) std::printf("%s seq %d: max rel %.3g\n", GetParam(), s, rel);
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, TeacherFixture,
                         ::testing::Values("tiny_gqa4_untied", "tiny_mha_3l", "tiny_tied_hd16",
                                           "tiny_mha_3l_bf16"));

TEST(TeacherLoad, WrongShapesAndMissingTensorsAreNamed) {
  testing::ScratchDir dir;
  const std::string src = testing::TestDataPath("qwen2/tiny_gqa4_untied");
  auto cfg_text = ReadFileToString(src + "/config.json");
  ASSERT_TRUE(cfg_text.ok());
  // A config that disagrees with the weights: one more layer than the checkpoint has.
  std::string cfg = *cfg_text;
  auto pos = cfg.find("\"num_hidden_layers\": 2");
  ASSERT_NE(pos, std::string::npos);
  cfg.replace(pos, 22, "\"num_hidden_layers\": 3");
  ASSERT_TRUE(CreateDirectories(dir.File("m")).ok());
  testing::WriteBytes(dir.File("m/config.json"), cfg);
  auto weights = ReadFileToString(src + "/model.safetensors");
  testing::WriteBytes(dir.File("m/model.safetensors"), *weights);
  auto t = LoadQwen2Teacher(dir.File("m"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kNotFound);
  EXPECT_NE(t.status().message().find("model.layers.2."), std::string::npos) << t.status().ToString();
  // Missing directory.
  EXPECT_EQ(LoadQwen2Teacher(dir.File("none")).status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace radlads
