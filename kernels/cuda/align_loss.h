// Step-1 alignment loss on the device: kernels/ops/align_loss.h's AlignLossForward /
// AlignLossBackward with the same definition, for t, s [N, C] row-major (bf16 or fp32):
//
//   L = (1/N) * sum_n ||t_n - s_n||_2 / sqrt(C)
//   dL/ds_n = (s_n - t_n) / (N * sqrt(C) * ||s_n - t_n||),  a zero-distance row: zero gradient
//
// One block per row; the squared distance of a row accumulates in double (differences taken in
// double, as on the CPU) in a fixed tree, the rows are summed in a fixed order by one block: the
// same bits on every run. The backward recomputes the row norms with the same code (so a row's
// norm has the same bits in both passes) and applies k * (s - t) in fp32 with
// k = (float)(dloss / (N sqrt(C) ||.||)), as on the CPU.
//
// Pointers are device pointers; everything is enqueued on `stream`, nothing synchronises.
// `loss` (device, one double) is overwritten; `row_dist` (device fp32 [N], may be null) receives
// the per-row distances; ds (fp32 [N, C]) is ACCUMULATED into (+=). The forward needs a workspace
// of AlignLossWorkspaceBytes(N) bytes (N doubles). Negative sizes abort.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace radlads::cuda {

std::size_t AlignLossWorkspaceBytes(std::int64_t n);

void AlignLossForward(const float* t, const float* s, std::int64_t n, std::int64_t c,
                      double* loss, float* row_dist, void* workspace, std::size_t workspace_bytes,
                      cudaStream_t stream);
void AlignLossForward(const __nv_bfloat16* t, const __nv_bfloat16* s, std::int64_t n,
                      std::int64_t c, double* loss, float* row_dist, void* workspace,
                      std::size_t workspace_bytes, cudaStream_t stream);

void AlignLossBackward(const float* t, const float* s, std::int64_t n, std::int64_t c, float dloss,
                       float* ds, cudaStream_t stream);
void AlignLossBackward(const __nv_bfloat16* t, const __nv_bfloat16* s, std::int64_t n,
                       std::int64_t c, float dloss, float* ds, cudaStream_t stream);

}  // namespace radlads::cuda
