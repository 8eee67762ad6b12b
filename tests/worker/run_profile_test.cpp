// The op-family counters (base/profile.h) and the run's phase profile (worker/run_profile.h):
// exclusive nesting, suppression inside parallel bodies, the per-process files and their merge,
// and a parser that refuses truncated, corrupted and lying files.
#include "worker/run_profile.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using profile::Family;

// Wall-clock slack for sleeps on a loaded 2-core machine: a sleep lasts at least its duration,
// and a scope's own bookkeeping costs microseconds.
constexpr double kSleepSlack = 0.25;

void BusyFor(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

double Sec(std::int64_t ns) { return static_cast<double>(ns) * 1e-9; }

TEST(ProfileScope, NestedTimeIsChargedToTheInnerFamilyOnly) {
  const profile::Counters before = profile::Snapshot();
  {
    const profile::Scope outer(Family::kRecurrence);
    BusyFor(std::chrono::milliseconds(30));
    {
      const profile::Scope inner(Family::kGemm);
      BusyFor(std::chrono::milliseconds(50));
    }
    BusyFor(std::chrono::milliseconds(20));
  }
  const profile::Counters d = profile::Snapshot() - before;
  const double rec = Sec(d.ns[static_cast<int>(Family::kRecurrence)]);
  const double gemm = Sec(d.ns[static_cast<int>(Family::kGemm)]);
  EXPECT_GE(gemm, 0.050);
  EXPECT_LT(gemm, 0.050 + kSleepSlack);
  EXPECT_GE(rec, 0.050 - 1e-3) << "30 + 20 ms outside the nested scope";
  EXPECT_LT(rec, 0.050 + kSleepSlack);
  EXPECT_EQ(d.calls[static_cast<int>(Family::kGemm)], 1);
  EXPECT_EQ(d.calls[static_cast<int>(Family::kRecurrence)], 1);
  EXPECT_EQ(d.TotalNs(), d.ns[static_cast<int>(Family::kRecurrence)] + d.ns[static_cast<int>(Family::kGemm)]);
}

TEST(ProfileScope, ParallelBodiesAreChargedToTheCallingOp) {
  cpu::SetNumThreads(2);
  const profile::Counters before = profile::Snapshot();
  {
    const profile::Scope op(Family::kAttention);
    cpu::ParallelFor(2, 1, [](std::int64_t, std::int64_t) {
      const profile::Scope inside(Family::kGemm);  // suppressed: never a sum over threads
      BusyFor(std::chrono::milliseconds(20));
    });
  }
  {
    const profile::Suppress quiet;
    const profile::Scope hidden(Family::kIo);
    BusyFor(std::chrono::milliseconds(5));
  }
  const profile::Counters d = profile::Snapshot() - before;
  EXPECT_EQ(d.calls[static_cast<int>(Family::kGemm)], 0);
  EXPECT_EQ(d.calls[static_cast<int>(Family::kIo)], 0);
  EXPECT_EQ(d.calls[static_cast<int>(Family::kAttention)], 1);
  EXPECT_GE(Sec(d.ns[static_cast<int>(Family::kAttention)]), 0.020);
}

TEST(ProcessProfile, PhasesAddUpToTheWallTimeAndRoundTrip) {
  testing::ScratchDir dir;
  ProcessProfile p("worker", "rank-3", dir.File("profile/w.json"));
  BusyFor(std::chrono::milliseconds(10));
  p.Charge("setup");
  {
    const profile::Scope g(Family::kGemm);
    BusyFor(std::chrono::milliseconds(30));
  }
  BusyFor(std::chrono::milliseconds(10));
  p.Charge("distill", 1);
  p.Charge("scheduling");
  ASSERT_TRUE(p.Save().ok());

  auto text = ReadFileToString(p.path());
  ASSERT_TRUE(text.ok());
  auto back = ParseProcessProfile(*text, p.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->process, "worker");
  EXPECT_EQ(back->id, "rank-3");
  ASSERT_EQ(back->phases.size(), 3u);
  const PhaseTotals& d = back->phases.at("distill");
  EXPECT_EQ(d.tasks, 1);
  EXPECT_GE(d.seconds, 0.040 - 1e-5);
  EXPECT_GE(d.family_seconds[static_cast<int>(Family::kGemm)], 0.030 - 1e-5);
  EXPECT_GE(d.OtherSeconds(), 0.010 - 1e-3);
  EXPECT_GE(back->phases.at("setup").seconds, 0.010 - 1e-5);
  double sum = 0;
  for (const auto& [name, t] : back->phases) sum += t.seconds;
  EXPECT_LE(sum, back->wall_seconds + 1e-5);
  EXPECT_GE(sum, back->wall_seconds - kSleepSlack);
}

// A valid file to mutate.
nlohmann::json ValidFile() {
  return nlohmann::json::parse(R"({"format":1,"process":"worker","id":"rank-0","wall_seconds":10.0,
    "phases":{"align":{"tasks":2,"seconds":6.0,"families":{"gemm":3.0,"recurrence":1.5}},
              "setup":{"tasks":0,"seconds":1.0,"families":{"io":0.5}}}})");
}

TEST(ProcessProfileParser, RefusesTruncatedCorruptedAndLyingFiles) {
  const std::string good = ValidFile().dump();
  ASSERT_TRUE(ParseProcessProfile(good, "p.json").ok());
  // Truncated at every length: never accepted, never a crash.
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseProcessProfile(good.substr(0, n), "p.json").ok()) << n;
  }
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* expect;  // in the message, beside the file name
  };
  const std::vector<Case> cases = {
      {"format", [](nlohmann::json& j) { j["format"] = 2; }, "format: expected 1"},
      {"process", [](nlohmann::json& j) { j["process"] = "daemon"; }, "process: expected"},
      {"missing wall", [](nlohmann::json& j) { j.erase("wall_seconds"); }, "wall_seconds: missing"},
      {"negative wall", [](nlohmann::json& j) { j["wall_seconds"] = -1.0; }, "wall_seconds: expected a finite"},
      {"phase name", [](nlohmann::json& j) { j["phases"]["warmup"] = j["phases"]["setup"]; }, "unknown phase 'warmup'"},
      {"family name", [](nlohmann::json& j) { j["phases"]["align"]["families"]["blas"] = 1.0; },
       "unknown op family 'blas'"},
      {"family type", [](nlohmann::json& j) { j["phases"]["align"]["families"]["gemm"] = "3"; },
       "phases.align.families.gemm: expected a number"},
      {"negative tasks", [](nlohmann::json& j) { j["phases"]["align"]["tasks"] = -1; }, "phases.align.tasks"},
      {"missing seconds", [](nlohmann::json& j) { j["phases"]["align"].erase("seconds"); },
       "phases.align.seconds: missing"},
      {"families over their phase", [](nlohmann::json& j) { j["phases"]["align"]["families"]["gemm"] = 5.0; },
       "more than the phase's"},
      {"phases over the wall", [](nlohmann::json& j) { j["wall_seconds"] = 6.5; }, "more than wall_seconds"},
      {"phases not an object", [](nlohmann::json& j) { j["phases"] = nlohmann::json::array(); }, "phases: expected"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = ValidFile();
    c.edit(j);
    auto r = ParseProcessProfile(j.dump(), "p.json");
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.status().message().find("p.json"), std::string::npos) << c.what << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.what << ": " << r.status().message();
  }
  EXPECT_FALSE(ParseProcessProfile(std::string("{\"form\0at\":1}", 13), "p.json").ok());
}

TEST(RunProfileMerge, SumsEveryProcessAndSkipsBadFilesByName) {
  testing::ScratchDir dir;
  ProcessProfileData run;
  run.process = "run";
  run.id = "local";
  run.wall_seconds = 12;
  run.phases["setup"].seconds = 2;
  run.phases["scheduling"].seconds = 9;
  ProcessProfileData w = ParseProcessProfile(ValidFile().dump(), "v").value();
  ASSERT_TRUE(CreateDirectories(dir.File("run/profile")).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.File("run/profile/run-a.json"), ProcessProfileJson(run)).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.File("run/profile/worker-b.json"), ProcessProfileJson(w)).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.File("run/profile/worker-c.json"), ProcessProfileJson(w)).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.File("run/profile/worker-d.json"), "{\"format\":1,").ok());
  ASSERT_TRUE(AtomicWriteFile(dir.File("run/profile/notes.txt"), "ignored").ok());

  auto merged = MergeRunProfiles(dir.File("run"));
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(merged->processes, 3);
  EXPECT_DOUBLE_EQ(merged->wall_seconds, 12) << "the run process's wall only";
  ASSERT_EQ(merged->skipped.size(), 1u);
  EXPECT_NE(merged->skipped[0].find("worker-d.json"), std::string::npos) << merged->skipped[0];
  EXPECT_DOUBLE_EQ(merged->phases.at("align").seconds, 12);
  EXPECT_EQ(merged->phases.at("align").tasks, 4);
  EXPECT_DOUBLE_EQ(merged->phases.at("setup").seconds, 4);

  const auto j = nlohmann::json::parse(RunProfileJson(*merged));
  ASSERT_EQ(j.at("phases").size(), 3u);
  EXPECT_EQ(j.at("phases")[0].at("phase"), "align") << "largest first";
  EXPECT_DOUBLE_EQ(j.at("phases")[0].at("families").at("other").get<double>(), 12 - 6 - 3);
  EXPECT_DOUBLE_EQ(j.at("families").at("gemm").get<double>(), 6);
  EXPECT_DOUBLE_EQ(j.at("worker_seconds").get<double>(), 12 + 4 + 9);

  const std::vector<std::string> lines = RunProfileTopLines(*merged, 2);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("12.0 s wall"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("align"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("gemm 50%"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("scheduling"), std::string::npos) << lines[2];

  // No profile folder: an empty profile, not an error.
  auto none = MergeRunProfiles(dir.File("elsewhere"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->processes, 0);
}

}  // namespace
}  // namespace radlads
