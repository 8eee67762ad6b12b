// Whole-model gradients: the fp32 training step (DistillTrainer / FinetuneTrainer of
// pipeline/train_steps.h, the code path training runs) against the fp64 decoder reference
// (pipeline/ref/decoder_ref.h), for the Qwen2 teacher, a RAD-RWKV6 student and a RAD-RWKV7
// student, each with 2 layers and tiny sizes, under the KL head (step 2, docs/spec.md §2.2) and
// the CE head (step 3 and pretraining, docs/spec.md §2.4).
//
// Per model and head: the fp32 loss against the reference loss, and the fp32 gradient of EVERY
// parameter tensor against central differences of the reference loss (every entry of a small
// tensor, a fixed random sample of a large one). Parameters that cannot influence the loss
// (RAD-RWKV7's r_k, layer 0's value-residual LoRA v0/v1/v2, k_k and k_a under balance_state)
// must have an exactly zero gradient, and so must every checked entry whose finite difference
// is exactly zero (embedding rows of tokens absent from the batch of an untied model, RAD-RWKV6
// decay channels held at the -5 clamp).
// Quiet when passing; RADLADS_TEST_VERBOSE=1 prints the worst errors per tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "pipeline/model_io.h"
#include "pipeline/ref/decoder_ref.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "tests/kernels/ops_test_util.h"
#include "tests/pipeline/model_test_util.h"
#include "tests/pipeline/rwkv6_test_util.h"
#include "tests/pipeline/rwkv7_test_util.h"

namespace radlads {
namespace {

using rwkv7test::Tol;

// fp32 loss against the fp64 reference loss, |l32 - l64| / |l64|. The fp32 forward rounds
// every activation of 2 layers (and the teacher's, for the KL head); the head sums its loss in
// double. Measured worst over the six cases: 3.9e-8 (Rwkv6Kl; 9.1e-8 over eight other seeds);
// the limit is 10x the fixed seeds' worst.
constexpr double kLossRelTol = 4e-7;

// fp32 analytic gradients against central differences of the fp64 reference loss, with the
// scale-free check of tests/pipeline/rwkv7_test_util.h: |g32 - fd| <= atol * rms(fd) +
// rtol * |fd| per checked entry, and ||g32 - fd|| / ||fd|| <= rms per tensor. The fp32 error
// is the forward's rounding carried through 2 layers' backward, the mixers' recurrences and
// the fused head; the differences' own error (truncation and cancellation at h = kFdStep) is
// at most 2e-7 relative RMS / 5e-7 element-wise (measured against a fourth-order stencil at
// h = 1e-3), far below it. Measured worst over the six cases, every entry of every tensor:
// relative RMS 1.2e-5 (Rwkv6Kl, time_maa_w: a small gradient, 0.004 rms, with cancellation),
// element-wise 2.6e-5 x (rms + |fd|) (Rwkv6Kl, v_proj.weight); over eight other seeds 7.4e-6
// and 2.8e-5. The limits are 12-13x the fixed seeds' worst.
constexpr Tol kGradTol{3e-4, 3e-4, 1.5e-4};

// Central-difference step, relative: h = kFdStep * max(1, |p|).
constexpr double kFdStep = 1e-5;
// Entries checked per tensor: all of a tensor this small or smaller, else a fixed random sample.
constexpr std::int64_t kSamplesPerTensor = 64;

// Tiny sizes: A = H * D = 24 differs from C = 16; B * T = 38 rows is not a multiple of the head
// chunk; T = 19 crosses RAD-RWKV6's GLA chunk (16) and RAD-RWKV7's DPLR checkpoint (16).
constexpr std::int64_t kVocab = 37, kC = 16, kF = 24, kH = 4, kKv = 2, kD = 6, kLayers = 2;
constexpr std::int64_t kB = 2, kT = 19;
constexpr std::int64_t kHeadChunk = 5;

bool Verbose() {
  const char* v = std::getenv("RADLADS_TEST_VERBOSE");
  return v != nullptr && v[0] == '1';
}

enum class Arch { kQwen2, kRwkv6, kRwkv7 };
enum class Head { kKl, kCe };

struct Case {
  Arch arch;
  Head head;
};

std::string ArchName(Arch a) {
  return a == Arch::kQwen2 ? "Qwen2" : a == Arch::kRwkv6 ? "Rwkv6" : "Rwkv7";
}
std::string CaseName(const Case& c) {
  return ArchName(c.arch) + (c.head == Head::kKl ? "Kl" : "Ce");
}
// For gtest's failure messages.
void PrintTo(const Case& c, std::ostream* os) { *os << CaseName(c); }

// The teacher is tied (as Qwen2.5-0.5B), RAD-RWKV6 untied (as the tiny teacher), RAD-RWKV7 tied:
// both head layouts are covered.
Qwen2Config BaseConfig(bool tied) {
  return testing::SmallQwen2Config({kVocab, kC, kF, kH, kKv, kD, kLayers}, tied);
}

StudentConfig StudentConfigFor(Arch arch) {
  return testing::SmallStudentConfig(arch == Arch::kRwkv6 ? StudentArch::kRwkv6 : StudentArch::kRwkv7,
                                     BaseConfig(arch != Arch::kRwkv6));
}

using testing::RandomizeDecoderParams;
using testing::RandomizeTeacherAttention;

// A model under test: its parameters (all trainable unless `frozen`) and the production
// DecoderModel built over them.
struct Model {
  Arch arch = Arch::kQwen2;
  Qwen2Config base;
  StudentConfig student;  // arch != kQwen2
  std::unique_ptr<ParamSet> params;
  std::unique_ptr<DecoderModel> model;
};

Model MakeModel(Arch arch, std::uint64_t seed, bool frozen) {
  testing::Rng rng(seed);
  Model m;
  m.arch = arch;
  auto params = std::make_unique<ParamSet>();
  if (arch == Arch::kQwen2) {
    m.base = BaseConfig(true);
    DeclareParams(Qwen2ParamSpecs(m.base), *params);
    RandomizeDecoderParams(m.base, *params, rng);
    RandomizeTeacherAttention(m.base, *params, rng);
  } else {
    m.student = StudentConfigFor(arch);
    m.base = m.student.base;
    DeclareParams(StudentParamSpecs(m.student), *params);
    RandomizeDecoderParams(m.base, *params, rng);
    for (int l = 0; l < m.base.num_hidden_layers; ++l) {
      if (arch == Arch::kRwkv6) testing::RandomizeRwkv6Params(m.student, l, *params, rng);
      else rwkv7test::RandomizeParams(m.student, l, *params, rng);
    }
  }
  if (!frozen) params->SetTrainable([](const std::string&) { return true; });
  if (arch == Arch::kQwen2) {
    Qwen2Teacher t = MakeQwen2Teacher(m.base, std::move(params));
    m.params = std::move(t.params);
    m.model = std::move(t.model);
  } else {
    // The production mixer options (GLA chunk 16 for RAD-RWKV6, recurrent DPLR for RAD-RWKV7).
    StudentModel s = MakeStudentModel(m.student, std::move(params));
    m.params = std::move(s.params);
    m.model = std::move(s.model);
  }
  return m;
}

ref::DecoderRefParams RefParamsOf(const ParamSet& params) {
  ref::DecoderRefParams out;
  for (const Param* p : params.params()) out[p->name] = testing::ToF64(p->value);
  return out;
}

std::vector<double> RefLogits(const Model& m, const ref::DecoderRefParams& p,
                              const LmBatch& batch) {
  const std::span<const std::int32_t> ids(batch.inputs.data<std::int32_t>(),
                                          static_cast<std::size_t>(batch.inputs.numel()));
  const std::int64_t B = batch.inputs.dim(0), T = batch.inputs.dim(1);
  return m.arch == Arch::kQwen2 ? ref::Qwen2ForwardRef(m.base, p, ids, B, T).logits
                                : ref::StudentForwardRef(m.student, p, ids, B, T).logits;
}

LmBatch RandomBatch(std::uint64_t seed) {
  testing::Rng rng(seed);
  LmBatch b;
  b.inputs = testing::RandomIds({kB, kT}, static_cast<std::int32_t>(kVocab), rng);
  b.targets = testing::RandomIds({kB * kT}, static_cast<std::int32_t>(kVocab), rng);
  // A few ignored positions (target -1): the CE head must average over the others only, in the
  // loss and in its gradient alike (the KL head ignores targets).
  for (std::int64_t i = 3; i < kB * kT; i += 7) b.targets.data<std::int32_t>()[i] = -1;
  return b;
}

// Entries of a tensor of n elements to check: all when n <= kSamplesPerTensor, else a sample
// drawn from `rng` (sorted).
std::vector<std::int64_t> EntriesToCheck(std::int64_t n, testing::Rng& rng) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (n > kSamplesPerTensor) {
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(static_cast<std::size_t>(kSamplesPerTensor));
    std::sort(idx.begin(), idx.end());
  }
  return idx;
}

// Tensors that cannot influence the loss, by construction of RAD-RWKV7 (pipeline/rwkv7_mixer.h):
// r_k (the mixer has no bonus term), layer 0's value-residual LoRA v0/v1/v2 (v_first is layer
// 0's own value) and, with balance_state, k_k and k_a (kappa = k / |k|, k~ = k (1 - w + a)).
bool CannotInfluenceLoss(const Model& m, const std::string& name) {
  if (m.arch != Arch::kRwkv7) return false;
  if (name.ends_with(".self_attn.r_k")) return true;
  const bool kk_ka = name.ends_with(".self_attn.k_k") || name.ends_with(".self_attn.k_a");
  if (m.student.balance_state && kk_ka) return true;
  const std::string l0 = Rwkv7MixerPrefix(0);
  return name == l0 + "v0" || name == l0 + "v1" || name == l0 + "v2";
}

class ModelGradient : public ::testing::TestWithParam<Case> {};

TEST_P(ModelGradient, LossAndEveryParameterGradientMatchTheFp64Reference) {
  const Case c = GetParam();
  const auto t0 = std::chrono::steady_clock::now();
  Model m = MakeModel(c.arch, 1000 + static_cast<std::uint64_t>(c.arch), /*frozen=*/false);
  const LmBatch batch = RandomBatch(77 + static_cast<std::uint64_t>(c.arch));
  const std::int64_t N = kB * kT;

  // The production step: forward, fused head + loss, backward; gradients of the token mean.
  double loss32 = 0.0;
  OptimizerSettings os;
  std::vector<double> teacher_logits;
  if (c.head == Head::kKl) {
    Model teacher =
        MakeModel(Arch::kQwen2, 2000 + static_cast<std::uint64_t>(c.arch), /*frozen=*/true);
    DistillTrainer kd(*m.model, *m.params, *teacher.model, os, kHeadChunk);
    loss32 = kd.Accumulate(batch, 1.0f).kl;
    teacher_logits = RefLogits(teacher, RefParamsOf(*teacher.params), batch);
  } else {
    FinetuneTrainer ft(*m.model, *m.params, os, kHeadChunk);
    loss32 = ft.Accumulate(batch, 1.0f).ce;
  }

  ref::DecoderRefParams rp = RefParamsOf(*m.params);
  const std::span<const std::int32_t> targets(batch.targets.data<std::int32_t>(),
                                              static_cast<std::size_t>(N));
  auto ref_loss = [&]() {
    const std::vector<double> z = RefLogits(m, rp, batch);
    return c.head == Head::kKl ? ref::DistillLossRef(z, teacher_logits, N, kVocab)
                               : ref::CrossEntropyLossRef(z, targets, N, kVocab);
  };
  const double loss64 = ref_loss();
  const double loss_rel = std::fabs(loss32 - loss64) / std::fabs(loss64);
  EXPECT_LE(loss_rel, kLossRelTol) << CaseName(c) << ": fp32 loss " << loss32 << ", reference "
                                   << loss64;
  if (Verbose()) {
    std::printf("%s: loss fp32 %.9g fp64 %.9g rel %.3g\n", CaseName(c).c_str(), loss32, loss64,
                loss_rel);
  }

  testing::Rng pick(4242 + static_cast<std::uint64_t>(c.arch));
  double worst_rms = 0.0, worst_elem = 0.0;
  std::string worst_rms_name, worst_elem_name;
  int tensors = 0;
  for (const Param* p : m.params->params()) {
    ++tensors;
    ASSERT_TRUE(p->grad.defined()) << p->name << " has no gradient";
    const std::vector<double> g32 = testing::ToF64(p->grad);
    std::vector<double>& values = rp.at(p->name);
    const std::vector<std::int64_t> idx = EntriesToCheck(p->value.numel(), pick);
    std::vector<double> fd, got;
    for (std::int64_t i : idx) {
      double& v = values[static_cast<std::size_t>(i)];
      const double orig = v;
      const double h = kFdStep * std::max(1.0, std::fabs(orig));
      v = orig + h;
      const double lp = ref_loss();
      v = orig - h;
      const double lm = ref_loss();
      v = orig;
      fd.push_back((lp - lm) / (2.0 * h));
      got.push_back(g32[static_cast<std::size_t>(i)]);
    }
    if (CannotInfluenceLoss(m, p->name)) {
      for (double e : fd) EXPECT_EQ(e, 0.0) << p->name << ": the reference depends on it";
      for (std::size_t i = 0; i < g32.size(); ++i)
        ASSERT_EQ(g32[i], 0.0) << CaseName(c) << ": " << p->name << "[" << i
                               << "] cannot influence the loss but has a gradient";
      if (Verbose()) std::printf("  %-52s zero gradient, as it must be\n", p->name.c_str());
      continue;
    }
    int exact_zero = 0;
    for (std::size_t k = 0; k < fd.size(); ++k) {
      if (fd[k] != 0.0) continue;
      ++exact_zero;
      EXPECT_EQ(got[k], 0.0) << CaseName(c) << ": " << p->name << "[" << idx[k]
                             << "] does not influence the reference loss but has a gradient";
    }
    const rwkv7test::Err e = rwkv7test::Measure(got, fd);
    if (e.rel_rms > worst_rms) worst_rms = e.rel_rms, worst_rms_name = p->name;
    if (e.elem > worst_elem) worst_elem = e.elem, worst_elem_name = p->name;
    if (Verbose()) {
      std::printf("  %-52s %4zu of %5lld  rel_rms %.3g  elem %.3g  rms(fd) %.3g  exact zeros %d\n",
                  p->name.c_str(), idx.size(), static_cast<long long>(p->value.numel()),
                  e.rel_rms, e.elem, rwkv7test::Rms(fd), exact_zero);
    }
    EXPECT_TRUE(rwkv7test::AllClose(got, fd, kGradTol, CaseName(c) + ": d loss / d " + p->name));
  }
  // Every tensor of the model's layout was checked (all are trainable in step 2).
  const std::size_t expected = c.arch == Arch::kQwen2 ? Qwen2ParamSpecs(m.base).size()
                                                      : StudentParamSpecs(m.student).size();
  EXPECT_EQ(static_cast<std::size_t>(tensors), expected) << CaseName(c);
  if (Verbose()) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %d tensors, worst rel_rms %.3g (%s), worst elem %.3g (%s), %.2f s\n",
                CaseName(c).c_str(), tensors, worst_rms, worst_rms_name.c_str(), worst_elem,
                worst_elem_name.c_str(), s);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ModelGradient,
    ::testing::Values(Case{Arch::kQwen2, Head::kKl}, Case{Arch::kQwen2, Head::kCe},
                      Case{Arch::kRwkv6, Head::kKl}, Case{Arch::kRwkv6, Head::kCe},
                      Case{Arch::kRwkv7, Head::kKl}, Case{Arch::kRwkv7, Head::kCe}),
    [](const ::testing::TestParamInfo<Case>& info) { return CaseName(info.param); });

}  // namespace
}  // namespace radlads
