// Checkpoint fallback in the scheduler (Scheduler::DiscardCheckpoint, CheckpointDiscarded): a
// resume point found unreadable is discarded, the task goes back to the commit before it (or its
// start), the ledger gives the interval back and counts it as redone, and the state survives a
// reopen. Stale reports and a fallback with nothing to fall back to change nothing.
#include <gtest/gtest.h>

#include "tests/state/scheduler_fixture.h"

namespace radlads {
namespace {

class CheckpointFallback : public SchedulerTest {
 protected:
  void StartAlign() { StartOneAlignTask(1000); }
  static const std::string kAlign;
};
const std::string CheckpointFallback::kAlign = "align/L000/S00000";

TEST_F(CheckpointFallback, TheTaskResumesFromTheCommitBeforeAndTheLedgerStaysExact) {
  StartAlign();
  LeaseGrant g = MustLease("w");
  ASSERT_EQ(g.task.id, kAlign);
  ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(kAlign, 3, 300)).ok());
  ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, Ckpt(kAlign, 6, 600)).ok());
  ASSERT_TRUE(sched_->Release(g.lease, "drain").ok());

  // The next attempt finds step 6 unreadable.
  LeaseGrant r = MustLease("w");
  ASSERT_TRUE(r.resume_from);
  ASSERT_EQ(r.resume_from->record.step, 6);
  const std::uint64_t before = State().last_seq();
  // A report naming another step is stale: nothing happens.
  EXPECT_EQ(sched_->DiscardCheckpoint(r.lease, 3, "x").code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(State().last_seq(), before);
  ASSERT_TRUE(sched_->DiscardCheckpoint(r.lease, 6, "checksum 0x1 does not match 0x2").ok());
  {
    const RunState s = State();
    const TaskRecord& t = Task(s, kAlign);
    EXPECT_EQ(t.state, TaskState::kReady);
    EXPECT_EQ(t.failures, 0) << "a fallback is not a failed attempt";
    EXPECT_EQ(t.committed_tokens, 300);
    EXPECT_EQ(t.checkpoint_step, 3);
    ASSERT_EQ(t.discarded.size(), 1u);
    EXPECT_EQ(t.discarded[0].step, 6);
    EXPECT_EQ(t.discarded[0].tokens_redone, 300);
    EXPECT_NE(t.last_error.find("checksum 0x1"), std::string::npos) << t.last_error;
    EXPECT_EQ(s.ledger().Of(TaskType::kAlign).credited, 300);
    EXPECT_EQ(s.ledger().Of(TaskType::kAlign).redone, 300);
    EXPECT_EQ(s.ledger().AlignMinTokens(), 300);
    EXPECT_EQ(s.metrics().checkpoints_discarded, 1);
    EXPECT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants().ToString();
  }
  // The lease ended with the discard: a repeated report is stale.
  EXPECT_EQ(sched_->DiscardCheckpoint(r.lease, 6, "again").code(), Status::Code::kFailedPrecondition);

  // Step 3 is unreadable too: back to the task's start.
  LeaseGrant r2 = MustLease("w");
  ASSERT_TRUE(r2.resume_from);
  EXPECT_EQ(r2.resume_from->record.step, 3);
  ASSERT_TRUE(sched_->DiscardCheckpoint(r2.lease, 3, "missing").ok());
  LeaseGrant r3 = MustLease("w");
  EXPECT_FALSE(r3.resume_from.has_value());
  EXPECT_EQ(State().ledger().Of(TaskType::kAlign).credited, 0);
  EXPECT_EQ(State().ledger().Of(TaskType::kAlign).redone, 600);

  // The interval is trained and committed again (the same steps), then the task completes:
  // every token of the final history credited once.
  ASSERT_TRUE(sched_->CommitCheckpoint(r3.lease, Ckpt(kAlign, 3, 300)).ok());
  ASSERT_TRUE(sched_->CommitCheckpoint(r3.lease, Ckpt(kAlign, 6, 600)).ok());
  FinalRecord f;
  f.checkpoint = Ckpt(kAlign, 10, 1000);
  auto done = sched_->Complete(r3.lease, f);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->tokens_credited, 400);
  const RunState end = State();
  EXPECT_EQ(end.ledger().Of(TaskType::kAlign).credited, 1000);
  EXPECT_EQ(end.ledger().AlignMinTokens(), end.ledger().AlignBudget());
  EXPECT_EQ(end.ledger().Of(TaskType::kAlign).redone, 600);
  EXPECT_EQ(end.Checkpoints(end.TaskIndex(kAlign)).size(), 5u) << "discarded commits stay in the index";
  EXPECT_TRUE(end.IsDiscarded(end.TaskIndex(kAlign), 0));
  EXPECT_TRUE(end.IsDiscarded(end.TaskIndex(kAlign), 1));
  EXPECT_FALSE(end.IsDiscarded(end.TaskIndex(kAlign), 2));
  EXPECT_TRUE(end.CheckInvariants().ok()) << end.CheckInvariants().ToString();

  // Durable: the tables and the replayed log say the same.
  Reopen();
  EXPECT_EQ(State(), end);
  EXPECT_EQ(State().ledger().Of(TaskType::kAlign).redone, 600);
}

TEST_F(CheckpointFallback, ANonLeasedTaskOrOneWithoutCommitsCannotDiscard) {
  StartAlign();
  LeaseGrant g = MustLease("w");
  EXPECT_EQ(sched_->DiscardCheckpoint(g.lease, 0, "x").code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(sched_->DiscardCheckpoint(g.lease + 100, 0, "x").code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(State().CheckInvariants().ok());
}

}  // namespace
}  // namespace radlads
