// Fused LM head + KL / CE on the device (kernels/cuda/head_loss.h): the row-block x vocabulary-
// chunk loop, the online-softmax statistics kernel, the KL / gradient kernel and the fixed-order
// row sum. GEMMs go through kernels/cuda/gemm.h (cuBLASLt).
#include "kernels/cuda/head_loss.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/head_loss_plan.h"

namespace radlads::cuda {
namespace {

constexpr int kThreads = 256;  // one block per row; threads stride over the chunk's columns
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Per-row state of a row block, in the workspace. Running statistics over the chunks seen so far.
struct RowStats {
  double ss, st;  // sum exp(z - m) of the student / teacher
  double kl;      // KL terms of the row (pass 2)
  float ms, mt;   // running maxima
  float zy;       // the student logit at the target (0 when none)
  int as, at;     // first index of the maximum (global vocabulary id)
};
static_assert(sizeof(RowStats) == kHeadRowStatsBytes, "head_loss_plan.h's kHeadRowStatsBytes");

// ---------------------------------------------------------------------------------------------
// Online (max, sum exp, first argmax) of a set of logits: s = sum exp(z - m).

struct Soft {
  float m;
  float s;
  int i;
};

__device__ inline Soft SoftEmpty() { return Soft{-INFINITY, 0.0f, INT_MAX}; }

// Adds logit z at chunk column j (columns of one thread arrive in increasing order, so a strict >
// keeps the first index of the maximum). -inf logits add 0; NaN propagates into s.
__device__ inline void SoftAdd(Soft& a, float z, int j) {
  if (z > a.m) {
    a.s = a.s * expf(a.m - z) + 1.0f;  // a.m == -inf: 0 * 0 + 1
    a.m = z;
    a.i = j;
  } else {
    a.s += z == -INFINITY ? 0.0f : expf(z - a.m);
  }
}

// Commutative: the same bits for (a, b) and (b, a).
__device__ inline Soft SoftCombine(const Soft& a, const Soft& b) {
  Soft r;
  r.m = b.m > a.m ? b.m : a.m;
  r.i = b.m > a.m ? b.i : (a.m > b.m ? a.i : min(a.i, b.i));
  const float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - r.m);
  const float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - r.m);
  r.s = sa + sb;
  return r;
}

// Block-wide combine in a fixed tree; the result is valid in thread 0. `sh` holds kWarps entries.
__device__ Soft BlockSoft(Soft a, Soft* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off > 0; off >>= 1) {
    Soft o;
    o.m = __shfl_down_sync(kFullMask, a.m, off);
    o.s = __shfl_down_sync(kFullMask, a.s, off);
    o.i = __shfl_down_sync(kFullMask, a.i, off);
    a = SoftCombine(a, o);
  }
  if (lane == 0) sh[warp] = a;
  __syncthreads();
  if (warp == 0) {
    a = lane < kWarps ? sh[lane] : SoftEmpty();
    for (int off = 16; off > 0; off >>= 1) {
      Soft o;
      o.m = __shfl_down_sync(kFullMask, a.m, off);
      o.s = __shfl_down_sync(kFullMask, a.s, off);
      o.i = __shfl_down_sync(kFullMask, a.i, off);
      a = SoftCombine(a, o);
    }
  }
  return a;
}

// Block-wide double sum in a fixed tree; valid in thread 0.
__device__ double BlockSum(double x, double* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off > 0; off >>= 1) x += __shfl_down_sync(kFullMask, x, off);
  if (lane == 0) sh[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < kWarps ? sh[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) x += __shfl_down_sync(kFullMask, x, off);
  }
  return x;
}

// Merges a chunk's statistics (chunk columns offset by v0) into a row's running ones. Chunks
// arrive in increasing v0, so on equal maxima the earlier (smaller) index stays.
__device__ inline void MergeRow(float& m, double& s, int& arg, const Soft& c, int v0, bool first) {
  const int ci = c.i == INT_MAX ? 0 : c.i;  // no finite logit in the chunk
  if (first) {
    m = c.m;
    s = c.s;
    arg = v0 + ci;
  } else if (c.m > m) {
    s = (m == -INFINITY ? 0.0 : s * exp(static_cast<double>(m) - c.m)) + c.s;
    m = c.m;
    arg = v0 + ci;
  } else if (c.m != -INFINITY) {
    s += static_cast<double>(c.s) * exp(static_cast<double>(c.m) - m);
  }
}

__device__ inline bool ValidTarget(int y, int v) { return y >= 0 && y < v; }

// ---------------------------------------------------------------------------------------------
// Pass 1: one block per row of the block. zs/zt point at the chunk's column 0 of row 0 (row
// strides lds/ldt); columns [0, vc) are global ids [v0, v0 + vc). targets points at the block's
// first row (or null). CE mode: rows without a valid target are skipped entirely.
template <bool kTeacher>
__global__ void __launch_bounds__(kThreads)
    StatsKernel(const float* __restrict__ zs, std::int64_t lds, const float* __restrict__ zt,
                std::int64_t ldt, int vc, int v0, bool first, const std::int32_t* targets, int v,
                bool ce_mode, RowStats* stats) {
  __shared__ Soft sh_s[kWarps];
  __shared__ Soft sh_t[kWarps];
  const std::int64_t row = blockIdx.x;
  const int y = targets != nullptr ? targets[row] : -1;
  if (ce_mode && !ValidTarget(y, v)) return;  // uniform over the block
  const float* zsr = zs + row * lds;
  const float* ztr = kTeacher ? zt + row * ldt : nullptr;
  Soft a = SoftEmpty(), b = SoftEmpty();
  for (int j = threadIdx.x; j < vc; j += kThreads) {
    SoftAdd(a, zsr[j], j);
    if constexpr (kTeacher) SoftAdd(b, ztr[j], j);
  }
  a = BlockSoft(a, sh_s);
  if constexpr (kTeacher) b = BlockSoft(b, sh_t);
  if (threadIdx.x == 0) {
    RowStats& st = stats[row];
    MergeRow(st.ms, st.ss, st.as, a, v0, first);
    if constexpr (kTeacher) MergeRow(st.mt, st.st, st.at, b, v0, first);
    if (first) st.zy = 0.0f;
    if (y >= v0 && y < v0 + vc) st.zy = zsr[y - v0];
  }
}

// Pass 2 of the KL: the row's KL terms over the chunk (added to stats.kl) and, with kGrad,
// dz = gs (p_s - p_t) + cs (p_s - onehot) in bf16 (row stride ldd). The numerics of
// head_loss_internal.h's KlRowPart: p = exp((z - m) - log s), the KL term p_t ((z_t - z_s) - d).
template <bool kGrad>
__global__ void __launch_bounds__(kThreads)
    KlPassKernel(const float* __restrict__ zs, std::int64_t lds, const float* __restrict__ zt,
                 std::int64_t ldt, int vc, int v0, bool first, const std::int32_t* targets, int v,
                 float gs, float cs, RowStats* stats, __nv_bfloat16* __restrict__ dz,
                 std::int64_t ldd) {
  __shared__ double sh[kWarps];
  const std::int64_t row = blockIdx.x;
  const int y = targets != nullptr ? targets[row] : -1;
  const RowStats st = stats[row];
  const double log_ss = log(st.ss), log_st = log(st.st);
  const float ls = static_cast<float>(log_ss), lt = static_cast<float>(log_st);
  const float d = static_cast<float>((static_cast<double>(st.mt) - st.ms) + (log_st - log_ss));
  const float cse = ValidTarget(y, v) ? cs : 0.0f;
  const int yl = y - v0;  // the target's chunk column (may be outside [0, vc))
  const float* zsr = zs + row * lds;
  const float* ztr = zt + row * ldt;
  __nv_bfloat16* dzr = kGrad ? dz + row * ldd : nullptr;
  double kl = 0.0;
  for (int j = threadIdx.x; j < vc; j += kThreads) {
    const float zsv = zsr[j], ztv = ztr[j];
    const float pt = expf((ztv - st.mt) - lt);
    kl += static_cast<double>(pt * ((ztv - zsv) - d));
    if constexpr (kGrad) {
      const float ps = expf((zsv - st.ms) - ls);
      float g = gs * (ps - pt) + cse * ps;
      if (j == yl) g -= cse;
      dzr[j] = __float2bfloat16_rn(g);
    }
  }
  kl = BlockSum(kl, sh);
  if (threadIdx.x == 0) stats[row].kl = (first ? 0.0 : st.kl) + kl;
}

// Pass 2 of the CE (gradient only): dz = gs (p - onehot(target)); zero rows for ignored targets.
__global__ void __launch_bounds__(kThreads)
    CeGradKernel(const float* __restrict__ zs, std::int64_t lds, int vc, int v0,
                 const std::int32_t* targets, int v, float gs, const RowStats* stats,
                 __nv_bfloat16* __restrict__ dz, std::int64_t ldd) {
  const std::int64_t row = blockIdx.x;
  const int y = targets[row];
  __nv_bfloat16* dzr = dz + row * ldd;
  if (!ValidTarget(y, v)) {
    for (int j = threadIdx.x; j < vc; j += kThreads) dzr[j] = __float2bfloat16_rn(0.0f);
    return;
  }
  const RowStats st = stats[row];
  const float ls = static_cast<float>(log(st.ss));
  const int yl = y - v0;
  const float* zsr = zs + row * lds;
  for (int j = threadIdx.x; j < vc; j += kThreads) {
    float g = gs * expf((zsr[j] - st.ms) - ls);
    if (j == yl) g -= gs;
    dzr[j] = __float2bfloat16_rn(g);
  }
}

// Adds the m rows of a block to the result, in a fixed order (strided per thread, then a tree).
//   KL: s0 = KL, s1 = CE (valid targets), c0 = top-1 agreement, c1 = CE rows
//   CE: s0 = CE (valid targets), c0 = CE rows, c1 = argmax == target
template <bool kKl>
__global__ void __launch_bounds__(kThreads)
    FinishKernel(const RowStats* stats, const std::int32_t* targets, int m, int v,
                 double* s_out0, double* s_out1, long long* c_out0, long long* c_out1,
                 long long* invalid_out) {
  __shared__ double s0[kThreads], s1[kThreads];
  __shared__ long long c0[kThreads], c1[kThreads], ci[kThreads];
  double a0 = 0.0, a1 = 0.0;
  long long n0 = 0, n1 = 0, bad = 0;
  for (int i = threadIdx.x; i < m; i += kThreads) {
    const int y = targets != nullptr ? targets[i] : -1;
    const bool valid = ValidTarget(y, v);
    bad += (y < -1 || y >= v) ? 1 : 0;
    if constexpr (kKl) {
      const RowStats st = stats[i];
      a0 += st.kl;
      n0 += st.as == st.at ? 1 : 0;
      if (valid) {
        a1 += (static_cast<double>(st.ms) - st.zy) + log(st.ss);
        n1 += 1;
      }
    } else if (valid) {
      const RowStats st = stats[i];
      a0 += (static_cast<double>(st.ms) - st.zy) + log(st.ss);
      n0 += 1;
      n1 += st.as == y ? 1 : 0;
    }
  }
  const int t = threadIdx.x;
  s0[t] = a0;
  s1[t] = a1;
  c0[t] = n0;
  c1[t] = n1;
  ci[t] = bad;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (t < half) {
      s0[t] += s0[t + half];
      s1[t] += s1[t + half];
      c0[t] += c0[t + half];
      c1[t] += c1[t + half];
      ci[t] += ci[t + half];
    }
    __syncthreads();
  }
  if (t == 0) {
    *s_out0 += s0[0];
    if (s_out1 != nullptr) *s_out1 += s1[0];
    *c_out0 += c0[0];
    *c_out1 += c1[0];
    *invalid_out += ci[0];
  }
}

// ---------------------------------------------------------------------------------------------
// Host driver.

[[noreturn]] void Die(const char* op, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", op, msg.c_str());
  std::abort();
}

struct Problem {
  HeadLossKind kind;
  const __nv_bfloat16* x_s;
  const __nv_bfloat16* w_s;
  std::int64_t c_s;
  const __nv_bfloat16* x_t;  // kKl
  const __nv_bfloat16* w_t;  // kKl
  std::int64_t c_t;
  const float* z_t;          // kKlTeacherLogits
  std::int64_t n, v;
  const std::int32_t* targets;
  HeadGradsCuda grads;
  HeadLossCudaOptions opt;
};

// z [m, vc] (row stride ldz) = x[m, c] W[vc, c]^T.
void Logits(const __nv_bfloat16* x, const __nv_bfloat16* w, std::int64_t c, std::int64_t m,
            std::int64_t vc, float* z, std::int64_t ldz, cudaStream_t stream) {
  GemmBf16(false, true, m, vc, c, 1.0f, x, c, w, c, 0.0f, z, ldz, stream);
}

void Run(const Problem& p, void* workspace, std::size_t workspace_bytes, double* s_out0,
         double* s_out1, long long* c_out0, long long* c_out1, long long* invalid_out,
         cudaStream_t stream, const char* op) {
  const bool grad = p.grads.dx != nullptr || p.grads.dw != nullptr;
  const HeadLossShape shape{p.kind, p.n, p.v, p.c_s, p.c_t, grad};
  const std::string err = CheckHeadLoss(shape, p.opt.chunks);
  if (!err.empty()) Die(op, err);
  const bool kl = p.kind != HeadLossKind::kCrossEntropy;
  if (!kl && p.targets == nullptr) Die(op, "targets are required");
  if (kl && p.opt.ce_grad_scale != 0.0f && p.targets == nullptr)
    Die(op, "ce_grad_scale needs targets");
  const HeadLossPlan plan = PlanHeadLoss(shape, p.opt.chunks);
  if (workspace_bytes < plan.bytes || (plan.bytes > 0 && workspace == nullptr))
    Die(op, "workspace of " + std::to_string(workspace_bytes) + " bytes, the plan needs " +
                std::to_string(plan.bytes) + " (HeadLossWorkspaceBytes)");
  if (p.n == 0) return;

  auto* base = static_cast<unsigned char*>(workspace);
  float* zs = reinterpret_cast<float*>(base + plan.zs_offset);
  float* zt_scratch = plan.teacher_gemm ? reinterpret_cast<float*>(base + plan.zt_offset) : nullptr;
  __nv_bfloat16* dz = grad ? reinterpret_cast<__nv_bfloat16*>(base + plan.dz_offset) : nullptr;
  RowStats* stats = reinterpret_cast<RowStats*>(base + plan.stats_offset);
  const std::int64_t ldz = plan.vocab;
  const int v = static_cast<int>(p.v);
  const float gs = p.opt.grad_scale, cs = p.opt.ce_grad_scale;

  for (std::int64_t r0 = 0; r0 < p.n; r0 += plan.rows) {
    const std::int64_t m = p.n - r0 < plan.rows ? p.n - r0 : plan.rows;
    const auto blocks = static_cast<unsigned>(m);
    const std::int32_t* tg = p.targets != nullptr ? p.targets + r0 : nullptr;
    const __nv_bfloat16* xs = p.x_s + r0 * p.c_s;
    const __nv_bfloat16* xt = kl && plan.teacher_gemm ? p.x_t + r0 * p.c_t : nullptr;
    // The chunk's logits (both heads) into the scratch; returns the teacher's (pointer, stride).
    auto logits = [&](std::int64_t v0, std::int64_t vc) -> std::pair<const float*, std::int64_t> {
      Logits(xs, p.w_s + v0 * p.c_s, p.c_s, m, vc, zs, ldz, stream);
      if (plan.teacher_gemm) {
        Logits(xt, p.w_t + v0 * p.c_t, p.c_t, m, vc, zt_scratch, ldz, stream);
        return {zt_scratch, ldz};
      }
      if (p.z_t != nullptr) return {p.z_t + r0 * p.v + v0, p.v};
      return {nullptr, 0};
    };

    for (std::int64_t v0 = 0; v0 < p.v; v0 += plan.vocab) {  // pass 1
      const std::int64_t vc = p.v - v0 < plan.vocab ? p.v - v0 : plan.vocab;
      const auto [zt, ldt] = logits(v0, vc);
      if (kl)
        StatsKernel<true><<<blocks, kThreads, 0, stream>>>(zs, ldz, zt, ldt, static_cast<int>(vc),
                                                           static_cast<int>(v0), v0 == 0, tg, v,
                                                           false, stats);
      else
        StatsKernel<false><<<blocks, kThreads, 0, stream>>>(zs, ldz, nullptr, 0,
                                                            static_cast<int>(vc),
                                                            static_cast<int>(v0), v0 == 0, tg, v,
                                                            true, stats);
      RADLADS_CUDA_CHECK(cudaGetLastError());
    }

    if (plan.second_pass) {
      for (std::int64_t v0 = 0; v0 < p.v; v0 += plan.vocab) {  // pass 2
        const std::int64_t vc = p.v - v0 < plan.vocab ? p.v - v0 : plan.vocab;
        std::pair<const float*, std::int64_t> teacher{nullptr, 0};
        if (plan.recompute) {
          teacher = logits(v0, vc);
        } else if (plan.teacher_gemm) {  // one chunk: the scratch still holds pass 1's logits
          teacher = {zt_scratch, ldz};
        } else if (p.z_t != nullptr) {
          teacher = {p.z_t + r0 * p.v + v0, p.v};
        }
        if (kl) {
          if (grad)
            KlPassKernel<true><<<blocks, kThreads, 0, stream>>>(
                zs, ldz, teacher.first, teacher.second, static_cast<int>(vc),
                static_cast<int>(v0), v0 == 0, tg, v, gs, cs, stats, dz, ldz);
          else
            KlPassKernel<false><<<blocks, kThreads, 0, stream>>>(
                zs, ldz, teacher.first, teacher.second, static_cast<int>(vc),
                static_cast<int>(v0), v0 == 0, tg, v, gs, cs, stats, nullptr, 0);
        } else {
          CeGradKernel<<<blocks, kThreads, 0, stream>>>(zs, ldz, static_cast<int>(vc),
                                                       static_cast<int>(v0), tg, v, gs, stats,
                                                       dz, ldz);
        }
        RADLADS_CUDA_CHECK(cudaGetLastError());
        if (grad) {
          const __nv_bfloat16* w_chunk = p.w_s + v0 * p.c_s;
          if (p.grads.dx != nullptr)  // dx[rows] += dz W_chunk
            GemmBf16(false, false, m, p.c_s, vc, 1.0f, dz, ldz, w_chunk, p.c_s, 1.0f,
                     p.grads.dx + r0 * p.c_s, p.c_s, stream);
          if (p.grads.dw != nullptr)  // dW_chunk += dz^T x[rows]
            GemmBf16(true, false, vc, p.c_s, m, 1.0f, dz, ldz, xs, p.c_s, 1.0f,
                     p.grads.dw + v0 * p.c_s, p.c_s, stream);
        }
      }
    }

    if (kl)
      FinishKernel<true><<<1, kThreads, 0, stream>>>(stats, tg, static_cast<int>(m), v, s_out0,
                                                     s_out1, c_out0, c_out1, invalid_out);
    else
      FinishKernel<false><<<1, kThreads, 0, stream>>>(stats, tg, static_cast<int>(m), v, s_out0,
                                                      nullptr, c_out0, c_out1, invalid_out);
    RADLADS_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

std::size_t HeadLossWorkspaceBytes(HeadLossKind kind, std::int64_t n, std::int64_t v,
                                   std::int64_t c_s, std::int64_t c_t, bool grad,
                                   const HeadLossChunks& chunks) {
  return PlanHeadLoss(HeadLossShape{kind, n, v, c_s, c_t, grad}, chunks).bytes;
}

void HeadKl(const __nv_bfloat16* x_s, const __nv_bfloat16* w_s, std::int64_t c_s,
            const __nv_bfloat16* x_t, const __nv_bfloat16* w_t, std::int64_t c_t, std::int64_t n,
            std::int64_t v, const std::int32_t* targets, const HeadGradsCuda& grads,
            const HeadLossCudaOptions& opt, void* workspace, std::size_t workspace_bytes,
            HeadKlSums* result, cudaStream_t stream) {
  RADLADS_CUDA_CHECK(cudaMemsetAsync(result, 0, sizeof(HeadKlSums), stream));
  const Problem p{HeadLossKind::kKl, x_s, w_s, c_s, x_t, w_t, c_t, nullptr, n, v, targets, grads,
                  opt};
  Run(p, workspace, workspace_bytes, &result->kl_sum, &result->ce_sum, &result->top1_agree,
      &result->ce_count, &result->invalid_targets, stream, "HeadKl");
}

void HeadKlTeacherLogits(const __nv_bfloat16* x_s, const __nv_bfloat16* w_s, std::int64_t c_s,
                         const float* z_t, std::int64_t n, std::int64_t v,
                         const std::int32_t* targets, const HeadGradsCuda& grads,
                         const HeadLossCudaOptions& opt, void* workspace,
                         std::size_t workspace_bytes, HeadKlSums* result, cudaStream_t stream) {
  RADLADS_CUDA_CHECK(cudaMemsetAsync(result, 0, sizeof(HeadKlSums), stream));
  if (n > 0 && z_t == nullptr) Die("HeadKlTeacherLogits", "z_t is null");
  const Problem p{HeadLossKind::kKlTeacherLogits, x_s, w_s, c_s, nullptr, nullptr, 0, z_t, n, v,
                  targets, grads, opt};
  Run(p, workspace, workspace_bytes, &result->kl_sum, &result->ce_sum, &result->top1_agree,
      &result->ce_count, &result->invalid_targets, stream, "HeadKlTeacherLogits");
}

void HeadCrossEntropy(const __nv_bfloat16* x, const __nv_bfloat16* w, std::int64_t c,
                      std::int64_t n, std::int64_t v, const std::int32_t* targets,
                      const HeadGradsCuda& grads, const HeadLossCudaOptions& opt, void* workspace,
                      std::size_t workspace_bytes, HeadCeSums* result, cudaStream_t stream) {
  RADLADS_CUDA_CHECK(cudaMemsetAsync(result, 0, sizeof(HeadCeSums), stream));
  const Problem p{HeadLossKind::kCrossEntropy, x, w, c, nullptr, nullptr, 0, nullptr, n, v,
                  targets, grads, opt};
  Run(p, workspace, workspace_bytes, &result->loss_sum, nullptr, &result->count,
      &result->correct, &result->invalid_targets, stream, "HeadCrossEntropy");
}

}  // namespace radlads::cuda
