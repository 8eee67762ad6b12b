#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// fp32 GEMM vs the fp64 reference: |err| <= kAbs + kRel * sum_k |a||b| per element.
constexpr double kGemmTolRel = 4e-6;
constexpr double kGemmTolAbs = 1e-6;

TEST(Gemm, MatchesReferenceForAllTransposesAndOddShapes) {
  testing::Rng rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [m, n, k] : {std::tuple{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 96, 128}}) {
        std::vector<float> a(m * k), b(k * n), c(m * n);
        for (auto& x : a) x = nd(rng);
        for (auto& x : b) x = nd(rng);
        for (auto& x : c) x = nd(rng);
        std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c.begin(), c.end());
        std::vector<double> mag(m * n, 0.0);
        int lda = ta ? m : k, ldb = tb ? k : n;
        Gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c.data(), n);
        GemmRef(ta, tb, m, n, k, 0.5, ad.data(), lda, bd.data(), ldb, 2.0, cd.data(), n);
        std::vector<double> aa(ad), ba(bd);
        for (auto& x : aa) x = std::fabs(x);
        for (auto& x : ba) x = std::fabs(x);
        GemmRef(ta, tb, m, n, k, 1.0, aa.data(), lda, ba.data(), ldb, 0.0, mag.data(), n);
        for (int i = 0; i < m * n; ++i) {
          double tol = kGemmTolAbs + kGemmTolRel * (mag[i] + std::fabs(cd[i]));
          ASSERT_NEAR(c[i], cd[i], tol) << "ta=" << ta << " tb=" << tb << " m=" << m << " n=" << n
                                        << " k=" << k << " i=" << i;
        }
      }
    }
  }
}

TEST(Gemm, DeterministicRunToRun) {
  testing::Rng rng(8);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int m = 200, n = 300, k = 257;
  std::vector<float> a(m * k), b(k * n);
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  std::vector<float> c1(m * n), c2(m * n);
  Gemm(false, true, m, n, k, 1.f, a.data(), k, b.data(), k, 0.f, c1.data(), n);
  Gemm(false, true, m, n, k, 1.f, a.data(), k, b.data(), k, 0.f, c2.data(), n);
  EXPECT_EQ(c1, c2);
}

}  // namespace
}  // namespace radlads
