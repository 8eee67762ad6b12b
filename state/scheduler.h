// The scheduling core of radlads-coord (docs/design.md §3-§4): the operations the RPC server calls on
// behalf of workers and signal handlers. Each one validates its input against the current state,
// turns it into events (state/events.h) and commits them through the StateStore as one
// durable transition; it returns only once that transition is durable. No networking here.
//
// Leases.
// - Lease(worker, caps) gives a worker the first ready task in plan order that it can run: its
//   type is in caps & the registered capabilities, and the task's gang size (TaskSpec::workers)
//   equals the worker's group_size. Gang tasks (distill, finetune: tp*pp*dp ranks) are leased to
//   a *group leader*: one worker that registered with group_size = N on behalf of the N ranks of
//   its MPI sub-communicator (members lists them, for status). Per-layer tasks go to groups of 1.
// - A cache(s, p) task that would occupy a new slot is leased only while fewer than W segments
//   of stage p hold a slot (RunConfig::cache_window; 0 = unlimited). Plan order should put
//   earlier segments first, so the window always holds the segments the aligns need next.
// - deadline = now + lease_ttl; each Heartbeat renews it. A heartbeat, commit or completion on a
//   lease whose deadline has passed is refused (FailedPrecondition) even before ExpireLeases
//   runs: the worker must stop. A worker that asks for work while it holds a lease gets the same
//   lease back (its previous reply may have been lost).
// - ExpireLeases() ends every lease past its deadline: the task is ready again and resumes from
//   its last committed checkpoint (the grant says which), the worker is marked lost (it must
//   RegisterWorker again), and the failure counts. After retry_limit + 1 failed attempts (expired
//   or Fail()ed) the task fails, and with it the run, with the reason ("task X failed after 4
//   attempts: <last reason>"). Fail(retryable=false) fails the task at once.
//
// Token ledger (see TokenLedger in run_state.h): tokens are credited only by CommitCheckpoint
// and Complete, as the difference between the task's new cumulative cursor and its last
// committed one. A retry resumes from the committed cursor, so tokens consumed after the last
// commit of a failed attempt are never credited, and nothing is credited twice:
// - a duplicate commit (same lease, same record as one already committed) is acknowledged with
//   duplicate = true and 0 tokens, even after the lease has ended;
// - a commit on an expired or ended lease is refused (FailedPrecondition): a stale worker cannot
//   credit tokens after its task was handed to someone else;
// - a cursor that goes backwards or a step that is not after the committed one is refused; a
//   cursor beyond the task's budget is InvalidArgument; Complete requires the cursor to equal
//   the budget exactly.
//
// Drain: Drain() stops new leases (Lease answers kDraining), and every heartbeat reply says stop:
// the worker checkpoints (CommitCheckpoint) and Release()s its lease. The drain completes — a
// DrainCompleted event, phase drained — when no lease is outstanding; that can be at Drain()
// itself, or at the Release/Complete/Fail/expiry that ends the last lease.
//
// Restart: a coordinator that opens an existing state calls Resume() first. Leases of the previous
// incarnation are ended without counting a failure (the whole Slurm job was requeued, so their
// workers are gone), every registered worker is marked lost, and a drained run runs again. A
// failed run runs again too (RunReopened: its failed tasks are ready again, failure counts
// reset, from their last commits): the user fixed the cause and gave the same command.
//
// Idempotency: RegisterWorker with the same info, Drain, Resume's effects, EvictSegment of an
// evicted segment, CreateRun with the identical plan, duplicate commits and completions all
// succeed without new events. Heartbeat/Fail/Release on a lease that is not outstanding are
// FailedPrecondition ("not outstanding"), which the worker reads as "stop working on it".
//
// Errors: InvalidArgument (malformed input: empty ids, negative tokens, a budget overrun),
// NotFound (unknown worker or segment), FailedPrecondition (does not fit the state now: stale
// lease, wrong phase), or the store's IOError (the coordinator must restart).
// Thread-safety: thread-safe; concurrent calls are serialised by the store and group-committed.
// Throughput is about (calls in flight) / (fsync latency): for >= 10,000 transitions/s keep ~128
// calls in flight, most cheaply with the *Async forms (docs/formats/state.md §8).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "contract/coordinator_port.h"
#include "contract/records.h"
#include "contract/task.h"
#include "state/events.h"
#include "state/run_state.h"
#include "state/state_store.h"

namespace radlads {

class Scheduler final : public CoordinatorPort {
 public:
  // `store` and `clock` must outlive the scheduler.
  Scheduler(StateStore* store, const Clock* clock) : store_(store), clock_(clock) {}

  // Creates the run from the planner's tasks (plan order = lease priority) and marks the tasks
  // without dependencies ready. On an existing run: nothing for the identical plan; a RunRelaid
  // event when only the lease TTL and gang sizes differ (a resume on another layout; a resized
  // task must not be leased: Resume first); FailedPrecondition for a different run.
  Status CreateRun(const RunConfig& config, const std::vector<TaskSpec>& tasks);
  // Coordinator (re)start on an existing run; see "Restart" above.
  Status Resume(std::string_view note);
  // Records a start inside a batch job (JobStarted; cli/slurm_job.h decides `refused`), before
  // Resume. Needs a created run.
  Status RecordJobStart(const JobStart& job);
  // The user's cancel: RunCancelled, then a drain (as Drain) when the run is running.
  // FailedPrecondition when the run is over (completed or failed).
  Status Cancel(std::string_view reason, std::string_view job_id);

  // Registers (or re-registers) a worker. Re-registering while holding a lease fails that lease
  // (the worker process restarted mid-task; it counts as a failed attempt).
  Status RegisterWorker(const WorkerInfo& info) override;
  // Also hands out the eviction decision (LeaseReply::evict, see PendingEvictions).
  Result<LeaseReply> Lease(std::string_view worker, const Capabilities& caps) override;
  Result<LeaseReply> Lease(std::string_view worker) { return Lease(worker, Capabilities{}); }
  Result<HeartbeatReply> Heartbeat(LeaseId lease, const Progress& progress) override;
  Result<CommitReply> CommitCheckpoint(LeaseId lease, const CheckpointRecord& checkpoint) override;
  // Completes the task; dependents whose dependencies are now all done become ready, cache
  // segments whose readers are all done become evictable, and the run completes with the last.
  Result<CommitReply> Complete(LeaseId lease, const FinalRecord& final_record) override;
  Status Fail(LeaseId lease, std::string_view reason, bool retryable) override;
  Status Fail(LeaseId lease, std::string_view reason) { return Fail(lease, reason, true); }
  // Ends a lease without counting a failure (drain); the task resumes from its last commit.
  Status Release(LeaseId lease, std::string_view reason) override;
  // Checkpoint fallback: the lease's worker found the task's resume point (its newest valid
  // commit, at `step`) unreadable. CheckpointDiscarded (the ledger gives back its interval,
  // counted as redone) and LeaseEnded (released, not a failure): the next lease resumes from
  // the previous valid commit, or the task's start. FailedPrecondition when the lease is not
  // live or `step` is not the resume point (a stale report); Corruption when there is nothing to
  // fall back to (an align task whose previous segment's state was held in memory, never
  // written): the task cannot go on.
  Status DiscardCheckpoint(LeaseId lease, std::int64_t step, std::string_view reason) override;
  Status Drain(std::string_view reason) override;
  // Ends every lease whose deadline is <= clock now; returns how many.
  Result<int> ExpireLeases();
  // The eviction decision: the segments whose files should be deleted now. A segment qualifies
  // once every task that reads it is done (SegmentEvictable) and its stage has more segments
  // than the cache window holds (RunConfig::cache_window > 0); when the whole cache fits, it is
  // kept for re-runs. In plan order; empty when nothing is due. Reads only.
  std::vector<SegmentEviction> PendingEvictions() const;
  // The files of an evictable segment were deleted; frees its window slot.
  Status EvictSegment(int segment, int stage) override;
  // Layer affinity (contract/coordinator_port.h): align(l, s) done with its state held by the
  // worker, align(l, s + 1) leased to it, in one transition; no_work when it cannot continue.
  // A held task is not credited and its cache segment is not evictable until the chain's next
  // commit (checkpoint or durable completion) makes it durable; when the chain's live lease
  // ends without one, the held tasks are undone and run again from the last durable state.
  Result<LeaseReply> CompleteAndContinue(LeaseId lease, const FinalRecord& final_record) override;

  // Asynchronous forms for an event-loop server: `done` runs once durable (see
  // StateStore::TransactAsync for the thread it runs on).
  void HeartbeatAsync(LeaseId lease, const Progress& progress,
                      std::function<void(Result<HeartbeatReply>)> done);
  void CommitCheckpointAsync(LeaseId lease, const CheckpointRecord& checkpoint,
                             std::function<void(Result<CommitReply>)> done);
  void LeaseAsync(std::string_view worker, const Capabilities& caps,
                  std::function<void(Result<LeaseReply>)> done);
  void CompleteAsync(LeaseId lease, const FinalRecord& final_record,
                     std::function<void(Result<CommitReply>)> done);

  StateStore* store() const { return store_; }

 private:
  using Txn = StateStore::Txn;
  Status DoCreateRun(Txn& tx, const RunConfig& config, const std::vector<TaskSpec>& tasks);
  Result<LeaseReply> DoCompleteAndContinue(Txn& tx, LeaseId lease, const FinalRecord& fr);
  // SegmentEvictable for the cache segments `readers` read (or, for a cache task, produce)
  // once every reader is done and durable.
  Status AppendEvictable(Txn& tx, TimeMs now, const std::vector<int>& readers);
  Status DoResume(Txn& tx, std::string_view note);
  Status DoRegisterWorker(Txn& tx, const WorkerInfo& info);
  Result<LeaseReply> DoLease(Txn& tx, std::string_view worker, const Capabilities& caps);
  Result<HeartbeatReply> DoHeartbeat(Txn& tx, LeaseId lease, const Progress& progress);
  Result<CommitReply> DoCommit(Txn& tx, LeaseId lease, const CheckpointRecord& checkpoint);
  Result<CommitReply> DoComplete(Txn& tx, LeaseId lease, const FinalRecord& final_record);
  Status DoFail(Txn& tx, LeaseId lease, std::string_view reason, bool retryable);
  Status DoRelease(Txn& tx, LeaseId lease, std::string_view reason);
  Status DoDiscardCheckpoint(Txn& tx, LeaseId lease, std::int64_t step, std::string_view reason);
  Status DoDrain(Txn& tx, std::string_view reason);
  Result<int> DoExpire(Txn& tx);
  Status DoEvict(Txn& tx, int segment, int stage);

  // The lease, if outstanding and not past its deadline; FailedPrecondition otherwise.
  Result<const LeaseRecord*> LiveLease(const RunState& s, LeaseId lease, TimeMs now,
                                       std::string_view op) const;
  // Ends a leased task's lease, and fails the task and the run when it may not be retried.
  Status EndLease(Txn& tx, TimeMs now, const LeaseRecord& lease, LeaseEndCause cause,
                  std::string reason, bool retryable);
  // DrainCompleted when draining and no lease is left.
  Status MaybeFinishDrain(Txn& tx, TimeMs now);
  LeaseGrant MakeGrant(const RunState& s, const LeaseRecord& lease) const;

  StateStore* store_;
  const Clock* clock_;
};

}  // namespace radlads
