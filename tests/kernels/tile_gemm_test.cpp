// Gemm's own kernel (kernels/cpu/tile_gemm.h) against the fp64 reference, on every transpose,
// shapes that end inside a register tile, a vector and a K block, padded strides, and alpha /
// beta; beta = 0 must not read C; the result must not depend on the thread count.
#include "kernels/cpu/tile_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// fp32 vs fp64: |err| <= kAbs + kRel * (sum_k |alpha a b| + |beta c|) per element (K up to 300).
constexpr double kTileTolRel = 4e-6;
constexpr double kTileTolAbs = 1e-6;

struct Case {
  bool ta, tb;
  std::int64_t m, n, k, pad;  // pad: extra elements in every leading dimension
  float alpha, beta;
};

void Check(const Case& t, testing::Rng& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  const std::int64_t ar = t.ta ? t.k : t.m, ac = t.ta ? t.m : t.k;  // A as stored
  const std::int64_t br = t.tb ? t.n : t.k, bc = t.tb ? t.k : t.n;
  const std::int64_t lda = ac + t.pad, ldb = bc + t.pad, ldc = t.n + t.pad;
  std::vector<float> a(static_cast<std::size_t>(ar * lda)), b(static_cast<std::size_t>(br * ldb)),
      c(static_cast<std::size_t>(t.m * ldc));
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  for (auto& x : c) x = t.beta == 0.f ? std::numeric_limits<float>::quiet_NaN() : nd(rng);
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c.begin(), c.end());
  if (t.beta == 0.f) std::fill(cd.begin(), cd.end(), 0.0);  // BLAS: beta = 0 never reads C
  std::vector<double> mag(cd.size(), 0.0), aa(ad), ba(bd);
  for (auto& x : aa) x = std::fabs(x);
  for (auto& x : ba) x = std::fabs(x);
  const std::vector<float> c_in = c;
  cpu::TileGemm(t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb, t.beta, c.data(), ldc);
  GemmRef(t.ta, t.tb, t.m, t.n, t.k, t.alpha, ad.data(), lda, bd.data(), ldb, t.beta, cd.data(), ldc);
  GemmRef(t.ta, t.tb, t.m, t.n, t.k, std::fabs(t.alpha), aa.data(), lda, ba.data(), ldb, 0.0, mag.data(), ldc);
  for (std::int64_t i = 0; i < t.m; ++i) {
    for (std::int64_t j = 0; j < ldc; ++j) {
      const std::size_t e = static_cast<std::size_t>(i * ldc + j);
      if (j >= t.n) {  // padding between rows is never written
        ASSERT_TRUE(std::isnan(c[e]) ? std::isnan(c_in[e]) : c[e] == c_in[e]) << "padding at " << i << "," << j;
        continue;
      }
      const double tol = kTileTolAbs + kTileTolRel * (mag[e] + std::fabs(t.beta * (t.beta == 0.f ? 0.0 : c_in[e])));
      ASSERT_NEAR(c[e], cd[e], tol) << "ta=" << t.ta << " tb=" << t.tb << " m=" << t.m << " n=" << t.n
                                    << " k=" << t.k << " pad=" << t.pad << " alpha=" << t.alpha
                                    << " beta=" << t.beta << " at " << i << "," << j;
    }
  }
}

TEST(TileGemm, MatchesReferenceOnEveryTransposeAndEdge) {
  testing::Rng rng(11);
  const std::vector<std::tuple<float, float>> scales = {{1.f, 0.f}, {0.5f, 2.f}, {1.f, 1.f}, {-1.5f, 0.25f}};
  int index = 0;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (std::int64_t m : {1, 5, 6, 7, 13, 50}) {
        for (std::int64_t n : {1, 8, 15, 16, 17, 31, 33, 64, 65, 130}) {
          for (std::int64_t k : {1, 7, 129, 300}) {
            const auto [alpha, beta] = scales[static_cast<std::size_t>(index % 4)];
            Check({ta, tb, m, n, k, index % 3 == 0 ? 3 : 0, alpha, beta}, rng);
            if (HasFatalFailure()) return;
            ++index;
          }
        }
      }
    }
  }
}

TEST(TileGemm, ZeroAlphaOrKScalesCOnly) {
  testing::Rng rng(12);
  Check({false, true, 9, 20, 0, 0, 1.f, 0.f}, rng);
  Check({false, true, 9, 20, 0, 0, 1.f, 0.5f}, rng);
  Check({true, false, 9, 20, 16, 2, 0.f, 3.f}, rng);
}

TEST(TileGemm, SameBitsForAnyThreadCount) {
  testing::Rng rng(13);
  std::normal_distribution<float> nd(0.f, 1.f);
  const std::int64_t m = 301, n = 200, k = 700;  // several row chunks and K blocks
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  std::vector<float> c1(static_cast<std::size_t>(m * n)), c2(c1.size());
  const int threads = cpu::NumThreads();
  cpu::SetNumThreads(1);
  cpu::TileGemm(true, false, m, n, k, 1.f, a.data(), m, b.data(), n, 0.f, c1.data(), n);
  cpu::SetNumThreads(3);
  cpu::TileGemm(true, false, m, n, k, 1.f, a.data(), m, b.data(), n, 0.f, c2.data(), n);
  cpu::SetNumThreads(threads);
  EXPECT_EQ(c1, c2);
}

// A packed B reused for several row blocks gives exactly TileGemm's bits, for every transpose,
// across K blocks, panel tails, beta cases, and a K long enough that TileGemm packs it in more
// than one span (PackedB packs it whole).
TEST(TileGemm, PackedOnceSameBitsAsTileGemm) {
  testing::Rng rng(14);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{64, 384, 128},
                             {37, 100, 700}, {5, 17, 3}, {130, 70, 257},
                             {13, 130, 6000}}) {  // TileGemm packs this one in two spans of K
        std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
        for (auto& x : a) x = nd(rng);
        for (auto& x : b) x = nd(rng);
        const std::int64_t lda = ta ? m : k, ldb = tb ? k : n;
        const cpu::PackedB packed(tb, k, n, b.data(), ldb);
        for (auto [alpha, beta] : {std::pair{1.f, 0.f}, {0.5f, 1.f}, {-2.f, 0.25f}}) {
          std::vector<float> c1(static_cast<std::size_t>(m * n)), c2;
          for (auto& x : c1) x = nd(rng);
          c2 = c1;
          cpu::TileGemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c1.data(), n);
          cpu::TileGemmPacked(ta, m, alpha, a.data(), lda, packed, beta, c2.data(), n);
          ASSERT_EQ(c1, c2) << "ta " << ta << " tb " << tb << " m " << m << " n " << n << " k " << k;
        }
      }
    }
  }
}

// A stored transposed (the weight gradients' dY^T, copied per row chunk into a contiguous block
// when several column panels reuse it) gives the same bits as the same A stored plainly: the
// micro-kernel multiplies the same values in the same order either way. Shapes span several
// row chunks, several panels and several K blocks, with a padded lda.
TEST(TileGemm, TransposedASameBitsAsPlainA) {
  testing::Rng rng(15);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{384, 128, 2048},
                         {101, 200, 300}, {7, 96, 517}, {130, 16, 40}}) {
    for (bool tb : {false, true}) {
      const std::int64_t pad = 3, lda_t = m + pad, lda_p = k + pad, ldb = (tb ? k : n) + pad;
      std::vector<float> at(static_cast<std::size_t>(k * lda_t)), ap(static_cast<std::size_t>(m * lda_p));
      std::vector<float> b(static_cast<std::size_t>((tb ? n : k) * ldb));
      for (auto& x : at) x = nd(rng);
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t kk = 0; kk < k; ++kk) ap[i * lda_p + kk] = at[kk * lda_t + i];
      }
      for (auto& x : b) x = nd(rng);
      for (auto [alpha, beta] : {std::pair{1.f, 0.f}, {0.5f, 1.f}}) {
        std::vector<float> c1(static_cast<std::size_t>(m * n)), c2;
        for (auto& x : c1) x = nd(rng);
        c2 = c1;
        cpu::TileGemm(true, tb, m, n, k, alpha, at.data(), lda_t, b.data(), ldb, beta, c1.data(), n);
        cpu::TileGemm(false, tb, m, n, k, alpha, ap.data(), lda_p, b.data(), ldb, beta, c2.data(), n);
        ASSERT_EQ(c1, c2) << "tb " << tb << " m " << m << " n " << n << " k " << k << " beta " << beta;
      }
    }
  }
}

}  // namespace
}  // namespace radlads
