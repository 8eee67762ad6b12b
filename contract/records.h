// The records a coordinator and its workers exchange (docs/design.md §4, §5): what a worker
// registers as, what a lease grants, what a heartbeat reports, what a commit records and what a
// finished task hands back. The state store persists them in its event log, the wire protocol
// carries them, and the worker reads and writes them; all three encode them from the one field
// declaration beside each struct (VisitFields, contract/fields.h), through contract/codec.h and
// contract/json_codec.h.
//
// Plain values with no behaviour and no heavy dependencies (base only), so a worker process needs
// nothing of the coordinator to speak to it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "contract/fields.h"
#include "contract/task.h"

namespace radlads {

using LeaseId = std::uint64_t;  // 1, 2, 3, ...; never reused within a run; 0 means "none"

// A file of a checkpoint or cache, as the worker wrote it (fsynced before the commit).
struct FileRecord {
  std::string path;      // relative to RUN/
  std::int64_t bytes = 0;
  std::string checksum;  // "xxh3:<16 hex>" (base/checksum.h FormatChecksum)
  bool operator==(const FileRecord&) const = default;
};
template <class V>
void VisitFields(V& v, FileRecord& f) {
  v.Str("path", f.path, kMaxPathBytes);
  v.Int("bytes", f.bytes);
  v.Str("checksum", f.checksum, kMaxChecksumBytes);
}

// A checkpoint commit (docs/design.md §6: the checkpoint exists once this record is in RocksDB).
// `tokens_consumed` is the task's cumulative token cursor: tokens this task has consumed from its
// beginning up to this checkpoint, across all attempts (not a delta). The ledger credits the
// difference to the previous committed cursor, so a duplicate or a retry never counts twice.
struct CheckpointRecord {
  std::int64_t step = 0;             // the task's optimizer step at the checkpoint
  std::int64_t tokens_consumed = 0;  // cumulative cursor, see above
  std::vector<FileRecord> files;
  bool operator==(const CheckpointRecord&) const = default;
};
template <class V>
void VisitFields(V& v, CheckpointRecord& c) {
  v.Int("step", c.step);
  v.Int("tokens_consumed", c.tokens_consumed);
  v.Recs("files", c.files, kMaxFiles);
}

struct NamedValue {
  std::string name;
  double value = 0.0;
  bool operator==(const NamedValue&) const = default;
};
template <class V>
void VisitFields(V& v, NamedValue& n) {
  v.Str("name", n.name, kMaxIdBytes);
  v.Real("value", n.value);
}

// Heartbeat payload: informational progress since the last commit (not credited to the ledger).
struct Progress {
  std::int64_t tokens = 0;  // the task's cursor now (cumulative, like tokens_consumed)
  std::int64_t step = 0;
  std::vector<NamedValue> losses;  // e.g. {"l2", 0.031} or {"kl", 1.2}, {"ce", 3.4}
  double throughput = 0.0;         // tokens per second
  bool operator==(const Progress&) const = default;
};
template <class V>
void VisitFields(V& v, Progress& p) {
  v.Int("tokens", p.tokens);
  v.Int("step", p.step);
  v.Recs("losses", p.losses, kMaxValues);
  v.Real("throughput", p.throughput);
}

// What a task hands back when it is done: its last checkpoint (an align task's layer state, a
// cache task's HDF5 files, the export directory's files) and final metrics.
struct FinalRecord {
  CheckpointRecord checkpoint;  // tokens_consumed must equal the task's budget (spec.tokens)
  std::vector<NamedValue> metrics;
  bool operator==(const FinalRecord&) const = default;
};
template <class V>
void VisitFields(V& v, FinalRecord& f) {
  v.Rec("checkpoint", f.checkpoint);
  v.Recs("metrics", f.metrics, kMaxValues);
}

// A worker, or the leader of a worker group for gang tasks (see Scheduler::Lease).
struct WorkerInfo {
  std::string id;               // unique within the run, e.g. "node07/rank3"
  std::string host;
  std::int64_t pid = 0;
  int group_size = 1;           // ranks in the group this worker leads (1: a single worker)
  std::vector<std::string> members;  // optional: the group's ranks, for status only
  std::uint32_t capabilities = kAllTaskTypes;  // TaskTypeBit(type) per type it can run
  // Since version 2 of the state and wire formats:
  int rank = -1;                  // rank in its worker job (MPI_COMM_WORLD); -1: not in one
  std::string device;             // "cpu", "cuda:0", ...
  std::int64_t memory_bytes = 0;  // memory it may use (RAM per worker, or the GPU's)
  std::string gang;               // the gang this worker belongs to ("" for none)
  bool operator==(const WorkerInfo&) const = default;
};
template <class V>
void VisitFields(V& v, WorkerInfo& w) {
  v.Str("id", w.id, kMaxIdBytes);
  v.Str("host", w.host, kMaxIdBytes);
  v.Int("pid", w.pid);
  v.Int("group_size", w.group_size);
  v.Strs("members", w.members, kMaxListItems, kMaxIdBytes);
  v.Int("capabilities", w.capabilities);
  if (v.Since(2)) {
    v.Int("rank", w.rank);
    v.Str("device", w.device, kMaxIdBytes);
    v.Int("memory_bytes", w.memory_bytes);
    v.Str("gang", w.gang, kMaxIdBytes);
  }
}

// A committed checkpoint as the state records it: the record plus who committed it and when.
struct CommittedCheckpoint {
  std::string task;
  CheckpointRecord record;
  LeaseId lease = 0;
  int attempt = 0;
  TimeMs committed_ms = 0;
  bool final = false;  // from TaskCompleted
  bool operator==(const CommittedCheckpoint&) const = default;
};
template <class V>
void VisitFields(V& v, CommittedCheckpoint& c) {
  v.Str("task", c.task, kMaxIdBytes);
  v.Rec("record", c.record);
  v.Int("lease", c.lease);
  v.Int("attempt", c.attempt);
  v.Int("committed_ms", c.committed_ms);
  v.Flag("final", c.final);
}

// A step-1 cache segment whose files may be deleted (every task that reads it is done), with the
// files of its cache task's final record. Whoever deletes them reports it with EvictSegment.
struct SegmentEviction {
  int segment = 0;
  int stage = 0;
  std::vector<FileRecord> files;

  bool operator==(const SegmentEviction&) const = default;
};
template <class V>
void VisitFields(V& v, SegmentEviction& e) {
  v.Int("segment", e.segment);
  v.Int("stage", e.stage);
  v.Recs("files", e.files, kMaxFiles);
}

// What a worker asks for work with: the task types it can run now.
struct Capabilities {
  std::uint32_t task_types = kAllTaskTypes;  // TaskTypeBit(...) mask
  bool operator==(const Capabilities&) const = default;
};
template <class V>
void VisitFields(V& v, Capabilities& c) {
  v.Int("task_types", c.task_types);
}

enum class LeaseOutcome : std::uint8_t {
  kGranted,   // `grant` holds the lease
  kNoWork,    // nothing this worker can run now; ask again later
  kDraining,  // the run is draining: no new work; exit when told
  kRunOver,   // the run completed or failed: exit
};
std::string_view LeaseOutcomeName(LeaseOutcome o);
bool ParseLeaseOutcome(std::string_view name, LeaseOutcome* out);
template <>
struct EnumTraits<LeaseOutcome> {
  static constexpr std::uint8_t kMax = static_cast<std::uint8_t>(LeaseOutcome::kRunOver);
  static std::string_view Name(LeaseOutcome o) { return LeaseOutcomeName(o); }
  static bool Parse(std::string_view name, LeaseOutcome* out) { return ParseLeaseOutcome(name, out); }
};

struct LeaseGrant {
  LeaseId lease = 0;
  TaskSpec task;
  int attempt = 0;  // 1 for the first attempt
  TimeMs deadline_ms = 0;
  // Where to resume: the task's last committed checkpoint (absent: start from the inputs).
  std::optional<CommittedCheckpoint> resume_from;
  // The final record of each dependency, in TaskSpec::deps order (an align task finds its
  // layer's previous state and its segment's cache files here).
  std::vector<CommittedCheckpoint> inputs;
  bool operator==(const LeaseGrant&) const = default;
};
template <class V>
void VisitFields(V& v, LeaseGrant& g) {
  v.Int("lease", g.lease);
  v.Rec("task", g.task);
  v.Int("attempt", g.attempt);
  v.Int("deadline_ms", g.deadline_ms);
  v.Opt("resume_from", g.resume_from);
  v.Recs("inputs", g.inputs, kMaxListItems);
}

struct LeaseReply {
  LeaseOutcome outcome = LeaseOutcome::kNoWork;
  std::optional<LeaseGrant> grant;
  // Since version 2: cache segments the asking worker should delete (then report each with
  // EvictSegment): the scheduler's eviction decision, handed to whoever asks for work next.
  std::vector<SegmentEviction> evict;
  bool operator==(const LeaseReply&) const = default;
};
template <class V>
void VisitFields(V& v, LeaseReply& r) {
  v.Enum("outcome", r.outcome);
  v.Opt("grant", r.grant);
  if (v.Since(2)) v.Recs("evict", r.evict, kMaxListItems);
}

struct HeartbeatReply {
  TimeMs deadline_ms = 0;  // the renewed deadline
  bool stop = false;       // checkpoint at the next step boundary, Release(), and exit
  std::string stop_reason;
  bool operator==(const HeartbeatReply&) const = default;
};
template <class V>
void VisitFields(V& v, HeartbeatReply& r) {
  v.Int("deadline_ms", r.deadline_ms);
  v.Flag("stop", r.stop);
  v.Str("stop_reason", r.stop_reason, kMaxTextBytes);
}

struct CommitReply {
  std::int64_t tokens_credited = 0;
  bool duplicate = false;  // already committed earlier; nothing new was recorded
  bool operator==(const CommitReply&) const = default;
};
template <class V>
void VisitFields(V& v, CommitReply& r) {
  v.Int("tokens_credited", r.tokens_credited);
  v.Flag("duplicate", r.duplicate);
}

}  // namespace radlads
