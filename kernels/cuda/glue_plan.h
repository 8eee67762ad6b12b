// Host-side plans for the CUDA glue kernels (kernels/cuda/{norms,rope,elementwise,rwkv_glue,
// optimizer}.h), in plain C++ so that they build and are tested without a GPU
// (tests/kernels/cuda_glue_plan_test.cpp, label cpu). Nothing here includes a CUDA header.
//
//  - Column sums (the parameter gradients of broadcast vectors: RMSNorm dw, GroupNorm dw/db,
//    lerp dmu, LoRA dbias, ...) are two-level and deterministic: rows are cut into fixed chunks
//    of kColSumRows; level 1 writes one fp64 partial per (chunk, column) into a caller-owned
//    workspace, level 2 adds the chunks of each column in chunk order. The partition depends
//    only on (rows, cols), never on the launch.
//  - Multi-tensor tables (AdamW, gradient norm, clipping): every tensor is cut into chunks of
//    kMultiTensorChunk elements (the CPU's kGradNormBlock, so the partition is the CPU's); one
//    CUDA block per chunk, in table order.
//  - AdamW scalars: formed in double and rounded once, exactly as kernels/ops/adamw.cpp does.
//  - RoPE inverse frequencies: exactly kernels/ops/rope.cpp's fp32 arithmetic.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace radlads::cuda {

// --- column sums ----------------------------------------------------------------------------

inline constexpr std::int64_t kColSumRows = 256;  // rows per level-1 chunk

inline std::int64_t ColSumChunks(std::int64_t rows) {
  return rows <= 0 ? 0 : (rows + kColSumRows - 1) / kColSumRows;
}

// Bytes of fp64 workspace a column sum over [rows, cols] needs (0 when empty).
inline std::size_t ColSumWorkspaceBytes(std::int64_t rows, std::int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return static_cast<std::size_t>(ColSumChunks(rows)) * static_cast<std::size_t>(cols) *
         sizeof(double);
}

// --- 1-D launches ----------------------------------------------------------------------------

inline constexpr int kElemThreads = 256;
inline constexpr std::int64_t kMaxElemBlocks = 1 << 16;  // grid-stride beyond this

// Blocks for a grid-stride loop over n elements with kElemThreads threads per block.
inline std::int64_t ElemBlocks(std::int64_t n) {
  if (n <= 0) return 0;
  const std::int64_t b = (n + kElemThreads - 1) / kElemThreads;
  return b < kMaxElemBlocks ? b : kMaxElemBlocks;
}

// --- multi-tensor tables -----------------------------------------------------------------------

inline constexpr std::int64_t kMultiTensorChunk = 1 << 15;  // = kGradNormBlock (grad_norm.h)
inline constexpr int kMaxParamGroups = 4;

// One tensor of a multi-tensor launch. grad may be used alone (norm, clipping); AdamW needs all
// four. All fp32 device pointers of n elements. `group` picks the learning rate (0 .. 3).
struct MultiTensorEntry {
  float* param = nullptr;
  float* grad = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  std::int64_t n = 0;
  std::int32_t group = 0;
  std::int32_t pad = 0;
};

// One CUDA block's work: elements [start, start + len) of tensor `tensor`.
struct MultiTensorChunk {
  std::int32_t tensor = 0;
  std::int32_t len = 0;
  std::int64_t start = 0;
};

// The chunk table for `entries` in order (empty tensors contribute no chunk). Throws
// std::invalid_argument on a negative size, a bad group, or more than 2^31-1 chunks.
inline std::vector<MultiTensorChunk> BuildMultiTensorChunks(
    const std::vector<MultiTensorEntry>& entries, std::int64_t chunk = kMultiTensorChunk) {
  if (chunk <= 0 || chunk > (std::int64_t{1} << 30))
    throw std::invalid_argument("BuildMultiTensorChunks: chunk " + std::to_string(chunk));
  std::vector<MultiTensorChunk> out;
  for (std::size_t t = 0; t < entries.size(); ++t) {
    const MultiTensorEntry& e = entries[t];
    if (e.n < 0 || e.group < 0 || e.group >= kMaxParamGroups)
      throw std::invalid_argument("BuildMultiTensorChunks: tensor " + std::to_string(t) +
                                  " has n " + std::to_string(e.n) + ", group " +
                                  std::to_string(e.group));
    if (t > 0x7fffffffu) throw std::invalid_argument("BuildMultiTensorChunks: too many tensors");
    for (std::int64_t s = 0; s < e.n; s += chunk) {
      MultiTensorChunk c;
      c.tensor = static_cast<std::int32_t>(t);
      c.start = s;
      c.len = static_cast<std::int32_t>(e.n - s < chunk ? e.n - s : chunk);
      out.push_back(c);
    }
  }
  if (out.size() > 0x7fffffffu)
    throw std::invalid_argument("BuildMultiTensorChunks: more than 2^31-1 chunks");
  return out;
}

// fp64 partial sums a gradient norm over `num_chunks` chunks needs.
inline std::size_t GradNormWorkspaceBytes(std::int64_t num_chunks) {
  return num_chunks <= 0 ? 0 : static_cast<std::size_t>(num_chunks) * sizeof(double);
}

// The clipping factor of kernels/ops/grad_norm.h's ClipGradsWithNorm, for a norm known on the
// host: float(max_norm / (norm + 1e-6)) when that is < 1 and the norm is finite, else exactly 1
// (gradients untouched; a non-finite norm means the caller skips the step). max_norm <= 0: 1.
inline float ClipScale(double max_norm, double total_norm) {
  if (!(max_norm > 0.0) || !std::isfinite(total_norm)) return 1.0f;
  const double coef = max_norm / (total_norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

// --- AdamW scalars ------------------------------------------------------------------------------

// The per-group fp32 scalars of one AdamW step (kernels/ops/adamw.cpp's, same roundings).
struct AdamWGroupScalars {
  float keep = 1.0f;      // 1 - lr*wd (1 when wd == 0)
  float neg_step = 0.0f;  // -(lr / bc1)
};
struct AdamWScalars {
  AdamWGroupScalars group[kMaxParamGroups];
  float w1 = 0.1f;        // 1 - beta1 (lerp weight)
  float w1c = 0.9f;       // 1 - w1
  float b2 = 0.95f;
  float w2 = 0.05f;       // 1 - beta2
  float bc2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  float eps = 1e-8f;
  int lerp_from_m = 1;    // torch's lerp: m + w*(g-m) when |w| < 0.5, else g - (g-m)*(1-w)
};

// lr[g] for each group used; beta/eps/wd/bias_correction as AdamWConfig; step is 1-based.
inline AdamWScalars MakeAdamWScalars(const double* lr, int groups, double beta1, double beta2,
                                     double eps, double weight_decay, bool bias_correction,
                                     std::int64_t step) {
  if (step < 1) throw std::invalid_argument("MakeAdamWScalars: step is 1-based");
  if (groups < 1 || groups > kMaxParamGroups)
    throw std::invalid_argument("MakeAdamWScalars: groups " + std::to_string(groups));
  const double td = static_cast<double>(step);
  const double bc1 = bias_correction ? 1.0 - std::pow(beta1, td) : 1.0;
  const double bc2 = bias_correction ? 1.0 - std::pow(beta2, td) : 1.0;
  AdamWScalars s;
  for (int g = 0; g < groups; ++g) {
    s.group[g].keep =
        weight_decay != 0.0 ? static_cast<float>(1.0 - lr[g] * weight_decay) : 1.0f;
    s.group[g].neg_step = static_cast<float>(-(lr[g] / bc1));
  }
  s.w1 = static_cast<float>(1.0 - beta1);
  s.b2 = static_cast<float>(beta2);
  s.w2 = static_cast<float>(1.0 - beta2);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.eps = static_cast<float>(eps);
  s.lerp_from_m = std::fabs(s.w1) < 0.5f ? 1 : 0;
  s.w1c = 1.0f - s.w1;
  return s;
}

// --- RoPE ----------------------------------------------------------------------------------------

// inv_freq[i] = 1.0f / float(pow(double(float(theta)), float(2i)/float(D))), i < D/2, as
// kernels/ops/rope.cpp's MakeRopeTable (which uploads nothing: the device builds the table).
inline std::vector<float> RopeInvFreq(std::int64_t head_dim, double theta) {
  if (head_dim <= 0 || head_dim % 2 != 0 || !(theta > 0))
    throw std::invalid_argument("RopeInvFreq: head_dim " + std::to_string(head_dim));
  const std::int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  const float theta_f = static_cast<float>(theta);
  for (std::int64_t i = 0; i < half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const auto p = static_cast<float>(std::pow(static_cast<double>(theta_f), expo));
    inv[static_cast<std::size_t>(i)] = 1.0f / p;
  }
  return inv;
}

}  // namespace radlads::cuda
