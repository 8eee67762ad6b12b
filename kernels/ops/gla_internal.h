// Internals shared by the two GLA algorithms (gla.cpp: API + recurrent form; gla_chunked.cpp:
// chunked form). Not part of the public API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace radlads::gla_internal {

// Problem sizes and raw pointers of one call. Element (b, t, h, c) of a [B, T, H, C] array is at
// ((b*T + t)*H + h)*C + c, so consecutive tokens of one (b, h) are H*C apart.
struct GlaProblem {
  std::int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
  float scale = 1.0f;
  const float* r = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* g = nullptr;
  const float* h0 = nullptr;   // nullptr = zeros
  // Forward outputs.
  float* o = nullptr;
  float* hT = nullptr;         // nullptr = not wanted
  // Backward inputs and (accumulated) outputs.
  const float* d_o = nullptr;
  const float* dhT = nullptr;  // nullptr = zeros
  float* dr = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
  float* dg = nullptr;
  float* dh0 = nullptr;        // nullptr = not wanted
};

// exp(x) in fp32 without libm, so loops over it vectorise: cpu::ExpFinite
// (kernels/cpu/vec_math.h), about 1 ulp; results below exp(-87.34) (the bottom of the normal
// range) flush to 0, above 88 saturate at exp(88) (so a factor times 0 is never NaN).
inline float FastExp(float x) { return cpu::ExpFinite(x); }

// Small row-major matrix products for the per-(b, h) work (Gemm may not be called inside a
// ParallelFor body; at these sizes this register-blocked kernel runs as fast as OpenBLAS's).
//   C[M,N] += sum_p A(i,p) * B[p,:],  A(i,p) = a[i*a_rs + p*a_cs],  B rows ldb apart.
// A is read by broadcast, B and C are contiguous along N, so both A*B (a_rs = lda, a_cs = 1)
// and A^T*B (a_rs = 1, a_cs = lda) use the same kernel. Summation over p is in order.
void MatMulAcc(std::int64_t M, std::int64_t N, std::int64_t P, const float* a, std::int64_t a_rs,
               std::int64_t a_cs, const float* b, std::int64_t ldb, float* c, std::int64_t ldc);

// C[M,N] += A[M,P] B[P,N]
inline void MmNN(std::int64_t M, std::int64_t N, std::int64_t P, const float* a, std::int64_t lda,
                 const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  MatMulAcc(M, N, P, a, lda, 1, b, ldb, c, ldc);
}
// C[M,N] += A^T B with A stored [P, M]
inline void MmTN(std::int64_t M, std::int64_t N, std::int64_t P, const float* a, std::int64_t lda,
                 const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  MatMulAcc(M, N, P, a, 1, lda, b, ldb, c, ldc);
}

// Tokens per sub-chunk of the chunked form (fla's BC = 16), and the checkpoint interval of the
// recurrent backward.
inline constexpr std::int64_t kSubChunk = 16;
inline constexpr std::int64_t kRecurrentCheckpoint = 16;

void ChunkedForward(const GlaProblem& p, std::int64_t chunk);
void ChunkedBackward(const GlaProblem& p, std::int64_t chunk);

}  // namespace radlads::gla_internal
