// gtest main for label-gpu tests: skips the whole binary (exit 77, which ctest reports as
// "Skipped") with a clear message when no usable CUDA device is present.
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/cuda/device.h"

int main(int argc, char** argv) {
  radlads::cuda::DeviceProbe probe = radlads::cuda::ProbeDevices();
  if (probe.count == 0) {
    std::printf("SKIPPED: no usable CUDA device (%s)\n", probe.reason.c_str());
    return 77;
  }
  std::printf("running on %d CUDA device(s); device 0: %s\n", probe.count,
              probe.first_name.c_str());
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
