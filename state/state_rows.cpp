#include "state/state_rows.h"

#include <cinttypes>
#include <cstdio>
#include <vector>

namespace radlads {

namespace state_keys {

namespace {
std::string Hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}
}  // namespace

std::string Event(std::uint64_t seq) { return std::string(kEventPrefix) + Hex16(seq); }
std::string Plan(std::string_view task) { return "p/" + std::string(task); }
std::string Task(std::string_view task) { return "t/" + std::string(task); }
std::string Lease(LeaseId id) { return "l/" + Hex16(id); }
std::string Worker(std::string_view worker) { return "w/" + std::string(worker); }
std::string Checkpoint(std::string_view task, std::size_t ordinal) {
  return "c/" + std::string(task) + "#" + Hex16(ordinal);
}
std::string Segment(int stage, int segment) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "s/P%04d/S%08d", stage, segment);
  return buf;
}

}  // namespace state_keys

// ---- the rows' record fields, in payload order (found by ADL from contract/codec.h) ----

template <class V>
void VisitFields(V& v, StepLedger& l) {
  v.Int("budget", l.budget);
  v.Int("credited", l.credited);
  if (v.Since(4)) v.Int("redone", l.redone);
}
template <class V>
void VisitFields(V& v, DiscardedCommit& d) {
  v.Int("position", d.position);
  v.Int("step", d.step);
  v.Int("tokens_redone", d.tokens_redone);
  v.Int("at_ms", d.at_ms);
  v.Str("reason", d.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, RunMetrics& m) {
  v.Int("events", m.events);
  v.Int("leases_granted", m.leases_granted);
  v.Int("heartbeats", m.heartbeats);
  v.Int("checkpoints_committed", m.checkpoints_committed);
  v.Int("tasks_completed", m.tasks_completed);
  v.Int("leases_expired", m.leases_expired);
  v.Int("leases_failed", m.leases_failed);
  v.Int("leases_released", m.leases_released);
  v.Int("leases_abandoned", m.leases_abandoned);
  v.Int("workers_lost", m.workers_lost);
  v.Int("segments_evicted", m.segments_evicted);
  v.Int("drains", m.drains);
  v.Int("resumes", m.resumes);
  if (v.Since(4)) v.Int("checkpoints_discarded", m.checkpoints_discarded);
}

template <class V>
void VisitFields(V& v, RunRow& r) {
  v.Rec("config", r.config);
  v.Enum("phase", r.status.phase);
  v.Str("reason", r.status.reason, kMaxTextBytes);
  v.Int("created_ms", r.status.created_ms);
  v.Int("phase_since_ms", r.status.phase_since_ms);
  v.Int("incarnation", r.status.incarnation);
  v.Int("last_seq", r.last_seq);
  v.Int("next_lease_id", r.next_lease);
  v.Rec("metrics", r.metrics);
  if (v.Since(3)) {
    v.Str("cancelled", r.status.cancelled, kMaxTextBytes);
    v.Str("cancelled_job", r.status.cancelled_job, kMaxIdBytes);
    v.Recs("jobs", r.status.jobs, kMaxJobStarts);
    v.Int("job_starts", r.status.job_starts);
  }
}

// The plan row is (index, spec); the task row the rest of the task's record.
template <class V>
void VisitPlanRow(V& v, TaskRecord& t) {
  v.Int("index", t.index);
  v.Rec("task", t.spec);
}
template <class V>
void VisitTaskRow(V& v, TaskRecord& t) {
  v.Enum("state", t.state);
  v.Int("failures", t.failures);
  v.Int("attempt", t.attempt);
  v.Int("lease", t.lease);
  v.Str("worker", t.worker, kMaxIdBytes);
  v.Int("committed_tokens", t.committed_tokens);
  v.Int("checkpoint_step", t.checkpoint_step);
  v.Int("checkpoints", t.checkpoints);
  v.Rec("progress", t.progress);
  v.Int("progress_at_ms", t.progress_at_ms);
  v.Int("changed_at_ms", t.changed_at_ms);
  v.Str("last_error", t.last_error, kMaxTextBytes);
  v.Recs("final_metrics", t.final_metrics, kMaxValues);
  if (v.Since(2)) v.Int("held_lease", t.held_lease);
  if (v.Since(4)) v.Recs("discarded", t.discarded, kMaxListItems);
  if (v.Since(5)) v.Str("reported_error", t.reported_error, kMaxTextBytes);
}

template <class V>
void VisitFields(V& v, LeaseRecord& l) {
  v.Int("id", l.id);
  v.Str("task", l.task, kMaxIdBytes);
  v.Str("worker", l.worker, kMaxIdBytes);
  v.Int("attempt", l.attempt);
  v.Int("granted_ms", l.granted_ms);
  v.Int("deadline_ms", l.deadline_ms);
  v.Int("last_heartbeat_ms", l.last_heartbeat_ms);
  v.Int("heartbeats", l.heartbeats);
}

template <class V>
void VisitFields(V& v, WorkerRecord& w) {
  v.Rec("info", w.info);
  v.Enum("state", w.state);
  v.Int("lease", w.lease);
  v.Int("registered_ms", w.registered_ms);
  v.Int("last_seen_ms", w.last_seen_ms);
  v.Str("lost_reason", w.lost_reason, kMaxTextBytes);
  v.Int("leases", w.leases);
  v.Int("tasks_completed", w.tasks_completed);
}

template <class V>
void VisitFields(V& v, SegmentRecord& s) {
  v.Int("segment", s.segment);
  v.Int("stage", s.stage);
  v.Str("task", s.task, kMaxIdBytes);
  v.Enum("state", s.state);
  v.Int("changed_ms", s.changed_ms);
}


namespace {

// Row kinds: the second byte of every table value (events use 1..63).
enum RowKind : std::uint8_t {
  kRowMeta = 0x40,
  kRowRun = 0x41,
  kRowLedger = 0x42,
  kRowPlan = 0x43,
  kRowTask = 0x44,
  kRowLease = 0x45,
  kRowWorker = 0x46,
  kRowCheckpoint = 0x47,
  kRowSegment = 0x48,
};

// ---- rows that exist only here ----

struct MetaRow {
  std::string magic;
  std::uint64_t schema_version = 0;
};
template <class V>
void VisitFields(V& v, MetaRow& m) {
  v.Str("magic", m.magic, kMaxIdBytes);
  v.Int("schema_version", m.schema_version);
}

struct LayerLedger {
  int layer = 0;
  StepLedger ledger;
};
template <class V>
void VisitFields(V& v, LayerLedger& l) {
  v.Int("layer", l.layer);
  v.Rec("ledger", l.ledger);
}
struct LedgerRow {
  std::vector<StepLedger> by_type;
  std::vector<LayerLedger> align_layers;
};
template <class V>
void VisitFields(V& v, LedgerRow& r) {
  v.Recs("by_type", r.by_type, kMaxListItems);
  v.Recs("align_layers", r.align_layers, kMaxListItems);
}

// ---- framing ----

template <class F>
std::string Encode(RowKind kind, F&& visit) {
  codec::VarintOut w;
  visit(w);
  return state_codec::Frame(kind, w.out());
}

template <class F>
Status Decode(std::string_view value, std::string_view key, RowKind want, const char* what,
              F&& visit) {
  std::uint8_t kind = 0;
  std::string_view payload;
  int version = 0;
  RADLADS_RETURN_IF_ERROR(state_codec::Unframe(value, key, &kind, &payload, &version));
  if (kind != want) {
    return Status::Corruption(std::string(key) + ": row kind " + std::to_string(kind) +
                              ", expected " + std::to_string(want));
  }
  codec::ByteReader r(payload, version);
  codec::VarintIn in(r);
  visit(in);
  return codec::FinishRead(r, std::string(key) + ": " + what);
}

}  // namespace

std::string EncodeMetaRow() {
  MetaRow m{std::string(kStateMagic), kStateSchemaVersion};
  return Encode(kRowMeta, [&](auto& w) { VisitFields(w, m); });
}

std::string EncodeRunRow(const RunRow& row) {
  return Encode(kRowRun, [&](auto& w) { w.Rec("", row); });
}

std::string EncodeLedgerRow(const TokenLedger& l) {
  LedgerRow row;
  row.by_type.assign(l.by_type.begin(), l.by_type.end());
  for (const auto& [layer, s] : l.align_layers) row.align_layers.push_back({layer, s});
  return Encode(kRowLedger, [&](auto& w) { VisitFields(w, row); });
}

std::string EncodePlanRow(const TaskRecord& t) {
  return Encode(kRowPlan, [&](auto& w) { VisitPlanRow(w, const_cast<TaskRecord&>(t)); });
}

std::string EncodeTaskRow(const TaskRecord& t) {
  return Encode(kRowTask, [&](auto& w) { VisitTaskRow(w, const_cast<TaskRecord&>(t)); });
}

std::string EncodeLeaseRow(const LeaseRecord& l) {
  return Encode(kRowLease, [&](auto& w) { w.Rec("", l); });
}

std::string EncodeWorkerRow(const WorkerRecord& wr) {
  return Encode(kRowWorker, [&](auto& w) { w.Rec("", wr); });
}

std::string EncodeCheckpointRow(const CommittedCheckpoint& c) {
  return Encode(kRowCheckpoint, [&](auto& w) { w.Rec("", c); });
}

std::string EncodeSegmentRow(const SegmentRecord& s) {
  return Encode(kRowSegment, [&](auto& w) { w.Rec("", s); });
}

Status DecodeMetaRow(std::string_view value, std::string_view key) {
  MetaRow m;
  RADLADS_RETURN_IF_ERROR(
      Decode(value, key, kRowMeta, "format row", [&](auto& in) { VisitFields(in, m); }));
  if (m.magic != kStateMagic) {
    return Status::Corruption(std::string(key) + ": magic '" + m.magic + "', expected '" +
                              std::string(kStateMagic) + "'");
  }
  if (m.schema_version != kStateSchemaVersion) {
    return Status::Corruption(std::string(key) + ": this state was written with schema version " +
                              std::to_string(m.schema_version) + "; this build reads version " +
                              std::to_string(kStateSchemaVersion));
  }
  return Status::Ok();
}

Status DecodeRunRow(std::string_view value, std::string_view key, RunRow* out) {
  return Decode(value, key, kRowRun, "run row", [&](auto& in) { VisitFields(in, *out); });
}

Status DecodeLedgerRow(std::string_view value, std::string_view key, TokenLedger* out) {
  LedgerRow row;
  RADLADS_RETURN_IF_ERROR(
      Decode(value, key, kRowLedger, "ledger row", [&](auto& in) { VisitFields(in, row); }));
  if (row.by_type.size() != out->by_type.size()) {
    return Status::Corruption(std::string(key) + ": ledger row: by_type has " +
                              std::to_string(row.by_type.size()) + " entries, expected " +
                              std::to_string(out->by_type.size()));
  }
  for (std::size_t i = 0; i < row.by_type.size(); ++i) out->by_type[i] = row.by_type[i];
  out->align_layers.clear();
  for (const LayerLedger& l : row.align_layers) out->align_layers[l.layer] = l.ledger;
  return Status::Ok();
}

Status DecodePlanRow(std::string_view value, std::string_view key, TaskRecord* out) {
  return Decode(value, key, kRowPlan, "plan row", [&](auto& in) { VisitPlanRow(in, *out); });
}

Status DecodeTaskRow(std::string_view value, std::string_view key, TaskRecord* out) {
  return Decode(value, key, kRowTask, "task row", [&](auto& in) { VisitTaskRow(in, *out); });
}

Status DecodeLeaseRow(std::string_view value, std::string_view key, LeaseRecord* out) {
  return Decode(value, key, kRowLease, "lease row", [&](auto& in) { VisitFields(in, *out); });
}

Status DecodeWorkerRow(std::string_view value, std::string_view key, WorkerRecord* out) {
  return Decode(value, key, kRowWorker, "worker row", [&](auto& in) { VisitFields(in, *out); });
}

Status DecodeCheckpointRow(std::string_view value, std::string_view key, CommittedCheckpoint* out) {
  return Decode(value, key, kRowCheckpoint, "checkpoint row",
                [&](auto& in) { VisitFields(in, *out); });
}

Status DecodeSegmentRow(std::string_view value, std::string_view key, SegmentRecord* out) {
  return Decode(value, key, kRowSegment, "segment row", [&](auto& in) { VisitFields(in, *out); });
}

}  // namespace radlads
