// Host-side planning for the CUDA GLA kernels (kernels/cuda/gla.h): argument validation,
// workspace and shared-memory sizes, launch geometry and the compulsory HBM traffic for
// roofline figures. Plain C++ (no CUDA headers, no device code) so the cpu-label test
// (tests/kernels/gla_cuda_plan_test.cpp) exercises it on machines without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace radlads::cuda {

// Problem sizes of one call. Layouts as the CPU op (kernels/ops/gla.h): r, k, g [B,T,H,K],
// v, o [B,T,H,V], states [B,H,K,V] key-major.
struct GlaShape {
  std::int64_t B = 0, T = 0, H = 0, K = 0, V = 0;
};

enum class GlaAlgo {
  kRecurrent,  // one thread per state column (forward) / row (backward): reference, fallback
  kChunked,    // 16-token chunks on tensor cores (TF32 WMMA, fp32 accumulation)
};

namespace gla_plan {

// Chunk length of the chunked kernels (one 16-token sub-chunk per chunk, fla's BC): every
// exponent they evaluate is a difference b_t - b_j with j <= t, so <= 0 for any g <= 0.
constexpr std::int64_t kChunk = 16;
// Checkpoint interval of the recurrent backward (the CPU op's kRecurrentCheckpoint).
constexpr std::int64_t kCheckpoint = 16;
constexpr int kFwdThreads = 128;  // chunked forward / state kernel
constexpr int kBwdThreads = 256;  // chunked backward
// Columns of the state one chunked-forward block owns (V is split across blocks).
std::int64_t ForwardVTile(std::int64_t V);

// "" when the shape is valid for `algo`, else a message naming the offending size.
// Both: B, H >= 1, T >= 0, K and V each in {32, 64, 128}, element counts below 2^31.
std::string Validate(const GlaShape& s, GlaAlgo algo);

// Device workspace the backward needs (the forward needs none), 0 when T == 0: fp32 state
// snapshots every 16 tokens, ceil(T/16) * B*H*K*V floats (chunk-start states of the chunked
// backward; checkpoints of the recurrent reverse sweep, which also keeps the 16 recomputed
// states of its current block: + 16 * B*H*K*V floats).
std::size_t BackwardWorkspaceBytes(const GlaShape& s, GlaAlgo algo);

// Dynamic shared memory of the chunked kernels in bytes.
std::size_t ChunkedForwardSmemBytes(std::int64_t K, std::int64_t vtile);
std::size_t ChunkedBackwardSmemBytes(std::int64_t K, std::int64_t V);

// Compulsory HBM traffic (bf16 tensors `elem_bytes` each, fp32 states): the forward reads
// r, k, v, g (+h0) and writes o (+hT); the backward reads r, k, v, g, d_o (+h0, dhT) and writes
// dr, dk, dv, dg (+dh0); read-backs of the accumulated gradients are not counted.
std::int64_t MinBytesForward(const GlaShape& s, int elem_bytes, bool h0, bool hT);
std::int64_t MinBytesBackward(const GlaShape& s, int elem_bytes, bool h0, bool dhT, bool dh0);

}  // namespace gla_plan
}  // namespace radlads::cuda
