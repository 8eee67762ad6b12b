#include "kernels/cuda/head_loss_plan.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace radlads::cuda {

namespace {

std::size_t AlignUp(std::size_t x) {
  return (x + kHeadWorkspaceAlign - 1) / kHeadWorkspaceAlign * kHeadWorkspaceAlign;
}

std::int64_t CeilDiv(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::string CheckHeadLoss(const HeadLossShape& s, const HeadLossChunks& c) {
  const std::string what = "head loss (N " + std::to_string(s.n) + ", V " + std::to_string(s.v) +
                           ", C_s " + std::to_string(s.c_s) + ", C_t " + std::to_string(s.c_t) +
                           ", rows " + std::to_string(c.rows) + ", vocab chunk " +
                           std::to_string(c.vocab) + ")";
  if (s.n < 0) return what + ": N must be >= 0";
  if (s.v < 1) return what + ": V must be >= 1";
  if (s.v > std::numeric_limits<std::int32_t>::max())
    return what + ": V must fit the int32 targets";
  if (s.c_s < 1) return what + ": C_s must be >= 1";
  if (s.kind == HeadLossKind::kKl && s.c_t < 1) return what + ": C_t must be >= 1";
  if (c.rows < 0) return what + ": rows must be >= 0 (0 = all rows)";
  if (c.vocab < 1) return what + ": the vocabulary chunk must be >= 1";
  return "";
}

HeadLossPlan PlanHeadLoss(const HeadLossShape& s, const HeadLossChunks& c) {
  const std::string err = CheckHeadLoss(s, c);
  if (!err.empty()) {
    std::fprintf(stderr, "PlanHeadLoss: %s\n", err.c_str());
    std::abort();
  }
  HeadLossPlan p;
  p.teacher_gemm = s.kind == HeadLossKind::kKl;
  p.grad = s.grad;
  p.second_pass = s.grad || s.kind != HeadLossKind::kCrossEntropy;
  if (s.n == 0) return p;
  p.rows = c.rows == 0 || c.rows > s.n ? s.n : c.rows;
  p.vocab = c.vocab > s.v ? s.v : c.vocab;
  p.row_blocks = CeilDiv(s.n, p.rows);
  p.vocab_chunks = CeilDiv(s.v, p.vocab);
  p.recompute = p.second_pass && p.vocab_chunks > 1;
  const auto tile = static_cast<std::size_t>(p.rows) * static_cast<std::size_t>(p.vocab);
  std::size_t off = 0;
  p.zs_offset = off;
  off = AlignUp(off + tile * 4);
  p.zt_offset = off;
  if (p.teacher_gemm) off = AlignUp(off + tile * 4);
  p.dz_offset = off;
  if (p.grad) off = AlignUp(off + tile * 2);
  p.stats_offset = off;
  off = AlignUp(off + static_cast<std::size_t>(p.rows) * kHeadRowStatsBytes);
  p.bytes = off;
  return p;
}

}  // namespace radlads::cuda
