// Internals shared by the two GLA algorithms (gla.cpp: API + recurrent form; gla_chunked.cpp:
// chunked form). Not part of the public API.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

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

// exp(x) in fp32 without libm, so loops over it vectorise. Cody-Waite range reduction to
// [-ln2/2, ln2/2] and the Cephes expf polynomial: about 1 ulp on [-87, 88]. Results below
// exp(-87) (~1.6e-38, the bottom of the normal range) flush to 0; above 88 saturate at exp(88).
inline float FastExp(float x) {
  // Written with plain selects and the 1.5*2^23 rounding trick (no std::floor / std::min) so
  // GCC vectorises loops over it without -ffast-math.
  const bool tiny = x < -87.0f;
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
  return tiny ? 0.0f : e * two_n;
}

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
