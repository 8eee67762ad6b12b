// Built instead of device.cu when the CUDA backend is off.
#include "kernels/cuda/device.h"

namespace radlads::cuda {

DeviceProbe ProbeDevices() {
  DeviceProbe p;
  p.reason = "radlads was built without the CUDA backend (RADLADS_CUDA=OFF or no nvcc)";
  return p;
}

}  // namespace radlads::cuda
