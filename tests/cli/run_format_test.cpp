// Run directories across versions and hosts:
// - a directory written by an older radlads (tests/data/run_format1, format 1) is refused by
//   `run` and `serve` with an error naming both formats, and left exactly as it was; its state,
//   whose format did not change, still opens, replays and reports;
// - a run resumed on a host with less memory re-checks the plan's fit: refused (exit 2, naming
//   both hosts and the shortfall) when it no longer fits, resumed with a note when it does.
// `radlads-coord run` runs in process here, with its output captured (cli/run_command.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "base/file.h"
#include "base/log.h"
#include "cli/run_command.h"
#include "cli/serve_command.h"
#include "contract/run_layout.h"
#include "state/state_store.h"
#include "status/status_report.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

namespace fs = std::filesystem;
const std::string kSrc = RADLADS_SOURCE_DIR;

// Every regular file under `dir` with its bytes.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[fs::relative(e.path(), dir).string()] = *ReadFileToString(e.path().string());
  }
  return out;
}

std::string CopyFixture(const testing::ScratchDir& dir) {
  const std::string run = dir.File("old-run");
  fs::copy(testing::TestDataPath("run_format1"), run, fs::copy_options::recursive);
  fs::remove(run + "/README.md");
  return run;
}

std::string WriteConfig(const testing::ScratchDir& dir) {
  const std::string data = kSrc + "/data/austen/";
  const std::string cfg = "teacher: " + kSrc + "/data/tiny-teacher\n" +
                          "recipe: " + testing::TestDataPath("run/recipe-rwkv7.yaml") + "\n" +
                          "cluster: " + testing::TestDataPath("run/cluster.yaml") + "\n" +
                          "data:\n  train: " + data + "northanger_abbey.txt.gz\n" +
                          "  heldout: " + data + "persuasion.txt.gz\n" +
                          "eval:\n  max_tokens: 2048\n  seq_len: 64\n  batch: 16\n  generate_tokens: 4\n";
  const std::string path = dir.File("run.yaml");
  testing::WriteBytes(path, cfg);
  return path;
}

struct Outcome {
  int code = -1;
  std::string out, err;
};

Outcome RunIn(const std::string& cfg, const std::string& run, std::optional<double> host_gib) {
  std::ostringstream out, err;
  RunCommandArgs a;
  a.config = cfg;
  a.run_dir = run;
  a.out = &out;
  a.err = &err;
  a.host_memory_gib = host_gib;
  Outcome o;
  o.code = RunRunCommand(a);
  o.out = out.str();
  o.err = err.str();
  return o;
}

class RunFormat : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel("warn"); }
  void TearDown() override { log::SetLevel("info"); }
};

TEST_F(RunFormat, AnOlderRunDirectoryIsRefusedNamingBothFormatsAndLeftAsItWas) {
  testing::ScratchDir dir;
  const std::string run = CopyFixture(dir);
  const auto before = Snapshot(run);
  ASSERT_FALSE(before.empty());

  Outcome o = RunIn(WriteConfig(dir), run, 64.0);
  EXPECT_EQ(o.code, 2) << o.err;
  EXPECT_NE(o.err.find("was written by run-directory format 1 (no format file); this build reads format " +
                       std::to_string(kRunFormatVersion)),
            std::string::npos)
      << o.err;

  std::ostringstream err;
  ServeArgs s;
  s.run_dir = run;
  s.err = &err;
  EXPECT_EQ(RunServeCommand(s), 2) << err.str();
  EXPECT_NE(err.str().find("run-directory format 1"), std::string::npos) << err.str();

  EXPECT_EQ(Snapshot(run), before) << "a refused run directory must be left exactly as it was";
}

TEST_F(RunFormat, TheOlderStateStillOpensReplaysAndReports) {
  testing::ScratchDir dir;
  const std::string run = CopyFixture(dir);
  // Read-only, with the whole event log replayed and compared with the tables.
  Result<RunState> snap = StateStore::ReadSnapshot(run + "/state", /*verify_replay=*/true);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->phase(), RunPhase::kDrained);
  EXPECT_GT(snap->tasks().size(), 10u);
  const StatusReport report = BuildStatusReport(*snap, 1'800'000'000'000);
  EXPECT_NE(StatusJson(*snap, 1'800'000'000'000).find("\"drained\""), std::string::npos);
  EXPECT_FALSE(StatusTable(report, 100, false).empty());
  // Read-write: the same tables, replay verified on open.
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(run + "/state");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE((*store)->Snapshot() == *snap);
}

TEST_F(RunFormat, AnotherFormatVersionIsRefusedAndAGarbledOneIsCorrupt) {
  testing::ScratchDir dir;
  const std::string run = dir.File("r");
  ASSERT_TRUE(CreateDirectories(run).ok());
  EXPECT_TRUE(CheckRunFormat(run).ok()) << "an empty directory is a new run";
  ASSERT_TRUE(WriteRunFormat(run).ok());
  EXPECT_TRUE(CheckRunFormat(run).ok());
  testing::WriteBytes(run + "/format", "radlads-run 3\n");
  Status st = CheckRunFormat(run);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("run-directory format 3; this build reads format " + std::to_string(kRunFormatVersion)),
            std::string::npos) << st.ToString();
  testing::WriteBytes(run + "/format", "radlads-run two\n");
  EXPECT_EQ(CheckRunFormat(run).code(), Status::Code::kCorruption);
}

TEST_F(RunFormat, AResumeOnASmallerHostRechecksTheFit) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir);
  const std::string run = dir.File("run");
  Outcome first = RunIn(cfg, run, 64.0);
  ASSERT_EQ(first.code, 0) << first.err;
  const auto done = Snapshot(run);

  // A host the plan no longer fits: refused before any work, nothing changed.
  Outcome small = RunIn(cfg, run, 0.01);
  EXPECT_EQ(small.code, 2) << small.err;
  EXPECT_NE(small.err.find("was planned on a host with 64.0 GiB of memory; this host has 0.0 GiB of "
                           "memory and the plan does not fit it"),
            std::string::npos) << small.err;
  EXPECT_NE(small.err.find("short by"), std::string::npos) << small.err;
  EXPECT_EQ(Snapshot(run), done);

  // A smaller host that still fits: goes on (here: the finished run prints its summary).
  Outcome fits = RunIn(cfg, run, 32.0);
  EXPECT_EQ(fits.code, 0) << fits.err;
  EXPECT_NE(fits.err.find("note: " + run + " was planned on a host with 64.0 GiB of memory; this host has 32.0 "
                          "GiB of memory and the plan still fits"),
            std::string::npos) << fits.err;
  EXPECT_NE(fits.out.find("held-out evaluation"), std::string::npos) << fits.out;
}

}  // namespace
}  // namespace radlads
