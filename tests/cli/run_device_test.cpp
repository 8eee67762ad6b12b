// `radlads-coord run --device`: what is refused before any work (a device this build or machine
// cannot train on, a switch of device on a started run, a bad value, a gang on one GPU), and
// that a resumed run takes the device it recorded. The conversion on a GPU itself is
// tests/gpu/one_gpu_run_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "base/file.h"
#include "contract/run_layout.h"
#include "plan/plan.h"
#include "tests/plan/plan_test_util.h"
#include "tests/testing/test_util.h"
#include "worker/device_training.h"

namespace radlads {
namespace {

const std::string kCoord = RADLADS_COORD_BIN;
const std::string kSrc = RADLADS_SOURCE_DIR;

// A run config of the shortened test recipe (tests/data/run/).
std::string WriteConfig(const testing::ScratchDir& dir) {
  const std::string data = kSrc + "/data/austen/";
  const std::string cfg = "teacher: " + kSrc + "/data/tiny-teacher\n" +
                          "recipe: " + testing::TestDataPath("run/recipe-rwkv6.yaml") + "\n" +
                          "cluster: " + testing::TestDataPath("run/cluster.yaml") + "\n" +
                          "data:\n  train: " + data + "northanger_abbey.txt.gz\n" +
                          "  heldout: " + data + "persuasion.txt.gz\n";
  const std::string path = dir.File("run.yaml");
  testing::WriteBytes(path, cfg);
  return path;
}

std::size_t Entries(const std::string& dir) {
  if (!std::filesystem::exists(dir)) return 0;
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(RunDevice, NamesAndValues) {
  EXPECT_STREQ(TrainDeviceName(TrainDevice::kCpu), "cpu");
  EXPECT_STREQ(TrainDeviceName(TrainDevice::kCuda), "cuda");
  EXPECT_EQ(*ParseTrainDevice("cuda"), TrainDevice::kCuda);
  EXPECT_EQ(*ParseTrainDevice("cpu"), TrainDevice::kCpu);
  EXPECT_FALSE(ParseTrainDevice("gpu").ok());
  EXPECT_EQ(TrainDeviceUnavailableReason(TrainDevice::kCpu), "");
}

TEST(RunDevice, ABadValueIsRefusedAndWritesNothing) {
  testing::ScratchDir dir;
  const std::string run = dir.File("run");
  auto r = testing::RunCommand(kCoord + " run " + WriteConfig(dir) + " --run " + run + " --device gpu 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--device gpu: expected cpu or cuda"), std::string::npos) << r.out;
  EXPECT_EQ(Entries(run), 0u);
}

TEST(RunDevice, CudaWithoutAUsableDeviceIsRefusedBeforeAnyWork) {
  const std::string why = TrainDeviceUnavailableReason(TrainDevice::kCuda);
  if (why.empty()) GTEST_SKIP() << "this machine can train on cuda (tests/gpu/one_gpu_run_test.cpp runs it)";
  testing::ScratchDir dir;
  const std::string run = dir.File("run");
  auto r = testing::RunCommand(kCoord + " run " + WriteConfig(dir) + " --run " + run + " --device cuda 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--device cuda refused: " + why), std::string::npos) << r.out;
  EXPECT_EQ(Entries(run), 0u) << "nothing may be written";
}

TEST(RunDevice, AStartedRunKeepsItsDevice) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir);
  const RunLayout run{dir.File("run")};
  ASSERT_TRUE(CreateDirectories(run.dir).ok());
  // A run that started on cuda: another device is refused, naming both.
  testing::WriteBytes(run.Abs(RunLayout::DeviceFile()), "cuda\n");
  auto r = testing::RunCommand(kCoord + " run " + cfg + " --run " + run.dir + " --device cpu 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("was started with --device cuda; resume it with --device cuda"), std::string::npos) << r.out;
  // Without --device it resumes on cuda: refused here only when this machine cannot train on it.
  const std::string why = TrainDeviceUnavailableReason(TrainDevice::kCuda);
  if (!why.empty()) {
    r = testing::RunCommand(kCoord + " run " + cfg + " --run " + run.dir + " 2>&1");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--device cuda refused"), std::string::npos) << r.out;
  }
  EXPECT_EQ(Entries(run.dir), 1u) << "only the device file";
  // A run whose state exists but that has no device file started before --device: the CPU.
  std::filesystem::remove(run.Abs(RunLayout::DeviceFile()));
  ASSERT_TRUE(CreateDirectories(run.Abs(RunLayout::StateDir())).ok());
  r = testing::RunCommand(kCoord + " run " + cfg + " --run " + run.dir + " --device cuda 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("was started with --device cpu"), std::string::npos) << r.out;
  // A device file that names no device.
  testing::WriteBytes(run.Abs(RunLayout::DeviceFile()), "tpu\n");
  r = testing::RunCommand(kCoord + " run " + cfg + " --run " + run.dir + " 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("is not a device (cpu or cuda)"), std::string::npos) << r.out;
}

TEST(RunDevice, AOneProcessPlanRunsOnEitherDevice) {
  PlanInputs in = testing::ShippedInputs("tiny-rwkv6", "tiny", "local-process", 2'000'000);
  Result<Plan> p = BuildPlan(in, testing::QuietOptions());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(CheckPlanForDevice(*p, TrainDevice::kCuda).ok());
  EXPECT_TRUE(CheckPlanForDevice(*p, TrainDevice::kCpu).ok());
}

TEST(RunDevice, GangsOfSeveralRanksAreRefusedOnCuda) {
  PlanInputs in = testing::ShippedInputs("tiny-rwkv6", "tiny", "local-process", 2'000'000);
  in.cluster.cpu_workers = 2;
  Result<Plan> p = BuildPlan(in, testing::WithLayout(1, 1, 2));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const Status st = CheckPlanForDevice(*p, TrainDevice::kCuda);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("gang is tp 1 x pp 1 x dp 2 = 2 ranks"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckPlanForDevice(*p, TrainDevice::kCpu).ok());
}

}  // namespace
}  // namespace radlads
