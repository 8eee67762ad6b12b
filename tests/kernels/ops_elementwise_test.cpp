// The elementwise helpers (add, add-scaled, scale, mul with row broadcast, lerp, token shift,
// column sums) against their fp64 references and finite differences.
#include <gtest/gtest.h>

#include "kernels/ops/elementwise.h"
#include "kernels/ref/basic_ref.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::ExpectAccumulates;
using testing::kFdTol;
using testing::NumericGrad;
using testing::RandomTensor;
using testing::Rng;
using testing::ToF64;
using testing::Tol;

constexpr Tol kElemTolF32 = {1e-6, 3e-7, 3e-7};    // a few fp32 roundings of O(1) terms
constexpr Tol kColSumTolF32 = {1e-6, 1e-6, 3e-7};  // fp64 column sums rounded once to fp32

std::vector<double> Zeros(std::int64_t n) { return std::vector<double>(n, 0.0); }

TEST(Elementwise, AddScaleAndAddScaledMatchReference) {
  Rng rng(401);
  const std::int64_t n = 37, c = 67;
  Tensor a = RandomTensor({n, c}, rng), b = RandomTensor({n, c}, rng), v = RandomTensor({c}, rng);
  const std::vector<double> ad = ToF64(a), bd = ToF64(b), vd = ToF64(v);
  Tensor y = Tensor::Empty({n, c});
  std::vector<double> ref = Zeros(n * c);

  ops::Add(a, b, y);
  for (std::int64_t i = 0; i < n * c; ++i) ref[i] = ad[i] + bd[i];
  EXPECT_TRUE(AllClose(y, ref, kElemTolF32)) << "Add";
  ops::Add(a, v, y);
  for (std::int64_t i = 0; i < n * c; ++i) ref[i] = ad[i] + vd[i % c];
  EXPECT_TRUE(AllClose(y, ref, kElemTolF32)) << "Add broadcast";
  ops::Scale(a, -0.37f, y);
  for (std::int64_t i = 0; i < n * c; ++i) ref[i] = static_cast<double>(-0.37f) * ad[i];
  EXPECT_TRUE(AllClose(y, ref, kElemTolF32)) << "Scale";
  Tensor acc = a.Clone();
  ops::AddScaled(acc, 2.5f, b, acc);  // in place: acc += 2.5 b
  for (std::int64_t i = 0; i < n * c; ++i) ref[i] = ad[i] + 2.5 * bd[i];
  EXPECT_TRUE(AllClose(acc, ref, kElemTolF32)) << "AddScaled in place";
}

TEST(Elementwise, MulAndBackwardMatchReferenceWithAndWithoutBroadcast) {
  Rng rng(402);
  const std::int64_t n = 37, c = 67;
  Tensor a = RandomTensor({n, c}, rng), dy = RandomTensor({n, c}, rng);
  for (bool bcast : {false, true}) {
    Tensor b = bcast ? RandomTensor({c}, rng) : RandomTensor({n, c}, rng);
    Tensor y = Tensor::Empty({n, c});
    ops::Mul(a, b, y);
    std::vector<double> ref = Zeros(n * c);
    ref::MulForwardRef(ToF64(a).data(), ToF64(b).data(), n, c, bcast, ref.data());
    EXPECT_TRUE(AllClose(y, ref, kElemTolF32)) << "bcast " << bcast;

    Tensor da = Tensor::Zeros({n, c}), db = Tensor::Zeros(b.shape());
    ops::MulBackward(a, b, dy, &da, &db);
    std::vector<double> rda = Zeros(n * c), rdb = Zeros(b.numel());
    ref::MulBackwardRef(ToF64(a).data(), ToF64(b).data(), ToF64(dy).data(), n, c, bcast,
                        rda.data(), rdb.data());
    EXPECT_TRUE(AllClose(da, rda, kElemTolF32)) << "bcast " << bcast;
    EXPECT_TRUE(AllClose(db, rdb, kColSumTolF32)) << "bcast " << bcast;
    ExpectAccumulates({&da, &db}, [&] { ops::MulBackward(a, b, dy, &da, &db); });
  }
}

TEST(Elementwise, MulReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(403);
  const std::int64_t n = 3, c = 4;
  std::vector<double> a = ToF64(RandomTensor({n, c}, rng)), b = ToF64(RandomTensor({c}, rng));
  std::vector<double> g = ToF64(RandomTensor({n, c}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(n * c);
    ref::MulForwardRef(a.data(), b.data(), n, c, true, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> da = Zeros(n * c), db = Zeros(c);
  ref::MulBackwardRef(a.data(), b.data(), g.data(), n, c, true, da.data(), db.data());
  EXPECT_TRUE(AllClose(da, NumericGrad(&a, loss), kFdTol));
  EXPECT_TRUE(AllClose(db, NumericGrad(&b, loss), kFdTol));
}

TEST(Elementwise, LerpMatchesReferenceWithAndWithoutOffsets) {
  Rng rng(404);
  const std::int64_t n = 37, c = 67;
  Tensor x = RandomTensor({n, c}, rng), d = RandomTensor({n, c}, rng);
  Tensor mu = RandomTensor({c}, rng), m = RandomTensor({n, c}, rng);
  Tensor dy = RandomTensor({n, c}, rng);
  for (bool with_m : {true, false}) {
    const Tensor mm = with_m ? m : Tensor();
    const std::vector<double> md = ToF64(m);
    const double* mp = with_m ? md.data() : nullptr;
    Tensor y = Tensor::Empty({n, c});
    ops::LerpForward(x, d, mu, mm, y);
    std::vector<double> ref = Zeros(n * c);
    ref::LerpForwardRef(ToF64(x).data(), ToF64(d).data(), ToF64(mu).data(), mp, n, c,
                        ref.data());
    EXPECT_TRUE(AllClose(y, ref, kElemTolF32)) << "with m " << with_m;

    Tensor dx = Tensor::Zeros({n, c}), dd = Tensor::Zeros({n, c}), dmu = Tensor::Zeros({c});
    Tensor dm = Tensor::Zeros({n, c});
    Tensor* dm_ptr = with_m ? &dm : nullptr;
    ops::LerpBackward(d, mu, mm, dy, &dx, &dd, &dmu, dm_ptr);
    std::vector<double> rdx = Zeros(n * c), rdd = Zeros(n * c), rdmu = Zeros(c);
    std::vector<double> rdm = Zeros(n * c);
    ref::LerpBackwardRef(ToF64(d).data(), ToF64(mu).data(), mp, ToF64(dy).data(), n, c,
                         rdx.data(), rdd.data(), rdmu.data(), with_m ? rdm.data() : nullptr);
    EXPECT_TRUE(AllClose(dx, rdx, kElemTolF32));
    EXPECT_TRUE(AllClose(dd, rdd, kElemTolF32));
    EXPECT_TRUE(AllClose(dmu, rdmu, kColSumTolF32));
    EXPECT_TRUE(AllClose(dm, rdm, kElemTolF32));
    std::vector<Tensor*> grads = {&dx, &dd, &dmu};
    if (with_m) grads.push_back(&dm);
    ExpectAccumulates(grads, [&] { ops::LerpBackward(d, mu, mm, dy, &dx, &dd, &dmu, dm_ptr); });
  }
}

TEST(Elementwise, LerpReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(405);
  const std::int64_t n = 3, c = 4;
  std::vector<double> x = ToF64(RandomTensor({n, c}, rng)), d = ToF64(RandomTensor({n, c}, rng));
  std::vector<double> mu = ToF64(RandomTensor({c}, rng)), m = ToF64(RandomTensor({n, c}, rng));
  std::vector<double> g = ToF64(RandomTensor({n, c}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(n * c);
    ref::LerpForwardRef(x.data(), d.data(), mu.data(), m.data(), n, c, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(n * c), dd = Zeros(n * c), dmu = Zeros(c), dm = Zeros(n * c);
  ref::LerpBackwardRef(d.data(), mu.data(), m.data(), g.data(), n, c, dx.data(), dd.data(),
                       dmu.data(), dm.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
  EXPECT_TRUE(AllClose(dd, NumericGrad(&d, loss), kFdTol));
  EXPECT_TRUE(AllClose(dmu, NumericGrad(&mu, loss), kFdTol));
  EXPECT_TRUE(AllClose(dm, NumericGrad(&m, loss), kFdTol));
}

TEST(Elementwise, TokenShiftDeltaMatchesReferenceAndZeroesTheFirstPrevious) {
  Rng rng(406);
  const std::int64_t b = 3, t = 7, c = 67;
  Tensor x = RandomTensor({b, t, c}, rng), g = RandomTensor({b, t, c}, rng);
  Tensor delta = Tensor::Empty({b, t, c});
  ops::TokenShiftDeltaForward(x, delta);
  std::vector<double> ref = Zeros(b * t * c);
  ref::TokenShiftDeltaForwardRef(ToF64(x).data(), b, t, c, ref.data());
  EXPECT_TRUE(AllClose(delta, ref, kElemTolF32));
  EXPECT_EQ(delta.f32()[t * c + 5], -x.f32()[t * c + 5]) << "batch 1, t = 0: previous is 0";

  Tensor dx = Tensor::Zeros({b, t, c});
  ops::TokenShiftDeltaBackward(g, dx);
  std::vector<double> rdx = Zeros(b * t * c);
  ref::TokenShiftDeltaBackwardRef(ToF64(g).data(), b, t, c, rdx.data());
  EXPECT_TRUE(AllClose(dx, rdx, kElemTolF32));
  ExpectAccumulates({&dx}, [&] { ops::TokenShiftDeltaBackward(g, dx); });
}

TEST(Elementwise, TokenShiftReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(407);
  const std::int64_t b = 2, t = 3, c = 2;
  std::vector<double> x = ToF64(RandomTensor({b, t, c}, rng));
  std::vector<double> g = ToF64(RandomTensor({b, t, c}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(b * t * c);
    ref::TokenShiftDeltaForwardRef(x.data(), b, t, c, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(b * t * c);
  ref::TokenShiftDeltaBackwardRef(g.data(), b, t, c, dx.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
}

TEST(Elementwise, SumRowsAccumulatesColumnSums) {
  Rng rng(408);
  const std::int64_t n = 1001, c = 67;
  Tensor x = RandomTensor({n, c}, rng);
  Tensor out = RandomTensor({c}, rng);
  std::vector<double> ref = ToF64(out);
  const std::vector<double> xd = ToF64(x);
  for (std::int64_t i = 0; i < n * c; ++i) ref[i % c] += xd[i];
  ops::SumRows(x, out);
  EXPECT_TRUE(AllClose(out, ref, kColSumTolF32));
}

}  // namespace
}  // namespace radlads
