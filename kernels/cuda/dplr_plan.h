// Host-side planning for the CUDA DPLR kernels (kernels/cuda/dplr.h): validation, the chunked
// kernels' per-block buffer layout, shared-memory-or-workspace choice and workspace sizes. Plain
// C++ (no device code) so the cpu-label test exercises it on machines without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/dplr.h"

namespace radlads::cuda::dplr_plan {

constexpr int kChunkThreads = 256;  // threads per block of the chunked kernels
constexpr std::int64_t kMaxChunk = 64;

// Offsets (in floats) of the chunked kernels' buffers inside one block's scratch; every offset
// is a multiple of 32 floats. Row-major: C x D buffers [row][col] with row pitch D + 1 (so that
// walking rows across a warp hits distinct banks), C x C buffers [i][j] with leading dimension
// C, the D x D state with pitch D. In the forward layout Ah aliases W (W is solved in place) and
// U aliases Vn (Vn = U + W S0 in place); the backward keeps them apart. -1 = not present.
struct ChunkLayout {
  std::int64_t q = -1, k = -1, a = -1, b = -1, gc = -1, gs = -1, Qh = -1, Ah = -1, Kh = -1,
               Bh = -1, W = -1;                                  // C x D
  std::int64_t dQh = -1, dKh = -1, dBh = -1, dAh = -1;           // C x D (backward)
  std::int64_t v = -1, U = -1, Vn = -1, O = -1;                  // C x D
  std::int64_t dO = -1, dVn = -1, dX = -1, dvl = -1;             // C x D (backward)
  std::int64_t Aqk = -1, Aqb = -1, Aak = -1, Aab = -1;           // C x C
  std::int64_t dAqk = -1, dAqb = -1, dAak = -1, dAab = -1;       // C x C (backward)
  std::int64_t dgt = -1;                                         // D (backward)
  std::int64_t S = -1;  // D x D running state (forward only)
  std::int64_t floats = 0;
};

ChunkLayout MakeChunkLayout(std::int64_t C, std::int64_t D, bool backward);

// One call's launch plan. Workspace sections are 256-byte aligned byte offsets.
struct Plan {
  // chunked
  std::int64_t C = 0;        // effective chunk length: min(cfg.chunk, T)
  std::int64_t nchunks = 0;  // ceil(T / C)
  ChunkLayout layout;
  bool use_smem = false;          // the layout lives in dynamic shared memory
  std::size_t smem_bytes = 0;     // dynamic shared memory per block (0 when !use_smem)
  std::size_t scratch_off = 0;    // per-block scratch in the workspace when !use_smem
  std::size_t states_off = 0;     // backward: [B*H][nchunks][D][D] chunk-start states
  std::size_t dS_off = 0;         // backward: [B*H][D][D] running state gradient
  // recurrent backward: per head ck [nseg][D][D], seg [ckpt+1][D][D], sa [ckpt][D]
  std::int64_t ckpt = 0, nseg = 0;
  std::size_t ck_off = 0, seg_off = 0, sa_off = 0;
  std::size_t workspace_bytes = 0;
};

// max_smem_bytes: the device's opt-in dynamic shared memory per block
// (cudaDevAttrMaxSharedMemoryPerBlockOptin). dims/cfg must pass DplrCudaValidate.
Plan MakeForwardPlan(const DplrCudaDims& d, const DplrCudaConfig& cfg, std::int64_t max_smem_bytes);
Plan MakeBackwardPlan(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      std::int64_t max_smem_bytes);

// Minimum compulsory HBM traffic of one call in bytes (inputs read once, outputs written once,
// states fp32), for roofline figures: forward reads r,g,k,v,a,b (+h0), writes o (+hT); the
// backward reads r,g,k,v,a,b,dout (+h0, dhT), read-modify-writes the six gradients (+dh0).
std::int64_t MinBytesForward(const DplrCudaDims& d, int elem_bytes, bool h0, bool hT);
std::int64_t MinBytesBackward(const DplrCudaDims& d, int elem_bytes, bool h0, bool dhT, bool dh0,
                              bool accumulate_reads);

}  // namespace radlads::cuda::dplr_plan
