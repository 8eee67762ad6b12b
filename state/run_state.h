// The materialised state of a run: what the event log (state/events.h) says, folded into
// tables. Flux's event.h idea: Apply(event) is the only way the state changes, and it is a pure,
// deterministic function of (state, event) — no clock, no I/O, no randomness — so replaying the
// log from the first event rebuilds exactly the same state (tests/state/state_test.cpp).
//
// What it holds:
//   tasks        the plan (TaskSpec) plus state, attempts, failures, current lease, the committed
//                token cursor, the last progress report and the last error;
//   leases       outstanding leases with their deadlines;
//   workers      registered workers (idle, busy, lost);
//   checkpoints  the checkpoint index: every committed checkpoint of every task, in commit
//                order (the last valid one is where a retry resumes; earlier ones are
//                fallbacks; a commit found unreadable is marked discarded, never removed);
//   segments     cache(s, p) outputs: pending -> producing -> resident -> evictable -> evicted,
//                counted against the window W per stage;
//   ledger       tokens credited per task type, and per layer for step 1 (see TokenLedger);
//   metrics      counters; run status (phase + reason).
//
// Apply contract: it first checks that the event fits the state (the task is ready before it is
// leased, the lease id is the next one, the credited tokens equal the cursor difference, ...)
// and returns Corruption without changing anything when it does not; only then does it mutate.
// A valid event never fails. Apply also reports which table rows it touched (RowChanges), which
// is how the store knows what to write into the same WriteBatch.
//
// Equality: CanonicalDump() is a complete, deterministic text rendering of every persisted field
// (doubles in hex-float, so bit-exact); operator== compares dumps. Derived indexes (ready set,
// dependents) are rebuilt, not dumped.
// Thread-safety: none; the StateStore guards its RunState with a mutex.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "contract/fields.h"
#include "contract/records.h"
#include "contract/task.h"
#include "state/events.h"

namespace radlads {

// The life of a task in the scheduler.
enum class TaskState : std::uint8_t {
  kBlocked,  // waiting for dependencies
  kReady,    // may be leased
  kLeased,   // a worker holds a lease with a deadline
  kDone,     // committed; terminal
  kFailed,   // failed more than the retry limit; terminal, stops the run
};
std::string_view TaskStateName(TaskState s);
bool ParseTaskState(std::string_view name, TaskState* out);


enum class RunPhase : std::uint8_t {
  kEmpty = 0,      // no RunCreated yet
  kRunning = 1,
  kDraining = 2,   // no new leases; waiting for outstanding leases to end
  kDrained = 3,    // drain done; the coordinator may exit for requeue
  kCompleted = 4,  // every task done (terminal)
  kFailed = 5,     // a task failed for good (terminal); RunStatus::reason says why
};
std::string_view RunPhaseName(RunPhase p);

enum class WorkerState : std::uint8_t { kIdle = 0, kBusy = 1, kLost = 2 };
std::string_view WorkerStateName(WorkerState s);

enum class SegmentState : std::uint8_t {
  kPending = 0,    // cache task not yet leased: holds no slot of the window
  kProducing = 1,  // cache task leased at least once: holds a slot
  kResident = 2,   // cache task done, files on disk: holds a slot
  kEvictable = 3,  // every reader of the segment is done: holds a slot until deleted
  kEvicted = 4,    // files deleted (SegmentEvicted): slot free
};
std::string_view SegmentStateName(SegmentState s);
inline bool HoldsWindowSlot(SegmentState s) {
  return s == SegmentState::kProducing || s == SegmentState::kResident ||
         s == SegmentState::kEvictable;
}

// Codes and names of the state's enums for the row codecs (contract/fields.h).
template <class E, std::string_view (*NameOf)(E), std::uint8_t Max>
struct NamedEnumTraits {
  static constexpr std::uint8_t kMax = Max;
  static std::string_view Name(E e) { return NameOf(e); }
  static bool Parse(std::string_view name, E* out) {
    for (unsigned i = 0; i <= Max; ++i) {
      if (NameOf(static_cast<E>(i)) == name) {
        *out = static_cast<E>(i);
        return true;
      }
    }
    return false;
  }
};
template <>
struct EnumTraits<TaskState>
    : NamedEnumTraits<TaskState, TaskStateName, static_cast<std::uint8_t>(TaskState::kFailed)> {};
template <>
struct EnumTraits<RunPhase>
    : NamedEnumTraits<RunPhase, RunPhaseName, static_cast<std::uint8_t>(RunPhase::kFailed)> {};
template <>
struct EnumTraits<WorkerState>
    : NamedEnumTraits<WorkerState, WorkerStateName, static_cast<std::uint8_t>(WorkerState::kLost)> {};
template <>
struct EnumTraits<SegmentState>
    : NamedEnumTraits<SegmentState, SegmentStateName, static_cast<std::uint8_t>(SegmentState::kEvicted)> {};

// A commit of the task found unreadable and discarded (CheckpointDiscarded; state format 4).
struct DiscardedCommit {
  std::int64_t position = 0;  // its index in RunState::Checkpoints(task)
  std::int64_t step = 0;
  std::int64_t tokens_redone = 0;
  TimeMs at_ms = 0;
  std::string reason;
};

struct TaskRecord {
  TaskSpec spec;  // from the plan; immutable
  int index = 0;  // position in the plan; immutable; ready tasks are leased in this order
  TaskState state = TaskState::kBlocked;
  int failures = 0;  // failed attempts so far (expired or failed leases)
  int attempt = 0;   // attempt number of the current or last lease; 0: never leased
  LeaseId lease = 0;  // current lease; 0 when not leased
  std::string worker;  // worker of the current or last lease
  std::int64_t committed_tokens = 0;  // token cursor of the last commit (checkpoint or final)
  std::int64_t checkpoint_step = -1;  // step of the last commit; -1: none
  std::int64_t checkpoints = 0;       // commits so far, the final one included
  Progress progress;                  // last heartbeat's report (not credited)
  TimeMs progress_at_ms = 0;
  TimeMs changed_at_ms = 0;  // time of the last state change
  std::string last_error;    // reason of the last failed attempt, or of the task failure
  std::vector<NamedValue> final_metrics;
  // Layer affinity: an align task done with its state held in memory by the worker that
  // continued with the layer's next segment (the lease it completed under; 0: durable). It
  // becomes durable (credited, 0 here) with the next commit of that chain, and is undone
  // (back to ready or blocked) when the chain's live lease ends without one.
  LeaseId held_lease = 0;
  // Commits found unreadable, in discard order (state format 4); see CheckpointDiscarded.
  std::vector<DiscardedCommit> discarded;
  // The last error a worker reported (Fail) for this task, kept when later attempts end by an
  // expiry or a restart, so that the task's failure can still name the cause (state format 5).
  std::string reported_error;
};

struct LeaseRecord {
  LeaseId id = 0;
  std::string task;
  std::string worker;
  int attempt = 0;
  TimeMs granted_ms = 0;
  TimeMs deadline_ms = 0;
  TimeMs last_heartbeat_ms = 0;  // 0: none yet
  std::int64_t heartbeats = 0;
};

struct WorkerRecord {
  WorkerInfo info;
  WorkerState state = WorkerState::kIdle;
  LeaseId lease = 0;
  TimeMs registered_ms = 0;
  TimeMs last_seen_ms = 0;
  std::string lost_reason;
  std::int64_t leases = 0;           // leases granted to it
  std::int64_t tasks_completed = 0;
};


struct SegmentRecord {
  int segment = 0;
  int stage = 0;
  std::string task;  // the cache(segment, stage) task producing it
  SegmentState state = SegmentState::kPending;
  TimeMs changed_ms = 0;
};

struct StepLedger {
  std::int64_t budget = 0;    // sum of spec.tokens
  std::int64_t credited = 0;  // sum of committed cursors
  std::int64_t redone = 0;    // tokens debited by discarded commits (trained again); format 4
};

// Tokens are credited only by commits (CheckpointCommitted, TaskCompleted), by the difference
// between the new cursor and the task's previous committed cursor; they are never credited by
// heartbeats. The only debit is a checkpoint fallback (CheckpointDiscarded): the discarded
// commit's interval is taken back and counted in `redone`, so `credited` stays the sum of the
// valid cursors: each token of the final model's history counted once.
//
// Step 1 (align): each layer trains on every segment, so the step's budget B1 is counted per
// layer: budget(l) = sum over s of align(l, s).tokens, the same for every layer (the plan is
// refused otherwise), and B1 = budget(l). "Step-1 tokens used" is the minimum over layers of
// credited(l): the number of tokens every layer has trained on, which reaches B1 exactly when
// the step is done. AlignMeanTokens() is the mean over layers (for ETA), and by_type[kAlign]
// holds layer-tokens (the sum over layers, i.e. compute spent).
// Steps 2 and 3 (distill, finetune) and every other type: by_type[type].
struct TokenLedger {
  std::array<StepLedger, 7> by_type;      // indexed by TaskType
  std::map<int, StepLedger> align_layers;  // layer -> step-1 ledger of that layer

  std::int64_t AlignBudget() const;      // B1 (per layer); 0 without align tasks
  std::int64_t AlignMinTokens() const;   // step-1 tokens used (min over layers)
  double AlignMeanTokens() const;
  const StepLedger& Of(TaskType t) const { return by_type[static_cast<std::size_t>(t)]; }
};

struct RunMetrics {
  std::int64_t events = 0;
  std::int64_t leases_granted = 0;
  std::int64_t heartbeats = 0;
  std::int64_t checkpoints_committed = 0;
  std::int64_t tasks_completed = 0;
  std::int64_t leases_expired = 0;
  std::int64_t leases_failed = 0;
  std::int64_t leases_released = 0;
  std::int64_t leases_abandoned = 0;  // ended by a coordinator restart
  std::int64_t workers_lost = 0;
  std::int64_t segments_evicted = 0;
  std::int64_t drains = 0;
  std::int64_t resumes = 0;
  std::int64_t checkpoints_discarded = 0;  // state format 4
};

struct RunStatus {
  RunPhase phase = RunPhase::kEmpty;
  std::string reason;  // failure reason (failed), drain reason (draining/drained)
  TimeMs created_ms = 0;
  TimeMs phase_since_ms = 0;
  std::int64_t incarnation = 0;  // RunResumed events so far
  // State format 3:
  std::string cancelled;         // non-empty: cancelled by the user (RunCancelled), the reason;
                                 // cleared by the next RunResumed
  std::string cancelled_job;     // the batch job running when it was cancelled ("" none)
  std::vector<JobStart> jobs;    // the last kMaxJobStarts batch-job starts, oldest first
  std::int64_t job_starts = 0;   // every JobStarted so far
};
inline constexpr std::size_t kMaxJobStarts = 32;

// Rows touched by one or more Apply calls (for the store's WriteBatch).
struct RowChanges {
  bool run = false;     // the run row (status, config, counters, last_seq, next lease id)
  bool ledger = false;  // the ledger row
  bool plan = false;    // every plan row (RunCreated only)
  std::set<int> tasks;  // task indices
  std::set<LeaseId> leases;
  std::set<std::string> workers;
  std::set<std::pair<int, int>> segments;  // (stage, segment)
  std::vector<std::pair<int, std::size_t>> checkpoints;  // (task index, position) appended
  bool empty() const {
    return !run && !ledger && !plan && tasks.empty() && leases.empty() && workers.empty() &&
           segments.empty() && checkpoints.empty();
  }
};

// Structural checks of a plan and config (ids, dependencies, cycles, budgets). Messages start
// with "plan: task '<id>': ...". Used by Scheduler::CreateRun and by Apply(RunCreated).
Status ValidatePlan(const RunConfig& config, const std::vector<TaskSpec>& tasks);

class RunState {
 public:
  // Applies one event (see the contract above). `changes` may be null.
  Status Apply(const Event& e, RowChanges* changes = nullptr);

  // ---- queries ----
  const RunStatus& status() const { return status_; }
  RunPhase phase() const { return status_.phase; }
  const RunConfig& config() const { return config_; }
  std::uint64_t last_seq() const { return last_seq_; }
  LeaseId next_lease_id() const { return next_lease_id_; }
  const std::vector<TaskRecord>& tasks() const { return tasks_; }
  const TaskRecord* FindTask(std::string_view id) const;
  int TaskIndex(std::string_view id) const;  // -1 if unknown
  // Indices of tasks that have `index` among their dependencies.
  const std::vector<int>& Dependents(int index) const { return dependents_[index]; }
  const std::vector<int>& DepIndices(int index) const { return deps_[index]; }
  bool DepsDone(int index) const;
  // Ready tasks in plan order.
  const std::set<int>& ready() const { return ready_; }
  const std::map<LeaseId, LeaseRecord>& leases() const { return leases_; }
  const LeaseRecord* FindLease(LeaseId id) const;
  const std::map<std::string, WorkerRecord, std::less<>>& workers() const { return workers_; }
  const WorkerRecord* FindWorker(std::string_view id) const;
  // Committed checkpoints of a task, oldest first (empty for an unknown task), discarded ones
  // included (IsDiscarded).
  const std::vector<CommittedCheckpoint>& Checkpoints(int index) const { return ckpts_[index]; }
  bool IsDiscarded(int index, std::size_t position) const;
  // The task's newest commit that is not discarded (where it resumes), or null.
  const CommittedCheckpoint* LastCheckpoint(std::string_view task) const;
  // Its position in Checkpoints(index) before `before` (default: the end), or -1.
  std::int64_t LastValidPosition(int index, std::int64_t before = -1) const;
  // Task index of a lease that committed at least one checkpoint (live or ended), else -1.
  // Lets the scheduler recognise a duplicate commit after the lease has ended.
  int TaskOfCommittingLease(LeaseId lease) const;
  // The align task of the same layer, one segment earlier / later (-1: none or not align).
  int PreviousSegment(int index) const;
  int NextSegment(int index) const;
  // The held align tasks right before `index` (its layer's chain), latest first.
  std::vector<int> HeldChainBefore(int index) const;
  // The done align tasks right before `index` whose last valid commit is not a final one: they
  // were completed in memory (held) and made durable by a later commit of the chain, so their
  // end state lives only in that commit. Latest first; empty when the previous segment ended
  // with a final commit of its own (or `index` is not an align task).
  std::vector<int> DurableHeldChainBefore(int index) const;
  const std::map<std::pair<int, int>, SegmentRecord>& segments() const { return segments_; }
  const SegmentRecord* FindSegment(int segment, int stage) const;
  int WindowSlotsUsed(int stage) const;  // segments of `stage` holding a slot
  const TokenLedger& ledger() const { return ledger_; }
  const RunMetrics& metrics() const { return metrics_; }
  // Durable progress so far: checkpoint commits plus task completions. It only grows; a batch
  // job whose restarts leave it unchanged makes no progress (cli/slurm_job.h).
  std::int64_t CommitCount() const { return metrics_.checkpoints_committed + metrics_.tasks_completed; }
  // Tasks per state, indexed by TaskState.
  const std::array<int, 5>& TaskStateCounts() const { return state_counts_; }
  int TasksIn(TaskState s) const { return state_counts_[static_cast<std::size_t>(s)]; }

  std::string CanonicalDump() const;
  bool operator==(const RunState& o) const { return CanonicalDump() == o.CanonicalDump(); }

  // Cross-checks redundant facts (ledger against task cursors, leases against tasks and
  // workers, ready set against states, window slots). Corruption with the first mismatch.
  Status CheckInvariants() const;

 private:
  friend class StateStoreAccess;  // the table loader fills the fields, then RebuildIndexes()

  Status ApplyRunCreated(const Event& e, const RunCreated& b, RowChanges* c);
  Status ApplyWorkerRegistered(const Event& e, const WorkerRegistered& b, RowChanges* c);
  Status ApplyWorkerLost(const Event& e, const WorkerLost& b, RowChanges* c);
  Status ApplyTaskReady(const Event& e, const TaskReady& b, RowChanges* c);
  Status ApplyTaskLeased(const Event& e, const TaskLeased& b, RowChanges* c);
  Status ApplyTaskProgress(const Event& e, const TaskProgress& b, RowChanges* c);
  Status ApplyCheckpointCommitted(const Event& e, const CheckpointCommitted& b, RowChanges* c);
  Status ApplyTaskCompleted(const Event& e, const TaskCompleted& b, RowChanges* c);
  Status ApplyLeaseEnded(const Event& e, const LeaseEnded& b, RowChanges* c);
  Status ApplyTaskFailed(const Event& e, const TaskFailed& b, RowChanges* c);
  Status ApplyRunFailed(const Event& e, const RunFailed& b, RowChanges* c);
  Status ApplyRunCompleted(const Event& e, const RunCompleted& b, RowChanges* c);
  Status ApplyDrainRequested(const Event& e, const DrainRequested& b, RowChanges* c);
  Status ApplyDrainCompleted(const Event& e, const DrainCompleted& b, RowChanges* c);
  Status ApplyRunResumed(const Event& e, const RunResumed& b, RowChanges* c);
  Status ApplySegmentEvictable(const Event& e, const SegmentEvictable& b, RowChanges* c);
  Status ApplySegmentEvicted(const Event& e, const SegmentEvicted& b, RowChanges* c);
  Status ApplyRunRelaid(const Event& e, const RunRelaid& b, RowChanges* c);
  Status ApplyJobStarted(const Event& e, const JobStarted& b, RowChanges* c);
  Status ApplyRunCancelled(const Event& e, const RunCancelled& b, RowChanges* c);
  Status ApplyRunReopened(const Event& e, const RunReopened& b, RowChanges* c);
  Status ApplyCheckpointDiscarded(const Event& e, const CheckpointDiscarded& b, RowChanges* c);
  // A durable commit (checkpoint or final) of task i under `lease`: recorded, credited, and
  // the held chain before it made durable (MakeChainDurable: credited the rest of its budget).
  void RecordCommit(int i, const CheckpointRecord& ck, LeaseId lease, int attempt, TimeMs at, bool final,
                    std::int64_t credited, RowChanges* c);
  void MakeChainDurable(int index, RowChanges* c);

  // Finds the lease and checks it belongs to `task`; Corruption otherwise.
  Status CheckLease(const Event& e, LeaseId lease, std::string_view task) const;
  void Credit(const TaskRecord& t, std::int64_t tokens);
  void SetTaskState(TaskRecord& t, TaskState s);
  void SetPhase(RunPhase p, TimeMs at);
  // Rebuilds the id index, dependency indexes and the ready set from tasks_ (after loading).
  Status RebuildIndexes();
  Status Fail(const Event& e, std::string_view what) const;

  RunConfig config_;
  RunStatus status_;
  std::uint64_t last_seq_ = 0;
  LeaseId next_lease_id_ = 1;
  std::vector<TaskRecord> tasks_;
  std::map<LeaseId, LeaseRecord> leases_;
  std::map<std::string, WorkerRecord, std::less<>> workers_;
  std::vector<std::vector<CommittedCheckpoint>> ckpts_;  // by task index
  std::map<std::pair<int, int>, SegmentRecord> segments_;  // (stage, segment)
  TokenLedger ledger_;
  RunMetrics metrics_;

  // Derived (rebuilt by RebuildIndexes, never persisted).
  std::unordered_map<std::string, int> index_;
  std::vector<std::vector<int>> deps_;
  std::vector<std::vector<int>> dependents_;
  std::set<int> ready_;
  std::array<int, 5> state_counts_{};
  std::unordered_map<LeaseId, int> committing_leases_;  // lease -> task index (see above)
};

}  // namespace radlads
