// CPU ops against their fp64 references: embedding, linear, GQA expansion, the elementwise
// helpers, and run-to-run determinism. Every backward is checked three ways: the fp64
// reference against central finite differences, the fp32 op against the fp64 reference, and
// the accumulate convention (two calls give twice the gradient).
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"
#include "kernels/ops/embedding.h"
#include "kernels/ops/gqa.h"
#include "kernels/ops/groupnorm.h"
#include "kernels/ops/linear.h"
#include "kernels/ops/rmsnorm.h"
#include "kernels/ref/basic_ref.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::ExpectAccumulates;
using testing::kFdTol;
using testing::NumericGrad;
using testing::RandomIds;
using testing::RandomTensor;
using testing::Rng;
using testing::ToF64;
using testing::Tol;

constexpr Tol kExact = {0, 0, 0};                   // copies
constexpr Tol kSumTolF32 = {1e-6, 1e-6, 3e-7};      // fp32 sums of a few terms
constexpr Tol kLinearTolF32 = {2e-5, 1e-5, 1e-6};   // fp32 GEMM, K <= 67, N(0,1) inputs

std::vector<double> Zeros(std::int64_t n) { return std::vector<double>(n, 0.0); }

// --- Embedding --------------------------------------------------------------------------------

TEST(Embedding, ForwardCopiesRowsFromF32AndBf16Tables) {
  Rng rng(101);
  const std::int64_t b = 3, t = 13, vocab = 29, c = 67;
  Tensor ids = RandomIds({b, t}, vocab, rng);
  Tensor table = RandomTensor({vocab, c}, rng);
  Tensor out = Tensor::Empty({b, t, c});
  std::vector<double> ref = Zeros(b * t * c);
  for (Tensor tab : {table, table.ToDType(DType::kBF16)}) {
    ops::EmbeddingForward(ids, tab, out);
    ref::EmbeddingForwardRef(ids.data<std::int32_t>(), b * t, ToF64(tab.ToF32()).data(), c,
                             ref.data());
    EXPECT_TRUE(AllClose(out, ref, kExact)) << DTypeName(tab.dtype());
  }
}

TEST(Embedding, BackwardMatchesReferenceWithRepeatedIds) {
  Rng rng(102);
  const std::int64_t n = 37, vocab = 5, c = 67;  // 37 tokens over 5 ids: many repeats
  Tensor ids = RandomIds({n}, vocab, rng);
  Tensor dout = RandomTensor({n, c}, rng);
  Tensor dtable = Tensor::Zeros({vocab, c});
  ops::EmbeddingBackward(ids, dout, dtable);
  std::vector<double> ref = Zeros(vocab * c);
  ref::EmbeddingBackwardRef(ids.data<std::int32_t>(), n, ToF64(dout).data(), c, ref.data());
  EXPECT_TRUE(AllClose(dtable, ref, kSumTolF32));
  ExpectAccumulates({&dtable}, [&] { ops::EmbeddingBackward(ids, dout, dtable); });
}

TEST(Embedding, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(103);
  const std::int64_t n = 6, vocab = 4, c = 3;
  Tensor ids = RandomIds({n}, vocab, rng);
  const auto* idp = ids.data<std::int32_t>();
  std::vector<double> table = ToF64(RandomTensor({vocab, c}, rng));
  std::vector<double> g = ToF64(RandomTensor({n, c}, rng));
  auto loss = [&] {
    std::vector<double> out = Zeros(n * c);
    ref::EmbeddingForwardRef(idp, n, table.data(), c, out.data());
    return testing::Dot(out, g);
  };
  std::vector<double> dtable = Zeros(vocab * c);
  ref::EmbeddingBackwardRef(idp, n, g.data(), c, dtable.data());
  EXPECT_TRUE(AllClose(dtable, NumericGrad(&table, loss), kFdTol));
}

TEST(EmbeddingDeathTest, RejectsOutOfRangeIdsByValue) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Tensor table = Tensor::Zeros({10, 4});
  Tensor out = Tensor::Empty({5, 4});
  Tensor ids = Tensor::Zeros({5}, DType::kI32);
  ids.data<std::int32_t>()[3] = 10;
  EXPECT_DEATH(ops::EmbeddingForward(ids, table, out), "token id 10 at position 3");
  ids.data<std::int32_t>()[3] = -1;
  EXPECT_DEATH(ops::EmbeddingBackward(ids, out, table), "token id -1 at position 3");
}

// --- Linear -----------------------------------------------------------------------------------

TEST(Linear, ForwardMatchesReferenceWithAndWithoutBias) {
  Rng rng(201);
  const std::int64_t n = 37, in = 67, out = 29;
  Tensor x = RandomTensor({1, n, in}, rng);  // [B, T, in] works as [N, in]
  Tensor w = RandomTensor({out, in}, rng);
  Tensor b = RandomTensor({out}, rng);
  Tensor y = Tensor::Empty({1, n, out});
  for (bool with_bias : {true, false}) {
    ops::LinearForward(x, w, with_bias ? b : Tensor(), y);
    std::vector<double> ref = Zeros(n * out);
    std::vector<double> bd = ToF64(b);
    ref::LinearForwardRef(ToF64(x).data(), ToF64(w).data(), with_bias ? bd.data() : nullptr, n,
                          in, out, ref.data());
    EXPECT_TRUE(AllClose(y, ref, kLinearTolF32)) << "bias " << with_bias;
  }
}

TEST(Linear, BackwardMatchesReferenceAndAccumulates) {
  Rng rng(202);
  const std::int64_t n = 37, in = 67, out = 29;
  Tensor x = RandomTensor({n, in}, rng), w = RandomTensor({out, in}, rng);
  Tensor dy = RandomTensor({n, out}, rng);
  Tensor dx = Tensor::Zeros({n, in}), dw = Tensor::Zeros({out, in}), db = Tensor::Zeros({out});
  ops::LinearBackward(x, w, dy, &dx, &dw, &db);
  std::vector<double> rdx = Zeros(n * in), rdw = Zeros(out * in), rdb = Zeros(out);
  ref::LinearBackwardRef(ToF64(x).data(), ToF64(w).data(), ToF64(dy).data(), n, in, out,
                         rdx.data(), rdw.data(), rdb.data());
  EXPECT_TRUE(AllClose(dx, rdx, kLinearTolF32));
  EXPECT_TRUE(AllClose(dw, rdw, kLinearTolF32));
  EXPECT_TRUE(AllClose(db, rdb, kLinearTolF32));
  ExpectAccumulates({&dx, &dw, &db}, [&] { ops::LinearBackward(x, w, dy, &dx, &dw, &db); });
  // A null pointer skips that gradient only.
  Tensor only_db = Tensor::Zeros({out});
  ops::LinearBackward(x, w, dy, nullptr, nullptr, &only_db);
  EXPECT_TRUE(AllClose(only_db, rdb, kLinearTolF32));
}

TEST(Linear, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(203);
  const std::int64_t n = 3, in = 5, out = 4;
  std::vector<double> x = ToF64(RandomTensor({n, in}, rng));
  std::vector<double> w = ToF64(RandomTensor({out, in}, rng));
  std::vector<double> b = ToF64(RandomTensor({out}, rng)), g = ToF64(RandomTensor({n, out}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(n * out);
    ref::LinearForwardRef(x.data(), w.data(), b.data(), n, in, out, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(n * in), dw = Zeros(out * in), db = Zeros(out);
  ref::LinearBackwardRef(x.data(), w.data(), g.data(), n, in, out, dx.data(), dw.data(),
                         db.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
  EXPECT_TRUE(AllClose(dw, NumericGrad(&w, loss), kFdTol));
  EXPECT_TRUE(AllClose(db, NumericGrad(&b, loss), kFdTol));
}

// --- GQA --------------------------------------------------------------------------------------

TEST(Gqa, ExpandAndReduceMatchRepeatKvForSeveralGroupSizes) {
  Rng rng(301);
  const std::int64_t b = 2, t = 5, d = 10;
  for (auto [hkv, h] : {std::pair<std::int64_t, std::int64_t>{3, 3}, {2, 14}, {1, 7}, {4, 12}}) {
    Tensor x = RandomTensor({b, t, hkv, d}, rng);
    Tensor y = Tensor::Empty({b, t, h, d});
    ops::GqaExpandForward(x, y);
    std::vector<double> ref = Zeros(b * t * h * d);
    ref::GqaExpandForwardRef(ToF64(x).data(), b * t, hkv, h, d, ref.data());
    EXPECT_TRUE(AllClose(y, ref, kExact)) << "hkv " << hkv << " h " << h;
    // transformers' repeat_kv: q head j reads kv head j / (h / hkv).
    const std::int64_t last = h - 1, kv = last / (h / hkv);
    EXPECT_EQ(std::memcmp(y.f32() + last * d, x.f32() + kv * d, d * sizeof(float)), 0);

    Tensor dy = RandomTensor({b, t, h, d}, rng);
    Tensor dx = Tensor::Zeros({b, t, hkv, d});
    ops::GqaExpandBackward(dy, dx);
    std::vector<double> rdx = Zeros(b * t * hkv * d);
    ref::GqaExpandBackwardRef(ToF64(dy).data(), b * t, hkv, h, d, rdx.data());
    EXPECT_TRUE(AllClose(dx, rdx, kSumTolF32)) << "hkv " << hkv << " h " << h;
    ExpectAccumulates({&dx}, [&] { ops::GqaExpandBackward(dy, dx); });
  }
}

TEST(Gqa, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(302);
  const std::int64_t rows = 2, hkv = 2, h = 6, d = 3;
  std::vector<double> x = ToF64(RandomTensor({rows, hkv, d}, rng));
  std::vector<double> g = ToF64(RandomTensor({rows, h, d}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(rows * h * d);
    ref::GqaExpandForwardRef(x.data(), rows, hkv, h, d, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(rows * hkv * d);
  ref::GqaExpandBackwardRef(g.data(), rows, hkv, h, d, dx.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
}

// --- Determinism ------------------------------------------------------------------------------

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Runs RMSNorm, GroupNorm and embedding forward+backward on inputs big enough to split over
// threads; returns every output.
std::vector<Tensor> RunNormsAndEmbedding() {
  Rng rng(901);
  const std::int64_t n = 2053, c = 96, vocab = 50;
  Tensor x = RandomTensor({n, c}, rng), w = RandomTensor({c}, rng), b = RandomTensor({c}, rng);
  Tensor dy = RandomTensor({n, c}, rng);
  Tensor ids = RandomIds({n}, vocab, rng);
  Tensor y = Tensor::Empty({n, c}), rstd = Tensor::Empty({n});
  Tensor dx = Tensor::Zeros({n, c}), dw = Tensor::Zeros({c});
  ops::RmsNormForward(x, w, 1e-6f, y, rstd);
  ops::RmsNormBackward(x, w, rstd, dy, &dx, &dw);
  Tensor gy = Tensor::Empty({n, c}), mean = Tensor::Empty({n, 8}), grstd = Tensor::Empty({n, 8});
  Tensor gdx = Tensor::Zeros({n, c}), gdw = Tensor::Zeros({c}), gdb = Tensor::Zeros({c});
  ops::GroupNormForward(x, w, b, 8, 12e-5f, gy, mean, grstd);
  ops::GroupNormBackward(x, w, mean, grstd, dy, &gdx, &gdw, &gdb);
  Tensor dtable = Tensor::Zeros({vocab, c});
  ops::EmbeddingBackward(ids, dy, dtable);
  return {y, rstd, dx, dw, gy, mean, grstd, gdx, gdw, gdb, dtable};
}

TEST(Determinism, BitwiseRepeatableWithTwoThreadsAndIndependentOfThreadCount) {
  const int saved = cpu::NumThreads();
  cpu::SetNumThreads(2);
  const std::vector<Tensor> first = RunNormsAndEmbedding();
  const std::vector<Tensor> second = RunNormsAndEmbedding();
  cpu::SetNumThreads(1);
  const std::vector<Tensor> single = RunNormsAndEmbedding();
  cpu::SetNumThreads(saved);
  for (std::size_t k = 0; k < first.size(); ++k) {
    EXPECT_TRUE(SameBits(first[k], second[k])) << "output #" << k << " differs run to run";
    EXPECT_TRUE(SameBits(first[k], single[k])) << "output #" << k << " depends on threads";
  }
}

}  // namespace
}  // namespace radlads
