// `radlads-coord plan` end to end on the tiny default: inputs from files, the printed summary,
// RUN/ written atomically and idempotently, a different plan refused.
#include "cli/plan_command.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using testing::ScratchDir;

// A raw little-endian uint32 token file of n tokens below `vocab`.
std::string WriteTokens(const ScratchDir& dir, std::size_t n, std::uint32_t vocab, std::uint32_t bad = 0) {
  std::vector<std::uint32_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::uint32_t>((i * 7919u) % vocab);
  if (bad) t[n / 2] = bad;
  const std::string path = dir.File("corpus.u32");
  testing::WriteBytes(path, std::string(reinterpret_cast<const char*>(t.data()), n * 4));
  return path;
}

struct CommandResult {
  int code;
  std::string out, err;
};

CommandResult Plan(PlanCommandArgs a) {
  std::ostringstream out, err;
  a.out = &out;
  a.err = &err;
  a.cpu_memory_gib = 16;
  const int code = RunPlanCommand(a);
  return {code, out.str(), err.str()};
}

PlanCommandArgs TinyArgs(const std::string& data, const std::string& run) {
  PlanCommandArgs a;
  a.recipe = "tiny-rwkv7";
  a.data = data;
  a.cluster = "local-cpu";
  a.run_dir = run;
  return a;
}

TEST(PlanCommand, WritesTheRunDirectoryOnceAndRefusesADifferentPlan) {
  ScratchDir dir;
  const std::string data = WriteTokens(dir, 3'000'000, 257);
  const std::string run = dir.File("RUN");
  CommandResult r = Plan(TinyArgs(data, run));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("radlads plan: tiny-rwkv7 on local-cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory per worker"), std::string::npos);
  EXPECT_NE(r.out.find("wrote " + run + "/plan.json"), std::string::npos);
  for (const char* f : {"plan.json", "inputs/recipe.yaml", "inputs/cluster.yaml", "inputs/config.json",
                        "inputs/model.yaml"}) {
    EXPECT_TRUE(PathExists(JoinPath(run, f))) << f;
  }
  Result<std::string> text = ReadFileToString(JoinPath(run, "plan.json"));
  ASSERT_TRUE(text.ok());
  nlohmann::json j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["inputs"]["data"]["tokens"], 3'000'000);
  EXPECT_EQ(j["inputs"]["data"]["format"], "u32");
  EXPECT_EQ(j["inputs"]["files"].size(), 4u);
  // The copied teacher config parses as the tiny preset.
  Result<Qwen2Config> cfg = LoadQwen2Config(JoinPath(run, "inputs/config.json"));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->hidden_size, 128);

  // Same plan: idempotent, the file is untouched; a deleted input copy comes back.
  ASSERT_TRUE(AtomicWriteFile(JoinPath(run, "inputs/cluster.yaml"), "tampered").ok());
  r = Plan(TinyArgs(data, run));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(*ReadFileToString(JoinPath(run, "plan.json")), *text);
  EXPECT_NE(ReadFileToString(JoinPath(run, "inputs/cluster.yaml")).value(), "tampered");

  // A different plan (another segment size) is refused, naming the difference.
  PlanCommandArgs other = TinyArgs(data, run);
  other.segment_steps = 32;
  r = Plan(other);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_NE(r.err.find("holds a different plan (cache."), std::string::npos) << r.err;
  EXPECT_EQ(*ReadFileToString(JoinPath(run, "plan.json")), *text);
}

TEST(PlanCommand, JsonGoesToStdoutAlone) {
  ScratchDir dir;
  PlanCommandArgs a;
  a.recipe = "tiny-rwkv6";
  a.data_tokens = 10'000'000;
  a.cluster = "local-cpu";
  a.json = true;
  CommandResult r = Plan(a);
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], "radlads.plan");
  EXPECT_EQ(j["student"]["architecture"], "rad-rwkv6");
  EXPECT_EQ(j["inputs"]["data"]["path"], "");
}

TEST(PlanCommand, BadInputIsExitCodeTwo) {
  ScratchDir dir;
  // A token id outside the tiny vocabulary (320).
  const std::string data = WriteTokens(dir, 3'000'000, 257, /*bad=*/400);
  CommandResult r = Plan(TinyArgs(data, ""));
  EXPECT_EQ(r.code, kExitInvalidInput);
  EXPECT_NE(r.err.find("400"), std::string::npos) << r.err;

  PlanCommandArgs a = TinyArgs(WriteTokens(dir, 3'000'000, 257), "");
  a.tp = 2;  // 2 workers: tp 2 x pp 1 x dp 1 is fine; tp 3 is not
  EXPECT_EQ(Plan(a).code, 0);
  a.tp = 3;
  r = Plan(a);
  EXPECT_EQ(r.code, kExitInvalidInput);
  EXPECT_NE(r.err.find("tp 3 x pp 1 does not divide the 2 workers"), std::string::npos) << r.err;

  PlanCommandArgs missing;
  missing.recipe = "no-such-recipe";
  missing.cluster = "local-cpu";
  missing.data_tokens = 1000;
  EXPECT_EQ(Plan(missing).code, kExitInvalidInput);
}

}  // namespace
}  // namespace radlads
