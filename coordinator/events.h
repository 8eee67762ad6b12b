// The coordinator's events (docs/design.md §4): every change to a run's state is one of these facts,
// appended to the event log in RUN/state/ and applied to the in-memory RunState by a pure
// function (coordinator/run_state.h). Replaying the log from the first event rebuilds the state.
//
// Contract:
// - An event is a fact, already validated by the Scheduler when it was produced. Events carry
//   the decision (the lease deadline, the tokens credited, "this task failed"), not the policy
//   that made it, so replay never consults the clock or the configuration of a later build.
// - One scheduler operation may produce several events (TaskCompleted, then TaskReady for each
//   dependent that became ready, then SegmentEvictable, then RunCompleted). They are committed
//   together in one synced RocksDB WriteBatch: all or none (coordinator/state_store.h).
// - Encoding: binary, little-endian, framed as
//       u8 format version (kStateFormatVersion) | u8 kind | payload | u64 XXH3-64 of the
//       preceding bytes
//   Integers in the payload are LEB128 varints (signed ones zigzag-encoded), doubles are their
//   IEEE-754 bit patterns (fixed 8 bytes, so replay is bit-exact), strings and lists are
//   varint-length-prefixed. The layout of every kind is written down in docs/formats/state.md.
//   Decoding is strict: an unknown version or kind, a bad checksum, a truncated field or
//   trailing bytes is a Corruption status naming the RocksDB key. Nothing here aborts on input.
// - Version rule: kStateFormatVersion changes when the layout of any existing kind changes; a
//   new kind gets a new code and leaves the version alone. Readers refuse versions they do not
//   know (they never guess).
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"
#include "coordinator/clock.h"
#include "coordinator/task.h"

namespace radlads {

// The version byte that opens every value (event or table row) in RUN/state/.
inline constexpr std::uint8_t kStateFormatVersion = 1;

using LeaseId = std::uint64_t;  // 1, 2, 3, ...; never reused within a run; 0 means "none"

// Run-wide settings fixed at creation (carried by the RunCreated event).
struct RunConfig {
  std::string run_id;              // a name for messages (the RUN directory's name)
  TimeMs lease_ttl_ms = 300'000;   // lease deadline = grant/heartbeat time + ttl. Generous by
                                   // default: a 72B checkpoint save can take minutes.
  int retry_limit = 3;             // a task fails for good after retry_limit + 1 failed attempts
  int cache_window = 0;            // W: cache segments resident per pipeline stage; 0 = unlimited
};

// A file of a checkpoint or cache, as the worker wrote it (fsynced before the commit).
struct FileRecord {
  std::string path;      // relative to RUN/
  std::int64_t bytes = 0;
  std::string checksum;  // "xxh3:<16 hex>" (base/checksum.h FormatChecksum)
};

// A checkpoint commit (docs/design.md §6: the checkpoint exists once this record is in RocksDB).
// `tokens_consumed` is the task's cumulative token cursor: tokens this task has consumed from its
// beginning up to this checkpoint, across all attempts (not a delta). The ledger credits the
// difference to the previous committed cursor, so a duplicate or a retry never counts twice.
struct CheckpointRecord {
  std::int64_t step = 0;             // the task's optimizer step at the checkpoint
  std::int64_t tokens_consumed = 0;  // cumulative cursor, see above
  std::vector<FileRecord> files;
};

struct NamedValue {
  std::string name;
  double value = 0.0;
};

// Heartbeat payload: informational progress since the last commit (not credited to the ledger).
struct Progress {
  std::int64_t tokens = 0;  // the task's cursor now (cumulative, like tokens_consumed)
  std::int64_t step = 0;
  std::vector<NamedValue> losses;  // e.g. {"l2", 0.031} or {"kl", 1.2}, {"ce", 3.4}
  double throughput = 0.0;         // tokens per second
};

// What a task hands back when it is done: its last checkpoint (an align task's layer state, a
// cache task's HDF5 files, the export directory's files) and final metrics.
struct FinalRecord {
  CheckpointRecord checkpoint;  // tokens_consumed must equal the task's budget (spec.tokens)
  std::vector<NamedValue> metrics;
};

inline constexpr std::uint32_t TaskTypeBit(TaskType t) {
  return std::uint32_t{1} << static_cast<unsigned>(t);
}
inline constexpr std::uint32_t kAllTaskTypes = (std::uint32_t{1} << 7) - 1;

// A worker, or the leader of a worker group for gang tasks (see Scheduler::Lease).
struct WorkerInfo {
  std::string id;               // unique within the run, e.g. "node07/rank3"
  std::string host;
  std::int64_t pid = 0;
  int group_size = 1;           // ranks in the group this worker leads (1: a single worker)
  std::vector<std::string> members;  // optional: the group's ranks, for status only
  std::uint32_t capabilities = kAllTaskTypes;  // TaskTypeBit(type) per type it can run
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
};
enum class LeaseEndCause : std::uint8_t {
  kExpired = 0,            // no heartbeat before the deadline        (counts as a failure)
  kFailed = 1,             // the worker reported a failure            (counts as a failure)
  kReleased = 2,           // the worker stopped on request (drain)    (not a failure)
  kCoordinatorRestart = 3, // the coordinator restarted (Resume)       (not a failure)
};
std::string_view LeaseEndCauseName(LeaseEndCause c);
inline bool CountsAsFailure(LeaseEndCause c) {
  return c == LeaseEndCause::kExpired || c == LeaseEndCause::kFailed;
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
                               RunResumed, SegmentEvictable, SegmentEvicted>;

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

// Encodes an event (its seq is the key, not part of the value).
std::string EncodeEvent(const Event& e);
// Decodes an event value; `key` names the RocksDB key in error messages. `seq` is taken from the
// key by the caller.
Status DecodeEvent(std::string_view value, std::string_view key, Event* out);

// ---- the binary codec shared with the table rows (coordinator/state_store.cpp) ----
namespace state_codec {

class Writer {
 public:
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Varint(std::uint64_t v);
  void Signed(std::int64_t v);  // zigzag varint
  void Double(double v);        // 8-byte IEEE-754 bit pattern, little-endian
  void Fixed64(std::uint64_t v);
  void String(std::string_view s);
  void Bool(bool b) { U8(b ? 1 : 0); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

// Bounds-checked reader. The first failure sticks: later reads return zero values and ok()
// stays false; error() names the field that did not fit.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  std::uint8_t U8(const char* field);
  std::uint64_t Varint(const char* field);
  std::int64_t Signed(const char* field);
  int Int(const char* field);  // a signed varint that must fit in an int
  double Double(const char* field);
  std::string String(const char* field);
  bool Bool(const char* field);
  // A list length, refused when larger than the bytes left (each element takes >= 1 byte), so a
  // corrupt length cannot make the decoder allocate gigabytes.
  std::size_t Count(const char* field);
  void Fail(std::string msg);
  bool ok() const { return error_.empty(); }
  bool AtEnd() const { return rest_.empty(); }
  std::size_t remaining() const { return rest_.size(); }
  const std::string& error() const { return error_; }

 private:
  std::string_view rest_;
  std::string error_;
};

// version | kind | payload | checksum.
std::string Frame(std::uint8_t kind, std::string_view payload);
// Checks the version byte, the checksum and the minimum size; returns the kind and the payload.
// Errors are Corruption("<key>: ...").
Status Unframe(std::string_view value, std::string_view key, std::uint8_t* kind,
               std::string_view* payload);
// Corruption("<key>: <what>") when the reader failed or did not consume every byte.
Status Finish(const Reader& r, std::string_view key, std::string_view what);

void Put(Writer& w, const TaskSpec& t);
void Get(Reader& r, TaskSpec* t);
void Put(Writer& w, const RunConfig& c);
void Get(Reader& r, RunConfig* c);
void Put(Writer& w, const WorkerInfo& wi);
void Get(Reader& r, WorkerInfo* wi);
void Put(Writer& w, const CheckpointRecord& c);
void Get(Reader& r, CheckpointRecord* c);
void Put(Writer& w, const std::vector<NamedValue>& v);
void Get(Reader& r, std::vector<NamedValue>* v);
void Put(Writer& w, const Progress& p);
void Get(Reader& r, Progress* p);

}  // namespace state_codec

}  // namespace radlads
