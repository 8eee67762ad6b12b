// Our own SGEMM for the shapes that dominate the CPU conversion: many rows (tokens) against
// small weight matrices (K and N of a few hundred), where OpenBLAS spends a third of its time
// packing both operands on every call (docs/kernels.md §0.6).
//
//   C[M,N] = alpha * op(A) op(B) + beta * C,  row-major, op(X) = X or X^T,
//
// with the meaning of every argument as in kernels/gemm.h. Method: op(B) is packed into column
// panels as wide as the micro-kernel's register tile (kernels/cpu/simd.h MicroKernel: 6 rows x
// 64 columns with AVX-512, 6 x 16 with AVX2), in blocks of K that keep one panel within 32 KiB
// (128 rows with AVX-512, 256 with AVX2), every block of a span of up to 2 MiB up front with
// the panels split over threads; except that a B that is not transposed, whose width is whole
// panels, is read in place when m is at most 384 rows (too few to repay the packing). A is read
// in place (either layout: the micro-kernel broadcasts A's elements with any row and column
// stride), and C is updated directly. Rows are split across threads in contiguous ranges
// (cpu::ParallelFor, one job per span for all its K blocks), never K.
//
// Rounding as in BLAS kernels: each K block's product is one chain of FMAs in k order from zero,
// then C = alpha * product + C (C scaled by beta first). Deterministic: the same for any thread
// count, and identical run to run. beta == 0 never reads C (NaN there is overwritten).
//
// PackedB / TileGemmPacked: op(B) packed once (PackedB's constructor, the same panels) and used
// for many products, e.g. one weight matrix against many blocks of rows; the result is
// bit-identical to TileGemm with the same arguments.
#pragma once

#include <cstdint>
#include <vector>

namespace radlads::cpu {

void TileGemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
              const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
              std::int64_t ldc);

// op(B) [k, n] (B row-major with leading dimension ldb, transposed when trans_b), packed.
// Holds about k x n floats (n rounded up to whole vectors); b is not read afterwards.
class PackedB {
 public:
  PackedB(bool trans_b, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb);
  std::int64_t k() const { return k_; }
  std::int64_t n() const { return n_; }
  const float* data() const { return data_.data(); }

 private:
  std::int64_t k_, n_;
  std::vector<float> data_;
};

// C[m, n] = alpha op(A) op(B) + beta C with op(B) from `b`: TileGemm without the packing.
void TileGemmPacked(bool trans_a, std::int64_t m, float alpha, const float* a, std::int64_t lda, const PackedB& b,
                    float beta, float* c, std::int64_t ldc);

}  // namespace radlads::cpu
