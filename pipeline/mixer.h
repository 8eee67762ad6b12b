// Mixer: the token-mixing sublayer of a decoder block. The teacher's is causal softmax
// attention; the students' are the RAD-RWKV6 / RAD-RWKV7 recurrent mixers. A decoder block is
//   h = x + Mixer(RMSNorm_1(x));  out = h + MLP(RMSNorm_2(h))
// and the teacher and the students share everything but the mixer (docs/spec.md §2.0).
//
// Contract:
// - Forward(x [B,T,C], ctx, y [B,T,C]) writes y. When ctx.need_backward, it keeps what its
//   Backward needs (including a handle to x: the caller must not modify x until Backward).
// - Backward(dy, ctx, dx) uses the state of the last Forward, ACCUMULATES into *dx (null: no
//   input gradient needed) and into the gradients of its trainable parameters.
// - One forward in flight per mixer object; mixers of different layers are independent.
// Thread-safety: none (ops parallelise internally).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/ops/rope.h"
#include "kernels/tensor.h"

namespace radlads {

class FrozenWeightScratch;  // pipeline/frozen_weights.h

struct MixerContext {
  std::int64_t batch = 0;  // B
  std::int64_t time = 0;   // T
  std::int64_t pos0 = 0;   // position of t = 0 for RoPE
  const ops::RopeTable* rope = nullptr;
  bool need_backward = true;
  // RAD-RWKV7 value residual (docs/spec.md §3.4 item 5): layer 0's forward stores its value
  // (after GQA expansion) here, [B, T, H*N]; later layers read it. In the backward, later layers
  // ADD their gradient into dv_first, which layer 0's backward consumes (backward runs in
  // reverse layer order). When dv_first is undefined, no gradient flows into v_first.
  Tensor v_first;
  Tensor dv_first;
  // Where a frozen mixer converts its bf16/f16 matrices before using them (the model's one
  // scratch, reused layer after layer: pipeline/frozen_weights.h); null: the mixer's own.
  FrozenWeightScratch* frozen_scratch = nullptr;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  virtual void Forward(const Tensor& x, MixerContext& ctx, Tensor& y) = 0;
  virtual void Backward(const Tensor& dy, MixerContext& ctx, Tensor* dx) = 0;
  // "attention", "rad-rwkv6", "rad-rwkv7".
  virtual std::string kind() const = 0;
};

}  // namespace radlads
