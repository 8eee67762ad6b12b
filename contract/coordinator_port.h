// What a worker needs of its coordinator. One interface, two implementations: the Scheduler
// itself, in process (`radlads-coord run` without --workers), and the rpc Client, over the
// authenticated protocol (radlads-worker). The worker's lease -> run -> commit loop
// (worker/executor.h) is written once against this interface.
//
// The semantics are the Scheduler's (state/scheduler.h): every call is safe to repeat; a
// FailedPrecondition on a lease means "that lease is no longer yours: stop working on it"; a
// worker the coordinator has marked lost (lease expired, coordinator restarted) must
// RegisterWorker again before it may lease. The Client adds Unavailable for transport failures
// after its retries.
#pragma once

#include <string_view>

#include "base/status.h"
#include "contract/records.h"

namespace radlads {

class CoordinatorPort {
 public:
  virtual ~CoordinatorPort() = default;
  virtual Status RegisterWorker(const WorkerInfo& info) = 0;
  virtual Result<LeaseReply> Lease(std::string_view worker, const Capabilities& caps) = 0;
  virtual Result<HeartbeatReply> Heartbeat(LeaseId lease, const Progress& progress) = 0;
  virtual Result<CommitReply> CommitCheckpoint(LeaseId lease, const CheckpointRecord& checkpoint) = 0;
  virtual Result<CommitReply> Complete(LeaseId lease, const FinalRecord& final_record) = 0;
  // Layer affinity (step 1): completes the lease's align(l, s) with its state held in this
  // worker's memory (`final_record` without files) and leases align(l, s + 1) to the same
  // worker, in one transition. Granted: the next task; no_work: it cannot continue now (not an
  // align task, its last segment, the next cache segment not resident, a drain): complete
  // durably instead. The held state becomes durable with the chain's next commit.
  virtual Result<LeaseReply> CompleteAndContinue(LeaseId lease, const FinalRecord& final_record) = 0;
  virtual Status Fail(LeaseId lease, std::string_view reason, bool retryable) = 0;
  virtual Status Release(LeaseId lease, std::string_view reason) = 0;
  // The lease's resume point (LeaseGrant::resume_from, at `step`) cannot be read: the task
  // falls back to its previous commit and the lease ends (Scheduler::DiscardCheckpoint).
  virtual Status DiscardCheckpoint(LeaseId lease, std::int64_t step, std::string_view reason) = 0;
  virtual Status Drain(std::string_view reason) = 0;
  // The files of a cache segment the lease reply said to evict are deleted.
  virtual Status EvictSegment(int segment, int stage) = 0;
};

}  // namespace radlads
