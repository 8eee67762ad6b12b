// Internals shared by gla_recurrent.cu and gla_chunked.cu: element conversion, argument
// checks, and the chunked launchers (defined in gla_chunked.cu). Not part of the API.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cuda/gla.h"

namespace radlads::cuda::gla_detail {

__device__ __forceinline__ float ToF(float x) { return x; }
__device__ __forceinline__ float ToF(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T FromF(float x);
template <>
__device__ __forceinline__ float FromF<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Aborts with `msg` when it is not empty (argument errors are programming errors).
inline void DieIf(const std::string& msg) {
  if (msg.empty()) return;
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::abort();
}

// Checks shape, required pointers and the workspace; aborts with a message on failure.
template <class T>
void CheckForward(const GlaForwardArgsT<T>& a, GlaAlgo algo) {
  DieIf(gla_plan::Validate(a.shape, algo));
  const bool need = a.shape.T > 0;
  DieIf(need && (!a.r || !a.k || !a.v || !a.g || !a.o)
            ? "Gla (CUDA) forward: r, k, v, g and o must be non-null when T > 0"
            : "");
}

template <class T>
void CheckBackward(const GlaBackwardArgsT<T>& a, GlaAlgo algo, const void* ws,
                   std::size_t ws_bytes) {
  DieIf(gla_plan::Validate(a.shape, algo));
  const bool need = a.shape.T > 0;
  DieIf(need && (!a.r || !a.k || !a.v || !a.g || !a.d_o || !a.dr || !a.dk || !a.dv || !a.dg)
            ? "Gla (CUDA) backward: r, k, v, g, d_o, dr, dk, dv and dg must be non-null when T > 0"
            : "");
  const std::size_t want = gla_plan::BackwardWorkspaceBytes(a.shape, algo);
  DieIf(ws_bytes < want || (want > 0 && ws == nullptr)
            ? "Gla (CUDA) backward: workspace of " + std::to_string(ws_bytes) + " bytes, need " +
                  std::to_string(want) + " (gla_plan::BackwardWorkspaceBytes)"
            : "");
}

// gla_chunked.cu. Arguments already checked.
void ChunkedForward(const GlaForwardArgs& a, cudaStream_t stream);
void ChunkedBackward(const GlaBackwardArgs& a, float* workspace, cudaStream_t stream);

}  // namespace radlads::cuda::gla_detail
