// `radlads-coord status` (status/status_report.h, status_command.h): the report, table and
// JSON built from states the real Scheduler produced (mid-run, done, draining, failed), the
// read-only path while a store is open read-write, the error cases, and the Prometheus text.
#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "cli/status_command.h"
#include "rpc/secret.h"
#include "rpc/server.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "status/status_report.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using testing::Ckpt;
using testing::MakePlan;
using testing::PlanShape;
using testing::ScratchDir;
using testing::Worker;

constexpr TimeMs kTtl = 300'000;

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// A run directory with RUN/state/ driven through a small plan: 2 layers x 3 segments of 1,000
// tokens, one stage, distill (4,000 tokens), export, eval.
class StatusTest : public ::testing::Test {
 protected:
  void Start(int retry_limit = 3) {
    StateStoreOptions so;
    so.sync = false;  // process-crash safe and fast; fsync is not what these tests are about
    auto r = StateStore::Open(StateDir(), so);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
    RunConfig c;
    c.run_id = "demo";
    c.lease_ttl_ms = kTtl;
    c.retry_limit = retry_limit;
    c.cache_window = 2;
    ASSERT_TRUE(sched_->CreateRun(c, MakePlan(PlanShape{})).ok());
    for (const char* w : {"w0", "w1", "w2"}) ASSERT_TRUE(sched_->RegisterWorker(Worker(w)).ok());
  }
  std::string RunDir() const { return dir_.path(); }
  std::string StateDir() const { return dir_.File("state"); }

  LeaseGrant Lease(const std::string& worker, const std::string& expect_task) {
    auto r = sched_->Lease(worker);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->outcome, LeaseOutcome::kGranted);
    EXPECT_EQ(r->grant->task.id, expect_task);
    return *r->grant;
  }
  void Complete(const LeaseGrant& g, std::vector<NamedValue> metrics = {}) {
    FinalRecord f;
    f.checkpoint = Ckpt(g.task.id, 100, g.task.tokens);
    f.metrics = std::move(metrics);
    auto r = sched_->Complete(g.lease, f);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // Plan order: transfer L0, L1; cache S0; align L0/S0, L1/S0; cache S1; ...
  // Mid-run: transfers, cache S0 and align L0/S0 done; align L1/S0 leased by w1 with a commit at
  // 400 tokens (t0 + 10 s) and a heartbeat at 600 (t0 + 20 s); cache S1 failed once (w2).
  void DriveMidRun() {
    Start();
    Complete(Lease("w0", "transfer/L000"));
    Complete(Lease("w0", "transfer/L001"));
    Complete(Lease("w0", "cache/S00000/P00"));
    Complete(Lease("w0", "align/L000/S00000"), {{"l2", 0.125}});
    const LeaseGrant g = Lease("w1", "align/L001/S00000");
    lease_ = g.lease;
    clock_.Advance(10'000);
    ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 2, 400)).ok());
    clock_.Advance(10'000);
    Progress p;
    p.tokens = 600;
    p.step = 3;
    p.losses = {{"l2", 0.25}};
    p.throughput = 12.0;
    ASSERT_TRUE(sched_->Heartbeat(g.lease, p).ok());
    const LeaseGrant c = Lease("w2", "cache/S00001/P00");
    ASSERT_TRUE(sched_->Fail(c.lease, "disk full on /scratch", true).ok());
    clock_.Advance(5'000);
  }
  void DriveToCompletion() {
    for (int guard = 0; guard < 100; ++guard) {
      if (store_->Read([](const RunState& s) { return s.phase(); }) == RunPhase::kCompleted) return;
      auto r = sched_->Lease("w0");
      ASSERT_TRUE(r.ok());
      if (r->outcome == LeaseOutcome::kNoWork) {  // the cache window is full: evict
        const auto evictable = store_->Read([](const RunState& s) {
          std::vector<std::pair<int, int>> v;
          for (const auto& [key, seg] : s.segments()) {
            if (seg.state == SegmentState::kEvictable) v.emplace_back(seg.segment, seg.stage);
          }
          return v;
        });
        ASSERT_FALSE(evictable.empty());
        for (const auto& [seg, stage] : evictable) ASSERT_TRUE(sched_->EvictSegment(seg, stage).ok());
        continue;
      }
      ASSERT_EQ(r->outcome, LeaseOutcome::kGranted);
      std::vector<NamedValue> m;
      if (r->grant->task.type == TaskType::kDistill) m = {{"kl", 0.5}, {"top1", 0.75}};
      Complete(*r->grant, m);
    }
    FAIL() << "the run did not complete";
  }
  StatusReport Report() { return BuildStatusReport(store_->Snapshot(), clock_.NowMs()); }
  const StatusStep& Step(const StatusReport& r, const std::string& name) {
    for (const StatusStep& s : r.steps) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no step " << name;
    return r.steps.front();
  }

  ScratchDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Scheduler> sched_;
  LeaseId lease_ = 0;
};

TEST_F(StatusTest, MidRunReportHasTheRightNumbers) {
  DriveMidRun();
  const StatusReport r = Report();
  EXPECT_EQ(r.schema, 1);
  EXPECT_EQ(r.run.id, "demo");
  EXPECT_EQ(r.run.phase, "running");
  EXPECT_EQ(r.tasks.total, 14);  // 2 transfer + 3 cache + 6 align + distill, export, eval
  EXPECT_EQ(r.tasks.done, 4);
  EXPECT_EQ(r.tasks.leased, 1);
  ASSERT_EQ(r.steps.size(), 6u);
  EXPECT_EQ(r.steps[0].label, "step 0 transfer");
  EXPECT_EQ(r.steps[0].state, "done");
  const StatusStep& align = Step(r, "align");
  EXPECT_EQ(align.label, "step 1 align");
  EXPECT_EQ(align.state, "running");
  EXPECT_EQ(align.tokens_budget, 3000);  // B1: per layer
  EXPECT_EQ(align.tokens_used, 400);     // min over layers (L1: 400, L0: 1,000)
  EXPECT_EQ(align.work_budget, 6000);
  EXPECT_EQ(align.work_done, 1400);
  EXPECT_EQ(align.work_in_flight, 200);  // heartbeat 600 - committed 400
  EXPECT_DOUBLE_EQ(align.tokens_per_s, 30.0);  // 600 tokens in the 20 s since the grant
  ASSERT_TRUE(align.eta_s.has_value());
  EXPECT_NEAR(*align.eta_s, (6000.0 - 1400.0 - 200.0) / 30.0, 1e-9);
  ASSERT_EQ(align.losses.size(), 1u);  // mean over layers of the latest: (0.125 + 0.25) / 2
  EXPECT_EQ(align.losses[0].name, "l2");
  EXPECT_DOUBLE_EQ(align.losses[0].value, 0.1875);
  const StatusStep& distill = Step(r, "distill");
  EXPECT_EQ(distill.state, "pending");
  EXPECT_EQ(distill.tokens_budget, 4000);
  EXPECT_FALSE(distill.eta_s.has_value());

  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_EQ(r.layers[0].tokens_credited, 1000);
  EXPECT_EQ(r.layers[0].segments_done, 1);
  EXPECT_EQ(r.layers[0].state, "waiting");
  EXPECT_EQ(r.layers[1].tokens_credited, 400);
  EXPECT_EQ(r.layers[1].tokens_in_flight, 200);
  EXPECT_EQ(r.layers[1].state, "training");
  EXPECT_EQ(r.layers[1].task, "align/L001/S00000");
  EXPECT_EQ(r.align_segments, 3);

  EXPECT_EQ(r.workers.total, 3);
  EXPECT_EQ(r.workers.busy, 1);
  EXPECT_EQ(r.workers.idle, 2);
  EXPECT_DOUBLE_EQ(r.workers.max_busy_since_seen_s, 5.0);  // heartbeat 5 s ago
  ASSERT_EQ(r.leases.size(), 1u);
  EXPECT_EQ(r.leases[0].worker, "w1");
  EXPECT_DOUBLE_EQ(r.leases[0].deadline_in_s, 295.0);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].task, "cache/S00001/P00");
  EXPECT_EQ(r.failures[0].state, "ready");
  EXPECT_EQ(r.failures[0].failures, 1);
  EXPECT_EQ(r.failures[0].max_attempts, 4);
  EXPECT_EQ(r.failures[0].last_error, "disk full on /scratch");
  EXPECT_FALSE(r.drain.active);
  ASSERT_EQ(r.cache.size(), 1u);
  EXPECT_EQ(r.cache[0].window, 2);
  EXPECT_EQ(r.cache[0].segments, 3);
  EXPECT_EQ(r.cache[0].resident, 1);   // S0 (its readers are not all done)
  EXPECT_EQ(r.cache[0].producing, 1);  // S1: leased once, holds its slot
  EXPECT_EQ(r.cache[0].slots_used, 2);
}

TEST_F(StatusTest, MidRunTableShowsTheFigures) {
  DriveMidRun();
  const std::string t = StatusTable(Report(), 100, false);
  EXPECT_TRUE(Has(t, "radlads status: run demo")) << t;
  EXPECT_TRUE(Has(t, "phase     running")) << t;
  EXPECT_TRUE(Has(t, "14: 4 done, 1 leased")) << t;
  EXPECT_TRUE(Has(t, "step 1 align")) << t;
  EXPECT_TRUE(Has(t, "tokens 400 / 3,000 (13.3%) per layer")) << t;
  EXPECT_TRUE(Has(t, "in flight 200 ltok")) << t;
  EXPECT_TRUE(Has(t, "loss (layer mean) l2 0.1875")) << t;
  EXPECT_TRUE(Has(t, "30 ltok/s")) << t;
  EXPECT_TRUE(Has(t, "2:27")) << t;  // ETA 146.7 s
  EXPECT_TRUE(Has(t, "tokens 0 / 4,000 (0.0%)")) << t;  // distill
  EXPECT_TRUE(Has(t, "L001 [")) << t;
  EXPECT_TRUE(Has(t, "training align/L001/S00000")) << t;
  EXPECT_TRUE(Has(t, "workers   3: 1 busy, 2 idle, 0 lost")) << t;
  EXPECT_TRUE(Has(t, "5.0 s ago (w1)")) << t;
  EXPECT_TRUE(Has(t, "leases    1 outstanding; next deadline in 4:55")) << t;
  EXPECT_TRUE(Has(t, "failures  1 tasks retried, 0 failed for good")) << t;
  EXPECT_TRUE(Has(t, "cache/S00001/P00")) << t;
  EXPECT_TRUE(Has(t, "1 failed, attempt 1/4")) << t;
  EXPECT_TRUE(Has(t, "disk full on /scratch")) << t;
  EXPECT_TRUE(Has(t, "drain     not requested")) << t;
  EXPECT_TRUE(Has(t, "stage  0    2/2 slots")) << t;
  EXPECT_FALSE(Has(t, "\033[")) << "no colour codes when color is off";
  EXPECT_TRUE(Has(StatusTable(Report(), 100, true), "\033[32m")) << "colour when on";
}

TEST_F(StatusTest, JsonFollowsTheSchemaAndRoundTrips) {
  DriveMidRun();
  const RunState s = store_->Snapshot();
  const std::string text = StatusJson(s, clock_.NowMs());
  ASSERT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line";
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["kind"], "radlads.status");
  for (const char* key : {"now_ms", "run", "tasks", "steps", "align", "workers", "leases",
                          "failures", "drain", "cache", "counters"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"id", "phase", "reason", "created_ms", "phase_since_ms", "incarnation",
                          "events", "lease_ttl_ms", "retry_limit", "cache_window"}) {
    EXPECT_TRUE(j["run"].contains(key)) << key;
  }
  const nlohmann::json* align = nullptr;
  for (const auto& st : j["steps"]) {
    for (const char* key : {"name", "label", "state", "tasks", "tokens", "work", "fraction",
                            "tokens_per_s", "eta_s", "losses", "losses_at_ms"}) {
      EXPECT_TRUE(st.contains(key)) << key;
    }
    if (st["name"] == "align") align = &st;
  }
  ASSERT_NE(align, nullptr);
  EXPECT_TRUE((*align)["tokens"]["budget"].is_number_integer());
  EXPECT_EQ((*align)["tokens"]["budget"], 3000);
  EXPECT_EQ((*align)["tokens"]["used"], 400);
  EXPECT_EQ((*align)["work"]["in_flight"], 200);
  EXPECT_TRUE((*align)["eta_s"].is_number());
  EXPECT_DOUBLE_EQ((*align)["losses"]["l2"].get<double>(), 0.1875);
  EXPECT_TRUE(j["steps"][0]["tokens"].is_null()) << "transfer has no token budget";
  EXPECT_EQ(j["align"]["layers"].size(), 2u);
  EXPECT_EQ(j["align"]["layers"][1]["tokens_credited"], 400);
  EXPECT_EQ(j["workers"]["list"].size(), 3u);
  EXPECT_TRUE(j["workers"]["list"][1]["since_seen_s"].is_number());
  EXPECT_EQ(j["leases"]["outstanding"], 1);
  EXPECT_EQ(j["failures"][0]["last_error"], "disk full on /scratch");
  EXPECT_EQ(j["drain"]["active"], false);
  EXPECT_EQ(j["cache"]["stages"][0]["slots_used"], 2);
  EXPECT_TRUE(j["counters"]["leases_granted"].is_number_integer());

  // What a live server returns renders exactly like the state itself.
  Result<StatusReport> back = StatusReportFromJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(StatusTable(*back, 100, false), StatusTable(BuildStatusReport(s, clock_.NowMs()), 100, false));
  EXPECT_EQ(StatusReportToJson(*back), text);

  Result<StatusReport> bad = StatusReportFromJson("{\"schema\": 99}", "coordinator at x");
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  EXPECT_TRUE(Has(bad.status().message(), "coordinator at x: status schema 99"));
  bad = StatusReportFromJson("{\"schema\": 1, \"now_ms\": 5}", "coordinator at x");
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  EXPECT_TRUE(Has(bad.status().message(), "'run'")) << bad.status().message();
}

TEST_F(StatusTest, CompletedRun) {
  Start();
  DriveToCompletion();
  const StatusReport r = Report();
  EXPECT_EQ(r.run.phase, "completed");
  for (const StatusStep& s : r.steps) EXPECT_EQ(s.state, "done") << s.name;
  const StatusStep& distill = Step(r, "distill");
  EXPECT_EQ(distill.tokens_used, 4000);
  ASSERT_EQ(distill.losses.size(), 2u);  // the final metrics
  EXPECT_EQ(distill.losses[0].name, "kl");
  const std::string t = StatusTable(r, 100, false);
  EXPECT_TRUE(Has(t, "phase     completed")) << t;
  EXPECT_TRUE(Has(t, "tokens 3,000 / 3,000 (100.0%) per layer")) << t;
  EXPECT_TRUE(Has(t, "tokens 4,000 / 4,000 (100.0%)")) << t;
  EXPECT_TRUE(Has(t, "loss kl 0.5  top1 0.75")) << t;
  EXPECT_TRUE(Has(t, "failures  none")) << t;
}

TEST_F(StatusTest, DrainingThenDrained) {
  DriveMidRun();
  ASSERT_TRUE(sched_->Drain("SIGUSR1 (Slurm time limit in 600 s)").ok());
  clock_.Advance(3'000);
  StatusReport r = Report();
  EXPECT_EQ(r.run.phase, "draining");
  EXPECT_TRUE(r.drain.active);
  EXPECT_EQ(r.drain.leases_outstanding, 1);
  std::string t = StatusTable(r, 100, false);
  EXPECT_TRUE(Has(t, "phase     draining for 3.0 s: SIGUSR1 (Slurm time limit in 600 s)")) << t;
  EXPECT_TRUE(Has(t, "drain     requested 3.0 s ago: SIGUSR1")) << t;
  EXPECT_TRUE(Has(t, "waiting for 1 leases to checkpoint and end")) << t;
  ASSERT_TRUE(sched_->Release(lease_, "drain").ok());
  r = Report();
  EXPECT_EQ(r.run.phase, "drained");
  t = StatusTable(r, 100, false);
  EXPECT_TRUE(Has(t, "no lease outstanding, the coordinator may exit for requeue")) << t;
  EXPECT_TRUE(Has(PrometheusText(r), "radlads_run_drain_active 1\n"));
}

TEST_F(StatusTest, FailedRunShowsTheReason) {
  Start(/*retry_limit=*/0);
  const LeaseGrant g = Lease("w0", "transfer/L000");
  ASSERT_TRUE(sched_->Fail(g.lease, "teacher shard checksum mismatch", true).ok());
  const StatusReport r = Report();
  EXPECT_EQ(r.run.phase, "failed");
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].state, "failed");
  const std::string t = StatusTable(r, 100, false);
  EXPECT_TRUE(Has(t, "phase     failed")) << t;
  EXPECT_TRUE(Has(t, "teacher shard checksum mismatch")) << t;
  EXPECT_TRUE(Has(t, "0 tasks retried, 1 failed for good")) << t;
}

TEST_F(StatusTest, ACheckpointFallbackIsShownWithTheTokensRedone) {
  DriveMidRun();
  // align L1/S0 (committed at 400 tokens) is released and its next attempt finds the commit
  // unreadable.
  ASSERT_TRUE(sched_->Release(lease_, "drain").ok());
  const LeaseGrant g = Lease("w1", "align/L001/S00000");
  ASSERT_TRUE(g.resume_from);
  ASSERT_TRUE(sched_->DiscardCheckpoint(g.lease, 2, "L001/S00000-000002.safetensors: checksum mismatch").ok());
  const StatusReport r = Report();
  ASSERT_EQ(r.fallbacks.size(), 1u);
  EXPECT_EQ(r.fallbacks[0].task, "align/L001/S00000");
  EXPECT_EQ(r.fallbacks[0].step, 2);
  EXPECT_EQ(r.fallbacks[0].tokens_redone, 400);
  EXPECT_EQ(Step(r, "align").work_redone, 400);
  EXPECT_EQ(r.metrics.checkpoints_discarded, 1);
  const std::string t = StatusTable(r, 140, false);
  EXPECT_TRUE(Has(t, "1 unreadable checkpoint discarded; 400 tokens redone")) << t;
  EXPECT_TRUE(Has(t, "checksum mismatch")) << t;
  Result<StatusReport> back = StatusReportFromJson(StatusReportToJson(r), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(StatusReportToJson(*back), StatusReportToJson(r));
  const std::string prom = PrometheusText(r);
  EXPECT_TRUE(Has(prom, "radlads_checkpoints_discarded_total 1")) << prom;
  EXPECT_TRUE(Has(prom, "radlads_step_tokens_redone_total{step=\"align\"} 400")) << prom;
}

TEST_F(StatusTest, EightyLayersRenderAsAGrid) {
  auto r = StateStore::Open(StateDir());
  ASSERT_TRUE(r.ok());
  store_ = std::move(r).value();
  sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
  PlanShape shape;
  shape.layers = 80;
  shape.stages = 8;
  shape.segments = 2;
  RunConfig c;
  c.run_id = "grid";
  ASSERT_TRUE(sched_->CreateRun(c, MakePlan(shape)).ok());
  ASSERT_TRUE(sched_->RegisterWorker(Worker("w0")).ok());
  for (int k = 0; k < 80 + 8 + 3; ++k) {  // transfers, the 8 caches of S0, 3 aligns of S0
    auto l = sched_->Lease("w0");
    ASSERT_TRUE(l.ok() && l->grant);
    Complete(*l->grant);
  }
  const std::string t = StatusTable(Report(), 100, false);
  EXPECT_TRUE(Has(t, "80 layers x 2 segments")) << t;
  EXPECT_TRUE(Has(t, "    L000-019 5  5  5  0  0")) << t;
  EXPECT_TRUE(Has(t, "    L060-079 0")) << t;
}

// ---- the command ----

struct CommandRun {
  int rc = -1;
  std::string out, err;
};

CommandRun RunCommand(StatusArgs a) {
  std::ostringstream out, err;
  a.out = &out;
  a.err = &err;
  a.tty = 0;
  a.color = 0;
  if (!a.fetch_live) {
    a.fetch_live = [](const std::string&, int) -> Result<std::string> {
      return Status::Unavailable("no coordinator");
    };
  }
  CommandRun r;
  r.rc = RunStatusCommand(a);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// The Slurm side: the job the run last started in (state), what Slurm says about it now (the
// command asks squeue; injected here), restarts, drains, and the user's cancel.
TEST_F(StatusTest, SlurmJobRestartsAndTheCancelAreShownLiveAndOffline) {
  DriveMidRun();
  ASSERT_TRUE(sched_->RecordJobStart(JobStart{"slurm", "4242", 0, "n[1-2]", 0, 0, ""}).ok());
  ASSERT_TRUE(sched_->RecordJobStart(
      JobStart{"slurm", "4242", 1, "n[3-4]", clock_.NowMs() + 3'600'000, 2, ""}).ok());
  ASSERT_TRUE(sched_->Cancel("radlads-coord cancel by ada@login1", "4242").ok());
  StatusReport r = Report();
  EXPECT_EQ(r.slurm.job_id, "4242");
  EXPECT_EQ(r.slurm.restart, 1);
  EXPECT_EQ(r.slurm.starts, 2);
  EXPECT_EQ(r.slurm.nodes, "n[3-4]");
  EXPECT_EQ(r.run.cancelled, "radlads-coord cancel by ada@login1");
  EXPECT_EQ(r.run.cancelled_job, "4242");
  Result<StatusReport> back = StatusReportFromJson(StatusReportToJson(r), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(StatusReportToJson(*back), StatusReportToJson(r));
  StatusArgs a;
  a.run_dir = RunDir();
  a.clock = &clock_;
  std::vector<std::string> asked;
  a.query_slurm = [&](const std::string& id) {
    asked.push_back(id);
    SlurmJobView v;
    v.state = "RUNNING";
    v.time_left = "58:00";
    v.nodes = "n[3-4]";
    v.source = "squeue";
    return v;
  };
  CommandRun c = RunCommand(a);
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(asked, std::vector<std::string>{"4242"});
  EXPECT_TRUE(Has(c.out, "slurm     job 4242 RUNNING on n[3-4]; start 2 (1 restarts), 58:00 left; 1 drains "
                         "(preemptions), 2 starts recorded")) << c.out;
  EXPECT_TRUE(Has(c.out, "cancelled radlads-coord cancel by ada@login1 (job 4242)")) << c.out;
  a.json = true;
  c = RunCommand(a);
  EXPECT_TRUE(Has(c.out, R"("state":"RUNNING","time_left":"58:00")")) << c.out;
  // Slurm cannot say (no squeue, bytes that are not UTF-8): the table says why, JSON stays valid.
  a.query_slurm = [](const std::string&) {
    SlurmJobView v;
    v.error = "squeue: exit 1: \xff\xfe";
    return v;
  };
  c = RunCommand(a);
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_TRUE(StatusReportFromJson(c.out, "test").ok()) << c.out;
  a.json = false;
  c = RunCommand(a);
  EXPECT_TRUE(Has(c.out, "job 4242 state unknown on n[3-4]")) << c.out;
}

TEST_F(StatusTest, CommandReadsTheStateWhileAStoreHoldsItOpen) {
  DriveMidRun();  // store_ stays open read-write
  StatusArgs a;
  a.run_dir = RunDir();
  a.clock = &clock_;
  CommandRun r = RunCommand(a);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(Has(r.err, "(no coordinator is serving " + RunDir() + "; showing the last durable state)"))
      << r.err;
  EXPECT_EQ(r.out, StatusTable(Report(), 100, false));
  // --json: one document, the same as the state's.
  a.json = true;
  r = RunCommand(a);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, StatusJson(store_->Snapshot(), clock_.NowMs()));
  // More transitions are visible to the next read.
  ASSERT_TRUE(sched_->Drain("test").ok());
  a.json = false;
  r = RunCommand(a);
  EXPECT_TRUE(Has(r.out, "phase     draining")) << r.out;
}

TEST_F(StatusTest, CommandPrefersALiveCoordinator) {
  DriveMidRun();
  const std::string live = StatusJson(store_->Snapshot(), clock_.NowMs());
  StatusArgs a;
  a.run_dir = RunDir();
  a.fetch_live = [&](const std::string& dir, int) -> Result<std::string> {
    EXPECT_EQ(dir, RunDir());
    return live;
  };
  CommandRun r = RunCommand(a);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(r.out, StatusTable(*StatusReportFromJson(live, "x"), 100, false));
  a.json = true;
  r = RunCommand(a);
  EXPECT_EQ(r.out, live) << "--json prints the coordinator's document as sent";
  a.fetch_live = [](const std::string&, int) -> Result<std::string> { return std::string("{}"); };
  r = RunCommand(a);
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(Has(r.err, "coordinator serving " + RunDir())) << r.err;
}

// End to end: `status` finds the real coordinator server through RUN/coordinator.addr and the
// run secret, and prints what its GetStatus returned; with no address it says it reads the disk.
TEST_F(StatusTest, CommandAsksTheLiveServerThroughTheClient) {
  DriveMidRun();
  StatusArgs a;
  a.run_dir = RunDir();
  a.json = true;
  a.tty = 0;
  std::ostringstream out, err;
  a.out = &out;
  a.err = &err;
  ASSERT_EQ(RunStatusCommand(a), 0) << err.str();  // the real TryLiveStatus: no address yet
  EXPECT_TRUE(Has(err.str(), "(no coordinator is serving " + RunDir())) << err.str();

  Result<RunSecret> secret = EnsureRunSecret(RunDir());
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  ServerOptions so;
  so.handle_signals = false;
  so.exit_after_run_over_ms = -1;
  auto server = Server::Start(so, sched_.get(), &clock_, *secret);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  testing::WriteBytes(JoinPath(RunDir(), "coordinator.addr"), (*server)->address() + "\n");
  std::thread loop([&] { (void)(*server)->Run(); });
  out.str("");
  err.str("");
  const int rc = RunStatusCommand(a);
  (*server)->Shutdown(0);
  loop.join();
  ASSERT_EQ(rc, 0) << err.str();
  EXPECT_TRUE(err.str().empty()) << err.str();
  EXPECT_EQ(out.str(), StatusJson(store_->Snapshot(), clock_.NowMs()));
}

TEST_F(StatusTest, WatchPrintsOneSnapshotPerIntervalAndStopsWhenTheRunIsOver) {
  DriveMidRun();
  StatusArgs a;
  a.run_dir = RunDir();
  a.watch_s = 0.01;
  a.max_frames = 3;
  a.json = true;
  CommandRun r = RunCommand(a);
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream lines(r.out);
  int docs = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(nlohmann::json::parse(line)["schema"], 1);
    ++docs;
  }
  EXPECT_EQ(docs, 3);
  // A finished run: one frame, even without a bound.
  ASSERT_TRUE(sched_->Release(lease_, "test").ok());
  DriveToCompletion();
  ASSERT_EQ(store_->Read([](const RunState& s) { return s.phase(); }), RunPhase::kCompleted);
  a.max_frames = 5;  // a bound, in case it does not stop by itself
  a.json = false;
  r = RunCommand(a);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("radlads status"), r.out.rfind("radlads status")) << r.out;
  EXPECT_TRUE(Has(r.out, "completed"));
}

TEST_F(StatusTest, CommandErrorsNameThePath) {
  StatusArgs a;
  a.run_dir = dir_.File("nope");
  CommandRun r = RunCommand(a);
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(Has(r.err, dir_.File("nope") + ": no such run directory")) << r.err;

  a.run_dir = RunDir();  // exists, holds nothing
  r = RunCommand(a);
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(Has(r.err, StateDir() + ": no run state yet")) << r.err;

  // A store with no run in it.
  { auto s = StateStore::Open(StateDir()); ASSERT_TRUE(s.ok()); }
  r = RunCommand(a);
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(Has(r.err, StateDir() + ": the state store holds no run yet")) << r.err;
}

TEST_F(StatusTest, CorruptStateIsNamed) {
  DriveMidRun();
  sched_.reset();
  store_.reset();
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    ASSERT_TRUE(rocksdb::DB::Open(o, StateDir(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "t/align/L001/S00000", "\x01garbage").ok());
  }
  StatusArgs a;
  a.run_dir = RunDir();
  CommandRun r = RunCommand(a);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(Has(r.err, "Corruption")) << r.err;
  EXPECT_TRUE(Has(r.err, StateDir())) << r.err;
  EXPECT_TRUE(Has(r.err, "t/align/L001/S00000")) << r.err;
}

// ---- Prometheus ----

TEST_F(StatusTest, PrometheusTextIsValidExposition) {
  DriveMidRun();
  const std::string text = PrometheusText(Report());
  const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$)");
  const std::regex sample(
      R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")*\})? (NaN|[+-]Inf|-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)$)re");
  std::istringstream in(text);
  std::set<std::string> typed;
  std::string current;
  int samples = 0;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      current = m[1];
    } else if (std::regex_match(line, m, type)) {
      EXPECT_EQ(m[1], current) << "TYPE follows its HELP: " << line;
      EXPECT_TRUE(typed.insert(m[1]).second) << "one TYPE per family: " << line;
      if (m[2] == "counter") {
        EXPECT_TRUE(Has(m[1], "_total")) << line;
      }
    } else if (std::regex_match(line, m, sample)) {
      EXPECT_EQ(m[1], current) << "a sample of the family just declared: " << line;
      ++samples;
    } else {
      ADD_FAILURE() << "not an exposition line: '" << line << "'";
    }
  }
  EXPECT_GT(samples, 50);
  for (const char* want : {
           "radlads_run_phase{phase=\"running\"} 1\n",
           "radlads_tasks{type=\"align\",state=\"done\"} 1\n",
           "radlads_tasks{type=\"cache\",state=\"ready\"} 2\n",
           "radlads_step_tokens_budget{step=\"align\"} 3000\n",
           "radlads_step_tokens_credited{step=\"align\"} 400\n",
           "radlads_step_tokens_credited{step=\"distill\"} 0\n",
           "radlads_step_tokens_in_flight{step=\"align\"} 200\n",
           "radlads_step_throughput_tokens_per_second{step=\"align\"} 30\n",
           "radlads_step_loss{step=\"align\",name=\"l2\"} 0.1875\n",
           "radlads_align_layer_tokens_credited{layer=\"1\"} 400\n",
           "radlads_align_layer_loss{layer=\"0\",name=\"l2\"} 0.125\n",
           "radlads_workers{state=\"busy\"} 1\n",
           "radlads_worker_seconds_since_heartbeat{worker=\"w1\",state=\"busy\"} 5\n",
           "radlads_leases_outstanding 1\n",
           "radlads_tasks_with_failures{outcome=\"retrying\"} 1\n",
           "radlads_cache_window_slots_used{stage=\"0\"} 2\n",
           "radlads_leases_ended_total{cause=\"failed\"} 1\n",
           "radlads_run_drain_active 0\n",
       }) {
    EXPECT_TRUE(Has(text, want)) << want;
  }
  EXPECT_FALSE(Has(text, "radlads_step_eta_seconds{step=\"distill\"}")) << "no ETA when not running";
}

TEST(PrometheusFormat, LabelsAndHelpAreEscaped) {
  std::string out;
  AppendPrometheusFamily(&out, "radlads_rpc_protocol_errors_total", "counter",
                         "Malformed\\oversized messages\nper reason.",
                         {{{{"reason", "bad \"hmac\"\\x\ny"}}, 3}});
  EXPECT_EQ(out,
            "# HELP radlads_rpc_protocol_errors_total Malformed\\\\oversized messages\\nper reason.\n"
            "# TYPE radlads_rpc_protocol_errors_total counter\n"
            "radlads_rpc_protocol_errors_total{reason=\"bad \\\"hmac\\\"\\\\x\\ny\"} 3\n");
  out.clear();
  AppendPrometheusFamily(&out, "x", "gauge", "h", {});
  EXPECT_EQ(out, "") << "no samples, no family";
}

TEST(StatusFormat, AgesAndTimes) {
  EXPECT_EQ(FormatAge(0.5), "0.5 s");
  EXPECT_EQ(FormatAge(42), "42 s");
  EXPECT_EQ(FormatAge(146.7), "2:27");
  EXPECT_EQ(FormatAge(3723), "1:02:03");
  EXPECT_EQ(FormatAge(90000), "1d 1:00:00");
  EXPECT_EQ(FormatAge(-12), "-12 s");
  EXPECT_EQ(FormatUtc(FakeClock::kDefaultStartMs), "2023-11-14 22:13:20 UTC");
}

}  // namespace
}  // namespace radlads

namespace radlads {
namespace {

// Found by status_json_fuzz: a number too large for an integer field (8.7e47 for a count) was
// converted without a range check (undefined behaviour). A live coordinator's document is
// untrusted input: such a document is refused, naming the key.
TEST(StatusJson, NumbersAnIntegerFieldCannotHoldAreRefused) {
  RunState empty;
  const std::string good = StatusReportToJson(BuildStatusReport(empty, 1000));
  ASSERT_TRUE(StatusReportFromJson(good, "peer").ok());
  for (const std::string& bad : {std::string("8.66667e+47"), std::string("1.5"), std::string("-1e300"),
                                 std::string("18446744073709551615"), std::string("\"12\"")}) {
    std::string doc = good;
    const std::string key = "\"now_ms\":1000";
    ASSERT_NE(doc.find(key), std::string::npos);
    doc.replace(doc.find(key), key.size(), "\"now_ms\":" + bad);
    Result<StatusReport> r = StatusReportFromJson(doc, "peer");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << bad;
    EXPECT_NE(r.status().message().find("now_ms"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace radlads
