// Host-side planning for the CUDA teacher attention (kernels/cuda/attention.h): which shapes each
// kernel accepts, the flash kernel's tiles and launch geometry, and the FLOP / byte counts that
// bench/gpu/bench_attention.cpp reports. Plain C++ with no CUDA headers, so it is built and
// tested (tests/kernels/attention_cuda_plan_test.cpp, label cpu) on machines without a GPU.
//
// Shapes are those of kernels/ops/attention.h: q, o [B, T, H, D]; k, v [B, T, Hkv, D];
// lse [B, H, T]; query head h reads kv head h / (H / Hkv).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace radlads::cuda {

struct AttentionShape {
  std::int64_t b = 0, t = 0, h = 0, hkv = 0, d = 0;
};

enum class AttentionImpl {
  kSimple,  // one thread block per (b, h, query row); any D in [1, 256]
  kFlash,   // tensor-core tiles; D in {32, 64, 128}
};

// The largest head size the simple kernel accepts (each thread owns two output columns).
constexpr std::int64_t kAttentionSimpleMaxD = 256;

// "" when `impl` accepts the shape, else a message naming the broken rule. B == 0 or T == 0 is
// accepted (the call does nothing). Limits (CUDA grid y/z <= 65535): B and H at most 65535,
// T < 2^31, and for the flash kernel at most 65535 query blocks (T <= 4,194,240).
std::string AttentionShapeError(const AttentionShape& s, AttentionImpl impl);

// The flash kernel's launch: one block of `threads` (4 warps, 16 query rows each) per
// (head, batch, query block) = (grid_x, grid_y, grid_z), grid_z = ceil(T / block_q). Blocks
// start in x-fastest order, and the kernel maps z to query blocks from the last (the most key
// blocks under the causal mask) down, so the heaviest blocks start first over the whole grid
// and the last wave holds the light ones; adjacent blocks are the query heads of one kv group,
// which read the same K and V (L2 reuse). Shared memory holds one Q, one K and one V tile of 64 rows, each row
// padded from D to smem_row = D + 8 bf16 (16 bytes) so ldmatrix's 8 row reads hit distinct banks.
struct AttentionFlashPlan {
  int block_q = 64;
  int block_k = 64;
  int threads = 128;
  int smem_row = 0;           // bf16 elements per shared-memory row
  std::size_t smem_bytes = 0;  // dynamic shared memory per block
  std::int64_t grid_x = 0, grid_y = 0, grid_z = 0;
};

// Requires AttentionShapeError(s, kFlash) == "".
AttentionFlashPlan PlanAttentionFlash(const AttentionShape& s);

// The simple kernel's launch: grid (T, H, B), `threads` per block, smem = (D + threads + 32) floats.
struct AttentionSimplePlan {
  int threads = 128;
  std::size_t smem_bytes = 0;
  std::int64_t grid_x = 0, grid_y = 0, grid_z = 0;
};

// Requires AttentionShapeError(s, kSimple) == "".
AttentionSimplePlan PlanAttentionSimple(const AttentionShape& s);

// Forward FLOPs with the causal triangle counted exactly (kernels/ops/attention.cpp's
// convention): 4 * B * H * D * T (T + 1) / 2.
double AttentionForwardFlops(const AttentionShape& s);

// The fewest bytes a bf16 forward must move: read q, k, v once and write o (2 bytes each),
// plus the fp32 lse when `with_lse`.
double AttentionForwardMinBytes(const AttentionShape& s, bool with_lse);

}  // namespace radlads::cuda
