#include "kernels/cuda/device.h"

#include <cuda_runtime.h>

namespace radlads::cuda {

DeviceProbe ProbeDevices() {
  DeviceProbe p;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    p.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    (void)cudaGetLastError();  // clear the sticky error
    return p;
  }
  if (count <= 0) {
    p.reason = "cudaGetDeviceCount reported 0 devices";
    return p;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) p.first_name = prop.name;
  p.count = count;
  return p;
}

}  // namespace radlads::cuda
