// RMSNorm and per-head GroupNorm against their fp64 references, finite differences, and the
// edge cases: eps on near-zero rows, constant groups.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops/groupnorm.h"
#include "kernels/ops/rmsnorm.h"
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

// Forward: fp64 statistics, then a couple of fp32 products per element.
constexpr Tol kNormTolF32 = {1e-6, 1e-6, 5e-7};
// Backward: a difference of two O(1) terms per element, and fp64 column sums for dw/db.
constexpr Tol kNormGradTolF32 = {5e-6, 1e-5, 1e-6};

std::vector<double> Zeros(std::int64_t n) { return std::vector<double>(n, 0.0); }

// --- RMSNorm ----------------------------------------------------------------------------------

struct RmsCase {
  Tensor x, w, dy;
  float eps;
};

void CheckRmsNormAgainstReference(const RmsCase& k) {
  const std::int64_t c = k.w.numel(), n = k.x.numel() / c;
  Tensor y = Tensor::Empty(k.x.shape()), rstd = Tensor::Empty({n});
  ops::RmsNormForward(k.x, k.w, k.eps, y, rstd);
  const std::vector<double> xd = ToF64(k.x), wd = ToF64(k.w), gd = ToF64(k.dy);
  std::vector<double> ry = Zeros(n * c), rr = Zeros(n);
  ref::RmsNormForwardRef(xd.data(), wd.data(), n, c, k.eps, ry.data(), rr.data());
  EXPECT_TRUE(AllClose(y, ry, kNormTolF32)) << "y";
  EXPECT_TRUE(AllClose(rstd, rr, kNormTolF32)) << "rstd";

  Tensor dx = Tensor::Zeros(k.x.shape()), dw = Tensor::Zeros({c});
  ops::RmsNormBackward(k.x, k.w, rstd, k.dy, &dx, &dw);
  std::vector<double> rdx = Zeros(n * c), rdw = Zeros(c);
  ref::RmsNormBackwardRef(xd.data(), wd.data(), n, c, k.eps, gd.data(), rdx.data(), rdw.data());
  // Gradients scale with rstd (up to 1/sqrt(eps) on near-zero rows): compare relative to it.
  double max_rstd = 0;
  for (double r : rr) max_rstd = std::fmax(max_rstd, r);
  Tol tol = kNormGradTolF32;
  tol.atol *= max_rstd;
  EXPECT_TRUE(AllClose(dx, rdx, tol)) << "dx";
  EXPECT_TRUE(AllClose(dw, rdw, kNormGradTolF32)) << "dw";
  ExpectAccumulates({&dx, &dw}, [&] { ops::RmsNormBackward(k.x, k.w, rstd, k.dy, &dx, &dw); });
  Tensor only_dw = Tensor::Zeros({c});
  ops::RmsNormBackward(k.x, k.w, rstd, k.dy, nullptr, &only_dw);
  EXPECT_TRUE(AllClose(only_dw, rdw, kNormGradTolF32)) << "dw alone";
}

TEST(RmsNorm, ForwardBackwardMatchReference) {
  Rng rng(701);
  RmsCase k{RandomTensor({37, 67}, rng), RandomTensor({67}, rng), Tensor(), 1e-6f};
  k.dy = RandomTensor(k.x.shape(), rng);
  CheckRmsNormAgainstReference(k);
}

// Rows far below sqrt(eps) in scale: eps dominates the mean square, so rstd saturates at
// about 1/sqrt(eps) instead of blowing up; an all-zero row gives y = 0 and finite gradients.
TEST(RmsNorm, EpsDominatesNearZeroRows) {
  Rng rng(702);
  const std::int64_t n = 5, c = 67;
  RmsCase k{RandomTensor({n, c}, rng), RandomTensor({c}, rng), RandomTensor({n, c}, rng), 1e-6f};
  const float scales[n] = {1e-7f, 1e-5f, 1e-3f, 0.0f, 1.0f};
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t j = 0; j < c; ++j) k.x.f32()[r * c + j] *= scales[r];
  CheckRmsNormAgainstReference(k);
  Tensor y = Tensor::Empty({n, c}), rstd = Tensor::Empty({n});
  ops::RmsNormForward(k.x, k.w, k.eps, y, rstd);
  EXPECT_EQ(rstd.f32()[3], 1.0f / std::sqrt(1e-6f)) << "zero row: rstd = 1/sqrt(eps)";
  EXPECT_NEAR(rstd.f32()[0], 1e3, 1e-3 * 1e3) << "1e-7 row: eps dominates";
  for (std::int64_t j = 0; j < c; ++j) EXPECT_EQ(y.f32()[3 * c + j], 0.0f);
}

TEST(RmsNorm, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(703);
  const std::int64_t n = 3, c = 5;
  for (double eps : {1e-6, 0.5}) {
    std::vector<double> x = ToF64(RandomTensor({n, c}, rng)), w = ToF64(RandomTensor({c}, rng));
    std::vector<double> g = ToF64(RandomTensor({n, c}, rng));
    auto loss = [&] {
      std::vector<double> y = Zeros(n * c);
      ref::RmsNormForwardRef(x.data(), w.data(), n, c, eps, y.data(), nullptr);
      return testing::Dot(y, g);
    };
    std::vector<double> dx = Zeros(n * c), dw = Zeros(c);
    ref::RmsNormBackwardRef(x.data(), w.data(), n, c, eps, g.data(), dx.data(), dw.data());
    EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol)) << "eps " << eps;
    EXPECT_TRUE(AllClose(dw, NumericGrad(&w, loss), kFdTol)) << "eps " << eps;
  }
}

// --- GroupNorm --------------------------------------------------------------------------------

void CheckGroupNormAgainstReference(const Tensor& x, const Tensor& w, const Tensor& b,
                                    std::int64_t groups, float eps, const Tensor& dy) {
  const std::int64_t c = w.numel(), n = x.numel() / c;
  Tensor y = Tensor::Empty(x.shape());
  Tensor mean = Tensor::Empty({n, groups}), rstd = Tensor::Empty({n, groups});
  ops::GroupNormForward(x, w, b, groups, eps, y, mean, rstd);
  const std::vector<double> xd = ToF64(x), wd = ToF64(w), gd = ToF64(dy);
  const std::vector<double> bd = b.defined() ? ToF64(b) : std::vector<double>();
  const double* bp = b.defined() ? bd.data() : nullptr;
  std::vector<double> ry = Zeros(n * c);
  ref::GroupNormForwardRef(xd.data(), wd.data(), bp, n, c, groups, eps, ry.data());
  EXPECT_TRUE(AllClose(y, ry, kNormTolF32)) << "y";

  Tensor dx = Tensor::Zeros(x.shape()), dw = Tensor::Zeros({c}), db = Tensor::Zeros({c});
  ops::GroupNormBackward(x, w, mean, rstd, dy, &dx, &dw, &db);
  std::vector<double> rdx = Zeros(n * c), rdw = Zeros(c), rdb = Zeros(c);
  ref::GroupNormBackwardRef(xd.data(), wd.data(), n, c, groups, eps, gd.data(), rdx.data(),
                            rdw.data(), rdb.data());
  Tol dx_tol = kNormGradTolF32;  // dx scales with rstd (up to 1/sqrt(eps))
  for (std::int64_t i = 0; i < rstd.numel(); ++i)
    dx_tol.atol = std::fmax(dx_tol.atol, kNormGradTolF32.atol * rstd.f32()[i]);
  EXPECT_TRUE(AllClose(dx, rdx, dx_tol)) << "dx";
  EXPECT_TRUE(AllClose(dw, rdw, kNormGradTolF32)) << "dw";
  EXPECT_TRUE(AllClose(db, rdb, kNormGradTolF32)) << "db";
  ExpectAccumulates({&dx, &dw, &db},
                    [&] { ops::GroupNormBackward(x, w, mean, rstd, dy, &dx, &dw, &db); });
}

TEST(GroupNorm, PerHeadForwardBackwardMatchReference) {
  Rng rng(801);
  const std::int64_t n = 37, h = 3, d = 10;
  const float eps = static_cast<float>(d) * 1e-5f;  // RWKV-7 ln_x: eps = head_dim * 1e-5
  Tensor x = RandomTensor({n, h * d}, rng, 2.0f), dy = RandomTensor({n, h * d}, rng);
  Tensor w = RandomTensor({h * d}, rng), b = RandomTensor({h * d}, rng);
  CheckGroupNormAgainstReference(x, w, b, h, eps, dy);
  CheckGroupNormAgainstReference(x, w, Tensor(), h, eps, dy);  // no bias
}

// A constant group has zero variance: xhat = 0, y = b, rstd = 1/sqrt(eps), all finite.
TEST(GroupNorm, ConstantGroupsGiveTheBiasAndFiniteGradients) {
  Rng rng(802);
  const std::int64_t n = 4, h = 3, d = 10, c = h * d;
  const float eps = 1e-4f;
  Tensor x = RandomTensor({n, c}, rng), dy = RandomTensor({n, c}, rng);
  Tensor w = RandomTensor({c}, rng), b = RandomTensor({c}, rng);
  const float consts[n] = {0.0f, 0.3f, -7.25f, 1e3f};
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t i = 0; i < d; ++i) x.f32()[r * c + d + i] = consts[r];  // head 1
  CheckGroupNormAgainstReference(x, w, b, h, eps, dy);
  Tensor y = Tensor::Empty({n, c}), mean = Tensor::Empty({n, h}), rstd = Tensor::Empty({n, h});
  ops::GroupNormForward(x, w, b, h, eps, y, mean, rstd);
  for (std::int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(rstd.f32()[r * h + 1], 1.0f / std::sqrt(eps)) << "row " << r;
    for (std::int64_t i = 0; i < d; ++i)
      EXPECT_EQ(y.f32()[r * c + d + i], b.f32()[d + i]) << "row " << r << " channel " << i;
  }
}

TEST(GroupNorm, ReferenceBackwardMatchesFiniteDifferences) {
  Rng rng(803);
  const std::int64_t n = 2, groups = 2, c = 6;
  const double eps = 3e-5;
  std::vector<double> x = ToF64(RandomTensor({n, c}, rng)), w = ToF64(RandomTensor({c}, rng));
  std::vector<double> b = ToF64(RandomTensor({c}, rng)), g = ToF64(RandomTensor({n, c}, rng));
  auto loss = [&] {
    std::vector<double> y = Zeros(n * c);
    ref::GroupNormForwardRef(x.data(), w.data(), b.data(), n, c, groups, eps, y.data());
    return testing::Dot(y, g);
  };
  std::vector<double> dx = Zeros(n * c), dw = Zeros(c), db = Zeros(c);
  ref::GroupNormBackwardRef(x.data(), w.data(), n, c, groups, eps, g.data(), dx.data(),
                            dw.data(), db.data());
  EXPECT_TRUE(AllClose(dx, NumericGrad(&x, loss), kFdTol));
  EXPECT_TRUE(AllClose(dw, NumericGrad(&w, loss), kFdTol));
  EXPECT_TRUE(AllClose(db, NumericGrad(&b, loss), kFdTol));
}

}  // namespace
}  // namespace radlads
