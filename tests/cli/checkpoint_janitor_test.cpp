// cli/checkpoint_janitor.h: which checkpoint files the coordinator deletes (bounded disk), on a
// real state store driven through the scheduler, with the files on disk.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "base/file.h"
#include "cli/checkpoint_janitor.h"
#include "tests/state/scheduler_fixture.h"

namespace radlads {
namespace {

class JanitorTest : public SchedulerTest {
 protected:
  // Commits `steps` checkpoints of the leased task (files under checkpoints/, created on disk),
  // then completes it with a final file of its own, or naming the last checkpoint's file.
  void Run(const std::string& worker, int steps, bool final_reuses_last = false) {
    const LeaseGrant g = MustLease(worker);
    std::string last;
    for (int k = 1; k <= steps; ++k) {
      last = Put(g.task.id + "-" + std::to_string(k));
      CheckpointRecord c;
      c.step = k;
      c.tokens_consumed = g.task.tokens * k / (steps + 1);
      c.files.push_back(FileRecord{last, 10, "x"});
      ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, c).ok());
    }
    FinalRecord f;
    f.checkpoint.step = steps + 1;
    f.checkpoint.tokens_consumed = g.task.tokens;
    const std::string final_file = final_reuses_last && !last.empty() ? last : Put(g.task.id + "-final");
    f.checkpoint.files.push_back(FileRecord{final_file, 10, "x"});
    ASSERT_TRUE(sched_->Complete(g.lease, f).ok());
  }
  std::string Put(const std::string& name) {
    std::string rel = "checkpoints/" + name + ".safetensors";
    for (char& ch : rel) {
      if (ch == '/' && rel.find('/') != static_cast<std::size_t>(&ch - rel.data())) ch = '_';
    }
    EXPECT_TRUE(AtomicWriteFile(dir_.File("run/" + rel), "0123456789").ok());
    return rel;
  }
  std::set<std::string> OnDisk() {
    std::set<std::string> s;
    for (const auto& e : std::filesystem::directory_iterator(dir_.File("run/checkpoints"))) {
      s.insert("checkpoints/" + e.path().filename().string());
    }
    return s;
  }
};

TEST_F(JanitorTest, KeepsTheLastCommitsOfEachChainAndEveryStepsResult) {
  ASSERT_TRUE(CreateDirectories(dir_.File("run/checkpoints")).ok());
  ASSERT_TRUE(CreateDirectories(dir_.File("run/cache")).ok());
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 3;
  Start(MakePlan(shape));
  Register("w");
  Run("w", 0);  // transfer/L000: its final only (step 0's result)
  for (int s = 0; s < 3; ++s) {
    auto cache = MustLease("w");  // cache(s, 0): a final outside checkpoints/ (never touched)
    FinalRecord cf;
    cf.checkpoint.files.push_back(FileRecord{"cache/S0000" + std::to_string(s) + "_P00.h5", 10, "x"});
    ASSERT_TRUE(sched_->Complete(cache.lease, cf).ok());
    ASSERT_TRUE(AtomicWriteFile(dir_.File("run/cache/S0000" + std::to_string(s) + "_P00.h5"), "c").ok());
    Run("w", 2);  // align(0, s): two checkpoints and a final
  }
  // align chain of layer 0: S0-1 S0-2 S0-final S1-1 S1-2 S1-final S2-1 S2-2 S2-final.
  Result<PruneResult> r = PruneCheckpoints(State(), dir_.File("run"), 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->files, 7);  // all but the last two
  EXPECT_EQ(r->bytes, 70);
  const std::string a = "checkpoints/align_L000_S0000";
  EXPECT_EQ(OnDisk(), (std::set<std::string>{"checkpoints/transfer_L000-final.safetensors",
                                             a + "2-2.safetensors", a + "2-final.safetensors"}));
  EXPECT_TRUE(PathExists(dir_.File("run/cache/S00000_P00.h5")));  // not a checkpoint
  EXPECT_EQ(PruneCheckpoints(State(), dir_.File("run"), 2)->files, 0);  // idempotent
  // Step 2: five checkpoints, the final naming the last one's file; keep_last 1.
  Run("w", 5, /*final_reuses_last=*/true);
  r = PruneCheckpoints(State(), dir_.File("run"), 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->files, 4 + 1);  // distill-1..4, and align's second-to-last (keep 1 now)
  EXPECT_TRUE(PathExists(dir_.File("run/checkpoints/distill-5.safetensors")));  // named by the final
  EXPECT_TRUE(PathExists(dir_.File("run/" + a + "2-final.safetensors")));       // step 1's result
  EXPECT_EQ(PruneCheckpoints(State(), dir_.File("run"), 0).status().code(), Status::Code::kInvalidArgument);
}

// A discarded commit is neither counted nor deleted by the pruning (its task may be rewriting the
// file); the listing names each commit's role and the files no valid commit names; the sweep
// removes those (and temporary files) only once the run has completed.
TEST_F(JanitorTest, DiscardedCommitsAreLeftToTheSweepWhichWaitsForTheRunsEnd) {
  ASSERT_TRUE(CreateDirectories(dir_.File("run/checkpoints")).ok());
  PlanShape shape;
  shape.layers = 1;
  shape.segments = 1;
  shape.segment_tokens = 900;
  shape.distill = false;
  Start(MakePlan(shape));
  RunUntilDone("cache/S00000/P00");
  RunUntilDone("transfer/L000");
  Register("w");
  const LeaseGrant g = MustLease("w");
  ASSERT_EQ(g.task.type, TaskType::kAlign);
  for (int k = 1; k <= 3; ++k) {
    CheckpointRecord c;
    c.step = k;
    c.tokens_consumed = 200 * k;
    c.files.push_back(FileRecord{Put("a-" + std::to_string(k)), 10, "x"});
    ASSERT_TRUE(sched_->CommitCheckpoint(g.lease, c).ok());
  }
  ASSERT_TRUE(sched_->Release(g.lease, "drain").ok());
  const LeaseGrant r = MustLease("w");
  ASSERT_TRUE(sched_->DiscardCheckpoint(r.lease, 3, "checksum mismatch").ok());
  // Written, never committed (a process killed before its commit), and a write cut short.
  const std::string orphan = Put("a-never-committed");
  ASSERT_TRUE(AtomicWriteFile(dir_.File("run/checkpoints/a-2.safetensors.tmp.77.1"), "torn").ok());

  // keep_last 1: a-2 is the newest valid commit (kept), a-1 goes, a-3 (discarded) stays.
  ASSERT_EQ(PruneCheckpoints(State(), dir_.File("run"), 1)->files, 1);
  EXPECT_FALSE(PathExists(dir_.File("run/checkpoints/a-1.safetensors")));
  EXPECT_TRUE(PathExists(dir_.File("run/checkpoints/a-3.safetensors")));
  Result<CheckpointListing> l = ListCheckpoints(State(), dir_.File("run"));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  std::map<std::string, std::string> role;
  for (const auto& c : l->commits) {
    if (c.task == g.task.id) role[c.files.at(0)] = c.role + (c.present.at(0) ? "" : "(deleted)");
  }
  EXPECT_EQ(role["checkpoints/a-1.safetensors"], "older(deleted)");
  EXPECT_EQ(role["checkpoints/a-2.safetensors"], "resume");
  EXPECT_EQ(role["checkpoints/a-3.safetensors"], "discarded");
  EXPECT_EQ(l->unreferenced, (std::vector<std::string>{"checkpoints/a-2.safetensors.tmp.77.1",
                                                        "checkpoints/a-3.safetensors", orphan}));
  // Not before the run has completed.
  EXPECT_EQ(SweepUnreferenced(State(), dir_.File("run")).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(PathExists(dir_.File("run/" + orphan)));
  RunUntilDone(g.task.id);  // the plan's last task (no steps 2-3 here)
  ASSERT_EQ(State().phase(), RunPhase::kCompleted);
  Result<PruneResult> swept = SweepUnreferenced(State(), dir_.File("run"));
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(swept->files, 3);
  EXPECT_TRUE(ListCheckpoints(State(), dir_.File("run"))->unreferenced.empty());
  EXPECT_FALSE(PathExists(dir_.File("run/" + orphan)));
}

}  // namespace
}  // namespace radlads
