// The whole conversion at Qwen2.5-0.5B's real widths (hidden 896, 14 / 2 heads of 64, MLP 4864,
// vocab 151936, tied embeddings, bf16), with two layers and a few thousand tokens: a teacher from
// `radlads-model init`, training text tokenized by `radlads-data tokenize --tokenizer`, held-out
// text tokenized by the run itself with the teacher's tokenizer, `radlads-coord run` end to end,
// and the bf16 export read back by `radlads-model logits`. Release builds only (about two
// minutes on two cores; tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <string>

#include "base/file.h"
#include "contract/run_layout.h"
#include "pipeline/student_model.h"
#include "storage/model_weights.h"
#include "storage/npy.h"
#include "tests/testing/test_util.h"
#include "worker/eval_report.h"

namespace radlads {
namespace {

const std::string kCoord = RADLADS_COORD_BIN;
const std::string kModel = RADLADS_MODEL_BIN;
const std::string kData = RADLADS_DATA_BIN;
const std::string kSrc = RADLADS_SOURCE_DIR;

// `radlads-model logits` against the same forward pass in this process: same weights, same
// code, possibly another thread count (docs/style.md §17).
constexpr double kLogitsAtol = 1e-4;
constexpr double kLogitsRtol = 1e-4;

using RunResult = testing::CommandResult;
RunResult Exec(const std::string& cmd) { return testing::RunCommand(cmd); }

TEST(RealWidths, HalfBWidthsConvertEndToEndAndTheBf16ExportLoadsBack) {
  testing::ScratchDir dir;
  const std::string teacher = dir.File("teacher");
  const std::string austen = kSrc + "/data/austen/";
  RunResult init = Exec(kModel + " init --preset qwen2.5-0.5b --layers 2 --dtype bf16 --out " + teacher);
  ASSERT_EQ(init.code, 0) << init.out;
  ASSERT_TRUE(PathExists(teacher + "/tokenizer.json")) << "the preset's tokenizer is copied";
  RunResult tok = Exec(kData + " tokenize " + austen + "northanger_abbey.txt.gz --out " + dir.File("train") +
                       " --tokenizer " + teacher + " --no-progress");
  ASSERT_EQ(tok.code, 0) << tok.out;
  RunResult ref = Exec(kData + " tokenize " + austen + "persuasion.txt.gz --out " + dir.File("heldout-ref") +
                       " --tokenizer " + teacher + " --no-progress");
  ASSERT_EQ(ref.code, 0) << ref.out;

  const std::string cfg = dir.File("run.yaml");
  testing::WriteBytes(cfg, "teacher: " + teacher + "\n" +
                               "recipe: " + testing::TestDataPath("run/recipe-real-widths-rwkv7.yaml") + "\n" +
                               "cluster: " + testing::TestDataPath("run/cluster-real-widths.yaml") + "\n" +
                               "data:\n  train: " + dir.File("train") + "\n" +
                               "  heldout: " + austen + "persuasion.txt.gz\n" +
                               "eval:\n  max_tokens: 256\n  seq_len: 64\n  batch: 4\n  generate_tokens: 4\n");
  const std::string run_dir = dir.File("run");
  RunResult run = Exec(kCoord + " run " + cfg + " --run " + run_dir);
  ASSERT_EQ(run.code, 0) << run.out;
  const RunLayout layout{run_dir};

  // The held-out text was tokenized by the run with the teacher's tokenizer: the same ids, and
  // the same files, as radlads-data tokenize --tokenizer TEACHER.
  for (const char* ext : {".bin", ".idx"}) {
    auto got = ReadFileToString(layout.Abs(RunLayout::HeldoutPrefix()) + ext);
    auto want = ReadFileToString(dir.File("heldout-ref") + ext);
    ASSERT_TRUE(got.ok() && want.ok());
    EXPECT_TRUE(*got == *want) << ext;
  }

  // The export: rwkv7qwen2 at the teacher's widths, in the teacher's dtype, with its tokenizer.
  const std::string out = layout.Abs(RunLayout::OutputModelDir());
  auto scfg = LoadStudentConfig(out);
  ASSERT_TRUE(scfg.ok()) << scfg.status().ToString();
  EXPECT_EQ(scfg->base.torch_dtype, "bfloat16");
  EXPECT_EQ(scfg->base.hidden_size, 896);
  EXPECT_EQ(scfg->base.num_attention_heads, 14);
  EXPECT_EQ(scfg->base.num_key_value_heads, 2);
  EXPECT_EQ(scfg->base.head_dim, 64);
  EXPECT_EQ(scfg->base.vocab_size, 151936);
  EXPECT_TRUE(scfg->base.tie_word_embeddings);
  auto weights = ModelWeights::Open(out);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  for (const std::string& name : weights->TensorNames()) {
    EXPECT_EQ(weights->Find(name)->info->dtype, DType::kBF16) << name;
  }
  EXPECT_EQ(weights->Find("lm_head.weight"), nullptr) << "tied: no head tensor";
  EXPECT_TRUE(PathExists(out + "/tokenizer.json"));

  // The evaluation ran on the run's tokens and sampled in the teacher's tokenizer.
  auto eval_text = ReadFileToString(layout.Abs(RunLayout::EvalFile()));
  ASSERT_TRUE(eval_text.ok());
  auto rep = ParseEvalReport(*eval_text, "eval.json");
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->heldout_tokens, 256);
  for (double v : {rep->teacher.ce, rep->student.ce, rep->student.kl, rep->after_step1.kl}) {
    EXPECT_TRUE(std::isfinite(v)) << *eval_text;
  }
  EXPECT_GT(rep->teacher.ce, 0.0);
  // Qwen2.5 tokens of English prose are about four bytes each: bits per byte are per byte.
  EXPECT_GT(rep->heldout_bytes_per_token, 3.0);
  EXPECT_LT(rep->heldout_bytes_per_token, 6.0);
  EXPECT_FALSE(rep->teacher_continuation.empty());
  EXPECT_FALSE(rep->student_continuation.empty());

  // `radlads-model logits` reads the bf16 export back; it agrees with this process.
  const std::vector<std::int32_t> tokens = {1122, 374, 264, 8046, 151643};
  const std::string npy = dir.File("logits.npy");
  RunResult lg = Exec(kModel + " logits --model " + out + " --tokens 1122,374,264,8046,151643 --out " + npy);
  ASSERT_EQ(lg.code, 0) << lg.out;
  auto arr = NpyArray::Open(npy);
  ASSERT_TRUE(arr.ok()) << arr.status().ToString();
  ASSERT_EQ(arr->dtype(), DType::kF32);
  ASSERT_EQ(arr->shape(), (std::vector<std::uint64_t>{tokens.size(), 151936}));
  auto student = LoadStudent(out);
  ASSERT_TRUE(student.ok()) << student.status().ToString();
  const auto T = static_cast<std::int64_t>(tokens.size());
  Tensor ids = Tensor::Empty({1, T}, DType::kI32);
  for (std::int64_t t = 0; t < T; ++t) ids.data<std::int32_t>()[t] = tokens[static_cast<std::size_t>(t)];
  const Tensor want = student->model->Logits(student->model->Forward(ids, {}));
  ASSERT_EQ(want.numel(), static_cast<std::int64_t>(arr->element_count()));
  const auto* got = reinterpret_cast<const float*>(arr->data().data());
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < want.numel(); ++i) {
    const double w = want.f32()[i], g = got[i];
    if (!std::isfinite(g) || std::abs(g - w) > kLogitsAtol + kLogitsRtol * std::abs(w)) ++bad;
  }
  EXPECT_EQ(bad, 0) << "logits outside atol " << kLogitsAtol << " + rtol " << kLogitsRtol;
}

}  // namespace
}  // namespace radlads
