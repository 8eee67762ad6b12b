// A gang: the tp x pp x dp ranks that run one distill or finetune task together (docs/design.md
// §5). The gang's ranks are ordered with tp fastest, then pp, then dp:
//   gang rank = (dp_rank * pp + pp_rank) * tp + tp_rank
// so a tensor-parallel group is a run of neighbouring ranks (one node on a cluster). Rank 0 is
// the leader: the only one that holds the lease and speaks to the coordinator.
//
// How a gang task runs: the leader leases it (with its gang identity, group_size = the gang's
// size), sends the grant to every member (worker/executor.h RunGang hook), and every rank runs
// the same task code (SPMD). At each optimizer step boundary every rank calls the reporter: the
// stop decision is collective (GangReporter), so all ranks checkpoint and stop together; a
// checkpoint commit lists every rank's shard files and is sent by the leader once every shard
// is durable. A rank whose task fails aborts the whole worker job (Communicator::Abort), so no
// rank is left waiting in a collective; the coordinator's lease expiry and the launcher's
// restart take it from there.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "contract/records.h"
#include "kernels/collectives.h"
#include "worker/task_env.h"

namespace radlads {

struct GangLayout {
  int tp = 1, pp = 1, dp = 1;
  int size() const { return tp * pp * dp; }
};

struct GangContext {
  GangLayout layout;
  Communicator* all = nullptr;       // every rank of the gang (not owned)
  std::unique_ptr<Communicator> tp;  // same (pp, dp)
  std::unique_ptr<Communicator> pp;  // same (tp, dp)
  std::unique_ptr<Communicator> dp;  // same (tp, pp)
  std::unique_ptr<Communicator> mp;  // same dp: the tp x pp ranks of one replica (model parallel)
  int tp_rank = 0, pp_rank = 0, dp_rank = 0;

  bool leader() const { return all->rank() == 0; }
  // Builds the sub-groups of `gang` (every rank of it calls this). InvalidArgument when the
  // gang's size is not tp * pp * dp.
  static Result<std::unique_ptr<GangContext>> Create(Communicator* gang, const GangLayout& layout);
};

// The reporter every rank of a gang hands its task. `inner` is the leader's port reporter
// (null on members). Heartbeat: the leader reports progress; the decision to stop is the
// maximum over the ranks of (the leader's answer, any rank's `local_stop()`). Commit: gathers
// every rank's files; the leader commits them all; every rank gets the outcome
// (FailedPrecondition on every rank when the lease is no longer the gang's).
class GangReporter final : public TaskReporter {
 public:
  GangReporter(Communicator& gang, TaskReporter* inner, std::function<bool()> local_stop);
  bool Heartbeat(const Progress& progress) override;
  Status Commit(const CheckpointRecord& checkpoint) override;

 private:
  Communicator& gang_;
  TaskReporter* inner_;
  std::function<bool()> local_stop_;
};

// After a gang task, on every rank: the leader's final record gets every rank's files (in rank
// order); members get theirs back unchanged. The outcome must be the same on every rank.
FinalRecord GatherFinalRecord(Communicator& gang, const FinalRecord& mine);

}  // namespace radlads
