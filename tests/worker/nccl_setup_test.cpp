// The NCCL communicator's host-side pieces (worker/nccl_communicator.h, nccl_detail), which need
// no GPU: the pinned algorithm and protocol (the user's choice kept), the device of each rank on
// a node, and the error text (NCCL's string, the rank and the device).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "worker/nccl_communicator.h"

namespace radlads {
namespace {

TEST(NcclSetup, PinsRingAndSimpleWhenUnset) {
  unsetenv("NCCL_ALGO");
  unsetenv("NCCL_PROTO");
  EXPECT_EQ(nccl_detail::PinDeterministicAlgorithm(), "Ring/Simple");
  EXPECT_STREQ(std::getenv("NCCL_ALGO"), "Ring");
  EXPECT_STREQ(std::getenv("NCCL_PROTO"), "Simple");
}

TEST(NcclSetup, KeepsTheUsersChoice) {
  setenv("NCCL_ALGO", "Tree", 1);
  unsetenv("NCCL_PROTO");
  EXPECT_EQ(nccl_detail::PinDeterministicAlgorithm(), "Tree/Simple");
  setenv("NCCL_PROTO", "LL128", 1);
  EXPECT_EQ(nccl_detail::PinDeterministicAlgorithm(), "Tree/LL128");
  unsetenv("NCCL_ALGO");
  unsetenv("NCCL_PROTO");
}

TEST(NcclSetup, OneDevicePerRankOnANode) {
  std::string why;
  EXPECT_EQ(nccl_detail::ChooseDevice(0, 2, 2, &why), 0);
  EXPECT_EQ(nccl_detail::ChooseDevice(1, 2, 2, &why), 1);
  EXPECT_EQ(nccl_detail::ChooseDevice(3, 4, 8, &why), 3);
  EXPECT_TRUE(why.empty());
  EXPECT_EQ(nccl_detail::ChooseDevice(1, 2, 1, &why), -1);
  EXPECT_EQ(why, "2 ranks on this node but only 1 CUDA device(s): NCCL needs one GPU per rank");
  // Even the rank that would fit refuses: the node is over-subscribed as a whole.
  EXPECT_EQ(nccl_detail::ChooseDevice(0, 2, 1, &why), -1);
  EXPECT_EQ(nccl_detail::ChooseDevice(0, 1, 0, &why), -1);
  EXPECT_EQ(why, "no CUDA device on this node");
}

TEST(NcclSetup, ErrorsNameTheCallTheRankAndNcclsString) {
  // 2 = ncclSystemError, whose string NCCL fixes as "unhandled system error" (we check only that
  // some text follows the colon, since the wording belongs to NCCL's version).
  const std::string m = nccl_detail::ErrorMessage("ncclAllReduce", 2, 1, 4, 3, "socket closed");
  EXPECT_EQ(m.rfind("NCCL ncclAllReduce failed on rank 1 of 4 (device 3): ", 0), 0u) << m;
  EXPECT_NE(m.find("system error"), std::string::npos) << m;
  EXPECT_EQ(m.substr(m.size() - 15), ": socket closed") << m;
  const std::string bare = nccl_detail::ErrorMessage("ncclSend", 2, 0, 2, 0, "");
  EXPECT_EQ(bare.find(": socket"), std::string::npos) << bare;
}

}  // namespace
}  // namespace radlads
