// The planner's CPU memory model (plan/memory_model.h, docs/planner.md §4) against what the
// pipeline measurably holds, on a model of real widths: Qwen2.5-0.5B's hidden 896, 14 / 2 heads
// of 64, MLP 4864, two layers, a bf16 teacher file. The vocabulary is 8,192 instead of 151,936:
// at the full vocabulary the embedding (136M parameters) would be 80% of every term and the
// per-layer terms (the converted teacher layer, the activations) would go unchecked; at 8,192
// it is about half a layer, and the test stays within seconds.
//
// Measured: the peak of resident anonymous memory (base/anon_memory.h, sampled) above what the
// test process held before the teacher was loaded; compared with the estimate less its fixed
// CPU workspace term (the process itself, which a gtest binary does not resemble).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/anon_memory.h"
#include "base/file.h"
#include "pipeline/gang_trainer.h"
#include "pipeline/model_io.h"
#include "pipeline/model_shard.h"
#include "pipeline/pretrain.h"
#include "pipeline/student_model.h"
#include "plan/memory_model.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

constexpr double kMemoryEstimateRelTol = 0.25;  // |measured - estimate| / estimate
constexpr std::uint64_t kSeed = 7;
constexpr std::int64_t kMicroBatch = 1, kSeqLen = 256;

Qwen2Config RealWidths() {
  Qwen2Config c;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 14;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 8192;
  c.max_position_embeddings = 4096;
  c.tie_word_embeddings = true;
  c.torch_dtype = "bfloat16";
  return c;
}

void WriteTeacher(const Qwen2Config& cfg, const std::string& dir) {
  ParamSet params;
  DeclareParams(Qwen2ParamSpecs(cfg), params);
  InitQwen2Params(params, 0.02, kSeed);
  ASSERT_TRUE(SaveParams(params, dir, DType::kBF16, 5ull << 30).ok());
  ASSERT_TRUE(AtomicWriteFile(JoinPath(dir, "config.json"), Qwen2ConfigToJson(cfg)).ok());
}

LmBatch Batch(std::int64_t V) {
  LmBatch b;
  b.inputs = Tensor::Empty({kMicroBatch, kSeqLen}, DType::kI32);
  b.targets = Tensor::Empty({kMicroBatch * kSeqLen}, DType::kI32);
  for (std::int64_t i = 0; i < kMicroBatch * kSeqLen; ++i) {
    b.inputs.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7919 + 3) % V);
    b.targets.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7919 + 10) % V);
  }
  return b;
}

double WithoutWorkspace(const MemoryBreakdown& m) {
  double total = 0;
  for (const MemoryTerm& t : m.terms) {
    if (t.name != "workspace") total += t.bytes;
  }
  return total;
}

void Compare(const char* what, double measured, const MemoryBreakdown& m) {
  const double est = WithoutWorkspace(m);
  const double rel = std::fabs(measured - est) / est;
  std::string terms;
  for (const MemoryTerm& t : m.terms) {
    char b[200];
    std::snprintf(b, sizeof(b), "  %-55s %8.1f MiB  %s\n", t.name.c_str(), t.bytes / 1048576.0, t.formula.c_str());
    terms += b;
  }
  EXPECT_LE(rel, kMemoryEstimateRelTol) << what << ": measured " << measured / 1048576.0 << " MiB, estimate "
                                        << est / 1048576.0 << " MiB without the workspace\n" << terms;
  if (std::getenv("RADLADS_TEST_VERBOSE")) {
    std::printf("%s: measured %.1f MiB, estimate %.1f MiB (rel %.3f)\n%s", what, measured / 1048576.0,
                est / 1048576.0, rel, terms.c_str());
  }
}

TEST(MemoryEstimate, CacheTaskAndDistillRankMatchTheMeasuredPeak) {
  testing::ScratchDir dir;
  const Qwen2Config cfg = RealWidths();
  WriteTeacher(cfg, dir.File("t"));
  const StudentConfig sc = StudentConfig::Defaults(StudentArch::kRwkv7, cfg);
  const ModelSizes sizes = ComputeModelSizes(cfg, sc);
  const WorkerMemory cpu{false, 64.0 * kGiB};
  const MemoryModelOptions opt;
  const LmBatch batch = Batch(cfg.vocab_size);
  const std::int64_t base = AnonRssBytes().value_or(0);

  // The cache task: the teacher's layers over one micro-batch, every layer's rows captured.
  {
    AnonPeakSampler sampler;
    auto teacher = LoadQwen2Teacher(dir.File("t"));
    ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
    std::vector<Tensor> rows;
    DecoderForwardOptions fo;
    fo.hook = [&](int, const Tensor& in, const Tensor& out, const Tensor&) {
      rows.push_back(in.Clone());
      rows.push_back(out.Clone());
    };
    Tensor x = teacher->model->Embed(batch.inputs);
    rows.push_back(teacher->model->RunLayers(x, 0, cfg.num_hidden_layers, fo));
    sampler.Stop();
    Compare("cache task", static_cast<double>(sampler.PeakBytes() - base),
            CacheTaskMemory(sizes, cfg.num_hidden_layers, 0, 1, kMicroBatch, kSeqLen, cpu, opt));
  }
  // The distill rank: teacher, the whole student trained by the gang trainer (one process).
  {
    AnonPeakSampler sampler;
    auto teacher = LoadQwen2Teacher(dir.File("t"));
    ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
    std::unique_ptr<ParamSet> params = TransferTeacher(*teacher->params, sc, kSeed);
    params->SetTrainable([](const std::string&) { return true; });
    StudentModel student = MakeStudentModel(sc, std::move(params));
    GangTrainer trainer(*student.model, *student.params, teacher->model.get(), OptimizerSettings{}, 512,
                        ModelParallelGroups{}, ShapesByName(StudentParamSpecs(sc)));
    trainer.AccumulateStep({batch}, 1.0f);
    ASSERT_TRUE(trainer.optimizer().Step(1e-4, 1e-4).applied);
    sampler.Stop();
    GangQuery q;
    q.layers_per_stage = {cfg.num_hidden_layers};
    q.micro_batch = kMicroBatch;
    q.seq_len = kSeqLen;
    q.loss_chunk_tokens = 512;
    Compare("distill rank", static_cast<double>(sampler.PeakBytes() - base), GangMemory(sizes, q, cpu, opt));
  }
}

}  // namespace
}  // namespace radlads
