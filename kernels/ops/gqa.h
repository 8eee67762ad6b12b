// Grouped-query attention head expansion (transformers' repeat_kv) and its backward.
//
//   x  [..., Hkv, D]  kv heads (k or v; e.g. [B, T, Hkv, D] or a projection's [N, Hkv*D]
//                     viewed as [N, Hkv, D])
//   y  [..., H, D]    H = G * Hkv query heads; head h is a copy of kv head h / G, i.e. each
//                     kv head is repeated G times in a row (torch repeat_interleave order)
// Backward ACCUMULATES the group sum: dx[..., j, :] += sum_{g<G} dy[..., j*G + g, :] (summed in
// g order, then added). H == Hkv is a plain copy / add. No aliasing. Deterministic and
// independent of the thread count (split over rows).
#pragma once

#include "kernels/tensor.h"

namespace radlads::ops {

void GqaExpandForward(const Tensor& x, Tensor& y);

void GqaExpandBackward(const Tensor& dy, Tensor& dx);

}  // namespace radlads::ops
