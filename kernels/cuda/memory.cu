#include "kernels/cuda/check.cuh"
#include "kernels/cuda/memory.h"

namespace radlads::cuda {

void* DeviceAlloc(std::size_t bytes) {
  void* p = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void DeviceFree(void* ptr) { RADLADS_CUDA_CHECK(cudaFree(ptr)); }

void CopyHostToDevice(void* dst, const void* src, std::size_t bytes) {
  RADLADS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void CopyDeviceToHost(void* dst, const void* src, std::size_t bytes) {
  RADLADS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

}  // namespace radlads::cuda
