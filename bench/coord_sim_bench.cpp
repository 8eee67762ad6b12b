// The coordinator at the scale of a 72B conversion: the qwen2.5-72b-rwkv6 recipe planned on 1,024
// H100 workers (tests/data/simulator/cluster-128x8-h100.yaml), served to 1,024 simulated workers
// in-process by the real Scheduler and StateStore (RocksDB, fsync on this machine's disk), with
// random worker deaths and coordinator restarts (tests/testing/simulator.h).
//
//   coord_sim_bench [--dir DIR] [--workers N] [--seed S] [--restarts R] [--death-rate P]
//                   [--rounds-per-task K] [--nosync] [--rounds] [--window W] [--status-at F]
//                   [--poll-backoff R] [--smoke]
//                   [--recipe NAME --preset NAME --cluster NAME|PATH --data-tokens N]
//
// Prints the plan, a `radlads-coord status` table of the run when step 1 is F done (default 0.4),
// the figures (durable transitions per second, Lease latency percentiles, what it survived), and
// last one JSON line. Exits 1 when any end-of-run check fails (every task completed, the ledger
// exact per step and per layer, every credit once in the log, replay identical).
// The closed-loop driver by default (each worker's next message follows its acknowledgement;
// the coordinator side runs every 2 simulated rounds); --rounds: the lock-step driver of the tests.
// --window W replaces the plan's step-1 cache window (0: unlimited), a what-if that lets more
// tasks run at once than the disk budget would.
// --smoke: the tiny recipe on 8 CPU workers, one restart (the ctest form; its figures mean nothing).
// DIR must be on the disk you care about (default: a fresh directory under $TMPDIR or /tmp).
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "configs/cluster.h"
#include "configs/model_preset.h"
#include "configs/recipe.h"
#include "plan/plan.h"
#include "plan/plan_report.h"
#include "status/status_report.h"
#include "tests/testing/simulator.h"

#ifndef RADLADS_TEST_DATA_DIR
#define RADLADS_TEST_DATA_DIR "tests/data"
#endif

namespace radlads {
namespace {

struct Args {
  std::string dir;
  std::string recipe = "qwen2.5-72b-rwkv6";
  std::string preset = "qwen2.5-72b";
  std::string cluster = std::string(RADLADS_TEST_DATA_DIR) + "/simulator/cluster-128x8-h100.yaml";
  std::uint64_t data_tokens = 1'500'087'317;  // the paper's DCLM binidx (docs/spec.md §2.5)
  int workers = 1024;
  std::uint64_t seed = 7;
  int restarts = 4;
  double death_rate = 0.002;
  int rounds_per_task = 4;
  bool sync = true;
  double status_at = 0.4;
  bool smoke = false;
  bool rounds = false;  // lock-step rounds instead of the closed loop
  int window = -1;      // cache window override (-1: the plan's; 0: unlimited)
  int poll_backoff = 16;  // rounds an idle worker waits at most between Lease requests
  int tick_rounds = 2;
};

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (k == "--smoke") {
      a->smoke = true;
    } else if (k == "--rounds") {
      a->rounds = true;
    } else if (k == "--nosync") {
      a->sync = false;
    } else if ((v = (k == "--dir" || k == "--recipe" || k == "--preset" || k == "--cluster" ||
                     k == "--workers" || k == "--seed" || k == "--restarts" ||
                     k == "--death-rate" || k == "--rounds-per-task" || k == "--status-at" ||
                     k == "--data-tokens" || k == "--window" ||
                     k == "--poll-backoff")
                        ? val()
                        : nullptr) == nullptr) {
      std::fprintf(stderr, "coord_sim_bench: unknown flag or missing value: %s\n", k.c_str());
      return false;
    } else if (k == "--dir") {
      a->dir = v;
    } else if (k == "--recipe") {
      a->recipe = v;
    } else if (k == "--preset") {
      a->preset = v;
    } else if (k == "--cluster") {
      a->cluster = v;
    } else if (k == "--workers") {
      a->workers = std::atoi(v);
    } else if (k == "--seed") {
      a->seed = std::strtoull(v, nullptr, 10);
    } else if (k == "--restarts") {
      a->restarts = std::atoi(v);
    } else if (k == "--death-rate") {
      a->death_rate = std::atof(v);
    } else if (k == "--rounds-per-task") {
      a->rounds_per_task = std::atoi(v);
    } else if (k == "--status-at") {
      a->status_at = std::atof(v);
    } else if (k == "--poll-backoff") {
      a->poll_backoff = std::atoi(v);
    } else if (k == "--window") {
      a->window = std::atoi(v);
    } else if (k == "--data-tokens") {
      a->data_tokens = std::strtoull(v, nullptr, 10);
    }
  }
  if (a->smoke) {
    a->recipe = "tiny-rwkv6";
    a->preset = "tiny";
    a->cluster = "local-cpu";
    a->data_tokens = 10'000'000;
    a->workers = 8;
    a->restarts = 1;
    a->death_rate = 0.01;
  }
  return true;
}

Result<Plan> MakePlan(const Args& a) {
  PlanInputs in;
  RADLADS_ASSIGN_OR_RETURN(in.recipe, LoadRecipe(a.recipe));
  in.recipe_name = a.recipe;
  RADLADS_ASSIGN_OR_RETURN(ModelPreset m, LoadModelPreset(a.preset));
  in.teacher = m.config;
  in.model_name = a.preset;
  RADLADS_ASSIGN_OR_RETURN(in.cluster, LoadCluster(a.cluster));
  in.cluster_name = a.cluster;
  in.data.path = "dclm";
  in.data.tokens = a.data_tokens;
  PlanOptions o;
  o.cpu_memory_gib = 16.0;
  return BuildPlan(in, o);
}

int Main(int argc, char** argv) {
  Args a;
  if (!Parse(argc, argv, &a)) return 2;
  Result<Plan> plan = MakePlan(a);
  if (!plan.ok()) {
    std::fprintf(stderr, "coord_sim_bench: plan: %s\n", plan.status().ToString().c_str());
    return 2;
  }
  std::string root = a.dir;
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/coord-sim-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    root = tmpl;
  }
  const std::string state_dir = root + "/state";

  SimOptions o;
  o.dir = state_dir;
  o.run.run_id = a.recipe + "-sim";
  o.run.lease_ttl_ms = 300'000;
  o.run.retry_limit = 3;
  o.run.cache_window = a.window >= 0 ? a.window : static_cast<int>(plan->cache.window);
  o.tasks = plan->tasks;
  o.workers = a.workers;
  o.seed = a.seed;
  o.restarts = a.restarts;
  o.death_rate = a.death_rate;
  o.rounds_per_task = a.rounds_per_task;
  o.sync = a.sync;
  o.mode = a.rounds ? SimMode::kRounds : SimMode::kStream;
  o.tick_rounds = a.rounds ? 1 : a.tick_rounds;
  o.max_poll_backoff = a.poll_backoff;
  bool printed = false;
  double leased_sum = 0, leased_samples = 0;  // tasks leased at once, sampled every tick
  o.on_round = [&](const RunState& s, TimeMs now, std::int64_t) {
    leased_sum += s.TasksIn(TaskState::kLeased);
    ++leased_samples;
    const std::int64_t b1 = s.ledger().AlignBudget();
    if (printed || b1 <= 0 || s.ledger().AlignMeanTokens() < a.status_at * static_cast<double>(b1)) {
      return;
    }
    printed = true;
    std::printf("\n--- radlads-coord status, step 1 at %.0f%% (simulated time) ---\n%s---\n\n",
                100.0 * a.status_at, StatusTable(BuildStatusReport(s, now), 100, false).c_str());
  };

  std::map<TaskType, int> counts = plan->TaskCounts();
  std::printf("plan: %s on %s: %zu tasks (transfer %d, cache %d, align %d, distill %d, finetune %d, "
              "export %d, eval %d); %zu segments, window W = %lld; %d workers + 1 group leader; "
              "state in %s (%s)\n",
              a.recipe.c_str(), a.cluster.c_str(), plan->tasks.size(), counts[TaskType::kTransfer],
              counts[TaskType::kCache], counts[TaskType::kAlign], counts[TaskType::kDistill],
              counts[TaskType::kFinetune], counts[TaskType::kExport], counts[TaskType::kEval],
              plan->cache.segments.size(), static_cast<long long>(plan->cache.window), a.workers,
              state_dir.c_str(), a.sync ? "fsync on" : "fsync OFF: not durable");
  std::fflush(stdout);
  Result<SimResult> r = RunSimulation(o);
  std::error_code ec;
  if (a.dir.empty()) std::filesystem::remove_all(root, ec);
  if (!r.ok()) {
    std::fprintf(stderr, "coord_sim_bench: FAILED: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", FormatSimResult(*r).c_str());
  std::printf("tasks leased at once (the DAG's parallelism, sampled each tick): mean %.0f\n",
              leased_samples > 0 ? leased_sum / leased_samples : 0.0);
  std::printf("checks: every task completed, run completed, ledger exact per step and per layer, "
              "every credit once in the log, replay identical: OK\n");
  std::printf("{\"bench\":\"coord_sim\",\"workers\":%d,\"tasks\":%zu,\"sync\":%s,"
              "\"mode\":\"%s\",\"transitions\":%llu,\"transitions_per_s\":%.0f,"
              "\"steady_transitions_per_s\":%.0f,"
              "\"max_in_flight\":%zu,\"lease_p50_ms\":%.3f,\"lease_p90_ms\":%.3f,"
              "\"lease_p99_ms\":%.3f,\"lease_max_ms\":%.3f,\"deaths\":%d,\"crashes\":%d,"
              "\"requeues\":%d,\"wall_s\":%.2f}\n",
              a.workers, plan->tasks.size(), a.sync ? "true" : "false", a.rounds ? "rounds" : "stream",
              static_cast<unsigned long long>(r->transitions), r->transitions_per_s,
              r->steady_transitions_per_s, r->max_in_flight, r->lease_all.p50_us / 1e3,
              r->lease_all.p90_us / 1e3, r->lease_all.p99_us / 1e3, r->lease_all.max_us / 1e3,
              r->deaths, r->crash_restarts, r->requeue_restarts, r->wall_s);
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Main(argc, argv); }
