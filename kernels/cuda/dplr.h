// DPLR recurrence (RAD-RWKV7, generalised delta rule) on the GPU: the CUDA twin of the CPU op
// kernels/ops/dplr.h (DplrForward / DplrBackward), same math, layouts and conventions.
//
// Math, per batch b and head h, state S in R^{D x D}, key-major ([B,H,K,V] with K = V = D):
//   sa_t = S_{t-1}^T a_t;  S_t = diag(exp(g_t)) S_{t-1} + b_t sa_t^T + k_t v_t^T;
//   o_t = S_t^T (scale * r_t);  S_0 = h0 (zeros when null);  hT = S_T.
// RAD-RWKV7 passes g = log w, k = replacement key, a = -kappa, b = kappa * iclr (the k_k / k_a
// key preparation and the GroupNorm are separate ops; this is only the recurrence).
//
// Shapes (all contiguous, device pointers):
//   r, g, k, v, a, b, o, dout and the six input gradients: [B,T,H,D], element type `dtype`
//   (bf16 = __nv_bfloat16, or fp32);  h0, hT, dhT, dh0: [B,H,D,D] fp32.
// D in {32, 64, 128}; any T >= 0 (no multiple of anything needed); any B*H >= 1.
// Arithmetic: fp32 everywhere inside (states, sums, the triangular solves); bf16 only at the
// loads of the inputs and the stores of o and the gradients (each rounded once).
//
// Forms (DplrCudaConfig::form):
//  - kRecurrent: one block per (b, h), one thread per state column (D threads), the state column
//    in registers; the GPU reference and the fallback. Backward: a forward pass saving a state
//    checkpoint every `checkpoint` steps, then per segment (walked in reverse) the segment's
//    states are recomputed into the workspace and the reverse sweep runs;
//    row sums over the state columns go through warp shuffles and one small shared array.
//  - kChunked: one block per (b, h) walking chunks of `chunk` rows (1..64, default 16) in the
//    WY / UT form of kernels/ops/dplr_chunked.cpp: four decay-weighted C x C matrices, the
//    unit-lower-triangular solve by forward substitution in fp32, then the state products. The
//    backward is fully chunked (chunk-start states from one forward pass into the workspace,
//    then each chunk recomputed and back-propagated; no recurrent sweep). All per-chunk buffers
//    live in shared memory when they fit (D = 128 at chunk 16 does), else in a per-block slice
//    of the workspace. fp32 CUDA-core arithmetic (no tensor cores yet).
//
// Conventions: the forward OVERWRITES o (and hT when non-null); the backward ACCUMULATES (+=)
// into dr, dg, dk, dv, da, db and, when non-null, dh0 (bf16 gradients: read, add in fp32, round
// once). Null h0 / dhT mean zeros. Everything is enqueued on `stream` (asynchronous; the
// workspace must stay alive until it completes). Deterministic: no atomics, a fixed order of
// operations for a given shape and config, so results are bit-identical run to run.
// Invalid shapes or configs abort with a message (DplrCudaValidate says why beforehand).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// cudaStream_t without cuda_runtime.h, so that the host-side plan (dplr_plan.h) and its test
// build on machines without CUDA; the typedef is identical to the runtime's.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace radlads::cuda {

enum class DplrDType { kBf16, kF32 };
enum class DplrForm { kRecurrent, kChunked };

struct DplrCudaDims {
  std::int64_t B = 0, T = 0, H = 0, D = 0;
};

struct DplrCudaConfig {
  DplrForm form = DplrForm::kChunked;
  DplrDType dtype = DplrDType::kBf16;
  float scale = 1.0f;           // multiplies r (RAD-RWKV7: D^-1/2, or 1 with GroupNorm)
  std::int64_t chunk = 16;      // kChunked: chunk length, 1..64
  std::int64_t checkpoint = 16;  // kRecurrent backward: steps between saved states, >= 1
};

struct DplrCudaForwardArgs {
  const void *r = nullptr, *g = nullptr, *k = nullptr, *v = nullptr, *a = nullptr, *b = nullptr;
  const float* h0 = nullptr;  // may be null (zeros)
  void* o = nullptr;
  float* hT = nullptr;  // may be null (not written)
};

struct DplrCudaBackwardArgs {
  const void *r = nullptr, *g = nullptr, *k = nullptr, *v = nullptr, *a = nullptr, *b = nullptr;
  const float* h0 = nullptr;   // may be null (zeros)
  const void* dout = nullptr;  // [B,T,H,D], dtype
  const float* dhT = nullptr;  // may be null (zeros)
  void *dr = nullptr, *dg = nullptr, *dk = nullptr, *dv = nullptr, *da = nullptr, *db = nullptr;
  float* dh0 = nullptr;  // may be null (skipped)
};

// Empty when (dims, cfg) is supported, else the reason.
std::string DplrCudaValidate(const DplrCudaDims& d, const DplrCudaConfig& cfg);

// Device workspace each call needs (bytes, 256-aligned; 0 = none, a null pointer is fine). Reads
// the current device's shared-memory limit, which decides whether the chunked form keeps its
// buffers on chip.
std::size_t DplrCudaForwardWorkspaceBytes(const DplrCudaDims& d, const DplrCudaConfig& cfg);
std::size_t DplrCudaBackwardWorkspaceBytes(const DplrCudaDims& d, const DplrCudaConfig& cfg);

void DplrCudaForward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                     const DplrCudaForwardArgs& args, void* workspace,
                     std::size_t workspace_bytes, cudaStream_t stream);
void DplrCudaBackward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      const DplrCudaBackwardArgs& args, void* workspace,
                      std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace radlads::cuda
