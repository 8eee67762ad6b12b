// cli/slurm_job.h: Slurm durations, the command runner, and the start decision of a
// coordinator inside a Slurm job (cancelled requeue, no progress over K restarts).
#include <gtest/gtest.h>

#include "cli/slurm_job.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

TEST(SlurmDuration, ParsesEveryFormAndRefusesTheRest) {
  EXPECT_EQ(ParseSlurmDuration("10"), 600);
  EXPECT_EQ(ParseSlurmDuration("10:30"), 630);
  EXPECT_EQ(ParseSlurmDuration("1:02:03"), 3723);
  EXPECT_EQ(ParseSlurmDuration("2-00"), 172800);
  EXPECT_EQ(ParseSlurmDuration("1-02:03"), 93780);
  EXPECT_EQ(ParseSlurmDuration("1-02:03:04"), 93784);
  for (const char* bad : {"", "UNLIMITED", "INVALID", "1:60", "1:2:3:4", "-1", "a", "1-24", "1--2", "1:", ":1",
                          "1234567890"}) {
    EXPECT_FALSE(ParseSlurmDuration(bad).has_value()) << bad;
  }
  EXPECT_EQ(FormatSlurmDuration(3723), "01:02:03");
  EXPECT_EQ(FormatSlurmDuration(93784), "1-02:03:04");
  EXPECT_EQ(ParseSlurmDuration(FormatSlurmDuration(93784)), 93784);
}

TEST(RunAndCapture, ReturnsStdoutAndNamesFailuresAndTimeouts) {
  EXPECT_EQ(*RunAndCapture({"sh", "-c", "echo out; echo err >&2"}, 5000), "out\n");
  Result<std::string> f = RunAndCapture({"sh", "-c", "echo why >&2; exit 3"}, 5000);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("exit 3: why"), std::string::npos) << f.status().ToString();
  Result<std::string> t = RunAndCapture({"sleep", "5"}, 100);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("no answer within 100 ms"), std::string::npos);
  EXPECT_FALSE(RunAndCapture({"/nonexistent/squeue"}, 1000).ok());
}

class JobStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StateStoreOptions o;
    o.sync = false;
    store_ = std::move(StateStore::Open(dir_.File("state"), o)).value();
    sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
    RunConfig c;
    c.run_id = "t";
    ASSERT_TRUE(sched_->CreateRun(c, testing::MakePlan(testing::PlanShape{})).ok());
    ASSERT_TRUE(sched_->Resume("first").ok());
    ASSERT_TRUE(sched_->RegisterWorker(testing::Worker("w")).ok());
  }
  // One start of job `id` at restart `r`, recorded as the coordinator would.
  JobStartDecision Start(const std::string& id, int r, int limit = 2) {
    JobStart j{"slurm", id, r, "n[1-2]", 0, store_->Snapshot().CommitCount(), ""};
    const JobStartDecision d = DecideJobStart(store_->Snapshot(), j, limit);
    if (d.outcome != JobStartOutcome::kResume) j.refused = d.why;
    EXPECT_TRUE(sched_->RecordJobStart(j).ok());
    return d;
  }
  void Commit() {
    auto l = sched_->Lease("w");
    ASSERT_TRUE(l.ok() && l->grant);
    ++step_;
    ASSERT_TRUE(sched_->CommitCheckpoint(l->grant->lease, testing::Ckpt(l->grant->task.id, step_, 0)).ok());
    ASSERT_TRUE(sched_->Release(l->grant->lease, "test").ok());
  }
  testing::ScratchDir dir_;
  FakeClock clock_;
  int step_ = 0;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(JobStartTest, AJobThatRestartsWithoutCommittingIsStoppedAfterTheLimit) {
  EXPECT_EQ(Start("7", 0).outcome, JobStartOutcome::kResume);
  Commit();
  EXPECT_EQ(Start("7", 1).outcome, JobStartOutcome::kResume);  // progress since the last start
  EXPECT_EQ(Start("7", 2).outcome, JobStartOutcome::kResume);  // one idle start so far
  const JobStartDecision d = Start("7", 3);                    // two idle starts: the limit
  EXPECT_EQ(d.outcome, JobStartOutcome::kNoProgress);
  EXPECT_NE(d.why.find("job 7 made no progress in its last 2 starts"), std::string::npos) << d.why;
  EXPECT_EQ(store_->Snapshot().status().jobs.back().refused, d.why);
  // A commit, or a new job, starts the count again.
  Commit();
  EXPECT_EQ(Start("7", 4).outcome, JobStartOutcome::kResume);
  EXPECT_EQ(Start("8", 0).outcome, JobStartOutcome::kResume);
  EXPECT_EQ(Start("8", 1).outcome, JobStartOutcome::kResume);  // job 7's idle starts do not count
}

TEST_F(JobStartTest, ARequeueOfTheCancelledJobIsRefusedAndAnotherJobResumes) {
  EXPECT_EQ(Start("7", 0).outcome, JobStartOutcome::kResume);
  ASSERT_TRUE(sched_->Cancel("by the test", "7").ok());
  const JobStartDecision d = Start("7", 1);
  EXPECT_EQ(d.outcome, JobStartOutcome::kCancelled);
  EXPECT_NE(d.why.find("cancelled while job 7 ran"), std::string::npos) << d.why;
  EXPECT_EQ(Start("9", 0).outcome, JobStartOutcome::kResume);
  ASSERT_TRUE(sched_->Resume("job 9").ok());
  EXPECT_TRUE(store_->Snapshot().status().cancelled.empty());
}

}  // namespace
}  // namespace radlads
