// End-to-end checks of the command-line tools: real binaries, real files, exit codes and the
// messages users see.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "base/file.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using RunResult = testing::CommandResult;
RunResult Exec(const std::string& cmd) { return testing::RunCommand(cmd); }

const std::string kModel = RADLADS_MODEL_BIN;
const std::string kData = RADLADS_DATA_BIN;

TEST(Cli, HelpExitsZeroAndUsageErrorsExitTwo) {
  RunResult h = Exec(kModel + " --help");
  EXPECT_EQ(h.code, 0) << h.out;
  EXPECT_NE(h.out.find("inspect"), std::string::npos);
  EXPECT_NE(h.out.find("logits"), std::string::npos);
  RunResult none = Exec(kModel);
  EXPECT_EQ(none.code, 2) << none.out;
  RunResult bad = Exec(kModel + " inspect");
  EXPECT_EQ(bad.code, 2) << bad.out;
  RunResult unknown = Exec(kModel + " frobnicate");
  EXPECT_EQ(unknown.code, 2) << unknown.out;
}

TEST(Cli, InspectReadsHuggingFaceSafetensors) {
  RunResult r = Exec(kModel + " inspect " + testing::TestDataPath("safetensors/hf_fixture.safetensors"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("safetensors file:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BF16"), std::string::npos) << r.out;
  RunResult j = Exec(kModel + " inspect --json " + testing::TestDataPath("safetensors/hf_fixture.safetensors"));
  ASSERT_EQ(j.code, 0) << j.out;
  EXPECT_NE(j.out.find("\"kind\": \"safetensors\""), std::string::npos) << j.out;
}

TEST(Cli, InspectRejectsBrokenFilesWithPathAndProblem) {
  testing::ScratchDir dir;
  auto good = ReadFileToString(testing::TestDataPath("safetensors/hf_fixture.safetensors"));
  ASSERT_TRUE(good.ok());
  const std::string truncated = dir.File("truncated.safetensors");
  testing::WriteBytes(truncated, good->substr(0, good->size() - 3));
  RunResult r = Exec(kModel + " inspect " + truncated);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("truncated.safetensors"), std::string::npos) << r.out;
  const std::string garbage = dir.File("garbage.safetensors");
  testing::WriteBytes(garbage, std::string("\x10\0\0\0\0\0\0\0not json at all!", 24));
  r = Exec(kModel + " inspect " + garbage);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("garbage.safetensors"), std::string::npos) << r.out;
  r = Exec(kModel + " inspect " + dir.File("missing"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
}

TEST(Cli, TokenizeThenInspectDataset) {
  testing::ScratchDir dir;
  const std::string a = dir.File("a.txt"), b = dir.File("b.txt");
  testing::WriteBytes(a, "It is a truth universally acknowledged.\n");
  testing::WriteBytes(b, "Emma Woodhouse, handsome, clever, and rich.\n");
  RunResult t = Exec(kData + " tokenize " + a + " " + b + " --out " + dir.File("ds"));
  ASSERT_EQ(t.code, 0) << t.out;
  RunResult r = Exec(kModel + " inspect " + dir.File("ds"));
  ASSERT_EQ(r.code, 0) << r.out;
  // 40 + 44 bytes plus one end-of-text per document.
  EXPECT_NE(r.out.find("tokens: 86 in 2 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max 256"), std::string::npos) << r.out;
  RunResult missing = Exec(kData + " tokenize " + dir.File("nope.txt") + " --out " + dir.File("x"));
  EXPECT_EQ(missing.code, 2) << missing.out;
}

}  // namespace
}  // namespace radlads
