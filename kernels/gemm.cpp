#include "kernels/gemm.h"

#include <cblas.h>

#include <cstdlib>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tile_gemm.h"

namespace radlads {
namespace {

// Which shapes Gemm computes with its own kernel (kernels/cpu/tile_gemm.h): measured with
// bench/gemm_bench.cpp (bench/README.md).
bool UseTileGemm(std::int64_t m, std::int64_t n, std::int64_t k) {
  (void)m;
  if (const char* e = std::getenv("RADLADS_TILE_GEMM")) return e[0] == '1';
  return n <= 1024 && (n <= 512 || k <= 512);
}

}  // namespace


void GemmOpenBlas(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                  const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                  std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  (void)cpu::NumThreads();  // make sure OpenBLAS got the process thread count
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.f : beta * c[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void Gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  const profile::Scope profile_scope(profile::Family::kGemm);
  if (m == 0 || n == 0) return;
  RADLADS_CHECK(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n) && ldc >= n)
      << "Gemm strides: m=" << m << " n=" << n << " k=" << k << " lda=" << lda << " ldb=" << ldb
      << " ldc=" << ldc;
  // Inside a ParallelFor body OpenBLAS is not called: its thread count is process-global state
  // that calls from two threads at once would race on, and the body already has its core.
  if (UseTileGemm(m, n, k) || cpu::InParallelFor()) {
    cpu::TileGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    GemmOpenBlas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

void GemmRef(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
             double alpha, const double* a, std::int64_t lda, const double* b, std::int64_t ldb,
             double beta, double* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        double av = trans_a ? a[p * lda + i] : a[i * lda + p];
        double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      c[i * ldc + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]);
    }
  }
}

}  // namespace radlads
