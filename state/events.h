// The coordinator's events (docs/design.md §4): every change to a run's state is one of these facts,
// appended to the event log in RUN/state/ and applied to the in-memory RunState by a pure
// function (state/run_state.h). Replaying the log from the first event rebuilds the state.
//
// Contract:
// - An event is a fact, already validated by the Scheduler when it was produced. Events carry
//   the decision (the lease deadline, the tokens credited, "this task failed"), not the policy
//   that made it, so replay never consults the clock or the configuration of a later build.
// - One scheduler operation may produce several events (TaskCompleted, then TaskReady for each
//   dependent that became ready, then SegmentEvictable, then RunCompleted). They are committed
//   together in one synced RocksDB WriteBatch: all or none (state/state_store.h).
// - Encoding: binary, little-endian, framed as
//       u8 format version (kStateFormatVersion) | u8 kind | payload | u64 XXH3-64 of the
//       preceding bytes
//   The payload is the event's fields (VisitFields below) in the varint encoding of
//   contract/codec.h: LEB128 varints (signed ones zigzag-encoded), doubles as their IEEE-754 bit
//   patterns (fixed 8 bytes, so replay is bit-exact), strings and lists varint-length-prefixed.
//   The layout of every kind is written down in docs/formats/state.md.
//   Decoding is strict: an unknown version or kind, a bad checksum, a truncated field or
//   trailing bytes is a Corruption status naming the RocksDB key. Nothing here aborts on input.
// - Version rule: kStateFormatVersion changes when the layout of any existing kind changes; a
//   new kind gets a new code and leaves the version alone. A reader decodes each value with the
//   layout of the value's own version (fields declared Since a later version are absent), and
//   refuses versions newer than its own (it never guesses).
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "contract/fields.h"
#include "contract/records.h"
#include "contract/task.h"

namespace radlads {

// The version byte that opens every value (event or table row) in RUN/state/. Values of every
// version from 1 up are read (fields added later keep their defaults); new values are written
// in this one. 2: WorkerInfo gained rank, device, memory_bytes and gang. 3: the run row gained
// the batch-job starts and the cancellation (JobStarted, RunCancelled). 4: checkpoint fallback
// (CheckpointDiscarded): the task row lists its discarded commits, the ledger rows count the
// tokens redone, the run's metrics the discards. 5: the task row keeps the last error a worker
// reported; a worker that registers again mid-task ends its lease as worker_restarted.
inline constexpr std::uint8_t kStateFormatVersion = 5;


// Run-wide settings fixed at creation (carried by the RunCreated event).
struct RunConfig {
  std::string run_id;              // a name for messages (the RUN directory's name)
  TimeMs lease_ttl_ms = 300'000;   // lease deadline = grant/heartbeat time + ttl. Generous by
                                   // default: a 72B checkpoint save can take minutes.
  int retry_limit = 3;             // a task fails for good after retry_limit + 1 failed attempts
  int cache_window = 0;            // W: cache segments resident per pipeline stage; 0 = unlimited
};

// ---- the events ----

// First event of every run: the configuration and the planner's task graph.
struct RunCreated {
  RunConfig config;
  std::vector<TaskSpec> tasks;  // in plan order (the order ready tasks are leased in)
};
// A worker joined, or re-registered (new process, new info). Revives a lost worker.
struct WorkerRegistered {
  WorkerInfo worker;
};
// A worker stopped answering (its lease expired) or belongs to a previous coordinator run.
struct WorkerLost {
  std::string worker;
  std::string reason;
};
// blocked -> ready: all dependencies are done (or it has none).
struct TaskReady {
  std::string task;
};
// ready -> leased.
struct TaskLeased {
  std::string task;
  LeaseId lease = 0;  // must be the state's next lease id
  std::string worker;
  int attempt = 0;    // 1 + failed attempts so far
  TimeMs deadline_ms = 0;
};
// A heartbeat: renews the lease and records progress.
struct TaskProgress {
  std::string task;
  LeaseId lease = 0;
  TimeMs deadline_ms = 0;
  Progress progress;
};
// A checkpoint commit; credits tokens_credited (= cursor - previous cursor) to the ledger.
struct CheckpointCommitted {
  std::string task;
  LeaseId lease = 0;
  CheckpointRecord checkpoint;
  std::int64_t tokens_credited = 0;
};
// leased -> done; credits the rest of the task's tokens.
struct TaskCompleted {
  std::string task;
  LeaseId lease = 0;
  FinalRecord final_record;
  std::int64_t tokens_credited = 0;
  // Layer affinity (Scheduler::CompleteAndContinue; state format 2): an align task completed
  // with its state held in the worker's memory, no files, nothing credited; the same layer's
  // next segment is leased to the same worker in the same transition.
  bool held = false;
};
enum class LeaseEndCause : std::uint8_t {
  kExpired = 0,            // no heartbeat before the deadline        (counts as a failure)
  kFailed = 1,             // the worker reported a failure            (counts as a failure)
  kReleased = 2,           // the worker stopped on request (drain)    (not a failure)
  kCoordinatorRestart = 3, // the coordinator restarted (Resume)       (not a failure)
  kWorkerRestarted = 4,    // its worker registered again mid-task     (counts as a failure; format 5)
};
std::string_view LeaseEndCauseName(LeaseEndCause c);
bool ParseLeaseEndCause(std::string_view name, LeaseEndCause* out);
template <>
struct EnumTraits<LeaseEndCause> {
  static constexpr std::uint8_t kMax = static_cast<std::uint8_t>(LeaseEndCause::kWorkerRestarted);
  static std::string_view Name(LeaseEndCause c) { return LeaseEndCauseName(c); }
  static bool Parse(std::string_view name, LeaseEndCause* out) { return ParseLeaseEndCause(name, out); }
};
inline bool CountsAsFailure(LeaseEndCause c) {
  return c == LeaseEndCause::kExpired || c == LeaseEndCause::kFailed || c == LeaseEndCause::kWorkerRestarted;
}
// leased -> ready, from the task's last committed checkpoint.
struct LeaseEnded {
  std::string task;
  LeaseId lease = 0;
  LeaseEndCause cause = LeaseEndCause::kExpired;
  std::string reason;
};
// ready -> failed (retry limit exceeded, or a non-retryable failure). Terminal.
struct TaskFailed {
  std::string task;
  std::string reason;
};
// The run stops: phase failed, with the reason. Terminal.
struct RunFailed {
  std::string reason;
};
// Every task is done. Terminal.
struct RunCompleted {};
// No new leases; leased workers are told to checkpoint and stop.
struct DrainRequested {
  std::string reason;
};
// The drain is over: no lease is outstanding. The coordinator may exit for requeue.
struct DrainCompleted {};
// A coordinator (re)started on this state: a drain is cleared, the run goes on.
struct RunResumed {
  std::string note;
};
// The run resumed with another execution layout (docs/design.md §5): its lease TTL, and the
// gang sizes of tasks re-laid out on another tp x pp x dp (their next lease goes to a group of
// that many ranks; never while such a task is leased). The task graph itself never changes.
struct GangSize {
  std::string task;
  int workers = 1;
};
struct RunRelaid {
  TimeMs lease_ttl_ms = 0;
  std::vector<GangSize> gangs;
};
// One start of the coordinator inside a batch job (Slurm), recorded before it resumes the run,
// so that status shows the job and its restarts, and a job that keeps restarting without
// progress is stopped (cli/slurm_job.h). State format 3.
struct JobStart {
  std::string scheduler;      // "slurm"
  std::string job_id;         // SLURM_JOB_ID
  int restart = 0;            // SLURM_RESTART_COUNT: 0 for the first start of the job
  std::string nodes;          // the allocation's node list ("n[1-2]")
  TimeMs end_ms = 0;          // when the allocation's time limit ends; 0: unknown or none
  std::int64_t progress = 0;  // RunState::CommitCount() at this start
  std::string refused;        // non-empty: this start did not resume the run, and why
};
struct JobStarted {
  JobStart job;
};
// The user cancelled the run (`radlads-coord cancel`): it drains and its job ends without a
// requeue. A later start of the same job (a requeue that raced the cancel) does not resume it;
// any other start does, and its RunResumed clears the cancellation. State format 3.
struct RunCancelled {
  std::string reason;
  std::string job_id;  // the batch job that was running, "" outside one
};
// A failed run is started again (Scheduler::Resume on a failed run: its cause was fixed): every
// failed task goes back to ready (blocked while a dependency is not done) with its failure count
// reset, from its last committed checkpoint; the run is running again. Nothing committed is
// undone. No lease may be outstanding.
struct RunReopened {
  std::string note;
};
// The newest valid commit of a leased task could not be read (a checksum or size mismatch, a
// missing file: its lease's worker found it so before loading it): it is discarded, and the task
// goes back to its previous valid commit (or its start). The ledger is debited the interval
// between the two cursors (tokens_redone), which is counted as redone; the interval is trained
// again and credited again by the commits that redo it, so the credited total counts every
// token of the final model's history once. The lease stays; a LeaseEnded follows. State format 4.
struct CheckpointDiscarded {
  std::string task;
  LeaseId lease = 0;
  std::int64_t step = 0;             // the discarded commit's step ...
  std::int64_t tokens_consumed = 0;  // ... and cursor (they must be the task's newest valid commit)
  std::int64_t tokens_redone = 0;    // tokens_consumed - the previous valid cursor (0 at the start)
  std::string reason;                // why it could not be read (the file, what was wrong)
};
// Every task that reads cache(segment, stage) is done: its files may be deleted.
struct SegmentEvictable {
  int segment = 0;
  int stage = 0;
};
// The files of an evictable segment are gone; its slot in the window W is free.
struct SegmentEvicted {
  int segment = 0;
  int stage = 0;
};

using EventBody = std::variant<RunCreated, WorkerRegistered, WorkerLost, TaskReady, TaskLeased,
                               TaskProgress, CheckpointCommitted, TaskCompleted, LeaseEnded,
                               TaskFailed, RunFailed, RunCompleted, DrainRequested, DrainCompleted,
                               RunResumed, SegmentEvictable, SegmentEvicted, RunRelaid,
                               JobStarted, RunCancelled, RunReopened, CheckpointDiscarded>;

// Stable wire codes (docs/formats/state.md). Never renumber; append.
enum class EventKind : std::uint8_t {
  kRunCreated = 1,
  kWorkerRegistered = 2,
  kWorkerLost = 3,
  kTaskReady = 4,
  kTaskLeased = 5,
  kTaskProgress = 6,
  kCheckpointCommitted = 7,
  kTaskCompleted = 8,
  kLeaseEnded = 9,
  kTaskFailed = 10,
  kRunFailed = 11,
  kRunCompleted = 12,
  kDrainRequested = 13,
  kDrainCompleted = 14,
  kRunResumed = 15,
  kSegmentEvictable = 16,
  kSegmentEvicted = 17,
  kRunRelaid = 18,    // state format 2
  kJobStarted = 19,   // state format 3
  kRunCancelled = 20, // state format 3
  kRunReopened = 21,  // state format 3
  kCheckpointDiscarded = 22,  // state format 4
};

struct Event {
  std::uint64_t seq = 0;  // position in the log, 1-based, assigned by the StateStore
  TimeMs at_ms = 0;       // when the scheduler produced it
  EventBody body;
};

EventKind KindOf(const EventBody& body);
// "run_created", "task_leased", ...
std::string_view EventKindName(EventKind kind);
// One line for logs and test failures: "#42 @1700000000123 task_leased task=... lease=7 ...".
std::string DescribeEvent(const Event& e);

// Encodes an event (its seq is the key, not part of the value) in `version` of the format
// (default: the current one; older ones for compatibility tests).
std::string EncodeEvent(const Event& e, int version = kStateFormatVersion);
// Decodes an event value; `key` names the RocksDB key in error messages. `seq` is taken from the
// key by the caller.
Status DecodeEvent(std::string_view value, std::string_view key, Event* out);

// ---- framing of every value in RUN/state/ (events and table rows) ----
namespace state_codec {

// version | kind | payload | checksum.
std::string Frame(std::uint8_t kind, std::string_view payload, int version = kStateFormatVersion);
// Checks the version byte (1 to kStateFormatVersion), the checksum and the minimum size;
// returns the kind, the payload and the version. Errors are Corruption("<key>: ...").
Status Unframe(std::string_view value, std::string_view key, std::uint8_t* kind,
               std::string_view* payload, int* version = nullptr);

}  // namespace state_codec

// ---- the events' fields (contract/fields.h): their payload layout, in order ----

template <class V>
void VisitFields(V& v, RunConfig& c) {
  v.Str("run_id", c.run_id, kMaxIdBytes);
  v.Int("lease_ttl_ms", c.lease_ttl_ms);
  v.Int("retry_limit", c.retry_limit);
  v.Int("cache_window", c.cache_window);
}
template <class V>
void VisitFields(V& v, RunCreated& e) {
  v.Rec("config", e.config);
  v.Recs("tasks", e.tasks, kMaxListItems);
}
template <class V>
void VisitFields(V& v, WorkerRegistered& e) { v.Rec("worker", e.worker); }
template <class V>
void VisitFields(V& v, WorkerLost& e) {
  v.Str("worker", e.worker, kMaxIdBytes);
  v.Str("reason", e.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, TaskReady& e) { v.Str("task", e.task, kMaxIdBytes); }
template <class V>
void VisitFields(V& v, TaskLeased& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Str("worker", e.worker, kMaxIdBytes);
  v.Int("attempt", e.attempt);
  v.Int("deadline_ms", e.deadline_ms);
}
template <class V>
void VisitFields(V& v, TaskProgress& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Int("deadline_ms", e.deadline_ms);
  v.Rec("progress", e.progress);
}
template <class V>
void VisitFields(V& v, CheckpointCommitted& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Rec("checkpoint", e.checkpoint);
  v.Int("tokens_credited", e.tokens_credited);
}
template <class V>
void VisitFields(V& v, TaskCompleted& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Rec("final_record", e.final_record);
  v.Int("tokens_credited", e.tokens_credited);
  if (v.Since(2)) v.Flag("held", e.held);
}
template <class V>
void VisitFields(V& v, LeaseEnded& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Enum("cause", e.cause);
  v.Str("reason", e.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, TaskFailed& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Str("reason", e.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, RunFailed& e) { v.Str("reason", e.reason, kMaxTextBytes); }
template <class V>
void VisitFields(V&, RunCompleted&) {}
template <class V>
void VisitFields(V& v, DrainRequested& e) { v.Str("reason", e.reason, kMaxTextBytes); }
template <class V>
void VisitFields(V&, DrainCompleted&) {}
template <class V>
void VisitFields(V& v, RunResumed& e) { v.Str("note", e.note, kMaxTextBytes); }
template <class V>
void VisitFields(V& v, SegmentEvictable& e) {
  v.Int("segment", e.segment);
  v.Int("stage", e.stage);
}
template <class V>
void VisitFields(V& v, SegmentEvicted& e) {
  v.Int("segment", e.segment);
  v.Int("stage", e.stage);
}
template <class V>
void VisitFields(V& v, GangSize& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("workers", e.workers);
}
template <class V>
void VisitFields(V& v, JobStart& j) {
  v.Str("scheduler", j.scheduler, kMaxIdBytes);
  v.Str("job_id", j.job_id, kMaxIdBytes);
  v.Int("restart", j.restart);
  v.Str("nodes", j.nodes, kMaxTextBytes);
  v.Int("end_ms", j.end_ms);
  v.Int("progress", j.progress);
  v.Str("refused", j.refused, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, JobStarted& e) { v.Rec("job", e.job); }
template <class V>
void VisitFields(V& v, RunCancelled& e) {
  v.Str("reason", e.reason, kMaxTextBytes);
  v.Str("job_id", e.job_id, kMaxIdBytes);
}
template <class V>
void VisitFields(V& v, RunReopened& e) { v.Str("note", e.note, kMaxTextBytes); }
template <class V>
void VisitFields(V& v, CheckpointDiscarded& e) {
  v.Str("task", e.task, kMaxIdBytes);
  v.Int("lease", e.lease);
  v.Int("step", e.step);
  v.Int("tokens_consumed", e.tokens_consumed);
  v.Int("tokens_redone", e.tokens_redone);
  v.Str("reason", e.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, RunRelaid& e) {
  v.Int("lease_ttl_ms", e.lease_ttl_ms);
  v.Recs("gangs", e.gangs, kMaxListItems);
}

}  // namespace radlads
