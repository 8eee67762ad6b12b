// Token embedding lookup on the CPU.
//
//   ids    [N]      I32 token ids (any shape; N = numel), each in [0, Vc)
//   table  [Vc, C]  F32 embedding table, or BF16 for the forward (rows widened to F32)
//   out    [N, C]   F32 rows of the table (shape = ids' shape + [C], or any shape with last
//                   dim C and N rows)
// An id outside [0, Vc) is a programming error: RADLADS_CHECK fails and names the id and its
// position (ids are validated when a dataset is opened; this is the last line of defence).
// Backward ACCUMULATES: dtable[ids[i]] += dout[i]. Deterministic without atomics and
// independent of the thread count: the token positions are sorted by (id, position), each
// distinct id's row is owned by one thread, which sums its tokens in position order (fp32) and
// adds the sum into the row.
#pragma once

#include "kernels/tensor.h"

namespace radlads::ops {

void EmbeddingForward(const Tensor& ids, const Tensor& table, Tensor& out);

void EmbeddingBackward(const Tensor& ids, const Tensor& dout, Tensor& dtable);

}  // namespace radlads::ops
