#include "kernels/ops/head_loss.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "kernels/ops/head_loss_internal.h"

namespace radlads {
namespace {

using head_loss_internal::CheckF32Cpu;
using head_loss_internal::CheckHead;
using head_loss_internal::CheckTargets;
using head_loss_internal::CeRowPart;
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
// Row kernels: one row of Vc logits, run inside ParallelFor (no GEMM, no allocation).

struct RowOut {
  double loss = 0.0;     // KL (KL kernel) or CE (CE kernel)
  double ce = 0.0;       // KL kernel: student CE when a target is given
  bool flag = false;     // KL kernel: top-1 agreement; CE kernel: argmax == target
  bool counted = false;  // a target was given and is not -1
};

// KL(p_t || p_s) of one row. With kGrad, overwrites zs with
// gs * (p_s - p_t) + cs * (p_s - onehot(target)), the CE term only when target != -1.
// log p_t - log p_s = (zt - zs) - (lse_t - lse_s): the difference zt - zs is taken first, so
// nearly equal logits cancel exactly and a KL near 0 keeps its relative accuracy.
template <bool kGrad>
RowOut KlRow(const float* zt, float* zs, std::int64_t vc, std::int32_t target, float gs, float cs) {
  RowOut out;
  float ms = -INFINITY, mt = -INFINITY;
#pragma omp simd reduction(max : ms, mt)
  for (std::int64_t v = 0; v < vc; ++v) {
    ms = zs[v] > ms ? zs[v] : ms;
    mt = zt[v] > mt ? zt[v] : mt;
  }
  out.flag = FirstIndexOf(zs, vc, ms) == FirstIndexOf(zt, vc, mt);
  double ss = 0.0, st = 0.0;
#pragma omp simd reduction(+ : ss, st)
  for (std::int64_t v = 0; v < vc; ++v) {
    ss += static_cast<double>(ExpF(zs[v] - ms));
    st += static_cast<double>(ExpF(zt[v] - mt));
  }
  const RowPart part = KlRowPart<kGrad>(zt, zs, vc, ms, mt, ss, st, target, target, gs, cs);
  out.counted = target >= 0;
  out.ce = part.ce;
  out.loss = part.kl;
  return out;
}

// -log softmax(z)[target] of one row. With kGrad, overwrites z with gs * (p - onehot(target));
// an ignored row (target -1) gets a zero gradient row.
template <bool kGrad>
RowOut CeRow(float* z, std::int64_t vc, std::int32_t target, float gs) {
  RowOut out;
  if (target < 0) {
    if constexpr (kGrad) std::fill(z, z + vc, 0.0f);
    return out;
  }
  const float m = RowMax(z, vc);
  out.counted = true;
  out.flag = FirstIndexOf(z, vc, m) == target;
  out.loss = CeRowPart<kGrad>(z, vc, m, SumExp(z, vc, m), target, gs);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The chunk loop shared by all three losses.
//   teacher(r0, m) -> const float* to the teacher logits of rows [r0, r0+m) (or nullptr),
//   row(r, zt_row, zs_row) -> RowOut for global row r, run in parallel over a chunk's rows,
//   sink(outs, m) consumes a chunk's row results, chunk after chunk (in row order).
// GEMMs run here, outside ParallelFor. Extra memory: one [chunk, Vc] buffer + O(chunk).
struct HeadArgs {
  const float* x;
  const float* w;
  std::int64_t n, c, vc;
  float* dx;
  float* dw;
  bool grad() const { return dx != nullptr || dw != nullptr; }
};

template <typename Teacher, typename Row, typename Sink>
void ChunkLoop(const HeadArgs& h, std::int64_t chunk, Teacher&& teacher, Row&& row, Sink&& sink) {
  if (h.n == 0) return;
  Tensor zbuf = Tensor::Empty({chunk, h.vc});
  float* z = zbuf.f32();
  std::vector<RowOut> outs(static_cast<std::size_t>(chunk));
  for (std::int64_t r0 = 0; r0 < h.n; r0 += chunk) {
    const std::int64_t m = std::min(chunk, h.n - r0);
    const float* xr = h.x + r0 * h.c;
    Gemm(false, true, m, h.vc, h.c, 1.0f, xr, h.c, h.w, h.c, 0.0f, z, h.vc);  // z = x W^T
    const float* zt = teacher(r0, m);
    cpu::ParallelFor(m, RowGrain(h.vc), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        outs[static_cast<std::size_t>(i)] =
            row(r0 + i, zt == nullptr ? nullptr : zt + i * h.vc, z + i * h.vc);
    });
    sink(outs.data(), m);
    if (h.dx != nullptr)  // dx[rows] += dz W
      Gemm(false, false, m, h.c, h.vc, 1.0f, z, h.vc, h.w, h.c, 1.0f, h.dx + r0 * h.c, h.c);
    if (h.dw != nullptr)  // dW += dz^T x[rows]
      Gemm(true, false, h.vc, h.c, m, 1.0f, z, h.vc, xr, h.c, 1.0f, h.dw, h.c);
  }
}

HeadArgs MakeArgs(const Tensor& x, const Tensor& w, std::int64_t n, const HeadGrads& g) {
  HeadArgs h{x.f32(), w.f32(), n, x.dim(-1), w.dim(0), nullptr, nullptr};
  if (g.dx != nullptr) h.dx = g.dx->f32();
  if (g.dw != nullptr) h.dw = g.dw->f32();
  return h;
}

// Shared by both KL entry points; `teacher` supplies the teacher logits of a chunk.
template <typename Teacher>
KlResult RunKl(const HeadArgs& h, std::int64_t chunk, const Tensor* targets,
               const HeadLossOptions& opt, Teacher&& teacher) {
  const std::int32_t* tg = targets != nullptr ? targets->data<std::int32_t>() : nullptr;
  const bool grad = h.grad();
  const float gs = opt.grad_scale, cs = opt.ce_grad_scale;
  RADLADS_CHECK(cs == 0.0f || tg != nullptr) << "FusedKl: ce_grad_scale needs targets";
  auto row = [&](std::int64_t r, const float* zt, float* zs) {
    const std::int32_t y = tg != nullptr ? tg[r] : -1;
    return grad ? KlRow<true>(zt, zs, h.vc, y, gs, cs) : KlRow<false>(zt, zs, h.vc, y, gs, cs);
  };
  KlResult res;
  auto sink = [&](const RowOut* o, std::int64_t m) {
    for (std::int64_t i = 0; i < m; ++i) {  // in row order: deterministic
      res.kl_sum += o[i].loss;
      res.top1_agree += o[i].flag ? 1 : 0;
      if (o[i].counted) {
        res.ce_sum += o[i].ce;
        res.ce_count += 1;
      }
    }
  };
  ChunkLoop(h, chunk, teacher, row, sink);
  return res;
}

}  // namespace

KlResult FusedKl(const Tensor& x_s, const Tensor& w_s, const Tensor& x_t, const Tensor& w_t,
                 const Tensor* targets, const HeadGrads& grads, const HeadLossOptions& opt) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  const std::int64_t n = CheckHead(x_s, w_s, grads, "FusedKl");
  CheckHead(x_t, w_t, HeadGrads{}, "FusedKl (teacher)");
  const std::int64_t vc = w_s.dim(0), ct = x_t.dim(-1);
  RADLADS_CHECK(w_t.dim(0) == vc && RowsOf(x_t, ct) == n)
      << "FusedKl: teacher x " << ShapeToString(x_t.shape()) << " W " << ShapeToString(w_t.shape())
      << " vs student x " << ShapeToString(x_s.shape()) << " W " << ShapeToString(w_s.shape());
  if (targets != nullptr) CheckTargets(*targets, n, vc, "FusedKl");
  const std::int64_t chunk = ChunkRows(opt.chunk, n);
  if (n == 0) return KlResult{};
  Tensor zt_buf = Tensor::Empty({chunk, vc});
  const float* xt = x_t.f32();
  const float* wt = w_t.f32();
  float* zt = zt_buf.f32();
  auto teacher = [&](std::int64_t r0, std::int64_t m) -> const float* {
    Gemm(false, true, m, vc, ct, 1.0f, xt + r0 * ct, ct, wt, ct, 0.0f, zt, vc);  // z_t = x_t W_t^T
    return zt;
  };
  return RunKl(MakeArgs(x_s, w_s, n, grads), chunk, targets, opt, teacher);
}

KlResult FusedKlTeacherLogits(const Tensor& x_s, const Tensor& w_s, const Tensor& z_t,
                              const Tensor* targets, const HeadGrads& grads,
                              const HeadLossOptions& opt) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  const std::int64_t n = CheckHead(x_s, w_s, grads, "FusedKlTeacherLogits");
  const std::int64_t vc = w_s.dim(0);
  CheckF32Cpu(z_t, "z_t");
  RADLADS_CHECK(z_t.rank() >= 1 && z_t.dim(-1) == vc && RowsOf(z_t, vc) == n)
      << "FusedKlTeacherLogits: z_t " << ShapeToString(z_t.shape()) << " vs N=" << n
      << " Vc=" << vc;
  if (targets != nullptr) CheckTargets(*targets, n, vc, "FusedKlTeacherLogits");
  const std::int64_t chunk = ChunkRows(opt.chunk, n);
  const float* zt = n == 0 ? nullptr : z_t.f32();
  auto teacher = [&](std::int64_t r0, std::int64_t) -> const float* { return zt + r0 * vc; };
  return RunKl(MakeArgs(x_s, w_s, n, grads), chunk, targets, opt, teacher);
}

CeResult FusedCrossEntropy(const Tensor& x, const Tensor& w, const Tensor& targets,
                           const HeadGrads& grads, const HeadLossOptions& opt) {
  const profile::Scope profile_scope(profile::Family::kHeadLoss);
  const std::int64_t n = CheckHead(x, w, grads, "FusedCrossEntropy");
  const std::int64_t vc = w.dim(0);
  CheckTargets(targets, n, vc, "FusedCrossEntropy");
  const std::int64_t chunk = ChunkRows(opt.chunk, n);
  const HeadArgs h = MakeArgs(x, w, n, grads);
  const std::int32_t* tg = targets.data<std::int32_t>();
  const bool grad = h.grad();
  const float gs = opt.grad_scale;
  auto none = [](std::int64_t, std::int64_t) -> const float* { return nullptr; };
  auto row = [&](std::int64_t r, const float*, float* z) {
    return grad ? CeRow<true>(z, vc, tg[r], gs) : CeRow<false>(z, vc, tg[r], gs);
  };
  CeResult res;
  auto sink = [&](const RowOut* o, std::int64_t m) {
    for (std::int64_t i = 0; i < m; ++i) {
      if (!o[i].counted) continue;
      res.loss_sum += o[i].loss;
      res.count += 1;
      res.correct += o[i].flag ? 1 : 0;
    }
  };
  ChunkLoop(h, chunk, none, row, sink);
  return res;
}

}  // namespace radlads
