// The LoRA path y = act(x W1) W2 (+ bias), one block and five blocks (RWKV-6 tokenshift), for
// each activation, against the fp64 reference and finite differences.
#include <gtest/gtest.h>

#include "kernels/ops/lora.h"
#include "kernels/ref/basic_ref.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads {
namespace {

using ops::LoraActivation;
using testing::AllClose;
using testing::ExpectAccumulates;
using testing::kFdTol;
using testing::NumericGrad;
using testing::RandomTensor;
using testing::Rng;
using testing::ToF64;
using testing::Tol;

// Two chained fp32 GEMMs (K = 67, then K = r) with an activation between.
constexpr Tol kLoraTolF32 = {2e-5, 2e-5, 2e-6};

constexpr LoraActivation kActs[] = {LoraActivation::kNone, LoraActivation::kTanh,
                                    LoraActivation::kSigmoid};

std::vector<double> Zeros(std::int64_t n) { return std::vector<double>(n, 0.0); }

struct LoraShape {
  std::int64_t n, in, k, r, out;
  bool bias;
};

void CheckLoraAgainstReference(const LoraShape& s, LoraActivation act, Rng& rng) {
  const std::int64_t kr = s.k * s.r;
  const Shape w2_shape = s.k == 1 ? Shape{s.r, s.out} : Shape{s.k, s.r, s.out};
  const Shape y_shape = s.k == 1 ? Shape{s.n, s.out} : Shape{s.k, s.n, s.out};
  Tensor x = RandomTensor({s.n, s.in}, rng);
  Tensor w1 = RandomTensor({s.in, kr}, rng, 0.2f), w2 = RandomTensor(w2_shape, rng, 0.3f);
  Tensor bias = s.bias ? RandomTensor({s.out}, rng) : Tensor();
  Tensor dy = RandomTensor(y_shape, rng);
  Tensor h = Tensor::Empty({s.n, kr}), y = Tensor::Empty(y_shape);
  ops::LoraForward(x, w1, w2, bias, act, h, y);

  const std::vector<double> xd = ToF64(x), w1d = ToF64(w1), w2d = ToF64(w2), gd = ToF64(dy);
  const std::vector<double> bd = s.bias ? ToF64(bias) : std::vector<double>();
  std::vector<double> ry = Zeros(y.numel());
  ref::LoraForwardRef(xd.data(), w1d.data(), w2d.data(), s.bias ? bd.data() : nullptr, s.n,
                      s.in, s.k, s.r, s.out, act, ry.data());
  EXPECT_TRUE(AllClose(y, ry, kLoraTolF32)) << "y";

  Tensor dx = Tensor::Zeros(x.shape()), dw1 = Tensor::Zeros(w1.shape());
  Tensor dw2 = Tensor::Zeros(w2.shape()), db = Tensor::Zeros({s.out});
  Tensor* db_ptr = s.bias ? &db : nullptr;
  ops::LoraBackward(x, w1, w2, act, h, dy, &dx, &dw1, &dw2, db_ptr);
  std::vector<double> rdx = Zeros(x.numel()), rdw1 = Zeros(w1.numel());
  std::vector<double> rdw2 = Zeros(w2.numel()), rdb = Zeros(s.out);
  ref::LoraBackwardRef(xd.data(), w1d.data(), w2d.data(), s.n, s.in, s.k, s.r, s.out, act,
                       gd.data(), rdx.data(), rdw1.data(), rdw2.data(),
                       s.bias ? rdb.data() : nullptr);
  EXPECT_TRUE(AllClose(dx, rdx, kLoraTolF32)) << "dx";
  EXPECT_TRUE(AllClose(dw1, rdw1, kLoraTolF32)) << "dw1";
  EXPECT_TRUE(AllClose(dw2, rdw2, kLoraTolF32)) << "dw2";
  EXPECT_TRUE(AllClose(db, rdb, kLoraTolF32)) << "dbias";
  std::vector<Tensor*> grads = {&dx, &dw1, &dw2};
  if (s.bias) grads.push_back(&db);
  ExpectAccumulates(grads,
                    [&] { ops::LoraBackward(x, w1, w2, act, h, dy, &dx, &dw1, &dw2, db_ptr); });
  // Only dw2 requested: the dz GEMMs are skipped, dw2 is unchanged.
  Tensor only_dw2 = Tensor::Zeros(w2.shape());
  ops::LoraBackward(x, w1, w2, act, h, dy, nullptr, nullptr, &only_dw2, nullptr);
  EXPECT_TRUE(AllClose(only_dw2, rdw2, kLoraTolF32)) << "dw2 alone";
}

TEST(Lora, OneBlockWithBiasMatchesReferenceForEachActivation) {
  Rng rng(1001);
  for (LoraActivation act : kActs) {
    SCOPED_TRACE(static_cast<int>(act));
    CheckLoraAgainstReference({37, 67, 1, 5, 29, true}, act, rng);
  }
}

TEST(Lora, FiveBlocksTokenshiftMatchesReferenceForEachActivation) {
  Rng rng(1002);
  for (LoraActivation act : kActs) {
    SCOPED_TRACE(static_cast<int>(act));
    CheckLoraAgainstReference({37, 67, 5, 3, 67, false}, act, rng);
  }
}

TEST(Lora, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(1003);
  for (LoraActivation act : kActs) {
    for (const auto& blocks_bias : {std::pair<std::int64_t, bool>{1, true}, {2, false}}) {
      SCOPED_TRACE(static_cast<int>(act));
      const std::int64_t k = blocks_bias.first;  // plain locals: lambdas capture them below
      const bool with_bias = blocks_bias.second;
      const std::int64_t n = 3, in = 4, r = 2, out = 3;
      std::vector<double> x = ToF64(RandomTensor({n, in}, rng));
      std::vector<double> w1 = ToF64(RandomTensor({in, k * r}, rng, 0.5f));
      std::vector<double> w2 = ToF64(RandomTensor({k, r, out}, rng, 0.5f));
      std::vector<double> b = ToF64(RandomTensor({out}, rng));
      std::vector<double> g = ToF64(RandomTensor({k, n, out}, rng));
      const double* bp = with_bias ? b.data() : nullptr;
      auto loss = [&] {
        std::vector<double> y = Zeros(k * n * out);
        ref::LoraForwardRef(x.data(), w1.data(), w2.data(), with_bias ? b.data() : nullptr, n,
                            in, k, r, out, act, y.data());
        return testing::Dot(y, g);
      };
      std::vector<double> dx = Zeros(n * in), dw1 = Zeros(in * k * r);
      std::vector<double> dw2 = Zeros(k * r * out), db = Zeros(out);
      ref::LoraBackwardRef(x.data(), w1.data(), w2.data(), n, in, k, r, out, act, g.data(),
                           dx.data(), dw1.data(), dw2.data(), bp != nullptr ? db.data() : nullptr);
      EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
      EXPECT_TRUE(AllClose(dw1, NumericGrad(&w1, loss), kFdTol));
      EXPECT_TRUE(AllClose(dw2, NumericGrad(&w2, loss), kFdTol));
      if (with_bias) {
        EXPECT_TRUE(AllClose(db, NumericGrad(&b, loss), kFdTol));
      }
    }
  }
}

}  // namespace
}  // namespace radlads
