// Host-side shape logic of the CUDA GEMM (kernels/cuda/gemm.h), in plain C++ so that it is tested
// on machines without a GPU (tests/kernels/cuda_head_plan_test.cpp, label cpu).
//
// The GEMM is row-major like kernels/gemm.h: C[M,N] = alpha op(A) op(B) + beta C. cuBLASLt is
// column-major; a row-major matrix X [r, c] with row stride ld is the column-major matrix X^T
// [c, r] with the same ld, so the row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: the operands swap, the transpose flags stay with their operands, and M and
// N swap (ToColumnMajor).
#pragma once

#include <cstdint>
#include <string>

namespace radlads::cuda {

// A row-major (strided-batched) GEMM as the caller states it. Strides are in elements, between
// consecutive matrices of a batch; unused when batch == 1.
struct GemmDims {
  bool trans_a = false, trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  std::int64_t batch = 1;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// "" when the dimensions are consistent, else a one-line description of the first problem:
// negative sizes, a row stride shorter than a stored row (A [M,K] needs lda >= K, or [K,M] with
// trans_a needs lda >= M; B [K,N] ldb >= N, or [N,K] with trans_b ldb >= K; C [M,N] ldc >= N; all
// >= 1), batch < 1, or negative strides.
std::string CheckGemmDims(const GemmDims& d);

// One operand of the column-major problem as cuBLASLt's matrix layout describes it: the STORED
// matrix (before the transpose is applied), rows x cols with leading dimension ld.
struct ColMajorOperand {
  std::int64_t rows = 0, cols = 0, ld = 0, stride = 0;
  bool trans = false;
};

// The column-major problem D' = op(A') op(B') (+ beta C') equivalent to the row-major d:
// A' is the caller's B, B' is the caller's A, C' is the caller's C; m' = N, n' = M, k' = K.
struct ColMajorGemm {
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
  ColMajorOperand a, b, c;
};

ColMajorGemm ToColumnMajor(const GemmDims& d);

// The largest power of two (at most `cap`) that divides the address; cap for null. cuBLASLt's
// heuristic is told these alignments so that it only returns algorithms valid for the pointers.
std::uint32_t PointerAlignment(const void* p, std::uint32_t cap = 256);

}  // namespace radlads::cuda
