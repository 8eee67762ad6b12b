// The vocabulary-parallel fused LM head + losses (kernels/ops/head_loss_parallel.h), run by
// ctest under mpiexec (2 ranks; any rank count works, e.g. mpiexec -n 3): every rank builds the
// same full problem, keeps its slice of the heads, and checks the global results, the complete
// dx and its dW slice against the fp64 references (kernels/ref/loss_ref.h); that every rank got
// the same bits; that a rerun gives the same bits; forward-only calls; the one-rank split
// against FusedKl / FusedCrossEntropy; and the first-index argmax across ranks on exact ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/collectives.h"
#include "kernels/ops/head_loss.h"
#include "kernels/ops/head_loss_parallel.h"
#include "kernels/ref/loss_ref.h"
#include "tests/kernels/loss_test_util.h"
#include "worker/mpi_communicator.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::RandomTensor;
using testing::Rng;
using testing::ScalarClose;
using testing::ToDouble;
using testing::Tol;

// ---- named tolerances (fp32 split head vs fp64 reference) -----------------------------------
// Logits are exact here (inputs on a 1/16 grid, see Quantize), so the errors are those of the
// fp32 softmax and of the dx partials summed over the ranks. Measured (1 to 5 ranks): loss rel
// err <= 3.2e-8, dx max |err| 1.4e-7 rel RMS 3e-8, dW max |err| 4.4e-7 rel RMS 7e-8 (at most
// 0.04 of the element-wise bound).
constexpr double kHeadLossTolRel = 1e-6;
constexpr double kHeadLossTolAbs = 1e-5;
constexpr Tol kHeadGradTolF32{1e-6, 1e-5, 2e-6};
// The one-rank split against FusedKl / FusedCrossEntropy: the same math with a different loop
// structure, fp32 accuracy (measured: identical bits on this problem, which is not promised).
constexpr double kSplitLossTolRel = 1e-6;
constexpr Tol kSplitGradTolF32{1e-6, 1e-5, 2e-6};

constexpr std::int64_t kN = 13, kCs = 24, kCt = 16, kV = 40;
// Exact ties across ranks: student rows kTieA and kTieC are equal, teacher rows kTieB and kTieC
// are equal; kTieC is in another slice than kTieA and kTieB for every rank count >= 2.
constexpr std::int64_t kTieA = 3, kTieB = 11, kTieC = kV - 3;
// Rows whose maxima are the ties: student {A, C}, teacher A alone (agree: the first index A);
// student B alone, teacher {B, C} (agree: B); student {A, C} with CE target C (not correct).
constexpr std::int64_t kRowTieStudent = 1, kRowTieTeacher = 2, kRowTieTargetLast = 5;

std::span<const std::int32_t> Ids(const Tensor& t) {
  return std::span<const std::int32_t>(t.data<std::int32_t>(), static_cast<std::size_t>(t.numel()));
}

// Rounds to a multiple of 1/16: with |x|, |w| small, every logit is then exact in fp32 whatever
// the GEMM's summation order, so ties are exact ties on every rank and in the reference.
void Quantize(Tensor& t) {
  for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::round(t.f32()[i] * 16.0f) / 16.0f;
}

// Row `r` of a [rows, c] tensor: +-1 on columns [c0, c0 + 8), 0 elsewhere (a dominant row).
void SetSpike(Tensor& w, std::int64_t r, std::int64_t c0, Rng& rng) {
  const std::int64_t c = w.dim(1);
  for (std::int64_t j = 0; j < c; ++j)
    w.f32()[r * c + j] = (j >= c0 && j < c0 + 8) ? ((rng() & 1) != 0 ? 1.0f : -1.0f) : 0.0f;
}
void CopyRow(Tensor& dst, std::int64_t rd, const Tensor& src, std::int64_t rs, float scale) {
  const std::int64_t c = dst.dim(1);
  for (std::int64_t j = 0; j < c; ++j) dst.f32()[rd * c + j] = scale * src.f32()[rs * c + j];
}

struct Problem {
  Tensor xs, ws, xt, wt, targets;  // full heads [V, C]
};

// The same problem on every rank (fixed seed).
Problem MakeProblem() {
  Rng rng(4242);
  Problem p;
  p.xs = RandomTensor(rng, {kN, kCs});
  p.ws = RandomTensor(rng, {kV, kCs}, 2.0f / std::sqrt(float(kCs)));
  p.xt = RandomTensor(rng, {kN, kCt});
  p.wt = RandomTensor(rng, {kV, kCt}, 2.0f / std::sqrt(float(kCt)));
  SetSpike(p.ws, kTieA, 0, rng);
  CopyRow(p.ws, kTieC, p.ws, kTieA, 1.0f);
  SetSpike(p.ws, kTieB, 8, rng);
  SetSpike(p.wt, kTieA, 0, rng);
  SetSpike(p.wt, kTieB, 8, rng);
  CopyRow(p.wt, kTieC, p.wt, kTieB, 1.0f);
  // x = w/2 on a spike row: logit 4 there, the others ~N(0, 0.6).
  CopyRow(p.xs, kRowTieStudent, p.ws, kTieA, 0.5f);
  CopyRow(p.xt, kRowTieStudent, p.wt, kTieA, 0.5f);
  CopyRow(p.xs, kRowTieTeacher, p.ws, kTieB, 0.5f);
  CopyRow(p.xt, kRowTieTeacher, p.wt, kTieB, 0.5f);
  CopyRow(p.xs, kRowTieTargetLast, p.ws, kTieA, 0.5f);
  for (Tensor* t : {&p.xs, &p.ws, &p.xt, &p.wt}) Quantize(*t);
  p.targets = Tensor::Empty({kN}, DType::kI32);
  std::uniform_int_distribution<std::int32_t> ud(0, static_cast<std::int32_t>(kV - 1));
  for (std::int64_t i = 0; i < kN; ++i)
    p.targets.data<std::int32_t>()[i] = i % 4 == 3 ? -1 : ud(rng);
  p.targets.data<std::int32_t>()[kRowTieStudent] = static_cast<std::int32_t>(kTieA);
  p.targets.data<std::int32_t>()[kRowTieTeacher] = static_cast<std::int32_t>(kTieB);
  p.targets.data<std::int32_t>()[kRowTieTargetLast] = static_cast<std::int32_t>(kTieC);
  return p;
}

// This rank's slice [V r / p, V (r+1) / p): uneven when p does not divide V.
struct Slice {
  std::int64_t begin, end;
};
Slice SliceOf(const Communicator& g) {
  return {kV * g.rank() / g.size(), kV * (g.rank() + 1) / g.size()};
}
Tensor RowsCopy(const Tensor& t, Slice s) { return t.Rows(s.begin, s.end).Clone(); }
std::vector<double> RowsOf(const std::vector<double>& full, Slice s, std::int64_t c) {
  return std::vector<double>(full.begin() + s.begin * c, full.begin() + s.end * c);
}

// Bytes of tensors and scalars, to compare runs and ranks bit for bit.
template <typename... T>
std::string Bits(const T&... scalars) {
  std::string b;
  ((b.append(reinterpret_cast<const char*>(&scalars), sizeof(scalars))), ...);
  return b;
}
std::string Bits(const Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.f32()),
                     static_cast<std::size_t>(t.numel()) * 4);
}
std::string KlBits(const KlResult& r) { return Bits(r.kl_sum, r.top1_agree, r.ce_sum, r.ce_count); }
std::string CeBits(const CeResult& r) { return Bits(r.loss_sum, r.count, r.correct); }

// True when every rank passed the same bytes.
bool SameOnAllRanks(Communicator& g, const std::string& bytes) {
  for (const std::string& other : g.AllGather(bytes))
    if (other != bytes) return false;
  return true;
}

struct KlRun {
  KlResult res;
  Tensor dx, dw;  // complete dx, this rank's dW slice
};

// Initial gradients from grad_seed (full [V, C] dW, sliced), identical on every rank.
KlRun RunKl(Communicator& g, const Problem& p, std::int64_t chunk, bool with_targets,
            bool with_grads, float gs, float cs) {
  const Slice s = SliceOf(g);
  Rng rng(77);
  KlRun r;
  r.dx = RandomTensor(rng, p.xs.shape());
  r.dw = RowsCopy(RandomTensor(rng, p.ws.shape()), s);
  HeadLossOptions opt;
  opt.chunk = chunk;
  opt.grad_scale = gs;
  opt.ce_grad_scale = cs;
  const HeadGrads grads = with_grads ? HeadGrads{&r.dx, &r.dw} : HeadGrads{};
  r.res =
      VocabParallelKl(p.xs, RowsCopy(p.ws, s), p.xt, RowsCopy(p.wt, s),
                      with_targets ? &p.targets : nullptr, grads, opt, VocabShard{&g, s.begin, kV});
  return r;
}

TEST(VocabParallelKl, MatchesReferenceOnEveryRankAndReruns) {
  auto world = MpiCommunicator::World();
  const Problem p = MakeProblem();
  const Slice s = SliceOf(*world);
  const float gs = 1.0f / kN, cs = 0.3f / kN;
  Rng rng(77);  // the initial gradients of RunKl
  std::vector<double> dx_ref = ToDouble(RandomTensor(rng, p.xs.shape()));
  std::vector<double> dw_ref = ToDouble(RandomTensor(rng, p.ws.shape()));
  const KlRefResult ref = FusedKlRef(ToDouble(p.xs), ToDouble(p.ws), ToDouble(p.xt), ToDouble(p.wt),
                                     kN, kCs, kCt, kV, Ids(p.targets), gs, cs, dx_ref, dw_ref);
  ASSERT_EQ(ref.ce_count, 10);
  for (std::int64_t chunk : {3, 64}) {
    SCOPED_TRACE(chunk);
    const KlRun got = RunKl(*world, p, chunk, true, true, gs, cs);
    EXPECT_TRUE(
        ScalarClose(got.res.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "kl_sum"));
    EXPECT_TRUE(
        ScalarClose(got.res.ce_sum, ref.ce_sum, kHeadLossTolAbs, kHeadLossTolRel, "ce_sum"));
    EXPECT_EQ(got.res.ce_count, ref.ce_count);
    EXPECT_EQ(got.res.top1_agree, ref.top1_agree);
    EXPECT_TRUE(AllClose(got.dx, dx_ref, kHeadGradTolF32, "dx_s (complete)"));
    EXPECT_TRUE(AllClose(got.dw, RowsOf(dw_ref, s, kCs), kHeadGradTolF32, "dW_s (slice)"));
    EXPECT_TRUE(SameOnAllRanks(*world, KlBits(got.res) + Bits(got.dx))) << "ranks disagree";

    const KlRun again = RunKl(*world, p, chunk, true, true, gs, cs);
    EXPECT_EQ(KlBits(again.res), KlBits(got.res)) << "rerun: results";
    EXPECT_EQ(Bits(again.dx), Bits(got.dx)) << "rerun: dx";
    EXPECT_EQ(Bits(again.dw), Bits(got.dw)) << "rerun: dW";

    // Forward only: the same results, gradients untouched.
    const KlRun fwd = RunKl(*world, p, chunk, true, false, gs, cs);
    EXPECT_TRUE(
        ScalarClose(fwd.res.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "fwd kl_sum"));
    EXPECT_TRUE(
        ScalarClose(fwd.res.ce_sum, ref.ce_sum, kHeadLossTolAbs, kHeadLossTolRel, "fwd ce_sum"));
    EXPECT_EQ(fwd.res.top1_agree, ref.top1_agree);
    EXPECT_EQ(fwd.res.ce_count, ref.ce_count);
    Rng rng0(77);
    EXPECT_EQ(Bits(fwd.dx), Bits(RandomTensor(rng0, p.xs.shape()))) << "forward-only wrote dx";
    EXPECT_TRUE(SameOnAllRanks(*world, KlBits(fwd.res))) << "ranks disagree (forward)";
  }
}

TEST(VocabParallelKl, WithoutTargetsMatchesReference) {
  auto world = MpiCommunicator::World();
  const Problem p = MakeProblem();
  const Slice s = SliceOf(*world);
  Rng rng(77);
  std::vector<double> dx_ref = ToDouble(RandomTensor(rng, p.xs.shape()));
  std::vector<double> dw_ref = ToDouble(RandomTensor(rng, p.ws.shape()));
  const KlRefResult ref = FusedKlRef(ToDouble(p.xs), ToDouble(p.ws), ToDouble(p.xt), ToDouble(p.wt),
                                     kN, kCs, kCt, kV, {}, 0.5, 0.0, dx_ref, dw_ref);
  const KlRun got = RunKl(*world, p, 3, false, true, 0.5f, 0.0f);
  EXPECT_TRUE(ScalarClose(got.res.kl_sum, ref.kl_sum, kHeadLossTolAbs, kHeadLossTolRel, "kl_sum"));
  EXPECT_EQ(got.res.ce_sum, 0.0);
  EXPECT_EQ(got.res.ce_count, 0);
  EXPECT_EQ(got.res.top1_agree, ref.top1_agree);
  EXPECT_TRUE(AllClose(got.dx, dx_ref, kHeadGradTolF32, "dx_s (complete)"));
  EXPECT_TRUE(AllClose(got.dw, RowsOf(dw_ref, s, kCs), kHeadGradTolF32, "dW_s (slice)"));
}

struct CeRun {
  CeResult res;
  Tensor dx, dw;
};

CeRun RunCe(Communicator& g, const Problem& p, const Tensor& targets, std::int64_t chunk,
            bool with_grads, float gs) {
  const Slice s = SliceOf(g);
  Rng rng(78);
  CeRun r;
  r.dx = RandomTensor(rng, p.xs.shape());
  r.dw = RowsCopy(RandomTensor(rng, p.ws.shape()), s);
  HeadLossOptions opt;
  opt.chunk = chunk;
  opt.grad_scale = gs;
  const HeadGrads grads = with_grads ? HeadGrads{&r.dx, &r.dw} : HeadGrads{};
  r.res = VocabParallelCrossEntropy(p.xs, RowsCopy(p.ws, s), targets, grads, opt,
                                    VocabShard{&g, s.begin, kV});
  return r;
}

TEST(VocabParallelCrossEntropy, MatchesReferenceOnEveryRankAndReruns) {
  auto world = MpiCommunicator::World();
  const Problem p = MakeProblem();
  const Slice s = SliceOf(*world);
  const float gs = 1.0f / kN;
  Rng rng(78);
  std::vector<double> dx_ref = ToDouble(RandomTensor(rng, p.xs.shape()));
  std::vector<double> dw_ref = ToDouble(RandomTensor(rng, p.ws.shape()));
  const CeRefResult ref = FusedCrossEntropyRef(ToDouble(p.xs), ToDouble(p.ws), kN, kCs, kV,
                                               Ids(p.targets), gs, dx_ref, dw_ref);
  for (std::int64_t chunk : {3, 64}) {
    SCOPED_TRACE(chunk);
    const CeRun got = RunCe(*world, p, p.targets, chunk, true, gs);
    EXPECT_TRUE(
        ScalarClose(got.res.loss_sum, ref.loss_sum, kHeadLossTolAbs, kHeadLossTolRel, "loss_sum"));
    EXPECT_EQ(got.res.count, ref.count);
    EXPECT_EQ(got.res.correct, ref.correct);
    EXPECT_TRUE(AllClose(got.dx, dx_ref, kHeadGradTolF32, "dx (complete)"));
    EXPECT_TRUE(AllClose(got.dw, RowsOf(dw_ref, s, kCs), kHeadGradTolF32, "dW (slice)"));
    EXPECT_TRUE(SameOnAllRanks(*world, CeBits(got.res) + Bits(got.dx))) << "ranks disagree";

    const CeRun again = RunCe(*world, p, p.targets, chunk, true, gs);
    EXPECT_EQ(CeBits(again.res), CeBits(got.res)) << "rerun: results";
    EXPECT_EQ(Bits(again.dx), Bits(got.dx)) << "rerun: dx";
    EXPECT_EQ(Bits(again.dw), Bits(got.dw)) << "rerun: dW";

    const CeRun fwd = RunCe(*world, p, p.targets, chunk, false, gs);
    EXPECT_TRUE(ScalarClose(fwd.res.loss_sum, ref.loss_sum, kHeadLossTolAbs, kHeadLossTolRel,
                            "fwd loss_sum"));
    EXPECT_EQ(fwd.res.count, ref.count);
    EXPECT_EQ(fwd.res.correct, ref.correct);
    Rng rng0(78);
    EXPECT_EQ(Bits(fwd.dx), Bits(RandomTensor(rng0, p.xs.shape()))) << "forward-only wrote dx";
    EXPECT_TRUE(SameOnAllRanks(*world, CeBits(fwd.res))) << "ranks disagree (forward)";
  }
}

// Only the tie rows: the counts are known by hand, and a tie broken towards the last index
// (or the highest rank) changes them.
TEST(VocabParallelHeadLoss, TiesResolveToTheFirstGlobalIndex) {
  auto world = MpiCommunicator::World();
  const Problem full = MakeProblem();
  Problem p;
  p.ws = full.ws;
  p.wt = full.wt;
  const std::vector<std::int64_t> rows = {kRowTieStudent, kRowTieTeacher, kRowTieTargetLast};
  p.xs = Tensor::Empty({3, kCs});
  p.xt = Tensor::Empty({3, kCt});
  p.targets = Tensor::Empty({3}, DType::kI32);
  for (std::int64_t i = 0; i < 3; ++i) {
    CopyRow(p.xs, i, full.xs, rows[static_cast<std::size_t>(i)], 1.0f);
    CopyRow(p.xt, i, full.xt, rows[static_cast<std::size_t>(i)], 1.0f);
    p.targets.data<std::int32_t>()[i] =
        full.targets.data<std::int32_t>()[rows[static_cast<std::size_t>(i)]];
  }
  const Slice s = SliceOf(*world);
  HeadLossOptions opt;
  opt.chunk = 2;
  const VocabShard shard{world.get(), s.begin, kV};
  const Tensor ws = RowsCopy(p.ws, s), wt = RowsCopy(p.wt, s);
  // Rows 0 and 1: student and teacher agree on the first index of their tie.
  const KlResult kl =
      VocabParallelKl(p.xs.Rows(0, 2), ws, p.xt.Rows(0, 2), wt, nullptr, {}, opt, shard);
  EXPECT_EQ(kl.top1_agree, 2);
  // Targets A (tie A/C: correct), B (unique: correct), C (tie A/C: argmax is A, not correct).
  const CeResult ce = VocabParallelCrossEntropy(p.xs, ws, p.targets, {}, opt, shard);
  EXPECT_EQ(ce.count, 3);
  EXPECT_EQ(ce.correct, 2);
  const KlRefResult kl_ref =
      FusedKlRef(ToDouble(p.xs.Rows(0, 2)), ToDouble(p.ws), ToDouble(p.xt.Rows(0, 2)),
                 ToDouble(p.wt), 2, kCs, kCt, kV, {}, 0, 0, {}, {});
  EXPECT_EQ(kl_ref.top1_agree, 2) << "the problem no longer has the intended ties";
}

// One rank holding the whole head (SelfCommunicator) is FusedKl / FusedCrossEntropy.
TEST(VocabParallelHeadLoss, OneRankMatchesTheUnsplitOps) {
  const Problem p = MakeProblem();
  SelfCommunicator self;
  const VocabShard shard{&self, 0, kV};
  HeadLossOptions opt;
  opt.chunk = 4;
  opt.grad_scale = 0.25f;
  opt.ce_grad_scale = 0.125f;
  Tensor dx1 = Tensor::Zeros(p.xs.shape()), dw1 = Tensor::Zeros(p.ws.shape());
  Tensor dx2 = Tensor::Zeros(p.xs.shape()), dw2 = Tensor::Zeros(p.ws.shape());
  const KlResult a = VocabParallelKl(p.xs, p.ws, p.xt, p.wt, &p.targets, {&dx1, &dw1}, opt, shard);
  const KlResult b = FusedKl(p.xs, p.ws, p.xt, p.wt, &p.targets, {&dx2, &dw2}, opt);
  EXPECT_TRUE(ScalarClose(a.kl_sum, b.kl_sum, 0, kSplitLossTolRel, "kl_sum"));
  EXPECT_TRUE(ScalarClose(a.ce_sum, b.ce_sum, 0, kSplitLossTolRel, "ce_sum"));
  EXPECT_EQ(a.top1_agree, b.top1_agree);
  EXPECT_EQ(a.ce_count, b.ce_count);
  EXPECT_TRUE(AllClose(dx1, ToDouble(dx2), kSplitGradTolF32, "KL dx vs FusedKl"));
  EXPECT_TRUE(AllClose(dw1, ToDouble(dw2), kSplitGradTolF32, "KL dW vs FusedKl"));

  Tensor dx3 = Tensor::Zeros(p.xs.shape()), dw3 = Tensor::Zeros(p.ws.shape());
  Tensor dx4 = Tensor::Zeros(p.xs.shape()), dw4 = Tensor::Zeros(p.ws.shape());
  const CeResult c = VocabParallelCrossEntropy(p.xs, p.ws, p.targets, {&dx3, &dw3}, opt, shard);
  const CeResult d = FusedCrossEntropy(p.xs, p.ws, p.targets, {&dx4, &dw4}, opt);
  EXPECT_TRUE(ScalarClose(c.loss_sum, d.loss_sum, 0, kSplitLossTolRel, "loss_sum"));
  EXPECT_EQ(c.count, d.count);
  EXPECT_EQ(c.correct, d.correct);
  EXPECT_TRUE(AllClose(dx3, ToDouble(dx4), kSplitGradTolF32, "CE dx vs FusedCrossEntropy"));
  EXPECT_TRUE(AllClose(dw3, ToDouble(dw4), kSplitGradTolF32, "CE dW vs FusedCrossEntropy"));
}

}  // namespace
}  // namespace radlads
