// Shared pieces of the CUDA DPLR kernels (kernels/cuda/dplr.h): element loads and stores for
// bf16 / fp32 I/O, the row-offset arithmetic, and the internal entry points of each form.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cuda/dplr.h"
#include "kernels/cuda/dplr_plan.h"

// Aborts with a message when a host-side precondition fails (kernels/cuda depends on nothing
// else in the project, so no base/check.h here).
#define RADLADS_DPLR_REQUIRE(cond, msg)                                                    \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: DplrCuda: %s\n", __FILE__, __LINE__, std::string(msg).c_str()); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace radlads::cuda::dplr_detail {

using I64 = std::int64_t;

__device__ __forceinline__ float Ld(const float* p) { return *p; }
__device__ __forceinline__ float Ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void St(float* p, float x) { *p = x; }
__device__ __forceinline__ void St(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
// *p += x, the sum formed in fp32 and rounded once.
__device__ __forceinline__ void AccSt(float* p, float x) { *p += x; }
__device__ __forceinline__ void AccSt(__nv_bfloat16* p, float x) {
  *p = __float2bfloat16_rn(__bfloat162float(*p) + x);
}

// Element offset of row (bi, t, hi) of a [B,T,H,D] tensor.
__device__ __forceinline__ I64 RowOff(I64 bi, I64 t, I64 hi, I64 T, I64 H, I64 D) {
  return ((bi * T + t) * H + hi) * D;
}

// Typed views of the public argument structs.
template <typename In>
struct FwdPtrs {
  const In *r, *g, *k, *v, *a, *b;
  const float* h0;
  In* o;
  float* hT;
};
template <typename In>
struct BwdPtrs {
  const In *r, *g, *k, *v, *a, *b;
  const float* h0;
  const In* dout;
  const float* dhT;
  In *dr, *dg, *dk, *dv, *da, *db;
  float* dh0;
};

// Internal entry points (T >= 1, B*H >= 1, validated, workspace sized by the plan).
void RecurrentForward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      const DplrCudaForwardArgs& args, cudaStream_t stream);
void RecurrentBackward(const DplrCudaDims& d, const DplrCudaConfig& cfg, const dplr_plan::Plan& p,
                       const DplrCudaBackwardArgs& args, char* ws, cudaStream_t stream);
void ChunkedForward(const DplrCudaDims& d, const DplrCudaConfig& cfg, const dplr_plan::Plan& p,
                    const DplrCudaForwardArgs& args, char* ws, cudaStream_t stream);
void ChunkedBackward(const DplrCudaDims& d, const DplrCudaConfig& cfg, const dplr_plan::Plan& p,
                     const DplrCudaBackwardArgs& args, char* ws, cudaStream_t stream);

}  // namespace radlads::cuda::dplr_detail
