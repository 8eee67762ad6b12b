// Device memory for CUDA tensors. Host-callable; compiled only with the CUDA backend.
// Failures are programming or capacity errors on a GPU worker: they abort with the CUDA error.
#pragma once

#include <cstddef>

namespace radlads::cuda {

void* DeviceAlloc(std::size_t bytes);
void DeviceFree(void* ptr);
void CopyHostToDevice(void* dst, const void* src, std::size_t bytes);
void CopyDeviceToHost(void* dst, const void* src, std::size_t bytes);

}  // namespace radlads::cuda
