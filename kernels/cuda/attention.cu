// Flash-style causal GQA attention forward (kernels/cuda/attention.h), FlashAttention-2 layout.
//
// One block of 4 warps per (query head, batch, query block of 64 rows); warp w owns query rows
// 16w..16w+15 of the block. Key blocks of 64 are walked from 0 to the diagonal block (causal
// tiles above the diagonal are never visited); only the diagonal block is masked. Per key block:
//
//   S = Q K^T        mma.sync m16n8k16 (bf16 in, fp32 accumulate): per warp 16 x 64 in registers,
//                    A = Q fragments (loaded once by ldmatrix), B = K rows by ldmatrix
//   online softmax   in base-2 units: x = S * scale * log2(e); m = running row max (quad
//                    shuffles: a row's 64 scores live in the 4 threads of a quad), p = 2^(x - m),
//                    l = l * 2^(m_old - m) + rowsum(p), O *= 2^(m_old - m)
//   O += P V         P's fp32 accumulator fragments are, pairwise, exactly the A fragments of the
//                    next mma (rounded to bf16); B = V rows by ldmatrix.trans
//
// At the end O / l is rounded to bf16 and lse = ln(2) * (m + log2(l)).
//
// Memory pipeline (single Q, K and V tiles; cp.async with zero fill past T): V(j) is loaded
// while S(j) is computed, and K(j+1) while P(j) V(j) is computed:
//
//   prologue: load Q, K(0)
//   for j:  wait, sync   (K(j) ready; every warp done with V(j-1))  -> load V(j)
//           S = Q K(j)^T, softmax
//           wait, sync   (V(j) ready; every warp done with K(j))    -> load K(j+1)
//           O += P V(j)
//
// Shared memory rows are D + 8 bf16 long: the 16-byte skew puts ldmatrix's 8 row reads of a
// matrix in 8 distinct 4-bank groups (no conflicts). D = 128: 3 * 64 * 136 * 2 = 52,224 bytes
// (above the 48 KiB default, so the launch raises the kernel's dynamic shared-memory limit).
//
// Rows past T (the last query block) are computed on zero-filled Q and never stored; keys past
// T are zero-filled K and V (so 0 * V stays finite) and lie above the causal diagonal of every
// stored row, so they are masked. Every stored row sees key 0 in block 0, so its running max is
// finite from the first block on and the rescale factor 2^(-inf - m) of the first block is 0.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.cuh"

namespace radlads::cuda {
namespace {

using i64 = std::int64_t;
using bf16 = __nv_bfloat16;

constexpr int kBlockQ = 64;
constexpr int kBlockK = 64;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSkew = 8;  // bf16 of padding per shared-memory row
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

static_assert(kBlockQ == kWarps * 16, "one 16-row mma tile per warp");
static_assert(kBlockQ == kBlockK, "the diagonal key block is the query block's own index");

struct FlashParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* o;
  float* lse;
  i64 t;
  int h, hkv, group;
  float scale_log2;  // scale * log2(e)
};

__device__ __forceinline__ std::uint32_t SmemAddr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; zero-fills the destination when !valid (no read).
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(smem)), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void CpAsyncWaitAll() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

// Four 8x8 bf16 matrices; lane i gives the address of row i % 8 of matrix i / 8 and receives,
// in register j, row lane / 4, columns 2 (lane % 4) and 2 (lane % 4) + 1 of matrix j (.trans:
// column lane / 4, rows 2 (lane % 4) and 2 (lane % 4) + 1).
__device__ __forceinline__ void LdMatrixX4(std::uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(row)));
}
__device__ __forceinline__ void LdMatrixX4Trans(std::uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(row)));
}

// c += A B for one m16n8k16 tile. Fragments (g = lane / 4, c = lane % 4):
//   A (16x16, row-major): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B (16x8, k x n):      b0 = (k 2c..2c+1, n g), b1 = (k 2c+8..2c+9, n g)
//   C (16x8 fp32):        c0, c1 = (g, 2c..2c+1), c2, c3 = (g+8, 2c..2c+1)
// Each 32-bit register holds the lower column (or k) index in its low half.
__device__ __forceinline__ void Mma16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                         std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ std::uint32_t PackBf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo in the low 16 bits
  return *reinterpret_cast<std::uint32_t*>(&v);
}

// Asynchronously copies rows [0, kRows) of a tile whose row r starts at src + r * stride
// (elements) into dst (rows of D + kSkew); rows >= n_valid are zero-filled.
template <int D, int kRows>
__device__ __forceinline__ void LoadTile(bf16* dst, const bf16* src, i64 stride, i64 n_valid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool valid = r < n_valid;
    CpAsync16(dst + r * (D + kSkew) + col, valid ? src + r * stride + col : src, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) AttentionFlashForwardKernel(FlashParams p) {
  constexpr int kRow = D + kSkew;
  constexpr int kDSteps = D / 16;     // k steps of S = Q K^T
  constexpr int kDTiles = D / 8;      // n tiles of O
  constexpr int kKeyTiles = kBlockK / 8;  // n tiles of S
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* ks = qs + kBlockQ * kRow;
  bf16* vs = ks + kBlockK * kRow;

  // Grid (H, B, query blocks): the last query block (the most key blocks) starts first.
  const int qb = static_cast<int>(gridDim.z - 1 - blockIdx.z);
  const int h = static_cast<int>(blockIdx.x);
  const i64 b = blockIdx.y;
  const int g = h / p.group;
  const i64 T = p.t;
  const i64 q0 = static_cast<i64>(qb) * kBlockQ;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const i64 q_stride = static_cast<i64>(p.h) * D;  // elements between consecutive t
  const i64 kv_stride = static_cast<i64>(p.hkv) * D;
  const bf16* q_base = p.q + ((b * T + q0) * p.h + h) * D;  // query row q0 + i at + i * q_stride
  const bf16* k_base = p.k + (b * T * p.hkv + g) * D;       // key j at + j * kv_stride
  const bf16* v_base = p.v + (b * T * p.hkv + g) * D;

  LoadTile<D, kBlockQ>(qs, q_base, q_stride, T - q0);
  LoadTile<D, kBlockK>(ks, k_base, kv_stride, T);
  CpAsyncCommit();

  // ldmatrix lane roles: matrix index and row within it.
  const int mat = lane / 8, mat_row = lane % 8;
  std::uint32_t qf[kDSteps][4];
  float acc[kDTiles][4];
#pragma unroll
  for (int dt = 0; dt < kDTiles; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running max (base-2 units) of rows quad_row, quad_row + 8
  float l[2] = {0.f, 0.f};              // this thread's part of the running sums
  const i64 row0 = q0 + warp * 16 + quad_row;  // query index of c0/c1; c2/c3 are row0 + 8

  for (int kb = 0; kb <= qb; ++kb) {
    const i64 k0 = static_cast<i64>(kb) * kBlockK;
    CpAsyncWaitAll();
    __syncthreads();  // K(kb) (and Q) landed; every warp finished reading V(kb - 1)
    LoadTile<D, kBlockK>(vs, v_base + k0 * kv_stride, kv_stride, T - k0);
    CpAsyncCommit();
    if (kb == 0) {
      // Q fragments: matrices (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15)
      // = a0..a3; lane i addresses row i % 16, column 8 (i / 16) of the warp's 16 x 16 block.
#pragma unroll
      for (int s = 0; s < kDSteps; ++s)
        LdMatrixX4(qf[s], qs + (warp * 16 + lane % 16) * kRow + s * 16 + (lane / 16) * 8);
    }

    float sc[kKeyTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
    for (int s = 0; s < kDSteps; ++s) {
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; nt += 2) {
        // Matrices (keys nt*8.., d 16s..), (keys nt*8.., d 16s+8..), and the same for key tile
        // nt + 1: b0, b1 of tile nt, then b0, b1 of tile nt + 1.
        std::uint32_t kf[4];
        LdMatrixX4(kf, ks + (nt * 8 + (mat >> 1) * 8 + mat_row) * kRow + s * 16 + (mat & 1) * 8);
        Mma16816(sc[nt], qf[s], kf[0], kf[1]);
        Mma16816(sc[nt + 1], qf[s], kf[2], kf[3]);
      }
    }

    // Base-2 logits; on the diagonal block, keys after the query are -inf.
    const bool diagonal = kb == qb;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = sc[nt][e] * p.scale_log2;
        if (diagonal) {
          const i64 key = k0 + nt * 8 + 2 * quad_col + (e & 1);
          const i64 row = row0 + (e >> 1) * 8;
          if (key > row) x = -INFINITY;
        }
        sc[nt][e] = x;
      }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
      mx[0] = fmaxf(mx[0], fmaxf(sc[nt][0], sc[nt][1]));
      mx[1] = fmaxf(mx[1], fmaxf(sc[nt][2], sc[nt][3]));
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
    }
    float alpha[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      alpha[i] = exp2f(m[i] - mx[i]);  // 0 on the first block (m = -inf, mx finite)
      m[i] = mx[i];
    }
    float rowsum[2] = {0.f, 0.f};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(sc[nt][e] - m[e >> 1]);  // masked: exp2(-inf) = 0
        sc[nt][e] = pe;
        rowsum[e >> 1] += pe;
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) l[i] = l[i] * alpha[i] + rowsum[i];
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      acc[dt][0] *= alpha[0];
      acc[dt][1] *= alpha[0];
      acc[dt][2] *= alpha[1];
      acc[dt][3] *= alpha[1];
    }

    CpAsyncWaitAll();
    __syncthreads();  // V(kb) landed; every warp finished reading K(kb)
    if (kb < qb) {
      LoadTile<D, kBlockK>(ks, k_base + (k0 + kBlockK) * kv_stride, kv_stride, T - k0 - kBlockK);
      CpAsyncCommit();
    }

    // O += P V over 16-key steps: the C fragments of key tiles 2j and 2j + 1 are the A fragment
    // (a0 = tile 2j rows g, a1 = tile 2j rows g+8, a2/a3 = tile 2j+1).
#pragma unroll
    for (int j = 0; j < kBlockK / 16; ++j) {
      std::uint32_t pa[4];
      pa[0] = PackBf16x2(sc[2 * j][0], sc[2 * j][1]);
      pa[1] = PackBf16x2(sc[2 * j][2], sc[2 * j][3]);
      pa[2] = PackBf16x2(sc[2 * j + 1][0], sc[2 * j + 1][1]);
      pa[3] = PackBf16x2(sc[2 * j + 1][2], sc[2 * j + 1][3]);
#pragma unroll
      for (int dt = 0; dt < kDTiles; dt += 2) {
        // Transposed matrices (keys 16j.., d 8dt..), (keys 16j+8.., d 8dt..), and the same for
        // d tile dt + 1: b0, b1 of tile dt, then of tile dt + 1.
        std::uint32_t vf[4];
        LdMatrixX4Trans(vf, vs + (j * 16 + (mat & 1) * 8 + mat_row) * kRow + dt * 8 + (mat >> 1) * 8);
        Mma16816(acc[dt], pa, vf[0], vf[1]);
        Mma16816(acc[dt + 1], pa, vf[2], vf[3]);
      }
    }
  }

  // Whole-row sums over the quad, then normalise and store (rows past T are not stored).
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const i64 row = row0 + 8 * i;
    if (row >= T) continue;
    const float inv = 1.f / l[i];
    bf16* orow = p.o + ((b * T + row) * p.h + h) * D + 2 * quad_col;
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(orow + dt * 8) =
          __floats2bfloat162_rn(acc[dt][2 * i] * inv, acc[dt][2 * i + 1] * inv);
    }
    if (p.lse != nullptr && quad_col == 0) p.lse[(b * p.h + h) * T + row] = kLn2 * (m[i] + log2f(l[i]));
  }
}

template <int D>
void Launch(const AttentionShape& s, const FlashParams& p, cudaStream_t stream) {
  const AttentionFlashPlan plan = PlanAttentionFlash(s);
  const auto kernel = AttentionFlashForwardKernel<D>;
  RADLADS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(plan.smem_bytes)));
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  kernel<<<grid, plan.threads, plan.smem_bytes, stream>>>(p);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

bool Aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

}  // namespace

void AttentionForwardFlash(const AttentionShape& s, const bf16* q, const bf16* k, const bf16* v,
                           float scale, bf16* o, float* lse, cudaStream_t stream) {
  const std::string err = AttentionShapeError(s, AttentionImpl::kFlash);
  if (!err.empty() || !std::isfinite(scale) || !Aligned16(q) || !Aligned16(k) || !Aligned16(v) ||
      !Aligned16(o)) {
    std::fprintf(stderr, "AttentionForwardFlash: %s\n",
                 !err.empty() ? err.c_str()
                              : "scale must be finite and q, k, v, o 16-byte aligned");
    std::abort();
  }
  if (s.b == 0 || s.t == 0) return;
  static_assert(kBlockQ == 64 && kBlockK == 64 && kThreads == 128,
                "PlanAttentionFlash assumes these tiles");
  FlashParams p{q, k, v, o, lse, s.t, static_cast<int>(s.h), static_cast<int>(s.hkv),
                static_cast<int>(s.h / s.hkv), scale * kLog2e};
  switch (s.d) {
    case 32: Launch<32>(s, p, stream); break;
    case 64: Launch<64>(s, p, stream); break;
    default: Launch<128>(s, p, stream); break;  // AttentionShapeError allows only 32, 64, 128
  }
}

}  // namespace radlads::cuda
