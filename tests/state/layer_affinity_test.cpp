// Layer affinity in the scheduler (Scheduler::CompleteAndContinue): a worker finishing align(l, s)
// keeps the layer's state in memory and goes on with align(l, s + 1) in the same transition; the
// held segment is not credited and its cache segment is not evictable until the chain's next
// commit makes it durable; when the chain's lease ends without one, the held segments run again
// from the last durable state; the ledger stays exact through all of it, and every decision
// survives a reopen (rows equal replay).
#include <gtest/gtest.h>

#include <string>

#include "state/scheduler.h"
#include "tests/state/scheduler_fixture.h"

namespace radlads {
namespace {

class LayerAffinity : public SchedulerTest {
 protected:
  // One layer, three segments, one stage, no distill; the transfer and every cache done.
  void StartChain() {
    PlanShape shape;
    shape.layers = 1;
    shape.segments = 3;
    shape.distill = false;
    Start(MakePlan(shape));
    Register("w");
    for (const char* id : {"transfer/L000", "cache/S00000/P00", "cache/S00001/P00", "cache/S00002/P00"}) {
      ASSERT_EQ(StateOf(id), TaskState::kReady) << id;
    }
    Capabilities no_align;
    no_align.task_types = kAllTaskTypes & ~TaskTypeBit(TaskType::kAlign);
    for (int k = 0; k < 4; ++k) ASSERT_TRUE(Finish(MustLease("w", no_align)).ok());
  }
  static FinalRecord Held(const LeaseGrant& g, std::int64_t step) {
    FinalRecord f;
    f.checkpoint.step = step;
    f.checkpoint.tokens_consumed = g.task.tokens;  // no files: the state is in memory
    return f;
  }
  std::int64_t AlignCredited() const { return State().ledger().Of(TaskType::kAlign).credited; }
  SegmentState Segment(int s) const { return State().FindSegment(s, 0)->state; }
};

TEST_F(LayerAffinity, AHeldChainContinuesOnTheSameWorkerAndBecomesDurableWithItsNextCommit) {
  StartChain();
  LeaseGrant a0 = MustLease("w");
  ASSERT_EQ(a0.task.id, "align/L000/S00000");
  Result<LeaseReply> r = sched_->CompleteAndContinue(a0.lease, Held(a0, 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->outcome, LeaseOutcome::kGranted);
  const LeaseGrant a1 = *r->grant;
  EXPECT_EQ(a1.task.id, "align/L000/S00001");
  EXPECT_FALSE(a1.resume_from.has_value());
  {
    const RunState s = State();
    EXPECT_EQ(Task(s, "align/L000/S00000").state, TaskState::kDone);
    EXPECT_EQ(Task(s, "align/L000/S00000").held_lease, a0.lease);
    EXPECT_EQ(Task(s, "align/L000/S00001").state, TaskState::kLeased);
    EXPECT_EQ(s.FindWorker("w")->lease, a1.lease);
  }
  EXPECT_EQ(AlignCredited(), 0) << "a held segment is not credited";
  EXPECT_EQ(Segment(0), SegmentState::kResident) << "a held reader may read it again";
  // A repeated call (its reply was lost) gets the same continuation.
  Result<LeaseReply> again = sched_->CompleteAndContinue(a0.lease, Held(a0, 1));
  ASSERT_TRUE(again.ok() && again->grant);
  EXPECT_EQ(again->grant->lease, a1.lease);

  // A checkpoint of the chain's live task makes the held segment durable.
  ASSERT_TRUE(sched_->CommitCheckpoint(a1.lease, Ckpt(a1.task.id, 2, a1.task.tokens / 2)).ok());
  EXPECT_EQ(Task(State(), "align/L000/S00000").held_lease, 0u);
  EXPECT_EQ(AlignCredited(), a0.task.tokens + a1.task.tokens / 2);
  EXPECT_EQ(Segment(0), SegmentState::kEvictable);

  // On to the last segment, which never holds: it is the state step 2 loads.
  r = sched_->CompleteAndContinue(a1.lease, Held(a1, 3));
  ASSERT_TRUE(r.ok() && r->grant);
  const LeaseGrant a2 = *r->grant;
  Result<LeaseReply> last = sched_->CompleteAndContinue(a2.lease, Held(a2, 4));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->outcome, LeaseOutcome::kNoWork);
  EXPECT_EQ(Segment(1), SegmentState::kResident);
  ASSERT_TRUE(Finish(a2).ok());
  const RunState s = State();
  EXPECT_EQ(s.ledger().Of(TaskType::kAlign).credited, s.ledger().Of(TaskType::kAlign).budget);
  for (const char* id : {"align/L000/S00000", "align/L000/S00001", "align/L000/S00002"}) {
    EXPECT_EQ(Task(s, id).state, TaskState::kDone) << id;
    EXPECT_EQ(Task(s, id).held_lease, 0u) << id;
  }
  EXPECT_EQ(Segment(1), SegmentState::kEvictable);
  EXPECT_EQ(Segment(2), SegmentState::kEvictable);
  EXPECT_EQ(s.phase(), RunPhase::kCompleted);
  auto replayed = StateStore::ReadSnapshot(dir_.File("state"), /*verify_replay=*/true);
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
}

// Checkpoint fallback behind a held segment: align(0, 0) was completed in memory and made
// durable by align(0, 1)'s first commit, so its end state lived only there. When that commit is
// discarded, align(0, 0) is redone from its own last commit and align(0, 1) from its start; the
// ledger gives both intervals back as redone, and the chain then completes exactly.
TEST_F(LayerAffinity, AFallbackBehindAHeldSegmentRedoesThatSegmentFromItsOwnCommit) {
  StartChain();
  LeaseGrant a0 = MustLease("w");
  const std::int64_t half = a0.task.tokens / 2;
  ASSERT_TRUE(sched_->CommitCheckpoint(a0.lease, Ckpt(a0.task.id, 1, half)).ok());
  Result<LeaseReply> r = sched_->CompleteAndContinue(a0.lease, Held(a0, 2));
  ASSERT_TRUE(r.ok() && r->grant);
  const LeaseGrant a1 = *r->grant;
  ASSERT_TRUE(sched_->CommitCheckpoint(a1.lease, Ckpt(a1.task.id, 3, a1.task.tokens / 2)).ok());
  ASSERT_EQ(AlignCredited(), a0.task.tokens + a1.task.tokens / 2);
  ASSERT_EQ(Segment(0), SegmentState::kEvictable);
  ASSERT_TRUE(sched_->Release(a1.lease, "drain").ok());
  const LeaseGrant again = MustLease("w");
  ASSERT_EQ(again.task.id, a1.task.id);
  ASSERT_TRUE(again.resume_from);
  ASSERT_TRUE(sched_->DiscardCheckpoint(again.lease, 3, "checksum mismatch").ok());
  {
    const RunState s = State();
    EXPECT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants().ToString();
    EXPECT_EQ(Task(s, a0.task.id).state, TaskState::kReady);
    EXPECT_EQ(Task(s, a0.task.id).committed_tokens, half);
    EXPECT_EQ(Task(s, a0.task.id).checkpoint_step, 1);
    EXPECT_EQ(Task(s, a1.task.id).state, TaskState::kBlocked);
    EXPECT_EQ(Task(s, a1.task.id).committed_tokens, 0);
    EXPECT_EQ(AlignCredited(), half);
    EXPECT_EQ(s.ledger().Of(TaskType::kAlign).redone, (a0.task.tokens - half) + a1.task.tokens / 2);
    EXPECT_EQ(Segment(0), SegmentState::kResident) << "a reader of segment 0 runs again";
  }
  // align(0, 0) resumes from its step-1 commit; then the chain goes on as usual.
  const LeaseGrant r0 = MustLease("w");
  ASSERT_EQ(r0.task.id, a0.task.id);
  ASSERT_TRUE(r0.resume_from);
  EXPECT_EQ(r0.resume_from->record.step, 1);
  for (int guard = 0; guard < 10 && State().phase() != RunPhase::kCompleted; ++guard) {
    const LeaseGrant g = guard == 0 ? r0 : MustLease("w");
    if (g.lease == 0) break;
    ASSERT_TRUE(Finish(g).ok());
  }
  const RunState end = State();
  EXPECT_EQ(end.ledger().Of(TaskType::kAlign).credited, end.ledger().Of(TaskType::kAlign).budget);
  EXPECT_TRUE(end.CheckInvariants().ok()) << end.CheckInvariants().ToString();
  auto replayed = StateStore::ReadSnapshot(dir_.File("state"), /*verify_replay=*/true);
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
}

// ... unless the cache window may have evicted the segment the redone task reads: refused as
// Corruption ("cannot fall back"), and nothing changes.
TEST_F(LayerAffinity, AFallbackThatNeedsAnEvictableCacheSegmentIsRefused) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 3;
  shape.distill = false;
  Start(MakePlan(shape), /*retry_limit=*/3, /*window=*/2);
  Register("w");
  Capabilities no_align;
  no_align.task_types = kAllTaskTypes & ~TaskTypeBit(TaskType::kAlign);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(Finish(MustLease("w", no_align)).ok());  // transfer, cache S0, S1
  LeaseGrant a0 = MustLease("w");
  ASSERT_EQ(a0.task.id, "align/L000/S00000");
  Result<LeaseReply> r = sched_->CompleteAndContinue(a0.lease, Held(a0, 1));
  ASSERT_TRUE(r.ok() && r->grant) << (r.ok() ? LeaseOutcomeName(r->outcome) : r.status().ToString());
  const LeaseGrant a1 = *r->grant;
  ASSERT_TRUE(sched_->CommitCheckpoint(a1.lease, Ckpt(a1.task.id, 2, a1.task.tokens / 2)).ok());
  ASSERT_EQ(Segment(0), SegmentState::kEvictable);
  ASSERT_TRUE(sched_->Release(a1.lease, "drain").ok());
  const LeaseGrant again = MustLease("w");
  ASSERT_EQ(again.task.id, a1.task.id);
  const RunState before = State();
  const Status st = sched_->DiscardCheckpoint(again.lease, 2, "checksum mismatch");
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("which the cache window has evicted"), std::string::npos) << st.message();
  EXPECT_EQ(State(), before);
}

class LayerAffinityEnd : public LayerAffinity, public ::testing::WithParamInterface<const char*> {};

TEST_P(LayerAffinityEnd, WhenTheChainsLeaseEndsItsHeldSegmentsRunAgain) {
  const std::string how = GetParam();
  {
    StartChain();
    LeaseGrant a0 = MustLease("w");
    // A checkpoint inside the first segment, then held.
    ASSERT_TRUE(sched_->CommitCheckpoint(a0.lease, Ckpt(a0.task.id, 1, a0.task.tokens / 2)).ok());
    Result<LeaseReply> r = sched_->CompleteAndContinue(a0.lease, Held(a0, 2));
    ASSERT_TRUE(r.ok() && r->grant);
    const LeaseGrant a1 = *r->grant;
    r = sched_->CompleteAndContinue(a1.lease, Held(a1, 3));
    ASSERT_TRUE(r.ok() && r->grant);
    const LeaseGrant a2 = *r->grant;
    const std::int64_t credited = AlignCredited();
    EXPECT_EQ(credited, a0.task.tokens / 2);
    if (how == "expiry") {
      clock_.Advance(kTtl + 1);
      ASSERT_TRUE(sched_->ExpireLeases().ok());
    } else if (how == "failure") {
      ASSERT_TRUE(sched_->Fail(a2.lease, "out of memory", true).ok());
    } else {
      Reopen();
      ASSERT_TRUE(sched_->Resume("restarted").ok());
    }
    const RunState s = State();
    EXPECT_EQ(Task(s, "align/L000/S00000").state, TaskState::kReady);
    EXPECT_EQ(Task(s, "align/L000/S00001").state, TaskState::kBlocked);
    EXPECT_EQ(Task(s, "align/L000/S00002").state, TaskState::kBlocked);
    for (const char* id : {"align/L000/S00000", "align/L000/S00001"}) EXPECT_EQ(Task(s, id).held_lease, 0u) << id;
    EXPECT_EQ(AlignCredited(), credited) << "nothing is debited";
    EXPECT_EQ(Segment(0), SegmentState::kResident);
    // The first segment starts again from its own last checkpoint.
    Register("w2");
    LeaseGrant again = MustLease("w2");
    ASSERT_EQ(again.task.id, "align/L000/S00000");
    ASSERT_TRUE(again.resume_from.has_value());
    EXPECT_EQ(again.resume_from->record.step, 1);
    ASSERT_TRUE(Finish(again).ok());
    EXPECT_EQ(StateOf("align/L000/S00001"), TaskState::kReady);
    auto replayed = StateStore::ReadSnapshot(dir_.File("state"), /*verify_replay=*/true);
    ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(Causes, LayerAffinityEnd, ::testing::Values("expiry", "failure", "restart"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

TEST_F(LayerAffinity, AChainContinuesOnlyWhereTheNextSegmentCanStartAtOnce) {
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 2;
  shape.distill = false;
  Start(MakePlan(shape));
  Register("w");
  ASSERT_TRUE(Finish(MustLease("w")).ok());  // transfer
  LeaseGrant c0 = MustLease("w");
  ASSERT_EQ(c0.task.id, "cache/S00000/P00");
  // A cache task does not hold.
  Result<LeaseReply> r = sched_->CompleteAndContinue(c0.lease, Held(c0, 1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, LeaseOutcome::kNoWork);
  ASSERT_TRUE(Finish(c0).ok());
  LeaseGrant a0 = MustLease("w");
  ASSERT_EQ(a0.task.id, "align/L000/S00000");
  // The next segment's cache is not done yet.
  r = sched_->CompleteAndContinue(a0.lease, Held(a0, 1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, LeaseOutcome::kNoWork);
  EXPECT_EQ(StateOf("align/L000/S00000"), TaskState::kLeased);
  // Files on a held completion are refused.
  FinalRecord with_files = Held(a0, 1);
  with_files.checkpoint.files = Ckpt(a0.task.id, 1, 1).files;
  EXPECT_EQ(sched_->CompleteAndContinue(a0.lease, with_files).status().code(), Status::Code::kInvalidArgument);
  // A drain: no continuation either.
  ASSERT_TRUE(sched_->Drain("test").ok());
  r = sched_->CompleteAndContinue(a0.lease, Held(a0, 1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcome, LeaseOutcome::kNoWork);
  EXPECT_EQ(AlignCredited(), 0);
}

}  // namespace
}  // namespace radlads
