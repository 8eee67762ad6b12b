// GangTrainer (pipeline/gang_trainer.h) under mpiexec with 4 ranks: one optimizer step's
// gradients of a student split by tensor parallelism (tp 2), pipeline stages (pp 2) and both
// (tp 2 x pp 2) equal the whole model's (DistillTrainer / FinetuneTrainer on every rank),
// slice for slice, for both student architectures under the KL head (step 2, with a teacher
// split the same way) and the CE head (step 3); so do the step's statistics and the global
// gradient norm the optimizer clips with. A layout smaller than the world runs in every group
// of that size (each group computes the same). Every rank builds the same random models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/ops/grad_norm.h"
#include "pipeline/gang_trainer.h"
#include "pipeline/model_io.h"
#include "pipeline/model_shard.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "tests/kernels/ops_test_util.h"
#include "tests/pipeline/model_test_util.h"
#include "tests/pipeline/rwkv6_test_util.h"
#include "tests/pipeline/rwkv7_test_util.h"
#include "worker/mpi_communicator.h"

namespace radlads {
namespace {

// Sizes every split divides: vocabulary 40, 4 heads over 2 KV heads, MLP 24; head_dim 6 so
// that A = 24 differs from C = 16. T = 19 crosses the mixers' chunk and checkpoint lengths.
constexpr testing::SmallSizes kSizes{40, 16, 24, 4, 2, 6, 2};
constexpr std::int64_t kB = 2, kT = 19, kMicroBatches = 3, kChunk = 5;

// The split model adds the same terms as the whole one in other orders (partial o_proj and
// down_proj products summed over tp, vocabulary blocks of the head, micro-batches accumulated
// per stage) in fp32: per tensor, ||g - g_whole|| <= kGradRms ||g_whole||, and every element
// within kGradAbs max|g_whole|. Measured worst over the cases below (RADLADS_TEST_VERBOSE=1
// prints every tensor): 3.1e-6 relative RMS (RAD-RWKV6 time_maa_r at tp 2, a partial gradient
// summed over the tp group), 6.3e-6 element-wise (mlp.up_proj at tp 2); the limits are ~10x.
constexpr double kGradRms = 3e-5;
constexpr double kGradAbs = 6e-5;
// Statistics and the gradient norm: relative.
constexpr double kStatTol = 1e-6;

struct Whole {
  StudentConfig cfg;
  std::unique_ptr<ParamSet> student;
  std::unique_ptr<ParamSet> teacher;
};

Whole MakeWhole(StudentArch arch, std::uint64_t seed) {
  testing::Rng rng(seed);
  Whole w;
  w.cfg = testing::SmallStudentConfig(arch, testing::SmallQwen2Config(kSizes, /*tied=*/false));
  w.student = std::make_unique<ParamSet>();
  DeclareParams(StudentParamSpecs(w.cfg), *w.student);
  testing::RandomizeDecoderParams(w.cfg.base, *w.student, rng);
  for (int l = 0; l < w.cfg.base.num_hidden_layers; ++l) {
    if (arch == StudentArch::kRwkv6) testing::RandomizeRwkv6Params(w.cfg, l, *w.student, rng);
    else rwkv7test::RandomizeParams(w.cfg, l, *w.student, rng);
  }
  w.teacher = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(w.cfg.base), *w.teacher);
  testing::RandomizeDecoderParams(w.cfg.base, *w.teacher, rng);
  testing::RandomizeTeacherAttention(w.cfg.base, *w.teacher, rng);
  return w;
}

std::unique_ptr<ParamSet> Copy(const ParamSet& from) {
  auto p = std::make_unique<ParamSet>();
  for (const Param* q : from.params()) p->Add(q->name, q->value.Clone());
  return p;
}

std::vector<LmBatch> Batches(std::uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<LmBatch> out;
  for (std::int64_t m = 0; m < kMicroBatches; ++m) {
    LmBatch b;
    b.inputs = testing::RandomIds({kB, kT}, static_cast<std::int32_t>(kSizes.vocab), rng);
    b.targets = testing::RandomIds({kB * kT}, static_cast<std::int32_t>(kSizes.vocab), rng);
    for (std::int64_t i = 3 + m; i < kB * kT; i += 7) b.targets.data<std::int32_t>()[i] = -1;
    out.push_back(std::move(b));
  }
  return out;
}

struct Reference {
  std::map<std::string, Tensor, std::less<>> grads;
  DistillStepStats stats;
  double grad_norm = 0;
};

// The whole model's step on this rank.
Reference WholeStep(const Whole& w, bool kl, const std::vector<LmBatch>& mbs) {
  auto params = Copy(*w.student);
  params->SetTrainable([](const std::string&) { return true; });
  StudentModel s = MakeStudentModel(w.cfg, std::move(params));
  Qwen2Teacher t = MakeQwen2Teacher(w.cfg.base, Copy(*w.teacher));
  Reference r;
  const float scale = 1.0f / static_cast<float>(mbs.size());
  const double m = static_cast<double>(mbs.size());
  if (kl) {
    DistillTrainer tr(*s.model, *s.params, *t.model, OptimizerSettings{}, kChunk);
    for (const LmBatch& b : mbs) {
      DistillStepStats st = tr.Accumulate(b, scale);
      r.stats.kl += st.kl / m;
      r.stats.top1 += st.top1 / m;
      r.stats.student_ce += st.student_ce / m;
    }
  } else {
    FinetuneTrainer tr(*s.model, *s.params, OptimizerSettings{}, kChunk);
    for (const LmBatch& b : mbs) r.stats.student_ce += tr.Accumulate(b, scale).ce / m;
  }
  std::vector<Tensor> all;
  for (const Param* p : s.params->params()) {
    r.grads[p->name] = p->grad.Clone();
    all.push_back(p->grad);
  }
  r.grad_norm = GlobalGradNorm(all);
  return r;
}

struct Layout {
  int tp, pp;
};

struct Case {
  StudentArch arch;
  bool kl;
  Layout layout;
};

std::string Name(const Case& c) {
  return std::string(c.arch == StudentArch::kRwkv6 ? "Rwkv6" : "Rwkv7") + (c.kl ? "Kl" : "Ce") + "Tp" +
         std::to_string(c.layout.tp) + "Pp" + std::to_string(c.layout.pp);
}

void PrintTo(const Case& c, std::ostream* os) { *os << Name(c); }

class GangTrainerLayouts : public ::testing::TestWithParam<Case> {};

TEST_P(GangTrainerLayouts, StepEqualsTheWholeModelsSliceForSlice) {
  const Case c = GetParam();
  auto world = MpiCommunicator::World();
  ASSERT_EQ(world->size(), 4) << "run under mpiexec with 4 ranks";
  const int g = c.layout.tp * c.layout.pp;
  auto group = world->Split(world->rank() / g, world->rank());
  const int tp_rank = group->rank() % c.layout.tp, pp_rank = group->rank() / c.layout.tp;
  auto tp = group->Split(pp_rank, tp_rank);
  auto pp = group->Split(tp_rank, pp_rank);

  const Whole w = MakeWhole(c.arch, 2026);
  const std::vector<LmBatch> mbs = Batches(7);
  const Reference ref = WholeStep(w, c.kl, mbs);

  // This rank's shard: layers split evenly (2 layers, pp <= 2).
  ModelShard ms;
  ms.tp = c.layout.tp;
  ms.tp_rank = tp_rank;
  ms.pp = c.layout.pp;
  ms.pp_rank = pp_rank;
  const int L = static_cast<int>(w.cfg.base.num_hidden_layers);
  ms.first_layer = pp_rank * L / ms.pp;
  ms.last_layer = (pp_rank + 1) * L / ms.pp;
  Result<StudentConfig> local = TpSliceStudent(w.cfg, ms.tp);
  ASSERT_TRUE(local.ok()) << local.status().message();
  auto params = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(StudentParamSpecs(*local), ms), *params);
  ASSERT_TRUE(SliceParams(*w.student, *params, ms.tp, ms.tp_rank).ok());
  params->SetTrainable([](const std::string&) { return true; });
  DecoderShard ds;
  ds.first_layer = ms.first_layer;
  ds.last_layer = ms.last_layer;
  ds.first_stage = ms.first_stage();
  ds.last_stage = ms.last_stage();
  ds.vocab_begin = tp_rank * local->base.vocab_size;
  ds.tp = ms.tp > 1 ? tp.get() : nullptr;
  StudentModel s = MakeStudentModel(*local, std::move(params), {}, ds);
  auto tparams = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(Qwen2ParamSpecs(local->base), ms), *tparams);
  ASSERT_TRUE(SliceParams(*w.teacher, *tparams, ms.tp, ms.tp_rank).ok());
  Qwen2Teacher t = MakeQwen2Teacher(local->base, std::move(tparams), ds);

  ModelParallelGroups groups;
  groups.tp = ms.tp > 1 ? tp.get() : nullptr;
  groups.pp = ms.pp > 1 ? pp.get() : nullptr;
  groups.mp = group.get();
  groups.full_vocab = kSizes.vocab;
  GangTrainer trainer(*s.model, *s.params, c.kl ? t.model.get() : nullptr, OptimizerSettings{}, kChunk, groups,
                      ShapesByName(StudentParamSpecs(w.cfg)));
  const DistillStepStats st = trainer.AccumulateStep(mbs, 1.0f / static_cast<float>(mbs.size()));

  EXPECT_NEAR(st.kl, ref.stats.kl, kStatTol * std::fabs(ref.stats.kl) + 1e-12);
  EXPECT_DOUBLE_EQ(st.top1, ref.stats.top1);
  EXPECT_NEAR(st.student_ce, ref.stats.student_ce, kStatTol * std::fabs(ref.stats.student_ce));
  for (const Param* p : s.params->params()) {
    const Tensor want = TpSlice(ref.grads.at(p->name), p->value.shape(), ms.tp, ms.tp_rank);
    double err2 = 0, ref2 = 0, max_err = 0, max_ref = 0;
    for (std::int64_t i = 0; i < want.numel(); ++i) {
      const double a = p->grad.f32()[i], b = want.f32()[i];
      err2 += (a - b) * (a - b);
      ref2 += b * b;
      max_err = std::max(max_err, std::fabs(a - b));
      max_ref = std::max(max_ref, std::fabs(b));
    }
    if (ref2 == 0) {
      EXPECT_EQ(err2, 0) << p->name << ": the whole model's gradient is zero";
      continue;
    }
    if (std::getenv("RADLADS_TEST_VERBOSE") != nullptr) {
      std::printf("%s %s rms %.3g abs %.3g\n", Name(c).c_str(), p->name.c_str(), std::sqrt(err2 / ref2),
                  max_err / max_ref);
    }
    EXPECT_LE(std::sqrt(err2 / ref2), kGradRms) << p->name << " (tp rank " << tp_rank << ", stage " << pp_rank << ")";
    EXPECT_LE(max_err, kGradAbs * max_ref) << p->name << " (tp rank " << tp_rank << ", stage " << pp_rank << ")";
  }
  const OptimizerStepResult r = trainer.optimizer().Step(1e-3, 1e-3);
  EXPECT_TRUE(r.applied);
  EXPECT_NEAR(r.grad_norm, ref.grad_norm, kStatTol * ref.grad_norm);
}

std::vector<Case> Cases() {
  std::vector<Case> out;
  for (StudentArch a : {StudentArch::kRwkv6, StudentArch::kRwkv7}) {
    for (bool kl : {true, false}) {
      for (Layout l : {Layout{2, 1}, Layout{1, 2}, Layout{2, 2}}) out.push_back({a, kl, l});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, GangTrainerLayouts, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return Name(i.param); });

}  // namespace
}  // namespace radlads
