#include "kernels/ops/head_loss_parallel.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "kernels/ops/head_loss_internal.h"

namespace radlads {
namespace {

using head_loss_internal::CeRowPart;
using head_loss_internal::CheckHead;
using head_loss_internal::CheckTargets;
using head_loss_internal::ChunkRows;
using head_loss_internal::ExpF;
using head_loss_internal::FirstIndexOf;
using head_loss_internal::KlRowPart;
using head_loss_internal::RowGrain;
using head_loss_internal::RowMax;
using head_loss_internal::RowPart;
using head_loss_internal::RowsOf;
using head_loss_internal::SumExp;

// ---------------------------------------------------------------------------------------------
// Group consistency. One AllGather of a few integers per call: a caller whose ranks disagree
// (different N, chunk or scales, a missing dx on one rank, overlapping slices) would otherwise
// deadlock in a collective or silently mix rows; here every rank aborts with the same message.

constexpr int kDescFields = 9;
constexpr const char* kDescNames[kDescFields] = {
    "vocab_begin", "Vl", "V", "N", "chunk", "dx given", "targets given", "grad_scale",
    "ce_grad_scale"};

void CheckGroup(const VocabShard& sh, std::int64_t vl, std::int64_t n, std::int64_t chunk,
                bool has_dx, bool has_targets, const HeadLossOptions& opt, const char* op) {
  RADLADS_CHECK(sh.group != nullptr) << op << ": VocabShard::group is null";
  RADLADS_CHECK(vl >= 1 && sh.vocab_begin >= 0 && sh.vocab_begin + vl <= sh.vocab_size)
      << op << ": slice [" << sh.vocab_begin << ", " << sh.vocab_begin + vl
      << ") is empty or outside [0, V=" << sh.vocab_size << ")";
  const std::array<std::int64_t, kDescFields> mine = {
      sh.vocab_begin, vl, sh.vocab_size, n, chunk, has_dx ? 1 : 0, has_targets ? 1 : 0,
      std::bit_cast<std::uint32_t>(opt.grad_scale),
      std::bit_cast<std::uint32_t>(opt.ce_grad_scale)};
  std::string bytes(sizeof(mine), '\0');
  std::memcpy(bytes.data(), mine.data(), sizeof(mine));
  const std::vector<std::string> all = sh.group->AllGather(bytes);
  RADLADS_CHECK(static_cast<int>(all.size()) == sh.group->size())
      << op << ": AllGather returned " << all.size() << " entries for " << sh.group->size()
      << " ranks";
  std::vector<std::pair<std::int64_t, std::int64_t>> slices;  // (begin, rows) of every rank
  for (std::size_t r = 0; r < all.size(); ++r) {
    RADLADS_CHECK(all[r].size() == sizeof(mine)) << op << ": bad descriptor from rank " << r;
    std::array<std::int64_t, kDescFields> theirs;
    std::memcpy(theirs.data(), all[r].data(), sizeof(theirs));
    for (int f = 2; f < kDescFields; ++f)
      RADLADS_CHECK(theirs[f] == mine[f])
          << op << ": rank " << r << " has " << kDescNames[f] << " " << theirs[f] << ", rank "
          << sh.group->rank() << " has " << mine[f] << " (must agree across the group)";
    slices.emplace_back(theirs[0], theirs[1]);
  }
  std::sort(slices.begin(), slices.end());
  std::int64_t next = 0;
  for (const auto& [begin, rows] : slices) {
    RADLADS_CHECK(begin == next) << op << ": the ranks' vocabulary slices do not tile [0, "
                                 << sh.vocab_size << "): a slice starts at " << begin
                                 << ", expected " << next;
    next = begin + rows;
  }
  RADLADS_CHECK(next == sh.vocab_size)
      << op << ": the slices cover [0, " << next << "), V = " << sh.vocab_size;
}

// ---------------------------------------------------------------------------------------------
// Pieces of the chunk loop.

// Minus the global index of this rank's first z == global_max when the rank holds the global
// maximum, else -inf. The AllReduceMax of these over the group is minus the first argmax over
// the whole vocabulary (at least one rank holds the maximum, so never -inf after it).
double ArgmaxCandidate(const float* z, std::int64_t vl, float local_max, float global_max,
                       std::int64_t v0) {
  if (!(local_max == global_max)) return -INFINITY;
  return -static_cast<double>(v0 + FirstIndexOf(z, vl, global_max));
}

// One rank's head slice and its gradient outputs for one call.
struct LocalHead {
  const float* x;  // [N, C], replicated
  const float* w;  // [Vl, C], rows [v0, v0 + Vl)
  std::int64_t n, c, vl, v0;
  float* dw;       // [Vl, C] or null
  Tensor dx_part;  // [N, C] partial dz W_local when dx is wanted, else undefined
  bool grad() const { return dw != nullptr || dx_part.defined(); }
  // Local index of global id y when this rank holds it, else -1.
  std::int64_t Owned(std::int32_t y) const { return y >= v0 && y < v0 + vl ? y - v0 : -1; }
};

LocalHead MakeLocalHead(const Tensor& x, const Tensor& w, std::int64_t n, const HeadGrads& g,
                        std::int64_t v0) {
  LocalHead h{x.f32(), w.f32(), n, x.dim(-1), w.dim(0), v0, nullptr, Tensor()};
  if (g.dw != nullptr) h.dw = g.dw->f32();
  if (g.dx != nullptr) h.dx_part = Tensor::Empty({n, h.c});
  return h;
}

// z[m, Vl] = x[rows] W_local^T.
void LogitsChunk(const LocalHead& h, std::int64_t r0, std::int64_t m, float* z) {
  Gemm(false, true, m, h.vl, h.c, 1.0f, h.x + r0 * h.c, h.c, h.w, h.c, 0.0f, z, h.vl);
}

// dx_part[rows] = dz W_local (every row written once, by its chunk); dW += dz^T x[rows].
void BackwardChunk(LocalHead& h, std::int64_t r0, std::int64_t m, const float* dz) {
  if (h.dx_part.defined())
    Gemm(false, false, m, h.c, h.vl, 1.0f, dz, h.vl, h.w, h.c, 0.0f, h.dx_part.f32() + r0 * h.c,
         h.c);
  if (h.dw != nullptr)
    Gemm(true, false, h.vl, h.c, m, 1.0f, dz, h.vl, h.x + r0 * h.c, h.c, 1.0f, h.dw, h.c);
}

// Sums the dx partials over the group (one collective) and adds the complete dx into *dx.
void FinishDx(Communicator& group, LocalHead& h, Tensor* dx) {
  if (dx == nullptr) return;
  float* part = h.dx_part.f32();
  const std::int64_t numel = h.n * h.c;
  group.AllReduceSum(part, static_cast<std::size_t>(numel));
  float* out = dx->f32();
  cpu::ParallelFor(numel, 1 << 14, [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) out[i] += part[i];
  });
}

}  // namespace

KlResult VocabParallelKl(const Tensor& x_s, const Tensor& w_s_local, const Tensor& x_t,
                         const Tensor& w_t_local, const Tensor* targets, const HeadGrads& grads,
                         const HeadLossOptions& opt, const VocabShard& shard) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  constexpr const char* kOp = "VocabParallelKl";
  const std::int64_t n = CheckHead(x_s, w_s_local, grads, kOp);
  CheckHead(x_t, w_t_local, HeadGrads{}, "VocabParallelKl (teacher)");
  const std::int64_t vl = w_s_local.dim(0), ct = x_t.dim(-1);
  RADLADS_CHECK(w_t_local.dim(0) == vl && RowsOf(x_t, ct) == n)
      << kOp << ": teacher x " << ShapeToString(x_t.shape()) << " W "
      << ShapeToString(w_t_local.shape()) << " vs student x " << ShapeToString(x_s.shape())
      << " W " << ShapeToString(w_s_local.shape());
  if (targets != nullptr) CheckTargets(*targets, n, shard.vocab_size, kOp);
  RADLADS_CHECK(opt.ce_grad_scale == 0.0f || targets != nullptr)
      << kOp << ": ce_grad_scale needs targets";
  const std::int64_t chunk = ChunkRows(opt.chunk, n);
  CheckGroup(shard, vl, n, chunk, grads.dx != nullptr, targets != nullptr, opt, kOp);
  if (n == 0) return KlResult{};

  Communicator& group = *shard.group;
  LocalHead hs = MakeLocalHead(x_s, w_s_local, n, grads, shard.vocab_begin);
  const LocalHead ht = MakeLocalHead(x_t, w_t_local, n, HeadGrads{}, shard.vocab_begin);
  const std::int32_t* tg = targets != nullptr ? targets->data<std::int32_t>() : nullptr;
  const bool grad = hs.grad();
  const float gs = opt.grad_scale, cs = opt.ce_grad_scale;
  const std::int64_t grain = RowGrain(vl);

  Tensor zs_buf = Tensor::Empty({chunk, vl}), zt_buf = Tensor::Empty({chunk, vl});
  float* zs = zs_buf.f32();
  float* zt = zt_buf.f32();
  const auto c2 = static_cast<std::size_t>(2 * chunk);
  std::vector<float> local_max(c2), global_max(c2);  // [student m | teacher m] per chunk
  std::vector<double> sums(c2);                      // the same layout
  std::vector<RowPart> parts(static_cast<std::size_t>(chunk));
  std::vector<double> cand(static_cast<std::size_t>(2 * n));  // [student N | teacher N]
  std::array<double, 2> totals = {0.0, 0.0};                  // this rank's KL and CE terms

  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const std::int64_t m = std::min(chunk, n - r0);
    const auto mu = static_cast<std::size_t>(m);
    LogitsChunk(hs, r0, m, zs);
    LogitsChunk(ht, r0, m, zt);
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        local_max[static_cast<std::size_t>(i)] = RowMax(zs + i * vl, vl);
        local_max[mu + static_cast<std::size_t>(i)] = RowMax(zt + i * vl, vl);
      }
    });
    std::copy(local_max.begin(), local_max.begin() + 2 * m, global_max.begin());
    group.AllReduceMax(global_max.data(), 2 * mu);
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const auto is = static_cast<std::size_t>(i), it = mu + is;
        const float* zsi = zs + i * vl;
        const float* zti = zt + i * vl;
        sums[is] = SumExp(zsi, vl, global_max[is]);
        sums[it] = SumExp(zti, vl, global_max[it]);
        cand[static_cast<std::size_t>(r0 + i)] =
            ArgmaxCandidate(zsi, vl, local_max[is], global_max[is], hs.v0);
        cand[static_cast<std::size_t>(n + r0 + i)] =
            ArgmaxCandidate(zti, vl, local_max[it], global_max[it], hs.v0);
      }
    });
    group.AllReduceSum(sums.data(), 2 * mu);
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const auto is = static_cast<std::size_t>(i), it = mu + is;
        const std::int32_t y = tg != nullptr ? tg[r0 + i] : -1;
        const std::int64_t yl = hs.Owned(y);
        parts[is] = grad ? KlRowPart<true>(zt + i * vl, zs + i * vl, vl, global_max[is],
                                           global_max[it], sums[is], sums[it], y, yl, gs, cs)
                         : KlRowPart<false>(zt + i * vl, zs + i * vl, vl, global_max[is],
                                            global_max[it], sums[is], sums[it], y, yl, gs, cs);
      }
    });
    for (std::size_t i = 0; i < mu; ++i) {  // in row order: deterministic
      totals[0] += parts[i].kl;
      totals[1] += parts[i].ce;
    }
    if (grad) BackwardChunk(hs, r0, m, zs);
  }

  group.AllReduceMax(cand.data(), cand.size());
  group.AllReduceSum(totals.data(), totals.size());
  FinishDx(group, hs, grads.dx);
  KlResult res;
  res.kl_sum = totals[0];
  res.ce_sum = totals[1];
  for (std::int64_t r = 0; r < n; ++r) {
    const auto ru = static_cast<std::size_t>(r);
    res.top1_agree += cand[ru] == cand[static_cast<std::size_t>(n) + ru] ? 1 : 0;
    if (tg != nullptr && tg[r] >= 0) res.ce_count += 1;
  }
  return res;
}

CeResult VocabParallelCrossEntropy(const Tensor& x, const Tensor& w_local, const Tensor& targets,
                                   const HeadGrads& grads, const HeadLossOptions& opt,
                                   const VocabShard& shard) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  constexpr const char* kOp = "VocabParallelCrossEntropy";
  const std::int64_t n = CheckHead(x, w_local, grads, kOp);
  const std::int64_t vl = w_local.dim(0);
  CheckTargets(targets, n, shard.vocab_size, kOp);
  const std::int64_t chunk = ChunkRows(opt.chunk, n);
  CheckGroup(shard, vl, n, chunk, grads.dx != nullptr, true, opt, kOp);
  if (n == 0) return CeResult{};

  Communicator& group = *shard.group;
  LocalHead h = MakeLocalHead(x, w_local, n, grads, shard.vocab_begin);
  const std::int32_t* tg = targets.data<std::int32_t>();
  const bool grad = h.grad();
  const float gs = opt.grad_scale;
  const std::int64_t grain = RowGrain(vl);

  Tensor z_buf = Tensor::Empty({chunk, vl});
  float* z = z_buf.f32();
  const auto cu = static_cast<std::size_t>(chunk);
  std::vector<float> local_max(cu), global_max(cu);
  std::vector<double> sums(cu), loss(cu);
  std::vector<double> cand(static_cast<std::size_t>(n));
  double total = 0.0;  // this rank's CE terms (rows whose target it owns)

  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const std::int64_t m = std::min(chunk, n - r0);
    const auto mu = static_cast<std::size_t>(m);
    LogitsChunk(h, r0, m, z);
    // Ignored rows (target -1) take no part: maximum -inf, sum 0, zero gradient row.
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        local_max[static_cast<std::size_t>(i)] =
            tg[r0 + i] < 0 ? -INFINITY : RowMax(z + i * vl, vl);
    });
    std::copy(local_max.begin(), local_max.begin() + m, global_max.begin());
    group.AllReduceMax(global_max.data(), mu);
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const auto iu = static_cast<std::size_t>(i);
        const bool ignored = tg[r0 + i] < 0;
        sums[iu] = ignored ? 0.0 : SumExp(z + i * vl, vl, global_max[iu]);
        cand[static_cast<std::size_t>(r0 + i)] =
            ignored ? -INFINITY
                    : ArgmaxCandidate(z + i * vl, vl, local_max[iu], global_max[iu], h.v0);
      }
    });
    group.AllReduceSum(sums.data(), mu);
    cpu::ParallelFor(m, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const auto iu = static_cast<std::size_t>(i);
        float* zi = z + i * vl;
        const std::int32_t y = tg[r0 + i];
        if (y < 0) {
          if (grad) std::fill(zi, zi + vl, 0.0f);
          loss[iu] = 0.0;
          continue;
        }
        const std::int64_t yl = h.Owned(y);
        loss[iu] = grad ? CeRowPart<true>(zi, vl, global_max[iu], sums[iu], yl, gs)
                        : CeRowPart<false>(zi, vl, global_max[iu], sums[iu], yl, gs);
      }
    });
    for (std::size_t i = 0; i < mu; ++i) total += loss[i];  // in row order: deterministic
    if (grad) BackwardChunk(h, r0, m, z);
  }

  group.AllReduceMax(cand.data(), cand.size());
  group.AllReduceSum(&total, 1);
  FinishDx(group, h, grads.dx);
  CeResult res;
  res.loss_sum = total;
  for (std::int64_t r = 0; r < n; ++r) {
    if (tg[r] < 0) continue;
    res.count += 1;
    res.correct += -cand[static_cast<std::size_t>(r)] == static_cast<double>(tg[r]) ? 1 : 0;
  }
  return res;
}

}  // namespace radlads
