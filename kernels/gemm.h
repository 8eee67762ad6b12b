// Single-precision GEMM on the CPU, row-major:
//   C[M,N] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T.
// A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b); lda/ldb/ldc are row
// strides in elements. Deterministic for a fixed thread count (cpu::SetNumThreads).
// The narrow shapes of linear layers go to our own kernel (kernels/cpu/tile_gemm.h), the rest to
// OpenBLAS (docs/kernels.md §0.6; RADLADS_TILE_GEMM=0|1 forces one of them).
// The reference GemmRef (fp64 accumulation, plain loops) is what tests compare against.
#pragma once

#include <cstdint>

namespace radlads {

void Gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc);

// The same product always through OpenBLAS (cblas_sgemm): the peer that bench/gemm_bench.cpp
// measures Gemm's own kernel against, and the path Gemm takes for shapes it does not tile.
void GemmOpenBlas(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                  const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                  std::int64_t ldc);

void GemmRef(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
             double alpha, const double* a, std::int64_t lda, const double* b, std::int64_t ldb,
             double beta, double* c, std::int64_t ldc);

}  // namespace radlads
