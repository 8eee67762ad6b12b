// bf16 GEMM on the device through cuBLASLt, row-major like kernels/gemm.h:
//   C[M,N] = alpha * op(A) op(B) + beta * C,   op(X) = X or X^T,
// A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b); lda/ldb/ldc are row
// strides in elements (kernels/cuda/gemm_shape.h states the rules and the column-major mapping).
// A and B are bf16, products accumulate in fp32 (CUBLAS_COMPUTE_32F), alpha and beta are fp32
// host scalars, C is fp32 or bf16. beta == 0 overwrites C without reading it (C may hold NaN);
// beta == 1 accumulates. Strided-batched: `batch` matrices at element strides stride_a/b/c.
//
// Stream and resources: work is enqueued on `stream` (asynchronous; pointers are device
// pointers). One cuBLASLt handle per device and one 32 MiB cuBLASLt workspace per (device,
// stream) are created on first use and kept (GemmReleaseStream frees a stream's workspace: call it
// before destroying a stream, or the next stream created at the same address inherits it, which is
// harmless but keeps the memory). The algorithm for each shape (dims, strides, pointer alignments,
// output type) is chosen once by cuBLASLt's heuristic and cached, so repeated calls with the same
// shape run the same algorithm and give the same bits (cuBLASLt's split-K reductions are
// sequential, no atomics). Thread-safe (a mutex guards the caches).
// Fallback: where the heuristic returns no algorithm (or K == 0), the simple kernel below runs
// instead and GemmFallbackCount() counts it.
//
// GemmBf16Reference is the plain kernel (one thread per output element, fp32 sum over k in
// order): the GPU reference for tests and the fallback. Same contract.
// Bad dimensions (CheckGemmDims) abort with a message; so do CUDA and cuBLASLt errors.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/gemm_shape.h"

namespace radlads::cuda {

void GemmBf16(const GemmDims& d, float alpha, const __nv_bfloat16* a, const __nv_bfloat16* b,
              float beta, float* c, cudaStream_t stream);
void GemmBf16(const GemmDims& d, float alpha, const __nv_bfloat16* a, const __nv_bfloat16* b,
              float beta, __nv_bfloat16* c, cudaStream_t stream);

// Non-batched shorthand with kernels/gemm.h's argument order.
inline void GemmBf16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     float alpha, const __nv_bfloat16* a, std::int64_t lda,
                     const __nv_bfloat16* b, std::int64_t ldb, float beta, float* c,
                     std::int64_t ldc, cudaStream_t stream) {
  GemmBf16(GemmDims{trans_a, trans_b, m, n, k, lda, ldb, ldc}, alpha, a, b, beta, c, stream);
}
inline void GemmBf16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                     float alpha, const __nv_bfloat16* a, std::int64_t lda,
                     const __nv_bfloat16* b, std::int64_t ldb, float beta, __nv_bfloat16* c,
                     std::int64_t ldc, cudaStream_t stream) {
  GemmBf16(GemmDims{trans_a, trans_b, m, n, k, lda, ldb, ldc}, alpha, a, b, beta, c, stream);
}

void GemmBf16Reference(const GemmDims& d, float alpha, const __nv_bfloat16* a,
                       const __nv_bfloat16* b, float beta, float* c, cudaStream_t stream);
void GemmBf16Reference(const GemmDims& d, float alpha, const __nv_bfloat16* a,
                       const __nv_bfloat16* b, float beta, __nv_bfloat16* c, cudaStream_t stream);

// Frees the cuBLASLt workspace of `stream` on the current device (synchronises the stream).
void GemmReleaseStream(cudaStream_t stream);

// Calls that took the fallback kernel since the process started (all devices and streams).
std::int64_t GemmFallbackCount();

}  // namespace radlads::cuda
