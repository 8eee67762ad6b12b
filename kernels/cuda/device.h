// CUDA device discovery that is safe on machines with no GPU or no driver.
// The "no GPU" rule: any error from cudaGetDeviceCount (35 = insufficient driver on machines
// with only the toolkit) or a count of 0 means no usable device.
#pragma once

#include <string>

namespace radlads::cuda {

struct DeviceProbe {
  int count = 0;           // usable devices; 0 when none
  std::string reason;      // why none, for skip messages ("cudaErrorInsufficientDriver: ...")
  std::string first_name;  // name of device 0 when count > 0
};

// Never fails; reports "built without CUDA" when the backend is not compiled in.
DeviceProbe ProbeDevices();

}  // namespace radlads::cuda
