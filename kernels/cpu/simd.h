// The CPU kernels' one SIMD vocabulary and their one register-blocked micro-kernel, for AVX-512
// and AVX2 alike (docs/kernels.md §0.5).
//
// - FVec is one SIMD register of floats as a GCC/Clang vector type: 16 lanes with AVX-512
//   (32 registers), else 8 (one AVX2 register, or two SSE ones; 16 registers). Written with
//   vector types because GCC's auto-vectoriser turns plain loops over register tiles into
//   shuffles, and because what is vectorised must not depend on the optimisation level. Vectors
//   are only moved with VLoad / VStore (memcpy: any alignment) and never passed by value, so
//   nothing depends on the vector ABI of the target flags.
// - MicroKernel<R, NV> computes one R x (kLanes * NV) block of C = (C or 0) + A B with the R * NV
//   accumulators in registers (MicroKernelBlas: C = alpha A B (+ C), the product rounded on its
//   own first, as BLAS does); every loop over R and NV is unrolled explicitly
//   (#pragma GCC unroll), so -O2 and -O3 build the same register tile. Each k step costs NV
//   vector loads of B and R broadcasts of A for R * NV FMAs. Pick R * NV + NV + 1 <= kRegs.
// - Results are deterministic: each output element is one chain of FMAs in k order, whatever R
//   and NV (so a caller may change its blocking without changing a bit of the result).
#pragma once

#include <cstdint>
#include <cstring>

namespace radlads::cpu {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
inline constexpr int kRegs = 32;
#else
inline constexpr int kLanes = 8;
inline constexpr int kRegs = 16;
#endif

using FVec = float __attribute__((vector_size(kLanes * sizeof(float))));

inline void VLoad(FVec& v, const float* p) { std::memcpy(&v, p, sizeof(FVec)); }
inline void VStore(float* p, const FVec& v) { std::memcpy(p, &v, sizeof(FVec)); }

// acc[r][..] += sum_{k < K} A(r, k) * B[k][..] for r < R, with A(r, k) = a[r * a_rs + k * a_cs]
// (a_rs = 1, a_cs = lda reads A transposed) and B[k] at b + k * ldb: the FMA loop of both
// kernels below.
template <int R, int NV>
inline void MicroLoop(FVec (&acc)[R][NV], std::int64_t K, const float* __restrict a, std::int64_t a_rs,
                      std::int64_t a_cs, const float* __restrict b, std::int64_t ldb) {
  for (std::int64_t k = 0; k < K; ++k) {
    FVec bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) VLoad(bv[v], b + k * ldb + kLanes * v);
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const float x = a[r * a_rs + k * a_cs];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += x * bv[v];
    }
  }
}

// C[r][0 .. kLanes*NV) = (accumulate ? C[r][..] : 0) + sum_{k < K} A(r, k) * B[k][..] for r < R,
// C[r] at c + r * ldc: one FMA chain per element, continuing from C when accumulating.
template <int R, int NV>
inline void MicroKernel(std::int64_t K, const float* __restrict a, std::int64_t a_rs, std::int64_t a_cs,
                        const float* __restrict b, std::int64_t ldb, float* __restrict c, std::int64_t ldc,
                        bool accumulate) {
  FVec acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (accumulate) {
        VLoad(acc[r][v], c + r * ldc + kLanes * v);
      } else {
        acc[r][v] = FVec{};
      }
    }
  }
  MicroLoop<R, NV>(acc, K, a, a_rs, a_cs, b, ldb);
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) VStore(c + r * ldc + kLanes * v, acc[r][v]);
  }
}

// The BLAS form: P = sum_{k < K} A(r, k) * B[k][..] from zero, then C[r][..] = alpha * P
// (+ C[r][..] when add), as OpenBLAS's kernels round it.
template <int R, int NV>
inline void MicroKernelBlas(std::int64_t K, const float* __restrict a, std::int64_t a_rs, std::int64_t a_cs,
                            const float* __restrict b, std::int64_t ldb, float* __restrict c, std::int64_t ldc,
                            float alpha, bool add) {
  FVec acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = FVec{};
  }
  MicroLoop<R, NV>(acc, K, a, a_rs, a_cs, b, ldb);
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      FVec out = alpha * acc[r][v];
      if (add) {
        FVec old;
        VLoad(old, c + r * ldc + kLanes * v);
        out += old;
      }
      VStore(c + r * ldc + kLanes * v, out);
    }
  }
}

}  // namespace radlads::cpu
