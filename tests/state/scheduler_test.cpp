// The scheduling core, stepped with a FakeClock: dependency readiness, leases and their expiry,
// the retry limit, the exactly-once token ledger (duplicates, late and stale commits, random
// expiries), drain, restart, gang tasks and the cache window.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "state/scheduler.h"
#include "state/state_store.h"
#include "tests/state/scheduler_fixture.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// ---------------------------------------------------------------------------------------------
// Plan and dependencies
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, TasksBecomeReadyWhenAllTheirDependenciesAreDone) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 2;
  Start(MakePlan(shape));
  EXPECT_EQ(StateOf("transfer/L000"), TaskState::kReady);
  EXPECT_EQ(StateOf("cache/S00000/P00"), TaskState::kReady);
  EXPECT_EQ(StateOf("align/L000/S00000"), TaskState::kBlocked);
  Register("w");
  // Plan order: transfer(0), transfer(1), cache(0), ...
  LeaseGrant t0 = MustLease("w");
  EXPECT_EQ(t0.task.id, "transfer/L000");
  ASSERT_TRUE(Finish(t0).ok());
  EXPECT_EQ(StateOf("align/L000/S00000"), TaskState::kBlocked);  // cache(0) not done yet
  LeaseGrant t1 = MustLease("w");
  EXPECT_EQ(t1.task.id, "transfer/L001");
  ASSERT_TRUE(Finish(t1).ok());
  LeaseGrant c0 = MustLease("w");
  EXPECT_EQ(c0.task.id, "cache/S00000/P00");
  ASSERT_TRUE(Finish(c0).ok());
  EXPECT_EQ(StateOf("align/L000/S00000"), TaskState::kReady);
  EXPECT_EQ(StateOf("align/L001/S00000"), TaskState::kReady);
  EXPECT_EQ(StateOf("align/L000/S00001"), TaskState::kBlocked);
  // The grant carries the inputs: the cache files and the layer's transfer checkpoint.
  LeaseGrant a = MustLease("w");
  EXPECT_EQ(a.task.id, "align/L000/S00000");
  ASSERT_EQ(a.inputs.size(), 2u);
  EXPECT_EQ(a.inputs[0].task, "cache/S00000/P00");
  EXPECT_TRUE(a.inputs[0].final);
  EXPECT_EQ(a.inputs[1].task, "transfer/L000");
  EXPECT_FALSE(a.resume_from.has_value());
}

TEST_F(SchedulerTest, TheRunCompletesWithTheLastTask) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 2;
  Start(MakePlan(shape));
  RunUntilDone("eval");
  const RunState s = State();
  EXPECT_EQ(s.phase(), RunPhase::kCompleted);
  EXPECT_EQ(s.ledger().AlignMinTokens(), 2 * shape.segment_tokens);
  EXPECT_EQ(s.ledger().AlignBudget(), 2 * shape.segment_tokens);
  EXPECT_EQ(s.ledger().Of(TaskType::kDistill).credited, shape.distill_tokens);
  auto r = sched_->Lease("runner");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, LeaseOutcome::kRunOver);
}

TEST_F(SchedulerTest, BadPlansAreRefusedWithTheTaskNamed) {
  ScratchDir dir;
  auto store = StateStore::Open(dir.File("state"));
  ASSERT_TRUE(store.ok());
  Scheduler sched(store->get(), &clock_);
  RunConfig c;
  auto plan = MakePlan(PlanShape{});
  auto missing = plan;
  missing.back().deps.push_back("nope");
  Status st = sched.CreateRun(c, missing);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("'nope' is not in the plan"), std::string::npos) << st.ToString();

  auto cycle = plan;
  cycle[0].deps.push_back("eval");
  st = sched.CreateRun(c, cycle);
  EXPECT_NE(st.message().find("cycle"), std::string::npos) << st.ToString();

  auto uneven = plan;
  for (auto& t : uneven) {
    if (t.id == "align/L001/S00002") t.tokens += 1;
  }
  st = sched.CreateRun(c, uneven);
  EXPECT_NE(st.message().find("step-1 token budgets differ"), std::string::npos) << st.ToString();

  auto dup = plan;
  dup.push_back(plan[0]);
  st = sched.CreateRun(c, dup);
  EXPECT_NE(st.message().find("duplicate task id"), std::string::npos) << st.ToString();

  // Nothing was written by the refusals; the good plan goes in, and again is a no-op.
  ASSERT_TRUE(sched.CreateRun(c, plan).ok());
  const std::uint64_t seq = (*store)->Snapshot().last_seq();
  ASSERT_TRUE(sched.CreateRun(c, plan).ok());
  EXPECT_EQ((*store)->Snapshot().last_seq(), seq);
  auto other = plan;
  other.pop_back();
  EXPECT_EQ(sched.CreateRun(c, other).code(), Status::Code::kFailedPrecondition);
}

TEST_F(SchedulerTest, OperationsBeforeCreateRunAreRefused) {
  auto r = StateStore::Open(dir_.File("empty"));
  ASSERT_TRUE(r.ok());
  Scheduler sched(r->get(), &clock_);
  EXPECT_EQ(sched.RegisterWorker(testing::Worker("w")).code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched.Lease("w").status().code(), Status::Code::kFailedPrecondition);
}

// ---------------------------------------------------------------------------------------------
// Leases, heartbeats, expiry, retries
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, HeartbeatsRenewTheLeaseAndExpiryRequeuesFromTheLastCheckpoint) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 1;
  Start(MakePlan(shape));
  RunUntilDone("cache/S00000/P00");
  Register("w");
  LeaseGrant g = MustLease("w");
  ASSERT_EQ(g.task.id, "align/L000/S00000");
  EXPECT_EQ(g.attempt, 1);
  EXPECT_EQ(g.deadline_ms, clock_.NowMs() + kTtl);

  clock_.Advance(kTtl - 1);
  auto hb = sched_->Heartbeat(g.lease, Progress{100, 1, {{"l2", 0.5}}, 10.0});
  ASSERT_TRUE(hb.ok()) << hb.status().ToString();
  EXPECT_EQ(hb->deadline_ms, clock_.NowMs() + kTtl);
  EXPECT_FALSE(hb->stop);
  ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 2, 400)).ok());

  clock_.Advance(kTtl - 1);  // still inside the renewed lease
  EXPECT_EQ(*sched_->ExpireLeases(), 0);
  clock_.Advance(1);  // deadline reached
  // Refused even before ExpireLeases runs: the worker must stop.
  EXPECT_EQ(sched_->Heartbeat(g.lease, Progress{}).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(*sched_->ExpireLeases(), 1);
  const RunState s = State();
  EXPECT_EQ(Task(s, g.task.id).state, TaskState::kReady);
  EXPECT_EQ(Task(s, g.task.id).failures, 1);
  EXPECT_NE(Task(s, g.task.id).last_error.find("missed the deadline"), std::string::npos);
  EXPECT_EQ(s.FindWorker("w")->state, WorkerState::kLost);

  // The lost worker must register again; then the retry resumes from the committed checkpoint.
  EXPECT_EQ(sched_->Lease("w").status().code(), Status::Code::kFailedPrecondition);
  Register("w");
  LeaseGrant r = MustLease("w");
  EXPECT_EQ(r.task.id, g.task.id);
  EXPECT_EQ(r.attempt, 2);
  ASSERT_TRUE(r.resume_from.has_value());
  EXPECT_EQ(r.resume_from->record.step, 2);
  EXPECT_EQ(r.resume_from->record.tokens_consumed, 400);
}

TEST_F(SchedulerTest, TheRetryLimitFailsTheTaskAndTheRunWithTheReason) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 1;
  Start(MakePlan(shape), /*retry_limit=*/2);
  Register("w");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    LeaseGrant g = MustLease("w");
    ASSERT_EQ(g.task.id, "transfer/L000");
    EXPECT_EQ(g.attempt, attempt);
    clock_.Advance(kTtl);
    ASSERT_EQ(*sched_->ExpireLeases(), 1);
    Register("w");
    if (attempt < 3) {
      EXPECT_EQ(StateOf("transfer/L000"), TaskState::kReady);
      EXPECT_EQ(State().phase(), RunPhase::kRunning);
    }
  }
  const RunState s = State();
  EXPECT_EQ(Task(s, "transfer/L000").state, TaskState::kFailed);
  EXPECT_EQ(s.phase(), RunPhase::kFailed);
  EXPECT_NE(s.status().reason.find("transfer/L000"), std::string::npos) << s.status().reason;
  EXPECT_NE(s.status().reason.find("after 3 attempts"), std::string::npos) << s.status().reason;
  auto r = sched_->Lease("w");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, LeaseOutcome::kRunOver);
}

// The last attempts ended by an expiry and a restarted worker, after a worker reported the
// cause: the task's failure names both the last end and the reported error.
TEST_F(SchedulerTest, AFailureAfterExpiriesStillNamesTheErrorAWorkerReported) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 1;
  Start(MakePlan(shape), /*retry_limit=*/2);
  Register("w");
  LeaseGrant g = MustLease("w");
  ASSERT_TRUE(sched_->Fail(g.lease, "transient: IO error: checkpoint x (needs about 12 bytes): No space left", true).ok());
  g = MustLease("w");
  clock_.Advance(kTtl);
  ASSERT_EQ(*sched_->ExpireLeases(), 1);
  Register("w");
  g = MustLease("w");
  WorkerInfo again = testing::Worker("w", 1);
  again.pid = 4242;  // a new process of the same worker
  ASSERT_TRUE(sched_->RegisterWorker(again).ok());
  const RunState s = State();
  EXPECT_EQ(s.phase(), RunPhase::kFailed);
  const TaskRecord& t = Task(s, g.task.id);
  EXPECT_NE(t.last_error.find("registered again"), std::string::npos) << t.last_error;
  EXPECT_NE(t.last_error.find("the last error a worker reported: transient: IO error: checkpoint x"),
            std::string::npos) << t.last_error;
  EXPECT_NE(s.status().reason.find("No space left"), std::string::npos) << s.status().reason;
  EXPECT_EQ(s.metrics().leases_failed, 2);
}

TEST_F(SchedulerTest, FailCountsAndANonRetryableFailureFailsAtOnce) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 1;
  Start(MakePlan(shape));
  Register("w");
  LeaseGrant g = MustLease("w");
  ASSERT_TRUE(sched_->Fail(g.lease, "CUDA error: out of memory").ok());
  EXPECT_EQ(Task(State(), g.task.id).failures, 1);
  EXPECT_EQ(StateOf(g.task.id), TaskState::kReady);
  // A second report about the same lease is answered "not outstanding".
  EXPECT_EQ(sched_->Fail(g.lease, "again").code(), Status::Code::kFailedPrecondition);
  LeaseGrant h = MustLease("w");
  EXPECT_EQ(h.task.id, g.task.id);
  ASSERT_TRUE(sched_->Fail(h.lease, "corrupt teacher shard", /*retryable=*/false).ok());
  const RunState s = State();
  EXPECT_EQ(Task(s, g.task.id).state, TaskState::kFailed);
  EXPECT_EQ(s.phase(), RunPhase::kFailed);
  EXPECT_NE(s.status().reason.find("corrupt teacher shard"), std::string::npos);
}

TEST_F(SchedulerTest, AWorkerThatAsksAgainGetsItsLeaseBackAndARestartedOneLosesIt) {
  PlanShape shape;
  Start(MakePlan(shape));
  Register("w");
  LeaseGrant g = MustLease("w");
  LeaseGrant again = MustLease("w");  // the first reply was lost
  EXPECT_EQ(again.lease, g.lease);
  // Same id, new process: the old lease fails (counted), the task is ready again.
  WorkerInfo info = testing::Worker("w");
  info.pid = 4242;
  ASSERT_TRUE(sched_->RegisterWorker(info).ok());
  EXPECT_EQ(StateOf(g.task.id), TaskState::kReady);
  EXPECT_EQ(Task(State(), g.task.id).failures, 1);
  // Registering the same info again is a no-op.
  const std::uint64_t seq = State().last_seq();
  ASSERT_TRUE(sched_->RegisterWorker(info).ok());
  EXPECT_EQ(State().last_seq(), seq);
}

TEST_F(SchedulerTest, BadInputIsRefusedWithoutAnEvent) {
  Start(MakePlan(PlanShape{}));
  EXPECT_EQ(sched_->RegisterWorker(testing::Worker("bad id with spaces")).code(),
            Status::Code::kInvalidArgument);
  WorkerInfo none = testing::Worker("w");
  none.capabilities = 0;
  EXPECT_EQ(sched_->RegisterWorker(none).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(sched_->Lease("ghost").status().code(), Status::Code::kNotFound);
  Register("w");
  LeaseGrant g = MustLease("w");
  const std::uint64_t seq = State().last_seq();
  EXPECT_EQ(sched_->Heartbeat(g.lease, Progress{-1, 0, {}, 0}).status().code(),
            Status::Code::kInvalidArgument);
  CheckpointRecord no_files = Ckpt(g.task.id, 1, 0);
  no_files.files.clear();
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, no_files).status().code(),
            Status::Code::kInvalidArgument);
  CheckpointRecord dup_files = Ckpt(g.task.id, 1, 0);
  dup_files.files.push_back(dup_files.files[0]);
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, dup_files).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(sched_->Heartbeat(999, Progress{}).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(State().last_seq(), seq);
}

// ---------------------------------------------------------------------------------------------
// Token ledger
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, TokensAreCreditedOnceByCommitsNeverByHeartbeats) {
  StartOneAlignTask(1000);
  LeaseGrant g = MustLease("w");
  ASSERT_EQ(g.task.type, TaskType::kAlign);
  ASSERT_TRUE(sched_->Heartbeat(g.lease, Progress{900, 9, {}, 1.0}).ok());
  EXPECT_EQ(State().ledger().AlignMinTokens(), 0);

  auto c1 = sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 3, 300));
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->tokens_credited, 300);
  auto dup = sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 3, 300));  // lost reply, resent
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->tokens_credited, 0);
  // Reordered older commit, cursor regression, budget overrun: refused.
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 2, 200)).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 4, 250)).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 4, 1001)).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(State().ledger().AlignMinTokens(), 300);

  // The lease expires after 700 more tokens were consumed but never committed: they are lost
  // with the attempt, and the retry restarts at the committed cursor.
  clock_.Advance(kTtl);
  ASSERT_EQ(*sched_->ExpireLeases(), 1);
  // The stale worker's late commit is refused; its duplicate of a committed one is acknowledged.
  EXPECT_EQ(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 5, 1000)).status().code(),
            Status::Code::kFailedPrecondition);
  auto late_dup = sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 3, 300));
  ASSERT_TRUE(late_dup.ok());
  EXPECT_TRUE(late_dup->duplicate);
  FinalRecord stale_final;
  stale_final.checkpoint = Ckpt(g.task.id, 9, 1000);
  EXPECT_EQ(sched_->Complete(g.lease, stale_final).status().code(),
            Status::Code::kFailedPrecondition);

  Register("w2");
  LeaseGrant r = MustLease("w2");
  ASSERT_EQ(r.task.id, g.task.id);
  ASSERT_TRUE(r.resume_from);
  EXPECT_EQ(r.resume_from->record.tokens_consumed, 300);
  FinalRecord short_final;
  short_final.checkpoint = Ckpt(r.task.id, 10, 999);
  EXPECT_EQ(sched_->Complete(r.lease, short_final).status().code(),
            Status::Code::kInvalidArgument);  // the budget is exact
  FinalRecord f;
  f.checkpoint = Ckpt(r.task.id, 10, 1000);
  auto done = sched_->Complete(r.lease, f);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->tokens_credited, 700);
  auto again = sched_->Complete(r.lease, f);  // duplicate completion
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  const RunState s = State();
  EXPECT_EQ(s.ledger().AlignMinTokens(), 1000);
  EXPECT_EQ(s.ledger().Of(TaskType::kAlign).credited, 1000);
  EXPECT_TRUE(s.CheckInvariants().ok());
}

TEST_F(SchedulerTest, StepOneTokensAreCountedPerLayer) {
  PlanShape shape;
  shape.layers = 3;
  shape.segments = 2;
  shape.segment_tokens = 100;
  Start(MakePlan(shape));
  RunUntilDone("align/L000/S00001");  // layer 0 finishes step 1 (plan order runs others too)
  const RunState s = State();
  EXPECT_EQ(s.ledger().AlignBudget(), 200);
  const auto& layers = s.ledger().align_layers;
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers.at(0).credited, 200);
  std::int64_t sum = 0, mn = 200;
  for (const auto& [l, led] : layers) {
    sum += led.credited;
    mn = std::min(mn, led.credited);
  }
  EXPECT_EQ(s.ledger().AlignMinTokens(), mn);
  EXPECT_EQ(s.ledger().Of(TaskType::kAlign).credited, sum);
  EXPECT_DOUBLE_EQ(s.ledger().AlignMeanTokens(), sum / 3.0);
}

// Property: whatever the interleaving of expiries, failures, duplicates, stale and late messages,
// every task that is done (and not held in a worker's memory) was credited exactly its budget, no
// task more than its budget, and the ledger equals the sum of committed cursors. Run to completion, the step ledgers equal the plan.
TEST_F(SchedulerTest, TheLedgerIsExactUnderRandomExpiriesDuplicatesAndLateCommits) {
  PlanShape shape;
  shape.layers = 3;
  shape.segments = 3;
  shape.stages = 1;
  shape.finetune = true;
  Start(MakePlan(shape), /*retry_limit=*/1000);
  testing::RandomDriver driver(sched_.get(), &clock_, 99, 3);
  for (int round = 0; round < 40; ++round) {
    ASSERT_TRUE(driver.Run(50, /*allow_drain=*/false));
    const RunState s = State();
    ASSERT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants().ToString();
    for (const auto& t : s.tasks()) {
      ASSERT_LE(t.committed_tokens, t.spec.tokens) << t.spec.id;
      if (t.state == TaskState::kDone && t.held_lease == 0) {  // a held segment: credited when durable
        ASSERT_EQ(t.committed_tokens, t.spec.tokens) << t.spec.id;
      }
    }
  }
  EXPECT_GT(driver.stale_rejections(), 0);
  EXPECT_GT(driver.duplicates_acked(), 0);
  EXPECT_GT(driver.continued(), 0) << "no held chain was exercised";
  EXPECT_GT(driver.discards(), 0) << "no checkpoint fallback was exercised";
  // Finish the run with a well-behaved worker (the driver may have left the run failed by a
  // non-retryable failure; then only check what was credited).
  if (State().phase() == RunPhase::kRunning) {
    clock_.Advance(10 * kTtl);
    ASSERT_TRUE(sched_->ExpireLeases().ok());
    RunUntilDone("eval");
    const RunState s = State();
    EXPECT_EQ(s.phase(), RunPhase::kCompleted);
    EXPECT_EQ(s.ledger().AlignMinTokens(), s.ledger().AlignBudget());
    EXPECT_EQ(s.ledger().Of(TaskType::kAlign).credited, 3 * 3 * shape.segment_tokens);
    EXPECT_EQ(s.ledger().Of(TaskType::kDistill).credited, shape.distill_tokens);
    EXPECT_EQ(s.ledger().Of(TaskType::kFinetune).credited, shape.finetune_tokens);
  }
}

// ---------------------------------------------------------------------------------------------
// Drain and restart
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, DrainStopsLeasingTellsWorkersAndCompletesWhenTheLastLeaseEnds) {
  PlanShape shape;
  shape.layers = 3;
  Start(MakePlan(shape));
  Register("a");
  Register("b");
  Register("c");
  LeaseGrant ga = MustLease("a");
  LeaseGrant gb = MustLease("b");
  ASSERT_TRUE(sched_->Drain("SIGUSR1 from Slurm").ok());
  EXPECT_EQ(State().phase(), RunPhase::kDraining);
  ASSERT_TRUE(sched_->Drain("again").ok());  // idempotent
  auto none = sched_->Lease("c");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->outcome, LeaseOutcome::kDraining);
  auto hb = sched_->Heartbeat(ga.lease, Progress{});
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE(hb->stop);
  EXPECT_NE(hb->stop_reason.find("SIGUSR1"), std::string::npos);
  // a checkpoints and releases; b completes its task.
  ASSERT_TRUE(sched_->Release(ga.lease, "drain").ok());
  EXPECT_EQ(State().phase(), RunPhase::kDraining);
  ASSERT_TRUE(Finish(gb).ok());
  RunState s = State();
  EXPECT_EQ(s.phase(), RunPhase::kDrained);
  EXPECT_EQ(Task(s, ga.task.id).failures, 0);  // a release is not a failure
  EXPECT_EQ(s.metrics().leases_released, 1);

  // The job is requeued: a new coordinator resumes; the run goes on.
  Reopen();
  ASSERT_TRUE(sched_->Resume("requeued").ok());
  s = State();
  EXPECT_EQ(s.phase(), RunPhase::kRunning);
  EXPECT_EQ(s.status().incarnation, 1);
  EXPECT_EQ(s.FindWorker("a")->state, WorkerState::kLost);
  Register("a");
  LeaseGrant again = MustLease("a");
  EXPECT_EQ(again.task.id, ga.task.id);
}

TEST_F(SchedulerTest, ADrainWithNoLeaseCompletesAtOnce) {
  Start(MakePlan(PlanShape{}));
  ASSERT_TRUE(sched_->Drain("SIGTERM").ok());
  EXPECT_EQ(State().phase(), RunPhase::kDrained);
}

TEST_F(SchedulerTest, AnExpiryCanFinishTheDrain) {
  Start(MakePlan(PlanShape{}));
  Register("a");
  MustLease("a");
  ASSERT_TRUE(sched_->Drain("SIGTERM").ok());
  clock_.Advance(kTtl);
  ASSERT_EQ(*sched_->ExpireLeases(), 1);
  EXPECT_EQ(State().phase(), RunPhase::kDrained);
}

// Batch-job starts are kept (the last kMaxJobStarts), survive a reopen, and the cancel drains
// and is cleared by the next resume.
TEST_F(SchedulerTest, JobStartsAndTheCancelAreDurableAndTheNextResumeClearsTheCancel) {
  Start(MakePlan(PlanShape{}));
  Register("a");
  LeaseGrant g = MustLease("a");
  ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 1, 0)).ok());
  for (int r = 0; r < static_cast<int>(kMaxJobStarts) + 3; ++r) {
    JobStart j{"slurm", "4242", r, "n[1-2]", 1'700'000'000'000 + r, State().CommitCount(), ""};
    if (r == 1) j.refused = "no progress";
    ASSERT_TRUE(sched_->RecordJobStart(j).ok());
  }
  EXPECT_EQ(State().CommitCount(), 1);
  ASSERT_TRUE(sched_->Cancel("radlads-coord cancel by root", "4242").ok());
  RunState s = State();
  EXPECT_EQ(s.phase(), RunPhase::kDraining);  // the lease is still out
  EXPECT_EQ(s.status().cancelled, "radlads-coord cancel by root");
  EXPECT_EQ(s.status().cancelled_job, "4242");
  ASSERT_EQ(s.status().jobs.size(), kMaxJobStarts);
  EXPECT_EQ(s.status().job_starts, static_cast<std::int64_t>(kMaxJobStarts) + 3);
  EXPECT_EQ(s.status().jobs.front().restart, 3);  // the oldest ones were dropped
  EXPECT_EQ(s.status().jobs.back().restart, static_cast<int>(kMaxJobStarts) + 2);
  EXPECT_EQ(s.status().jobs.back().progress, 1);
  ASSERT_TRUE(sched_->Release(g.lease, "drain").ok());
  EXPECT_EQ(State().phase(), RunPhase::kDrained);
  const std::string before = State().CanonicalDump();
  Reopen();
  EXPECT_EQ(State().CanonicalDump(), before);
  EXPECT_EQ(State().status().cancelled, "radlads-coord cancel by root");
  ASSERT_TRUE(sched_->Resume("a new job").ok());
  EXPECT_EQ(State().phase(), RunPhase::kRunning);
  EXPECT_TRUE(State().status().cancelled.empty());
  EXPECT_TRUE(State().status().cancelled_job.empty());
}

TEST_F(SchedulerTest, ACompletedRunCannotBeCancelledAndAJobStartNeedsAnId) {
  Start(MakePlan(PlanShape{}));
  EXPECT_EQ(sched_->RecordJobStart(JobStart{"slurm", "", 0, "", 0, 0, ""}).code(), Status::Code::kInvalidArgument);
  Register("a");
  for (;;) {
    auto r = sched_->Lease("a");
    ASSERT_TRUE(r.ok());
    if (!r->grant) break;
    ASSERT_TRUE(Finish(*r->grant).ok());
  }
  ASSERT_EQ(State().phase(), RunPhase::kCompleted);
  EXPECT_EQ(sched_->Cancel("late", "").code(), Status::Code::kFailedPrecondition);
}

TEST_F(SchedulerTest, ResumeEndsLeasesOfThePreviousIncarnationWithoutCountingAFailure) {
  Start(MakePlan(PlanShape{}));
  Register("a");
  LeaseGrant g = MustLease("a");
  ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(g.task.id, 1, 0)).ok());
  Reopen();  // the coordinator died without draining
  ASSERT_TRUE(sched_->Resume("job restarted").ok());
  const RunState s = State();
  EXPECT_TRUE(s.leases().empty());
  EXPECT_EQ(Task(s, g.task.id).state, TaskState::kReady);
  EXPECT_EQ(Task(s, g.task.id).failures, 0);
  EXPECT_EQ(s.metrics().leases_abandoned, 1);
  EXPECT_EQ(sched_->Heartbeat(g.lease, Progress{}).status().code(),
            Status::Code::kFailedPrecondition);
}

// ---------------------------------------------------------------------------------------------
// Gang tasks and the cache window
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, GangTasksGoToAGroupOfTheirSize) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 1;
  shape.distill_workers = 4;
  Start(MakePlan(shape));
  RunUntilDone("align/L000/S00000");
  EXPECT_EQ(StateOf("distill"), TaskState::kReady);
  auto single = sched_->Lease("runner");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->outcome, LeaseOutcome::kNoWork);  // a group of 1 cannot run a gang of 4
  WorkerInfo leader = testing::Worker("node0/rank0", 4);
  leader.members = {"node0/rank0", "node0/rank1", "node1/rank0", "node1/rank1"};
  ASSERT_TRUE(sched_->RegisterWorker(leader).ok());
  LeaseGrant g = MustLease("node0/rank0");
  EXPECT_EQ(g.task.id, "distill");
  EXPECT_EQ(g.task.workers, 4);
}

TEST_F(SchedulerTest, CapabilitiesRestrictWhatAWorkerIsGiven) {
  Start(MakePlan(PlanShape{}));
  Register("cacher");
  Capabilities caps;
  caps.task_types = TaskTypeBit(TaskType::kCache);
  LeaseGrant g = MustLease("cacher", caps);
  EXPECT_EQ(g.task.type, TaskType::kCache);
}

TEST_F(SchedulerTest, TheCacheWindowBoundsResidentSegmentsAndEvictionFreesSlots) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 4;
  shape.distill = false;
  Start(MakePlan(shape), 3, /*window=*/2);
  Register("c");
  Capabilities caches;
  caches.task_types = TaskTypeBit(TaskType::kCache);
  LeaseGrant c0 = MustLease("c", caches);
  ASSERT_TRUE(Finish(c0).ok());
  LeaseGrant c1 = MustLease("c", caches);
  ASSERT_TRUE(Finish(c1).ok());
  auto full = sched_->Lease("c", caches);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->outcome, LeaseOutcome::kNoWork);  // segments 0 and 1 fill the window
  EXPECT_EQ(State().WindowSlotsUsed(0), 2);

  // Train both layers on segment 0: the segment becomes evictable, but still holds its slot.
  Register("t");
  Capabilities trainers;
  trainers.task_types = TaskTypeBit(TaskType::kTransfer) | TaskTypeBit(TaskType::kAlign);
  for (int k = 0; k < 4; ++k) {  // transfer(0), transfer(1), align(0,0), align(1,0)
    LeaseGrant g = MustLease("t", trainers);
    ASSERT_TRUE(Finish(g).ok()) << g.task.id;
  }
  const SegmentRecord* seg0 = State().FindSegment(0, 0);
  ASSERT_NE(seg0, nullptr);
  EXPECT_EQ(State().FindSegment(0, 0)->state, SegmentState::kEvictable);
  EXPECT_EQ(State().FindSegment(1, 0)->state, SegmentState::kResident);
  EXPECT_EQ(sched_->EvictSegment(1, 0).code(), Status::Code::kFailedPrecondition);
  full = sched_->Lease("c", caches);
  EXPECT_EQ(full->outcome, LeaseOutcome::kNoWork);

  // The scheduler's decision: segment 0, with the files its cache task committed.
  std::vector<SegmentEviction> due = sched_->PendingEvictions();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].segment, 0);
  EXPECT_EQ(due[0].stage, 0);
  ASSERT_NE(State().LastCheckpoint("cache/S00000/P00"), nullptr);
  EXPECT_EQ(due[0].files, State().LastCheckpoint("cache/S00000/P00")->record.files);
  EXPECT_FALSE(due[0].files.empty());

  ASSERT_TRUE(sched_->EvictSegment(0, 0).ok());
  EXPECT_TRUE(sched_->PendingEvictions().empty());
  ASSERT_TRUE(sched_->EvictSegment(0, 0).ok());  // idempotent
  EXPECT_EQ(State().WindowSlotsUsed(0), 1);
  LeaseGrant c2 = MustLease("c", caches);
  EXPECT_EQ(c2.task.id, "cache/S00002/P00");
  EXPECT_EQ(sched_->EvictSegment(9, 9).code(), Status::Code::kNotFound);
}

// When the whole cache fits its window (or the window is unlimited), nothing is evicted: the cache
// is kept for re-runs.
TEST_F(SchedulerTest, AWindowHoldingEverySegmentKeepsTheCache) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 2;
  shape.distill = false;
  Start(MakePlan(shape), 3, /*window=*/2);
  Register("w");
  for (int k = 0; k < 4; ++k) {  // transfer(0), cache(0), align(0,0), ...
    LeaseGrant g = MustLease("w");
    ASSERT_TRUE(Finish(g).ok()) << g.task.id;
  }
  EXPECT_EQ(State().FindSegment(0, 0)->state, SegmentState::kEvictable);
  EXPECT_TRUE(sched_->PendingEvictions().empty());
}

TEST_F(SchedulerTest, ASegmentFeedingTheNextStageIsEvictableOnlyAfterThatStageReadIt) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 1;
  shape.stages = 2;
  shape.distill = false;
  Start(MakePlan(shape));
  Register("w");
  // Plan order: transfer 0, 1, cache(0,0), cache(0,1), align(0,0) [stage 0], align(1,0).
  for (const char* id : {"transfer/L000", "transfer/L001", "cache/S00000/P00"}) {
    LeaseGrant g = MustLease("w");
    ASSERT_EQ(g.task.id, id);
    ASSERT_TRUE(Finish(g).ok());
  }
  Capabilities align_only;
  align_only.task_types = TaskTypeBit(TaskType::kAlign);
  LeaseGrant a0 = MustLease("w", align_only);
  ASSERT_EQ(a0.task.id, "align/L000/S00000");
  ASSERT_TRUE(Finish(a0).ok());
  // Stage 0's aligns are done, but cache(0,1) still has to read stage 0's output.
  EXPECT_EQ(State().FindSegment(0, 0)->state, SegmentState::kResident);
  LeaseGrant c1 = MustLease("w");
  ASSERT_EQ(c1.task.id, "cache/S00000/P01");
  ASSERT_TRUE(Finish(c1).ok());
  EXPECT_EQ(State().FindSegment(0, 0)->state, SegmentState::kEvictable);
  EXPECT_EQ(State().FindSegment(0, 1)->state, SegmentState::kResident);
}

// ---------------------------------------------------------------------------------------------
// Durability of scheduler decisions
// ---------------------------------------------------------------------------------------------

TEST_F(SchedulerTest, EveryDecisionSurvivesAReopen) {
  PlanShape shape;
  shape.layers = 2;
  shape.segments = 2;
  Start(MakePlan(shape));
  testing::RandomDriver driver(sched_.get(), &clock_, 5, 3);
  ASSERT_TRUE(driver.Run(300));
  const RunState before = State();
  Reopen();
  EXPECT_EQ(State().CanonicalDump(), before.CanonicalDump());
}

}  // namespace
}  // namespace radlads
