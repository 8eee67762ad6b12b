// Rotary position embedding (RoPE), "rotate-half" layout as Hugging Face transformers' Qwen2:
//   y = x * cos + rotate_half(x) * sin,  rotate_half(x) = [-x2, x1] on the two halves of D,
//   i.e. for i < D/2:  y[i] = x[i] c_i - x[i+D/2] s_i,  y[i+D/2] = x[i+D/2] c_i + x[i] s_i,
// with c_i = cos(pos * inv_freq[i]), s_i = sin(pos * inv_freq[i]) (emb = cat(freqs, freqs)).
//
// The table reproduces transformers' fp32 arithmetic (_compute_default_rope_parameters and
// Qwen2RotaryEmbedding.forward), not the exact real-number angles:
//   inv_freq[i] = 1.0f / powf(float(theta), float(2i) / float(D))  (all fp32, as torch does with
//                 an fp32 arange; powf is evaluated in double and rounded once)
//   angle[t][i] = float(t) * inv_freq[i]                            (one fp32 product)
//   cos/sin     = cos/sin evaluated in double of that fp32 angle, rounded to fp32
// So the table agrees with transformers' fp32 cos/sin to within their last-ulp rounding. The
// fp32 angle itself differs from the exact t * theta^(-2i/D), exactly as in transformers, by up
// to about t * inv_freq * 2^-24 * (3 + (2i/D) ln theta) rad (the fp32 exponent's rounding is
// amplified by ln theta; 2i/D is exact when D is a power of two): ~0.006 rad at t = 32767 for
// D = 128, theta = 1e6. The tests bound it against the fp64 reference.
//
//   x, y   [B, T, H, D]  (H = q heads or kv heads; D even); y may alias x
//   pos0   position of t = 0 (0 at the start of a training window); rows pos0 .. pos0+T-1 of
//          the table are used, so pos0 + T <= table.max_positions()
// Backward = rotation by the negative angle, ACCUMULATED: dx[i] += dy[i] c + dy[i+D/2] s,
// dx[i+D/2] += dy[i+D/2] c - dy[i] s. Deterministic (pure per-element, split over rows).
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace radlads::ops {

struct RopeTable {
  Tensor cos;  // [T_max, D/2] F32
  Tensor sin;  // [T_max, D/2] F32

  std::int64_t max_positions() const { return cos.dim(0); }
  std::int64_t head_dim() const { return 2 * cos.dim(1); }
};

// Builds the table for positions 0 .. max_positions-1 (head_dim even and > 0, theta > 0).
RopeTable MakeRopeTable(std::int64_t max_positions, std::int64_t head_dim, double theta);

void RopeForward(const Tensor& x, const RopeTable& table, std::int64_t pos0, Tensor& y);

void RopeBackward(const Tensor& dy, const RopeTable& table, std::int64_t pos0, Tensor& dx);

}  // namespace radlads::ops
