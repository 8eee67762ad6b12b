// The CUDA trainers (pipeline/cuda/cuda_trainers.h) against the CPU trainers
// (pipeline/train_steps.h) on the tiny model's shapes (configs/models/tiny.yaml: 4 layers,
// C 128, 4 heads of 32, 2 kv heads, F 384, V 320, untied head), random teacher from fixed
// seeds, students by the step-0 transfer, both architectures:
//  - losses before and after a few optimizer steps within named bf16 tolerances, and the
//    trained parameters within the drift a few AdamW steps allow;
//  - SyncToHost round trip and resume (moments + step counter uploaded) matching an
//    uninterrupted run bit for bit; two runs give the same bits;
//  - the peak device memory is reported.
// Skips (exit 77) without a GPU (tests/testing/gpu_test_main.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/cuda/cuda_trainers.h"
#include "pipeline/model_io.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "tests/pipeline/model_test_util.h"

namespace radlads {
namespace {

// Relative tolerance of a loss computed with bf16 GEMM operands (8 significant bits, so each
// rounding is within 2^-9) through 4 layers, against the fp32 CPU loss.
constexpr double kLossRelTol = 3e-2;
// After a few AdamW steps (each moves a parameter by about lr at most, so bf16-level gradient
// differences cannot move the trajectories apart by more than a few lr).
constexpr double kTrainedLossRelTol = 6e-2;
constexpr double kDriftPerStepInLr = 3.0;
constexpr double kLr = 1e-3;
constexpr int kSteps = 3;
constexpr std::int64_t kB = 2, kT = 37;  // odd T
constexpr std::int64_t kHeadChunk = 32;

Qwen2Config TinyConfig() {
  // configs/models/tiny.yaml
  Qwen2Config c = testing::SmallQwen2Config(testing::SmallSizes{320, 128, 384, 4, 2, 32, 4}, false);
  c.max_position_embeddings = 2048;
  return c;
}

Qwen2Teacher MakeTeacher(const Qwen2Config& cfg, std::uint64_t seed) {
  auto params = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(cfg), *params);
  testing::Rng rng(seed);
  testing::RandomizeDecoderParams(cfg, *params, rng);
  testing::RandomizeTeacherAttention(cfg, *params, rng);
  return MakeQwen2Teacher(cfg, std::move(params));
}

std::unique_ptr<ParamSet> Clone(const ParamSet& src) {
  auto p = std::make_unique<ParamSet>();
  for (const Param* q : src.params()) p->Add(q->name, q->value.Clone());
  p->SetTrainable([](const std::string&) { return true; });
  return p;
}

LmBatch RandomBatch(std::int64_t V, std::uint64_t seed) {
  testing::Rng rng(seed);
  LmBatch b;
  b.inputs = Tensor::Empty({kB, kT}, DType::kI32);
  b.targets = Tensor::Empty({kB * kT}, DType::kI32);
  for (std::int64_t i = 0; i < kB * kT; ++i) {
    b.inputs.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % V);
    // Some ignored targets, as at document ends.
    b.targets.data<std::int32_t>()[i] = i % 11 == 5 ? -1 : static_cast<std::int32_t>(rng() % V);
  }
  return b;
}

void ExpectRelClose(double gpu, double cpu, double tol, const std::string& what) {
  EXPECT_LE(std::fabs(gpu - cpu), tol * std::max(std::fabs(cpu), 1e-3)) << what << ": gpu " << gpu << ", cpu " << cpu;
}

// Every trainable parameter of `a` within `tol` of `b` (max abs).
void ExpectParamsClose(const ParamSet& a, const ParamSet& b, double tol, const std::string& what) {
  for (const Param* p : a.params()) {
    const Tensor& q = b.Get(p->name).value;
    double worst = 0.0;
    for (std::int64_t i = 0; i < q.numel(); ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs(p->value.f32()[i] - q.f32()[i])));
    }
    EXPECT_LE(worst, tol) << what << ": " << p->name;
  }
}

void ExpectParamsEqual(const ParamSet& a, const ParamSet& b, const std::string& what) {
  for (const Param* p : a.params()) {
    const Param& q = b.Get(p->name);
    ASSERT_EQ(std::memcmp(p->value.raw(), q.value.raw(), p->value.nbytes()), 0) << what << ": " << p->name;
    if (p->adam_m.defined() || q.adam_m.defined()) {
      ASSERT_TRUE(p->adam_m.defined() && q.adam_m.defined()) << what << ": moments of " << p->name;
      ASSERT_EQ(std::memcmp(p->adam_m.raw(), q.adam_m.raw(), p->adam_m.nbytes()), 0) << what << ": m " << p->name;
      ASSERT_EQ(std::memcmp(p->adam_v.raw(), q.adam_v.raw(), p->adam_v.nbytes()), 0) << what << ": v " << p->name;
    }
  }
}

class CudaTrainers : public ::testing::TestWithParam<StudentArch> {
 protected:
  void SetUp() override {
    tcfg_ = TinyConfig();
    teacher_ = MakeTeacher(tcfg_, 21);
    scfg_ = testing::SmallStudentConfig(GetParam(), tcfg_);
    student0_ = TransferTeacher(*teacher_.params, scfg_, 7);
  }
  Qwen2Config tcfg_;
  Qwen2Teacher teacher_;
  StudentConfig scfg_;
  std::unique_ptr<ParamSet> student0_;
};

TEST_P(CudaTrainers, DistillMatchesTheCpuTrainer) {
  OptimizerSettings os;
  const LmBatch batch = RandomBatch(tcfg_.vocab_size, 3);
  // CPU.
  StudentModel cpu = MakeStudentModel(scfg_, Clone(*student0_));
  DistillTrainer cpu_tr(*cpu.model, *cpu.params, *teacher_.model, os, kHeadChunk);
  // GPU.
  auto gpu_params = Clone(*student0_);
  cuda::ResetPeakDeviceMemory();
  cuda::CudaDistillTrainer gpu_tr(scfg_, *gpu_params, tcfg_, *teacher_.params, os, kHeadChunk);

  const DistillStepStats c0 = cpu_tr.Evaluate(batch), g0 = gpu_tr.Evaluate(batch);
  ExpectRelClose(g0.kl, c0.kl, kLossRelTol, "initial KL");
  ExpectRelClose(g0.student_ce, c0.student_ce, kLossRelTol, "initial student CE");
  EXPECT_NEAR(g0.top1, c0.top1, 0.05) << "initial top-1 agreement";
  EXPECT_EQ(g0.tokens, c0.tokens);
  for (int st = 0; st < kSteps; ++st) {
    const DistillStepStats ca = cpu_tr.Accumulate(batch, 1.0f), ga = gpu_tr.Accumulate(batch, 1.0f);
    ExpectRelClose(ga.kl, ca.kl, kTrainedLossRelTol, "accumulate KL, step " + std::to_string(st));
    const OptimizerStepResult cs = cpu_tr.Step(kLr, kLr), gs = gpu_tr.Step(kLr, kLr);
    ASSERT_TRUE(cs.applied && gs.applied);
    ExpectRelClose(gs.grad_norm, cs.grad_norm, kTrainedLossRelTol, "grad norm, step " + std::to_string(st));
  }
  EXPECT_EQ(gpu_tr.optimizer_step(), kSteps);
  const DistillStepStats c1 = cpu_tr.Evaluate(batch), g1 = gpu_tr.Evaluate(batch);
  ExpectRelClose(g1.kl, c1.kl, kTrainedLossRelTol, "trained KL");
  EXPECT_LT(g1.kl, g0.kl) << "the GPU steps must lower the KL";
  gpu_tr.SyncToHost(*gpu_params);
  ExpectParamsClose(*gpu_params, *cpu.params, kDriftPerStepInLr * kSteps * kLr, "distill parameters");
  for (const Param* p : gpu_params->params()) ASSERT_TRUE(p->adam_m.defined()) << p->name << " has no moments";
  const cuda::DeviceMemoryStats mem = cuda::CurrentDeviceMemory();
  EXPECT_GT(mem.peak_bytes, 0);
  EXPECT_GE(mem.peak_reserved_bytes, mem.peak_bytes);
}

TEST_P(CudaTrainers, FinetuneMatchesTheCpuTrainerAndResumesExactly) {
  OptimizerSettings os;
  const LmBatch batch = RandomBatch(tcfg_.vocab_size, 5);
  StudentModel cpu = MakeStudentModel(scfg_, Clone(*student0_));
  FinetuneTrainer cpu_tr(*cpu.model, *cpu.params, os, kHeadChunk);
  auto gpu_params = Clone(*student0_);
  // Uninterrupted GPU run of 2 * kSteps steps, recording losses and the parameters after kSteps.
  std::vector<double> straight;
  auto mid = Clone(*student0_);
  {
    cuda::CudaFinetuneTrainer gpu_tr(scfg_, *gpu_params, os, kHeadChunk);
    for (int st = 0; st < 2 * kSteps; ++st) {
      const FinetuneStepStats g = gpu_tr.Accumulate(batch, 1.0f);
      straight.push_back(g.ce);
      if (st < kSteps) {
        const FinetuneStepStats c = cpu_tr.Accumulate(batch, 1.0f);
        ExpectRelClose(g.ce, c.ce, st == 0 ? kLossRelTol : kTrainedLossRelTol, "CE, step " + std::to_string(st));
        EXPECT_EQ(g.tokens, c.tokens);
        ASSERT_TRUE(cpu_tr.Step(kLr, kLr).applied);
      }
      ASSERT_TRUE(gpu_tr.Step(kLr, kLr).applied);
      if (st == kSteps - 1) {
        gpu_tr.SyncToHost(*mid);
        ExpectParamsClose(*mid, *cpu.params, kDriftPerStepInLr * kSteps * kLr, "finetune parameters");
      }
    }
    gpu_tr.SyncToHost(*gpu_params);
  }
  EXPECT_LT(straight.back(), straight.front()) << "the GPU steps must lower the CE";
  // Resume from the mid-run checkpoint: moments and step counter uploaded, same continuation.
  {
    cuda::CudaFinetuneTrainer resumed(scfg_, *mid, os, kHeadChunk);
    resumed.set_optimizer_step(kSteps);
    for (int st = kSteps; st < 2 * kSteps; ++st) {
      const FinetuneStepStats g = resumed.Accumulate(batch, 1.0f);
      EXPECT_EQ(g.ce, straight[static_cast<std::size_t>(st)]) << "resumed CE, step " << st;
      ASSERT_TRUE(resumed.Step(kLr, kLr).applied);
    }
    EXPECT_EQ(resumed.optimizer_step(), 2 * kSteps);
    resumed.SyncToHost(*mid);
  }
  ExpectParamsEqual(*mid, *gpu_params, "resumed vs uninterrupted");
}

TEST_P(CudaTrainers, TwoRunsGiveTheSameBits) {
  OptimizerSettings os;
  const LmBatch batch = RandomBatch(tcfg_.vocab_size, 8);
  std::vector<std::unique_ptr<ParamSet>> out;
  std::vector<std::vector<double>> kls;
  for (int run = 0; run < 2; ++run) {
    out.push_back(Clone(*student0_));
    cuda::CudaDistillTrainer tr(scfg_, *out.back(), tcfg_, *teacher_.params, os, kHeadChunk);
    kls.emplace_back();
    for (int st = 0; st < 2; ++st) {
      kls.back().push_back(tr.Accumulate(batch, 0.5f).kl);
      kls.back().push_back(tr.Accumulate(batch, 0.5f).kl);  // two micro-batches per step
      ASSERT_TRUE(tr.Step(kLr, 2 * kLr).applied);
    }
    tr.SyncToHost(*out.back());
  }
  EXPECT_EQ(kls[0], kls[1]);
  ExpectParamsEqual(*out[0], *out[1], "run 1 vs run 2");
  // Everything the trainers held went back to the allocator.
  EXPECT_EQ(cuda::CurrentDeviceMemory().in_use_bytes, 0);
}

TEST_P(CudaTrainers, AlignMatchesTheCpuTrainerOnEveryLayer) {
  OptimizerSettings os;
  const StudentArch arch = GetParam();
  // The teacher's mixer inputs and outputs on a fixed batch (the step-1 activation cache).
  const int L = static_cast<int>(tcfg_.num_hidden_layers);
  std::vector<Tensor> ins(static_cast<std::size_t>(L)), outs(static_cast<std::size_t>(L));
  const LmBatch batch = RandomBatch(tcfg_.vocab_size, 13);
  DecoderForwardOptions fo;
  fo.hook = [&](int l, const Tensor& in, const Tensor& out, const Tensor&) {
    ins[static_cast<std::size_t>(l)] = in.Clone();
    outs[static_cast<std::size_t>(l)] = out.Clone();
  };
  teacher_.model->Forward(batch.inputs, fo);
  Tensor v_first;
  if (arch == StudentArch::kRwkv7) {
    v_first = ValueFirstFromTeacher(scfg_, teacher_.params->Get("model.layers.0.self_attn.v_proj.weight").value,
                                    teacher_.params->Get("model.layers.0.self_attn.v_proj.bias").value, ins[0]);
  }
  for (int l = 0; l < L; ++l) {
    const std::string at = "layer " + std::to_string(l);
    ParamSet cpu_layer, gpu_layer;
    TransferLayer(*teacher_.params, scfg_, l, 7, cpu_layer);
    TransferLayer(*teacher_.params, scfg_, l, 7, gpu_layer);
    cpu_layer.SetTrainable([](const std::string&) { return true; });
    gpu_layer.SetTrainable([](const std::string&) { return true; });
    auto mixer = MakeStudentMixer(scfg_, l, cpu_layer, {});
    AlignTrainer cpu_tr(scfg_, l, cpu_layer, *mixer, os);
    cuda::CudaAlignTrainer gpu_tr(scfg_, l, gpu_layer, os);
    const Tensor& x = ins[static_cast<std::size_t>(l)];
    const Tensor& t = outs[static_cast<std::size_t>(l)];
    const double c0 = cpu_tr.Evaluate(x, t, v_first), g0 = gpu_tr.Evaluate(x, t, v_first);
    ExpectRelClose(g0, c0, kLossRelTol, at + ": initial loss");
    for (int st = 0; st < kSteps; ++st) {
      const double ca = cpu_tr.Accumulate(x, t, v_first, 1.0f).loss, ga = gpu_tr.Accumulate(x, t, v_first, 1.0f).loss;
      ExpectRelClose(ga, ca, kTrainedLossRelTol, at + ": accumulate, step " + std::to_string(st));
      ASSERT_TRUE(cpu_tr.Step(3 * kLr).applied);
      ASSERT_TRUE(gpu_tr.Step(3 * kLr).applied);
    }
    const double c1 = cpu_tr.Evaluate(x, t, v_first), g1 = gpu_tr.Evaluate(x, t, v_first);
    ExpectRelClose(g1, c1, kTrainedLossRelTol, at + ": trained loss");
    EXPECT_LT(g1, g0) << at << ": the GPU steps must lower the loss";
    gpu_tr.SyncToHost(gpu_layer);
    ExpectParamsClose(gpu_layer, cpu_layer, kDriftPerStepInLr * kSteps * 3 * kLr, at + ": parameters");
    EXPECT_EQ(gpu_tr.optimizer_step(), kSteps);
  }
}

TEST(CudaTrainersAvailability, ReportsADevice) {
  EXPECT_EQ(cuda::CudaTrainingUnavailableReason(), "");
}

INSTANTIATE_TEST_SUITE_P(Students, CudaTrainers, ::testing::Values(StudentArch::kRwkv6, StudentArch::kRwkv7),
                         [](const auto& info) { return std::string(info.param == StudentArch::kRwkv6 ? "Rwkv6" : "Rwkv7"); });

}  // namespace
}  // namespace radlads
