// RADLADS_CUDA_CHECK(call): aborts with file:line, the call, the CUDA error name and a hint.
// For worker-side unrecoverable failures only (docs/style.md §6a).
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define RADLADS_CUDA_CHECK(call)                                                          \
  do {                                                                                    \
    cudaError_t _e = (call);                                                              \
    if (_e != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s failed: %s (%s)\nHINT: check the GPU with nvidia-smi; " \
                   "out-of-memory means the plan's memory estimate was exceeded\n",       \
                   __FILE__, __LINE__, #call, cudaGetErrorName(_e), cudaGetErrorString(_e)); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
