// The scheduling simulator (tests/testing/simulator.h) in a small configuration: a run completes
// with an exact ledger through random worker deaths, reported failures, duplicates, late commits
// of dead processes, coordinator crashes and drain+requeue restarts; a seed gives the same run;
// the 1,024-worker 72B plan of the benchmark builds. The benchmark (bench/coord_sim_bench.cpp)
// measures the speed; nothing here asserts it.
#include "tests/testing/simulator.h"

#include <gtest/gtest.h>

#include "configs/cluster.h"
#include "configs/model_preset.h"
#include "configs/recipe.h"
#include "plan/plan.h"
#include "state/state_store.h"
#include "status/status_report.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using testing::MakePlan;
using testing::PlanShape;
using testing::ScratchDir;

SimOptions SmallRun(const std::string& dir, std::uint64_t seed) {
  PlanShape shape;
  shape.layers = 8;
  shape.segments = 6;
  shape.stages = 2;
  shape.segment_tokens = 5 * 4096;  // 5 optimizer steps of 4,096 tokens
  shape.distill_workers = 4;
  shape.distill_tokens = 40 * 2048;  // 40 steps
  shape.finetune = true;
  shape.finetune_tokens = 4096;
  SimOptions o;
  o.dir = dir;
  o.tasks = MakePlan(shape);
  o.run.run_id = "sim-test";
  o.run.lease_ttl_ms = 300'000;
  o.run.retry_limit = 5;
  o.run.cache_window = 2;
  o.workers = 12;
  o.seed = seed;
  o.death_rate = 0.03;
  o.fail_rate = 0.01;
  o.revive_after_rounds = 30;  // ttl = 10 rounds: some leases expire, some end at re-registration
  o.duplicate_rate = 0.1;
  o.late_commit_rate = 1.0;
  o.restarts = 4;
  o.graceful_fraction = 0.5;
  o.verify_replay_on_reopen = true;
  o.blocking_threads = 8;
  return o;
}

TEST(Simulator, SmallRunCompletesWithAnExactLedgerThroughDeathsAndRestarts) {
  ScratchDir dir;
  SimOptions o = SmallRun(dir.File("state"), 20240501);
  int status_rendered = 0;
  o.on_round = [&](const RunState& s, TimeMs now, std::int64_t round) {
    if (round % 50 == 0) {  // the status of a run in motion renders and parses back
      const std::string json = StatusJson(s, now);
      Result<StatusReport> r = StatusReportFromJson(json, "sim");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_FALSE(StatusTable(*r, 100, false).empty());
      ++status_rendered;
    }
  };
  Result<SimResult> r = RunSimulation(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  SCOPED_TRACE(FormatSimResult(*r));
  EXPECT_EQ(r->tokens_credited, r->tokens_budget);
  EXPECT_EQ(r->tokens_budget, 8 * 6 * 5 * 4096 + 40 * 2048 + 4096);
  EXPECT_GT(r->tokens_redone, 0) << "deaths cost work that was done again";
  EXPECT_GT(r->deaths, 0);
  EXPECT_GT(r->reported_failures, 0);
  EXPECT_GT(r->leases_expired, 0);
  EXPECT_EQ(r->crash_restarts + r->requeue_restarts, 4);
  EXPECT_GT(r->late_commits_refused, 0);
  EXPECT_GT(r->duplicates_acked, 0);
  EXPECT_GT(status_rendered, 0);
  EXPECT_EQ(r->lease_granted.count, static_cast<std::size_t>(r->leases_granted));
  EXPECT_LE(r->lease_all.p50_us, r->lease_all.max_us);

  // The state left on disk passes the checks on its own.
  Result<RunState> s = StateStore::ReadSnapshot(o.dir, /*verify_replay=*/true);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(CheckCompletedExactly(*s).ok()) << CheckCompletedExactly(*s).ToString();
}

TEST(Simulator, ASeedGivesTheSameRun) {
  ScratchDir a, b;
  SimOptions oa = SmallRun(a.File("state"), 99);
  SimOptions ob = SmallRun(b.File("state"), 99);
  oa.sync = ob.sync = false;  // the decisions do not depend on durability
  oa.verify_replay_on_reopen = ob.verify_replay_on_reopen = false;
  Result<SimResult> ra = RunSimulation(oa);
  Result<SimResult> rb = RunSimulation(ob);
  ASSERT_TRUE(ra.ok() && rb.ok()) << ra.status().ToString() << rb.status().ToString();
  EXPECT_EQ(ra->final_state_dump_digest, rb->final_state_dump_digest);
  EXPECT_EQ(ra->events, rb->events);
  EXPECT_EQ(ra->deaths, rb->deaths);
  EXPECT_EQ(ra->rounds, rb->rounds);
}

TEST(Simulator, TheClosedLoopDriverAlsoCompletesExactly) {
  ScratchDir dir;
  SimOptions o = SmallRun(dir.File("state"), 4242);
  o.mode = SimMode::kStream;
  o.tick_rounds = 2;
  o.verify_replay_on_reopen = false;
  Result<SimResult> r = RunSimulation(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  SCOPED_TRACE(FormatSimResult(*r));
  EXPECT_EQ(r->tokens_credited, r->tokens_budget);
  EXPECT_GT(r->deaths, 0);
  EXPECT_EQ(r->crash_restarts + r->requeue_restarts, 4);
  EXPECT_GT(r->duplicates_acked, 0);
}

TEST(Simulator, RefusesBadOptions) {
  ScratchDir dir;
  SimOptions o = SmallRun(dir.File("state"), 1);
  o.checkpoint_every = 1;
  EXPECT_EQ(RunSimulation(o).status().code(), Status::Code::kInvalidArgument);
}

TEST(Simulator, TheBenchmarksSeventyTwoBPlanOnOneThousandTwentyFourWorkersBuilds) {
  PlanInputs in;
  in.recipe = *LoadRecipe("qwen2.5-72b-rwkv6");
  in.recipe_name = "qwen2.5-72b-rwkv6";
  in.teacher = LoadModelPreset("qwen2.5-72b")->config;
  Result<Cluster> c = LoadCluster(testing::TestDataPath("simulator/cluster-128x8-h100.yaml"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  in.cluster = *c;
  in.data.tokens = 1'500'087'317;
  PlanOptions opt;
  opt.cpu_memory_gib = 16.0;
  Result<Plan> plan = BuildPlan(in, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(in.cluster.WorkerCount(), 1024);
  std::map<TaskType, int> n = plan->TaskCounts();
  EXPECT_EQ(n[TaskType::kTransfer], 80);
  EXPECT_EQ(n[TaskType::kAlign], 80 * static_cast<int>(plan->cache.segments.size()));
  EXPECT_EQ(n[TaskType::kCache], 8 * static_cast<int>(plan->cache.segments.size()));
  for (const TaskSpec& t : plan->tasks) {
    if (t.type == TaskType::kDistill) {
      EXPECT_EQ(t.workers, 1024);
    }
  }
}

}  // namespace
}  // namespace radlads
