// A teacher whose weights stay mapped (pipeline/frozen_weights.h) runs exactly as the same
// teacher fully converted to fp32: bf16 -> fp32 and f16 -> fp32 are exact, and the per-layer
// scratch feeds the same kernels the same values. Every comparison here is bit for bit (the same
// computation on the same inputs, docs/style.md §17).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>

#include "base/file.h"
#include "pipeline/model_io.h"
#include "pipeline/model_shard.h"
#include "pipeline/pretrain.h"
#include "pipeline/student_model.h"
#include "storage/safetensors_writer.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

constexpr std::uint64_t kSeed = 20260507;

Qwen2Config SmallConfig(bool tied) {
  Qwen2Config c;
  c.hidden_size = 64;
  c.intermediate_size = 160;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 96;  // divisible by tp 2
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = tied;
  return c;
}

// Writes a randomly initialised teacher in `dtype` to `dir`.
void WriteTeacher(const Qwen2Config& cfg, DType dtype, const std::string& dir) {
  ParamSet params;
  DeclareParams(Qwen2ParamSpecs(cfg), params);
  InitQwen2Params(params, 0.05, kSeed);
  ASSERT_TRUE(SaveParams(params, dir, dtype, 5ull << 30).ok());
  Qwen2Config c = cfg;
  c.torch_dtype = dtype == DType::kBF16 ? "bfloat16" : dtype == DType::kF16 ? "float16" : "float32";
  ASSERT_TRUE(AtomicWriteFile(JoinPath(dir, "config.json"), Qwen2ConfigToJson(c)).ok());
}

Tensor Ids(std::int64_t B, std::int64_t T, std::int64_t V) {
  Tensor ids = Tensor::Empty({B, T}, DType::kI32);
  for (std::int64_t i = 0; i < B * T; ++i) ids.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 37 + 11) % V);
  return ids;
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

struct Case {
  DType dtype;
  bool tied;
};

class FrozenTeacher : public ::testing::TestWithParam<Case> {};

TEST_P(FrozenTeacher, ForwardIsBitIdenticalToTheConvertedTeacher) {
  const Case c = GetParam();
  testing::ScratchDir dir;
  const Qwen2Config cfg = SmallConfig(c.tied);
  WriteTeacher(cfg, c.dtype, dir.File("t"));
  auto mapped = LoadQwen2Teacher(dir.File("t"));
  auto full = LoadQwen2TeacherF32(dir.File("t"));
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  ASSERT_NE(mapped->weights, nullptr);
  // Nothing of the mapped teacher is an owned fp32 copy of a matrix: views in the file's dtype.
  const Param& wq = mapped->params->Get("model.layers.1.self_attn.q_proj.weight");
  EXPECT_TRUE(wq.value.is_const());
  EXPECT_EQ(wq.value.dtype(), c.dtype);

  const Tensor ids = Ids(2, 19, cfg.vocab_size);
  const Tensor hm = mapped->model->Forward(ids, {});
  const Tensor hf = full->model->Forward(ids, {});
  EXPECT_TRUE(SameBits(hm, hf)) << "final hidden";
  EXPECT_TRUE(SameBits(mapped->model->Logits(hm), full->model->Logits(hf))) << "logits";
  EXPECT_TRUE(SameBits(ResidentF32(mapped->model->head_weight()), full->model->head_weight())) << "head";

  // The step-1 cache path: a layer range with the hook, on the embedding.
  std::vector<Tensor> got, want;
  DecoderForwardOptions fo;
  fo.hook = [&](int, const Tensor& in, const Tensor& out, const Tensor&) { got.push_back(in.Clone()), got.push_back(out.Clone()); };
  const Tensor ym = mapped->model->RunLayers(mapped->model->Embed(ids), 0, cfg.num_hidden_layers, fo);
  fo.hook = [&](int, const Tensor& in, const Tensor& out, const Tensor&) { want.push_back(in.Clone()), want.push_back(out.Clone()); };
  const Tensor yf = full->model->RunLayers(full->model->Embed(ids), 0, cfg.num_hidden_layers, fo);
  EXPECT_TRUE(SameBits(ym, yf));
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(SameBits(got[i], want[i])) << "hook tensor " << i;

  // A second forward (the scratch reused, holding the last layer) gives the same bits again.
  EXPECT_TRUE(SameBits(mapped->model->Forward(ids, {}), hf)) << "second forward";

  // Step 0 copies the teacher's weights into the fp32 student exactly.
  const StudentConfig sc = StudentConfig::Defaults(StudentArch::kRwkv7, cfg);
  auto sm = TransferTeacher(*mapped->params, sc, kSeed);
  auto sf = TransferTeacher(*full->params, sc, kSeed);
  ASSERT_EQ(sm->size(), sf->size());
  for (const Param* p : sf->params()) {
    EXPECT_TRUE(SameBits(sm->Get(p->name).value, p->value)) << p->name;
  }

  // A tensor-parallel slice keeps the file's dtype and converts to the F32 slice's values.
  auto local_cfg = TpSliceConfig(cfg, 2);
  ASSERT_TRUE(local_cfg.ok());
  ParamSet lm, lf;
  DeclareParams(Qwen2ParamSpecs(*local_cfg), lm);
  DeclareParams(Qwen2ParamSpecs(*local_cfg), lf);
  ASSERT_TRUE(SliceParams(*mapped->params, lm, 2, 1).ok());
  ASSERT_TRUE(SliceParams(*full->params, lf, 2, 1).ok());
  for (const Param* p : lf.params()) {
    EXPECT_TRUE(SameBits(ResidentF32(lm.Get(p->name).value), p->value)) << "slice " << p->name;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FrozenTeacher,
                         ::testing::Values(Case{DType::kF32, true}, Case{DType::kF32, false}, Case{DType::kBF16, true},
                                           Case{DType::kBF16, false}, Case{DType::kF16, false}),
                         [](const auto& info) {
                           return std::string(DTypeName(info.param.dtype)) + (info.param.tied ? "_tied" : "_untied");
                         });

TEST(FrozenTeacher, F32WeightsAreUsedInPlace) {
  testing::ScratchDir dir;
  const Qwen2Config cfg = SmallConfig(true);
  WriteTeacher(cfg, DType::kF32, dir.File("t"));
  auto weights = ModelWeights::Open(dir.File("t"));
  ASSERT_TRUE(weights.ok());
  ParamSet params;
  auto stats = BindFrozenParams(*weights, Qwen2ParamSpecs(cfg), cfg.tie_word_embeddings, params);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->copied_bytes, 0u);
  EXPECT_EQ(stats->mapped_other_bytes, 0u);
  EXPECT_EQ(stats->mapped_f32_bytes, weights->tensor_bytes());
  const ModelTensor* t = weights->Find("model.embed_tokens.weight");
  EXPECT_EQ(std::as_const(params).Get("model.embed_tokens.weight").value.raw(),
            static_cast<const void*>(t->data.data()));
}

TEST(FrozenTeacher, BadTensorsNameTheFileAndTheTensor) {
  testing::ScratchDir dir;
  const Qwen2Config cfg = SmallConfig(true);
  WriteTeacher(cfg, DType::kBF16, dir.File("t"));
  // Rewrite the weights with one tensor of the wrong shape and one of an integer dtype.
  ParamSet params;
  DeclareParams(Qwen2ParamSpecs(cfg), params);
  std::vector<Tensor> keep;
  std::vector<SafetensorsWriteTensor> ts;
  for (const Param* p : params.params()) {
    Tensor v = p->value.ToDType(DType::kBF16);
    SafetensorsWriteTensor w;
    w.name = p->name;
    w.dtype = DType::kBF16;
    w.shape = std::vector<std::int64_t>(v.shape().begin(), v.shape().end());
    if (p->name == "model.layers.1.mlp.up_proj.weight") w.shape = {w.shape[1], w.shape[0]};
    if (p->name == "model.layers.2.self_attn.k_proj.bias") {
      v = Tensor::Zeros(v.shape(), DType::kI32);
      w.dtype = DType::kI32;
    }
    w.data = std::span<const std::byte>(static_cast<const std::byte*>(v.raw()), v.nbytes());
    keep.push_back(v);
    ts.push_back(w);
  }
  const std::string file = JoinPath(dir.File("t"), "model.safetensors");
  ASSERT_TRUE(WriteSafetensors(file, ts, {}).ok());
  auto t = LoadQwen2Teacher(dir.File("t"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument);
  const std::string m = t.status().message();
  EXPECT_NE(m.find(file), std::string::npos) << m;
  EXPECT_NE(m.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("expected [160, 64]"), std::string::npos) << m;
}

}  // namespace
}  // namespace radlads
