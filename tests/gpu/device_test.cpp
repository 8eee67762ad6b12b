// Runs only where a GPU is present (the gpu main exits 77 otherwise).
#include <gtest/gtest.h>

#include "kernels/cuda/device.h"

TEST(CudaDevice, ProbeFindsTheDeviceThatMainSaw) {
  radlads::cuda::DeviceProbe p = radlads::cuda::ProbeDevices();
  EXPECT_GT(p.count, 0) << p.reason;
  EXPECT_FALSE(p.first_name.empty());
}
