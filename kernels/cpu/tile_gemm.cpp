#include "kernels/cpu/tile_gemm.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"

namespace radlads::cpu {
namespace {

using i64 = std::int64_t;

// The register tile: kR rows x kW columns (kR * kNV accumulators, kNV loads of B and one
// broadcast of A live beside them: 29 of 32 zmm, 15 of 16 ymm).
constexpr int kR = 6;
constexpr int kNV = kLanes == 16 ? 4 : 2;
constexpr i64 kW = static_cast<i64>(kLanes) * kNV;
// K block: one packed panel (kc x kW floats) fits 32 KiB, an L1 data cache.
constexpr i64 kKc = std::min<i64>(256, 32 * 1024 / (kW * static_cast<i64>(sizeof(float))));
// Row chunk: the panels of B are swept once per chunk of kChunkRows rows of A (6 KiB-12 KiB
// of A per micro-tile row block, all of a chunk within L2).
constexpr i64 kChunkRows = 8 * kR;

// Columns [0, n) as panels: full ones of kW columns, then one tail panel of the fewest whole
// vectors that cover the rest (so a 32-column layer does not pay for a 64-column tile).
struct Panels {
  i64 full = 0;     // panels of kW columns
  int tail_nv = 0;  // vectors of the tail panel (0: none)
  i64 count() const { return full + (tail_nv > 0 ? 1 : 0); }
  i64 Width(i64 p) const { return p < full ? kW : static_cast<i64>(tail_nv) * kLanes; }
};

Panels PanelsFor(i64 n) {
  Panels p;
  p.full = n / kW;
  p.tail_nv = static_cast<int>((n - p.full * kW + kLanes - 1) / kLanes);
  return p;
}

// Packed op(B): for each K block of kKc rows (the last one shorter), the column panels one
// after another: panel p (Width(p) columns) is kc rows of Width(p) floats starting at p * kc *
// kW within its block; columns past n are zero.
struct Call {
  bool trans_a;
  const float* a;
  i64 lda, n, k0, kc;
  const float* packed;  // this K block's panels; or, when b_ld > 0, op(B) row k0 itself
  i64 b_ld;             // 0: packed panels; else B's leading dimension (read in place)
  Panels panels;        // of n, computed once per call
  float* c;
  i64 ldc;
  float alpha;
  bool accumulate;  // C += alpha * block product; else C = alpha * block product
  i64 a_row0 = 0;   // the row of C that a's first row is (a packed copy of a row chunk)
};

// MicroKernelBlas<R, nv> for a run-time nv in [1, kNV].
template <int R>
void Kernel(int nv, i64 K, const float* a, i64 a_rs, i64 a_cs, const float* b, i64 ldb, float* c, i64 ldc,
            float alpha, bool add) {
  switch (nv) {
    case 1: MicroKernelBlas<R, 1>(K, a, a_rs, a_cs, b, ldb, c, ldc, alpha, add); break;
    case 2: MicroKernelBlas<R, 2>(K, a, a_rs, a_cs, b, ldb, c, ldc, alpha, add); break;
    case 3:
      if constexpr (kNV >= 3) MicroKernelBlas<R, 3>(K, a, a_rs, a_cs, b, ldb, c, ldc, alpha, add);
      break;
    default: MicroKernelBlas<R, kNV>(K, a, a_rs, a_cs, b, ldb, c, ldc, alpha, add); break;
  }
}

// Rows [i0, i0 + R) of C against panel p.
template <int R>
void RowBlock(const Call& g, i64 i0, i64 p) {
  const i64 a_rs = g.trans_a ? 1 : g.lda, a_cs = g.trans_a ? g.lda : 1;
  const float* a = g.a + (i0 - g.a_row0) * a_rs + g.k0 * a_cs;
  const i64 j0 = p * kW, pw = g.panels.Width(p), w = std::min(pw, g.n - j0);
  const int nv = static_cast<int>(pw / kLanes);
  const float* bp = g.b_ld > 0 ? g.packed + j0 : g.packed + p * g.kc * kW;
  const i64 ldb = g.b_ld > 0 ? g.b_ld : pw;
  float* c = g.c + i0 * g.ldc + j0;
  if (w == pw) {
    Kernel<R>(nv, g.kc, a, a_rs, a_cs, bp, ldb, c, g.ldc, g.alpha, g.accumulate);
    return;
  }
  // Columns that end inside a vector: through a tile as wide as the panel.
  alignas(64) float tile[R * kW];
  for (int r = 0; r < R; ++r) {
    for (i64 j = 0; j < pw; ++j) tile[r * pw + j] = (g.accumulate && j < w) ? c[r * g.ldc + j] : 0.f;
  }
  Kernel<R>(nv, g.kc, a, a_rs, a_cs, bp, ldb, tile, pw, g.alpha, g.accumulate);
  for (int r = 0; r < R; ++r) std::copy(tile + r * pw, tile + r * pw + w, c + r * g.ldc);
}

// Rows [begin, end) of one K block: full kR blocks, then 4, 2, 1.
// A transposed operand (the weight gradients' dY^T) is read a few floats per row of dY, one
// cache line per k and row block, strided by lda: with several panels to sweep, the chunk's
// rows are first copied into [kc][chunk rows] (contiguous per k), once per K block, so every
// panel reads them sequentially. The micro-kernel multiplies the same values in the same
// order: the same bits.
void Rows(const Call& g, i64 begin, i64 end) {
  const i64 panels = g.panels.count();
  thread_local std::vector<float> a_chunk;
  const bool pack_a = g.trans_a && panels > 1;
  if (pack_a && a_chunk.size() < static_cast<std::size_t>(kKc * kChunkRows)) {
    a_chunk.resize(static_cast<std::size_t>(kKc * kChunkRows));
  }
  for (i64 c0 = begin; c0 < end; c0 += kChunkRows) {
    const i64 c1 = std::min(end, c0 + kChunkRows);
    Call gc = g;
    if (pack_a) {
      const i64 w = c1 - c0;
      float* dst = a_chunk.data();
      const float* src = g.a + c0 + g.k0 * g.lda;
      for (i64 kk = 0; kk < g.kc; ++kk) std::copy(src + kk * g.lda, src + kk * g.lda + w, dst + kk * w);
      // RowBlock reads A(i, k) at a[(i - a_row0) + (k - k0) * lda] of this copy.
      gc.a = dst;
      gc.lda = w;
      gc.k0 = 0;
      gc.a_row0 = c0;
    }
    for (i64 p = 0; p < panels; ++p) {
      i64 i = c0;
      for (; i + kR <= c1; i += kR) RowBlock<kR>(gc, i, p);
      for (; i + 4 <= c1; i += 4) RowBlock<4>(gc, i, p);
      for (; i + 2 <= c1; i += 2) RowBlock<2>(gc, i, p);
      for (; i < c1; ++i) RowBlock<1>(gc, i, p);
    }
  }
}

i64 KBlocks(i64 k) { return (k + kKc - 1) / kKc; }

// Panel p of K block [k0, k0 + kc) of op(B), at dst + p * kc * kW.
void PackPanel(bool trans_b, const float* b, i64 ldb, i64 k0, i64 kc, i64 n, const Panels& panels, i64 p,
               float* dst) {
  const i64 j0 = p * kW, pw = panels.Width(p), w = std::min(pw, n - j0);
  float* d = dst + p * kc * kW;
  for (i64 kk = 0; kk < kc; ++kk, d += pw) {
    if (trans_b) {
      const float* src = b + j0 * ldb + (k0 + kk);
      for (i64 j = 0; j < w; ++j) d[j] = src[j * ldb];
    } else {
      const float* src = b + (k0 + kk) * ldb + j0;
      for (i64 j = 0; j < w; ++j) d[j] = src[j];
    }
    for (i64 j = w; j < pw; ++j) d[j] = 0.f;
  }
}

// Every K block (block kb at dst + kb * panels * kKc * kW), blocks and panels split over threads.
void PackAll(bool trans_b, const float* b, i64 ldb, i64 k, i64 n, const Panels& panels, float* dst) {
  const i64 kbs = KBlocks(k), np = panels.count(), block = np * kKc * kW;
  ParallelFor(kbs * np, 4, [&](i64 u0, i64 u1) {
    for (i64 u = u0; u < u1; ++u) {
      const i64 kb = u / np, k0 = kb * kKc;
      PackPanel(trans_b, b, ldb, k0, std::min(kKc, k - k0), n, panels, u % np, dst + kb * block);
    }
  });
}

// C rows [begin, end) against every K block in order (each element: its K blocks' products
// added in k order, as in BLAS kernels). K blocks outermost: one block's panels (<= 32 KiB each)
// stay in cache for all the rows.
void RowsAllK(bool trans_a, const float* a, i64 lda, i64 k, i64 n, const Panels& panels, const float* packed,
              i64 b_ld, float* c, i64 ldc, float alpha, float beta, i64 begin, i64 end) {
  const i64 block = b_ld > 0 ? kKc * b_ld : panels.count() * kKc * kW;
  for (i64 k0 = 0, kb = 0; k0 < k; k0 += kKc, ++kb) {
    const Call g{trans_a, a, lda, n, k0, std::min(kKc, k - k0), packed + kb * block, b_ld, panels, c, ldc, alpha,
                 k0 > 0 || beta != 0.f};
    Rows(g, begin, end);
  }
}

// beta and the degenerate cases of the BLAS contract; true when nothing is left to compute.
bool Prologue(i64 m, i64 n, i64 k, float alpha, float beta, float* c, i64 ldc) {
  if (m <= 0 || n <= 0) return true;
  if (beta != 0.f && beta != 1.f) {
    for (i64 i = 0; i < m; ++i) {
      for (i64 j = 0; j < n; ++j) c[i * ldc + j] *= beta;
    }
  }
  if (k <= 0 || alpha == 0.f) {
    if (beta == 0.f) {
      for (i64 i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    }
    return true;
  }
  return false;
}

void RunRows(bool trans_a, i64 m, i64 n, i64 k, float alpha, const float* a, i64 lda, const float* packed,
             i64 b_ld, float beta, float* c, i64 ldc) {
  const Panels panels = PanelsFor(n);
  // Row ranges in whole micro-tile blocks, so that the split never changes which kernel
  // computes a row (the result does not depend on the thread count anyway).
  const i64 blocks = (m + kR - 1) / kR;
  ParallelFor(blocks, 4, [&](i64 bb, i64 be) {
    RowsAllK(trans_a, a, lda, k, n, panels, packed, b_ld, c, ldc, alpha, beta, bb * kR, std::min(m, be * kR));
  });
}

}  // namespace

void TileGemm(bool trans_a, bool trans_b, i64 m, i64 n, i64 k, float alpha, const float* a, i64 lda,
              const float* b, i64 ldb, float beta, float* c, i64 ldc) {
  if (Prologue(m, n, k, alpha, beta, c, ldc)) return;
  // B read in place, unpacked, when it is not transposed, its width is whole panels and few row
  // blocks would reuse a packed copy (the weight gradients dY^T X: m = a layer's width, K = the
  // tokens, B = X): packing would cost as much as it saves (bench/gemm_bench.cpp, and 4% of
  // the tiny RAD-RWKV6 distill step). Same products in the same order: the same bits.
  constexpr i64 kDirectMaxRows = 8 * kChunkRows;
  if (!trans_b && n % kW == 0 && m <= kDirectMaxRows) {
    RunRows(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Otherwise op(B) packed in spans of whole K blocks of at most kSpanFloats (usually all of
  // it), panels split over threads, then all rows against the span: two parallel jobs per
  // span, none of the packing serial. The buffer is per thread (Gemm may run inside another
  // op's parallel body), grown when needed, never cleared: every element read is written
  // first. Each element still sums its K blocks' products in k order, so the span length
  // changes no bit of the result.
  constexpr i64 kSpanFloats = i64{1} << 19;  // 2 MiB
  thread_local std::vector<float> packed;
  const Panels panels = PanelsFor(n);
  const i64 block = panels.count() * kKc * kW, blocks = KBlocks(k);
  const i64 per_span = std::clamp<i64>(kSpanFloats / block, 1, blocks);
  const auto need = static_cast<std::size_t>(per_span * block);
  if (packed.size() < need) packed.resize(need);
  for (i64 kb = 0; kb < blocks; kb += per_span) {
    const i64 k0 = kb * kKc, ks = std::min(k - k0, per_span * kKc);
    PackAll(trans_b, b + (trans_b ? k0 : k0 * ldb), ldb, ks, n, panels, packed.data());
    RunRows(trans_a, m, n, ks, alpha, a + (trans_a ? k0 * lda : k0), lda, packed.data(), 0, kb > 0 ? 1.f : beta,
            c, ldc);
  }
}

PackedB::PackedB(bool trans_b, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb) : k_(k), n_(n) {
  const Panels panels = PanelsFor(n);
  data_.resize(static_cast<std::size_t>(std::max<i64>(1, KBlocks(k) * panels.count() * kKc * kW)));
  if (k > 0 && n > 0) PackAll(trans_b, b, ldb, k, n, panels, data_.data());
}

void TileGemmPacked(bool trans_a, std::int64_t m, float alpha, const float* a, std::int64_t lda, const PackedB& b,
                    float beta, float* c, std::int64_t ldc) {
  if (Prologue(m, b.n(), b.k(), alpha, beta, c, ldc)) return;
  RunRows(trans_a, m, b.n(), b.k(), alpha, a, lda, b.data(), 0, beta, c, ldc);
}

}  // namespace radlads::cpu
