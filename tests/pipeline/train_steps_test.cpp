// The protocol's building blocks on a real (tiny, random) Hugging Face Qwen2 checkpoint: step 0
// transfer, step-1 alignment, step-2 distillation, step-3 fine-tuning, and student save/load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "pipeline/model_io.h"
#include "pipeline/rwkv7_mixer.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

const char* kTeacherDir = "qwen2/tiny_gqa4_untied";

StudentConfig StudentFor(const Qwen2Config& t, StudentArch arch) {
  StudentConfig c = StudentConfig::Defaults(arch, t);
  c.lora_rank_decay = 8;
  c.lora_rank_gate = 8;
  if (arch == StudentArch::kRwkv6) c.lora_rank_tokenshift = 8;
  else { c.lora_rank_iclr = 8; c.lora_rank_value_residual_mix = 8; c.use_rope = true; }
  return c;
}

Tensor RandomIds(std::int64_t B, std::int64_t T, std::int64_t V, std::uint64_t seed) {
  testing::Rng rng(seed);
  Tensor ids = Tensor::Empty({B, T}, DType::kI32);
  for (std::int64_t i = 0; i < ids.numel(); ++i) ids.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % V);
  return ids;
}

LmBatch RandomBatch(std::int64_t B, std::int64_t T, std::int64_t V, std::uint64_t seed) {
  Tensor all = RandomIds(B, T + 1, V, seed);
  LmBatch b;
  b.inputs = Tensor::Empty({B, T}, DType::kI32);
  b.targets = Tensor::Empty({B * T}, DType::kI32);
  for (std::int64_t i = 0; i < B; ++i)
    for (std::int64_t t = 0; t < T; ++t) {
      b.inputs.data<std::int32_t>()[i * T + t] = all.data<std::int32_t>()[i * (T + 1) + t];
      b.targets.data<std::int32_t>()[i * T + t] = all.data<std::int32_t>()[i * (T + 1) + t + 1];
    }
  return b;
}

class Protocol : public ::testing::TestWithParam<StudentArch> {};

TEST_P(Protocol, TransferCopiesProjectionsAndStudentSaveLoadIsExact) {
  auto teacher = LoadQwen2Teacher(testing::TestDataPath(kTeacherDir));
  ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
  StudentConfig cfg = StudentFor(teacher->config, GetParam());
  auto params = TransferTeacher(*teacher->params, cfg, 7);
  for (const char* name : {"model.layers.1.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias",
                           "model.layers.1.self_attn.o_proj.weight", "model.embed_tokens.weight",
                           "model.layers.0.mlp.down_proj.weight", "lm_head.weight"}) {
    const Tensor& a = teacher->params->Get(name).value;
    const Tensor& b = params->Get(name).value;
    ASSERT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name;
  }
  // Same seed, same student; a different seed changes the new parameters only.
  auto again = TransferTeacher(*teacher->params, cfg, 7);
  auto other = TransferTeacher(*teacher->params, cfg, 8);
  bool differs = false;
  for (const Param* p : params->params()) {
    const Tensor& b = again->Get(p->name).value;
    ASSERT_EQ(std::memcmp(p->value.raw(), b.raw(), b.nbytes()), 0) << p->name;
    const Tensor& c = other->Get(p->name).value;
    differs |= std::memcmp(p->value.raw(), c.raw(), c.nbytes()) != 0;
  }
  EXPECT_TRUE(differs);
  // Save in the released layout, load back: identical logits.
  StudentModel s = MakeStudentModel(cfg, std::move(params));
  Tensor ids = RandomIds(2, 11, cfg.base.vocab_size, 3);
  Tensor before = s.model->Logits(s.model->Forward(ids, {}));
  testing::ScratchDir dir;
  ASSERT_TRUE(SaveStudent(cfg, *s.params, dir.File("student")).ok());
  auto loaded = LoadStudent(dir.File("student"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Tensor after = loaded->model->Logits(loaded->model->Forward(ids, {}));
  ASSERT_EQ(std::memcmp(before.raw(), after.raw(), before.nbytes()), 0) << "reload must be bit-identical";
  // And through BF16 storage: close, not exact.
  ASSERT_TRUE(SaveStudent(cfg, *s.params, dir.File("bf16"), DType::kBF16).ok());
  auto bf = LoadStudent(dir.File("bf16"));
  ASSERT_TRUE(bf.ok()) << bf.status().ToString();
  Tensor bl = bf->model->Logits(bf->model->Forward(ids, {}));
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < bl.numel(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(bl.f32()[i] - before.f32()[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(before.f32()[i])));
  }
  EXPECT_LT(diff / scale, 0.05);
}

TEST_P(Protocol, Step1AlignmentLowersTheLossOfEveryLayer) {
  auto teacher = LoadQwen2Teacher(testing::TestDataPath(kTeacherDir));
  ASSERT_TRUE(teacher.ok());
  StudentConfig cfg = StudentFor(teacher->config, GetParam());
  const int L = static_cast<int>(cfg.base.num_hidden_layers);
  // Capture the teacher's mixer inputs/outputs on a fixed batch.
  std::vector<Tensor> ins(L), outs(L);
  Tensor ids = RandomIds(4, 24, cfg.base.vocab_size, 5);
  DecoderForwardOptions fo;
  fo.hook = [&](int l, const Tensor& in, const Tensor& out, const Tensor&) {
    ins[static_cast<std::size_t>(l)] = in.Clone();
    outs[static_cast<std::size_t>(l)] = out.Clone();
  };
  teacher->model->Forward(ids, fo);
  Tensor v_first;
  if (GetParam() == StudentArch::kRwkv7) {
    v_first = ValueFirstFromTeacher(cfg, teacher->params->Get("model.layers.0.self_attn.v_proj.weight").value,
                                    teacher->params->Get("model.layers.0.self_attn.v_proj.bias").value, ins[0]);
  }
  for (int l = 0; l < L; ++l) {
    ParamSet layer;
    TransferLayer(*teacher->params, cfg, l, 7, layer);
    layer.SetTrainable([](const std::string&) { return true; });
    auto mixer = MakeStudentMixer(cfg, l, layer, {});
    OptimizerSettings os;
    AlignTrainer trainer(cfg, l, layer, *mixer, os);
    double first = trainer.Evaluate(ins[l], outs[l], v_first);
    for (int step = 0; step < 30; ++step) {
      trainer.Accumulate(ins[l], outs[l], v_first, 1.0f);
      ASSERT_TRUE(trainer.Step(3e-3).applied);
    }
    double last = trainer.Evaluate(ins[l], outs[l], v_first);
    EXPECT_LT(last, 0.7 * first) << "layer " << l << ": " << first << " -> " << last;
  }
}

TEST_P(Protocol, Step2DistillationLowersKlAndStep3LowersCe) {
  auto teacher = LoadQwen2Teacher(testing::TestDataPath(kTeacherDir));
  ASSERT_TRUE(teacher.ok());
  StudentConfig cfg = StudentFor(teacher->config, GetParam());
  auto params = TransferTeacher(*teacher->params, cfg, 7);
  params->SetTrainable([](const std::string&) { return true; });
  StudentModel s = MakeStudentModel(cfg, std::move(params));
  OptimizerSettings os;
  DistillTrainer kd(*s.model, *s.params, *teacher->model, os, 16);
  LmBatch batch = RandomBatch(4, 24, cfg.base.vocab_size, 9);
  double first = kd.Evaluate(batch).kl;
  for (int step = 0; step < 25; ++step) {
    kd.Accumulate(batch, 1.0f);
    ASSERT_TRUE(kd.Step(1e-3, 1e-3).applied);
  }
  DistillStepStats end = kd.Evaluate(batch);
  EXPECT_LT(end.kl, 0.5 * first) << first << " -> " << end.kl;
  EXPECT_GT(end.top1, 0.3);
  FinetuneTrainer ft(*s.model, *s.params, os, 16);
  double ce0 = ft.Accumulate(batch, 1.0f).ce;
  s.params->ZeroGrads();
  for (int step = 0; step < 20; ++step) {
    ft.Accumulate(batch, 1.0f);
    ASSERT_TRUE(ft.Step(1e-3, 1e-3).applied);
  }
  double ce1 = ft.Accumulate(batch, 0.0f).ce;
  EXPECT_LT(ce1, ce0);
}

INSTANTIATE_TEST_SUITE_P(Students, Protocol, ::testing::Values(StudentArch::kRwkv6, StudentArch::kRwkv7),
                         [](const auto& info) { return std::string(info.param == StudentArch::kRwkv6 ? "Rwkv6" : "Rwkv7"); });

TEST(Protocol, ValueFirstFromTeacherEqualsLayerZerosStoredValue) {
  auto teacher = LoadQwen2Teacher(testing::TestDataPath(kTeacherDir));
  ASSERT_TRUE(teacher.ok());
  StudentConfig cfg = StudentFor(teacher->config, StudentArch::kRwkv7);
  ParamSet layer;
  TransferLayer(*teacher->params, cfg, 0, 1, layer);
  Rwkv7Mixer mixer(cfg, 0, layer);
  testing::Rng rng(4);
  Tensor x = Tensor::Empty({2, 9, cfg.base.hidden_size});
  std::normal_distribution<float> nd(0.f, 1.f);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = nd(rng);
  MixerContext ctx;
  ctx.batch = 2;
  ctx.time = 9;
  auto rope = ops::MakeRopeTable(16, cfg.base.head_dim, cfg.base.rope_theta);
  ctx.rope = &rope;
  ctx.need_backward = false;
  Tensor y = Tensor::Empty(x.shape());
  mixer.Forward(x, ctx, y);
  Tensor vf = ValueFirstFromTeacher(cfg, teacher->params->Get("model.layers.0.self_attn.v_proj.weight").value,
                                    teacher->params->Get("model.layers.0.self_attn.v_proj.bias").value, x);
  ASSERT_EQ(vf.shape(), ctx.v_first.shape());
  for (std::int64_t i = 0; i < vf.numel(); ++i) ASSERT_NEAR(vf.f32()[i], ctx.v_first.f32()[i], 1e-5) << i;
}

}  // namespace
}  // namespace radlads
