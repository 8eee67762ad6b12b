#include "kernels/cuda/gemm_shape.h"

#include <cstdint>
#include <string>

namespace radlads::cuda {

namespace {

std::string Describe(const GemmDims& d) {
  return "GEMM (trans_a " + std::to_string(d.trans_a) + ", trans_b " + std::to_string(d.trans_b) +
         ", M " + std::to_string(d.m) + ", N " + std::to_string(d.n) + ", K " +
         std::to_string(d.k) + ", lda " + std::to_string(d.lda) + ", ldb " +
         std::to_string(d.ldb) + ", ldc " + std::to_string(d.ldc) + ", batch " +
         std::to_string(d.batch) + ")";
}

std::int64_t AtLeastOne(std::int64_t x) { return x < 1 ? 1 : x; }

}  // namespace

std::string CheckGemmDims(const GemmDims& d) {
  if (d.m < 0 || d.n < 0 || d.k < 0) return Describe(d) + ": negative size";
  if (d.batch < 1) return Describe(d) + ": batch must be >= 1";
  if (d.stride_a < 0 || d.stride_b < 0 || d.stride_c < 0)
    return Describe(d) + ": negative batch stride";
  const std::int64_t a_cols = d.trans_a ? d.m : d.k;  // row length of the stored A
  const std::int64_t b_cols = d.trans_b ? d.k : d.n;
  if (d.lda < AtLeastOne(a_cols))
    return Describe(d) + ": lda must be >= " + std::to_string(AtLeastOne(a_cols));
  if (d.ldb < AtLeastOne(b_cols))
    return Describe(d) + ": ldb must be >= " + std::to_string(AtLeastOne(b_cols));
  if (d.ldc < AtLeastOne(d.n)) return Describe(d) + ": ldc must be >= " + std::to_string(AtLeastOne(d.n));
  return "";
}

ColMajorGemm ToColumnMajor(const GemmDims& d) {
  ColMajorGemm g;
  g.m = d.n;
  g.n = d.m;
  g.k = d.k;
  g.batch = d.batch;
  // A' = the caller's B. Row-major B is [K,N] (or [N,K] when trans_b); its column-major view is
  // the transpose: [N,K] (or [K,N]).
  g.a.trans = d.trans_b;
  g.a.rows = d.trans_b ? d.k : d.n;
  g.a.cols = d.trans_b ? d.n : d.k;
  g.a.ld = d.ldb;
  g.a.stride = d.stride_b;
  // B' = the caller's A: row-major [M,K] (or [K,M]) viewed as [K,M] (or [M,K]).
  g.b.trans = d.trans_a;
  g.b.rows = d.trans_a ? d.m : d.k;
  g.b.cols = d.trans_a ? d.k : d.m;
  g.b.ld = d.lda;
  g.b.stride = d.stride_a;
  // C' = the caller's C: row-major [M,N] viewed as [N,M].
  g.c.rows = d.n;
  g.c.cols = d.m;
  g.c.ld = d.ldc;
  g.c.stride = d.stride_c;
  return g;
}

std::uint32_t PointerAlignment(const void* p, std::uint32_t cap) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t align = 1;
  while (align < cap && (addr & (static_cast<std::uintptr_t>(align) * 2 - 1)) == 0) align *= 2;
  return align;
}

}  // namespace radlads::cuda
