// One rank of a radlads-worker job: its identities and the executor hooks that make the ranks
// of a job work together (docs/design.md §5).
//
// - Every rank is a worker of its own for the per-layer tasks (transfer, cache, align) and for
//   export and eval: identity "<host>/r<rank>", group size 1.
// - Ranks [0, gang size) form the gang of the distill and finetune tasks (tp x pp x dp from the
//   plan, worker/gang.h). Rank 0 leads it: it also registers "<host>/gang", group size = the
//   gang's size, and asks for gang tasks whenever it finds no single task. When it gets one it
//   sends the grant to the other gang ranks, which pick it up the next time they find nothing to
//   do (OnIdle), and all run it together.
// - A stop signal (SIGTERM, SIGUSR1) on any rank asks the coordinator to drain; the running task
//   checkpoints at its next step boundary (collectively, in a gang).
// - A gang rank whose task fails aborts the job (no rank waits forever in a collective).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "kernels/collectives.h"
#include "worker/executor.h"
#include "worker/gang.h"

namespace radlads {

// Message tag of a gang task's grant, leader -> members (MPI_COMM_WORLD).
inline constexpr int kGangStartTag = 7001;

struct WorkerJobRank {
  int rank = 0;
  int world_size = 1;
  std::string host;
  std::int64_t memory_bytes = 0;  // this rank's share of the node's memory (the plan's worker)
  GangLayout gang;                // the plan's distill/finetune layout (size 1: no gang)
};

// The identities rank `r` registers (see above).
std::vector<WorkerIdentity> WorkerJobIdentities(const WorkerJobRank& r);

class WorkerJobHooks final : public ExecutorHooks {
 public:
  // `world`: every rank of the job; `gang`: this rank's gang (null when it is not in one).
  // `stop`: set by the signal handler.
  WorkerJobHooks(Communicator& world, GangContext* gang, const std::atomic<int>& stop);

  bool DrainRequested() override { return stop_.load() != 0; }
  void OnStart(const TaskSpec& task) override;
  void OnComplete(const TaskSpec& task, const FinalRecord& final_record) override;
  Result<bool> OnIdle() override;
  Result<TaskResult> RunGang(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) override;
  Status FinishGang(const LeaseGrant& grant, FinalRecord* final_record) override;

  // The environment of the task being run (set before the loop starts).
  void set_env(TaskEnv* env) { env_ = env; }
  // Where a failed gang task is reported (Fail on the gang's lease: the error's class and
  // message) before the job is ended, so the run's failure names the cause, not the restart.
  void set_port(CoordinatorPort* port) { port_ = port; }
  // Where a gang member's tasks are charged (the leader's go through the loop's own profile).
  void set_profile(ProcessProfile* profile) { profile_ = profile; }

 private:
  Communicator& world_;
  GangContext* gang_;
  const std::atomic<int>& stop_;
  TaskEnv* env_ = nullptr;
  CoordinatorPort* port_ = nullptr;
  ProcessProfile* profile_ = nullptr;

  // Reports `error` on the gang's lease (when a port is set), then ends the worker job.
  [[noreturn]] void FailGang(const LeaseGrant& grant, const Status& error, const std::string& who);
};

}  // namespace radlads
