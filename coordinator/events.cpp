#include "coordinator/events.h"

#include <array>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "base/checksum.h"

namespace radlads {

static_assert(std::endian::native == std::endian::little, "the state codec assumes little-endian");

std::string_view LeaseEndCauseName(LeaseEndCause c) {
  switch (c) {
    case LeaseEndCause::kExpired: return "expired";
    case LeaseEndCause::kFailed: return "failed";
    case LeaseEndCause::kReleased: return "released";
    case LeaseEndCause::kCoordinatorRestart: return "coordinator_restart";
  }
  return "unknown";
}

namespace {

template <typename T>
constexpr EventKind KindFor() {
  if constexpr (std::is_same_v<T, RunCreated>) return EventKind::kRunCreated;
  else if constexpr (std::is_same_v<T, WorkerRegistered>) return EventKind::kWorkerRegistered;
  else if constexpr (std::is_same_v<T, WorkerLost>) return EventKind::kWorkerLost;
  else if constexpr (std::is_same_v<T, TaskReady>) return EventKind::kTaskReady;
  else if constexpr (std::is_same_v<T, TaskLeased>) return EventKind::kTaskLeased;
  else if constexpr (std::is_same_v<T, TaskProgress>) return EventKind::kTaskProgress;
  else if constexpr (std::is_same_v<T, CheckpointCommitted>) return EventKind::kCheckpointCommitted;
  else if constexpr (std::is_same_v<T, TaskCompleted>) return EventKind::kTaskCompleted;
  else if constexpr (std::is_same_v<T, LeaseEnded>) return EventKind::kLeaseEnded;
  else if constexpr (std::is_same_v<T, TaskFailed>) return EventKind::kTaskFailed;
  else if constexpr (std::is_same_v<T, RunFailed>) return EventKind::kRunFailed;
  else if constexpr (std::is_same_v<T, RunCompleted>) return EventKind::kRunCompleted;
  else if constexpr (std::is_same_v<T, DrainRequested>) return EventKind::kDrainRequested;
  else if constexpr (std::is_same_v<T, DrainCompleted>) return EventKind::kDrainCompleted;
  else if constexpr (std::is_same_v<T, RunResumed>) return EventKind::kRunResumed;
  else if constexpr (std::is_same_v<T, SegmentEvictable>) return EventKind::kSegmentEvictable;
  else {
    static_assert(std::is_same_v<T, SegmentEvicted>);
    return EventKind::kSegmentEvicted;
  }
}

}  // namespace

EventKind KindOf(const EventBody& body) {
  return std::visit([](const auto& b) { return KindFor<std::decay_t<decltype(b)>>(); }, body);
}

std::string_view EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kRunCreated: return "run_created";
    case EventKind::kWorkerRegistered: return "worker_registered";
    case EventKind::kWorkerLost: return "worker_lost";
    case EventKind::kTaskReady: return "task_ready";
    case EventKind::kTaskLeased: return "task_leased";
    case EventKind::kTaskProgress: return "task_progress";
    case EventKind::kCheckpointCommitted: return "checkpoint_committed";
    case EventKind::kTaskCompleted: return "task_completed";
    case EventKind::kLeaseEnded: return "lease_ended";
    case EventKind::kTaskFailed: return "task_failed";
    case EventKind::kRunFailed: return "run_failed";
    case EventKind::kRunCompleted: return "run_completed";
    case EventKind::kDrainRequested: return "drain_requested";
    case EventKind::kDrainCompleted: return "drain_completed";
    case EventKind::kRunResumed: return "run_resumed";
    case EventKind::kSegmentEvictable: return "segment_evictable";
    case EventKind::kSegmentEvicted: return "segment_evicted";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Codec primitives
// ---------------------------------------------------------------------------------------------
namespace state_codec {

void Writer::Varint(std::uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void Writer::Signed(std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  Varint((u << 1) ^ static_cast<std::uint64_t>(v >> 63));
}

void Writer::Fixed64(std::uint64_t v) {
  char buf[8];
  std::memcpy(buf, &v, 8);
  out_.append(buf, 8);
}

void Writer::Double(double v) { Fixed64(std::bit_cast<std::uint64_t>(v)); }

void Writer::String(std::string_view s) {
  Varint(s.size());
  out_.append(s.data(), s.size());
}

void Reader::Fail(std::string msg) {
  if (error_.empty()) error_ = std::move(msg);
  rest_ = {};
}

std::uint8_t Reader::U8(const char* field) {
  if (!ok()) return 0;
  if (rest_.empty()) {
    Fail(std::string("truncated at field '") + field + "'");
    return 0;
  }
  const auto v = static_cast<std::uint8_t>(rest_[0]);
  rest_.remove_prefix(1);
  return v;
}

std::uint64_t Reader::Varint(const char* field) {
  if (!ok()) return 0;
  std::uint64_t v = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (rest_.empty()) {
      Fail(std::string("truncated at field '") + field + "'");
      return 0;
    }
    const auto b = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    if (shift == 63 && b > 1) break;  // more than 64 bits
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  Fail(std::string("varint overflow at field '") + field + "'");
  return 0;
}

std::int64_t Reader::Signed(const char* field) {
  const std::uint64_t u = Varint(field);
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

int Reader::Int(const char* field) {
  const std::int64_t v = Signed(field);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    Fail(std::string("field '") + field + "' out of int range");
    return 0;
  }
  return static_cast<int>(v);
}

double Reader::Double(const char* field) {
  if (!ok()) return 0.0;
  if (rest_.size() < 8) {
    Fail(std::string("truncated at field '") + field + "'");
    return 0.0;
  }
  std::uint64_t u = 0;
  std::memcpy(&u, rest_.data(), 8);
  rest_.remove_prefix(8);
  return std::bit_cast<double>(u);
}

std::string Reader::String(const char* field) {
  const std::uint64_t n = Varint(field);
  if (!ok()) return {};
  if (n > rest_.size()) {
    Fail(std::string("truncated string at field '") + field + "' (length " + std::to_string(n) +
         ", " + std::to_string(rest_.size()) + " bytes left)");
    return {};
  }
  std::string s(rest_.substr(0, n));
  rest_.remove_prefix(n);
  return s;
}

bool Reader::Bool(const char* field) {
  const std::uint8_t b = U8(field);
  if (b > 1) Fail(std::string("field '") + field + "' is not a bool");
  return b == 1;
}

std::size_t Reader::Count(const char* field) {
  const std::uint64_t n = Varint(field);
  if (!ok()) return 0;
  if (n > rest_.size()) {
    Fail(std::string("list length ") + std::to_string(n) + " at field '" + field +
         "' exceeds the " + std::to_string(rest_.size()) + " bytes left");
    return 0;
  }
  return static_cast<std::size_t>(n);
}

std::string Frame(std::uint8_t kind, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<char>(kStateFormatVersion));
  out.push_back(static_cast<char>(kind));
  out.append(payload.data(), payload.size());
  const std::uint64_t sum = Checksum64(std::string_view(out));
  char buf[8];
  std::memcpy(buf, &sum, 8);
  out.append(buf, 8);
  return out;
}

Status Unframe(std::string_view value, std::string_view key, std::uint8_t* kind,
               std::string_view* payload) {
  const std::string k(key);
  if (value.empty()) return Status::Corruption(k + ": empty value");
  const auto version = static_cast<std::uint8_t>(value[0]);
  if (version != kStateFormatVersion) {
    return Status::Corruption(k + ": unsupported state format version " +
                              std::to_string(version) + " (this build reads version " +
                              std::to_string(kStateFormatVersion) + ")");
  }
  if (value.size() < 10) {
    return Status::Corruption(k + ": truncated value (" + std::to_string(value.size()) +
                              " bytes; at least 10 expected)");
  }
  std::uint64_t stored = 0;
  std::memcpy(&stored, value.data() + value.size() - 8, 8);
  const std::uint64_t actual = Checksum64(value.substr(0, value.size() - 8));
  if (stored != actual) {
    return Status::Corruption(k + ": checksum mismatch (stored " + FormatChecksum(stored) +
                              ", computed " + FormatChecksum(actual) +
                              "): the value is truncated or damaged");
  }
  *kind = static_cast<std::uint8_t>(value[1]);
  *payload = value.substr(2, value.size() - 10);
  return Status::Ok();
}

Status Finish(const Reader& r, std::string_view key, std::string_view what) {
  if (!r.ok()) {
    return Status::Corruption(std::string(key) + ": " + std::string(what) + ": " + r.error());
  }
  if (!r.AtEnd()) {
    return Status::Corruption(std::string(key) + ": " + std::string(what) + ": " +
                              std::to_string(r.remaining()) + " trailing bytes");
  }
  return Status::Ok();
}

// ---- shared structs ----

void Put(Writer& w, const TaskSpec& t) {
  w.String(t.id);
  w.U8(static_cast<std::uint8_t>(t.type));
  w.Signed(t.layer);
  w.Signed(t.segment);
  w.Signed(t.stage);
  w.Signed(t.first_layer);
  w.Signed(t.last_layer);
  w.Varint(t.deps.size());
  for (const auto& d : t.deps) w.String(d);
  w.Signed(t.tokens);
  w.Signed(t.sample_begin);
  w.Signed(t.sample_end);
  w.Signed(t.optimizer_steps);
  w.Signed(t.workers);
}

void Get(Reader& r, TaskSpec* t) {
  t->id = r.String("task.id");
  const std::uint8_t type = r.U8("task.type");
  if (r.ok() && type > static_cast<std::uint8_t>(TaskType::kEval)) {
    r.Fail("unknown task type " + std::to_string(type));
  }
  t->type = static_cast<TaskType>(type);
  t->layer = r.Int("task.layer");
  t->segment = r.Int("task.segment");
  t->stage = r.Int("task.stage");
  t->first_layer = r.Int("task.first_layer");
  t->last_layer = r.Int("task.last_layer");
  const std::size_t n = r.Count("task.deps");
  t->deps.clear();
  t->deps.reserve(n);
  for (std::size_t i = 0; i < n && r.ok(); ++i) t->deps.push_back(r.String("task.deps[]"));
  t->tokens = r.Signed("task.tokens");
  t->sample_begin = r.Signed("task.sample_begin");
  t->sample_end = r.Signed("task.sample_end");
  t->optimizer_steps = r.Signed("task.optimizer_steps");
  t->workers = r.Int("task.workers");
}

void Put(Writer& w, const RunConfig& c) {
  w.String(c.run_id);
  w.Signed(c.lease_ttl_ms);
  w.Signed(c.retry_limit);
  w.Signed(c.cache_window);
}

void Get(Reader& r, RunConfig* c) {
  c->run_id = r.String("config.run_id");
  c->lease_ttl_ms = r.Signed("config.lease_ttl_ms");
  c->retry_limit = r.Int("config.retry_limit");
  c->cache_window = r.Int("config.cache_window");
}

void Put(Writer& w, const WorkerInfo& wi) {
  w.String(wi.id);
  w.String(wi.host);
  w.Signed(wi.pid);
  w.Signed(wi.group_size);
  w.Varint(wi.members.size());
  for (const auto& m : wi.members) w.String(m);
  w.Varint(wi.capabilities);
}

void Get(Reader& r, WorkerInfo* wi) {
  wi->id = r.String("worker.id");
  wi->host = r.String("worker.host");
  wi->pid = r.Signed("worker.pid");
  wi->group_size = r.Int("worker.group_size");
  const std::size_t n = r.Count("worker.members");
  wi->members.clear();
  for (std::size_t i = 0; i < n && r.ok(); ++i) wi->members.push_back(r.String("worker.members[]"));
  const std::uint64_t caps = r.Varint("worker.capabilities");
  if (r.ok() && caps > 0xffffffffu) r.Fail("worker.capabilities out of range");
  wi->capabilities = static_cast<std::uint32_t>(caps);
}

void Put(Writer& w, const CheckpointRecord& c) {
  w.Signed(c.step);
  w.Signed(c.tokens_consumed);
  w.Varint(c.files.size());
  for (const auto& f : c.files) {
    w.String(f.path);
    w.Signed(f.bytes);
    w.String(f.checksum);
  }
}

void Get(Reader& r, CheckpointRecord* c) {
  c->step = r.Signed("checkpoint.step");
  c->tokens_consumed = r.Signed("checkpoint.tokens_consumed");
  const std::size_t n = r.Count("checkpoint.files");
  c->files.clear();
  c->files.reserve(n);
  for (std::size_t i = 0; i < n && r.ok(); ++i) {
    FileRecord f;
    f.path = r.String("checkpoint.files[].path");
    f.bytes = r.Signed("checkpoint.files[].bytes");
    f.checksum = r.String("checkpoint.files[].checksum");
    c->files.push_back(std::move(f));
  }
}

void Put(Writer& w, const std::vector<NamedValue>& v) {
  w.Varint(v.size());
  for (const auto& nv : v) {
    w.String(nv.name);
    w.Double(nv.value);
  }
}

void Get(Reader& r, std::vector<NamedValue>* v) {
  const std::size_t n = r.Count("values");
  v->clear();
  for (std::size_t i = 0; i < n && r.ok(); ++i) {
    NamedValue nv;
    nv.name = r.String("values[].name");
    nv.value = r.Double("values[].value");
    v->push_back(std::move(nv));
  }
}

void Put(Writer& w, const Progress& p) {
  w.Signed(p.tokens);
  w.Signed(p.step);
  Put(w, p.losses);
  w.Double(p.throughput);
}

void Get(Reader& r, Progress* p) {
  p->tokens = r.Signed("progress.tokens");
  p->step = r.Signed("progress.step");
  Get(r, &p->losses);
  p->throughput = r.Double("progress.throughput");
}

}  // namespace state_codec

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------
namespace {

using state_codec::Get;
using state_codec::Put;
using state_codec::Reader;
using state_codec::Writer;

void PutBody(Writer& w, const RunCreated& e) {
  Put(w, e.config);
  w.Varint(e.tasks.size());
  for (const auto& t : e.tasks) Put(w, t);
}
void GetBody(Reader& r, RunCreated* e) {
  Get(r, &e->config);
  const std::size_t n = r.Count("tasks");
  e->tasks.resize(n);
  for (std::size_t i = 0; i < n && r.ok(); ++i) Get(r, &e->tasks[i]);
}
void PutBody(Writer& w, const WorkerRegistered& e) { Put(w, e.worker); }
void GetBody(Reader& r, WorkerRegistered* e) { Get(r, &e->worker); }
void PutBody(Writer& w, const WorkerLost& e) {
  w.String(e.worker);
  w.String(e.reason);
}
void GetBody(Reader& r, WorkerLost* e) {
  e->worker = r.String("worker");
  e->reason = r.String("reason");
}
void PutBody(Writer& w, const TaskReady& e) { w.String(e.task); }
void GetBody(Reader& r, TaskReady* e) { e->task = r.String("task"); }
void PutBody(Writer& w, const TaskLeased& e) {
  w.String(e.task);
  w.Varint(e.lease);
  w.String(e.worker);
  w.Signed(e.attempt);
  w.Signed(e.deadline_ms);
}
void GetBody(Reader& r, TaskLeased* e) {
  e->task = r.String("task");
  e->lease = r.Varint("lease");
  e->worker = r.String("worker");
  e->attempt = r.Int("attempt");
  e->deadline_ms = r.Signed("deadline_ms");
}
void PutBody(Writer& w, const TaskProgress& e) {
  w.String(e.task);
  w.Varint(e.lease);
  w.Signed(e.deadline_ms);
  Put(w, e.progress);
}
void GetBody(Reader& r, TaskProgress* e) {
  e->task = r.String("task");
  e->lease = r.Varint("lease");
  e->deadline_ms = r.Signed("deadline_ms");
  Get(r, &e->progress);
}
void PutBody(Writer& w, const CheckpointCommitted& e) {
  w.String(e.task);
  w.Varint(e.lease);
  Put(w, e.checkpoint);
  w.Signed(e.tokens_credited);
}
void GetBody(Reader& r, CheckpointCommitted* e) {
  e->task = r.String("task");
  e->lease = r.Varint("lease");
  Get(r, &e->checkpoint);
  e->tokens_credited = r.Signed("tokens_credited");
}
void PutBody(Writer& w, const TaskCompleted& e) {
  w.String(e.task);
  w.Varint(e.lease);
  Put(w, e.final_record.checkpoint);
  Put(w, e.final_record.metrics);
  w.Signed(e.tokens_credited);
}
void GetBody(Reader& r, TaskCompleted* e) {
  e->task = r.String("task");
  e->lease = r.Varint("lease");
  Get(r, &e->final_record.checkpoint);
  Get(r, &e->final_record.metrics);
  e->tokens_credited = r.Signed("tokens_credited");
}
void PutBody(Writer& w, const LeaseEnded& e) {
  w.String(e.task);
  w.Varint(e.lease);
  w.U8(static_cast<std::uint8_t>(e.cause));
  w.String(e.reason);
}
void GetBody(Reader& r, LeaseEnded* e) {
  e->task = r.String("task");
  e->lease = r.Varint("lease");
  const std::uint8_t cause = r.U8("cause");
  if (r.ok() && cause > static_cast<std::uint8_t>(LeaseEndCause::kCoordinatorRestart)) {
    r.Fail("unknown lease end cause " + std::to_string(cause));
  }
  e->cause = static_cast<LeaseEndCause>(cause);
  e->reason = r.String("reason");
}
void PutBody(Writer& w, const TaskFailed& e) {
  w.String(e.task);
  w.String(e.reason);
}
void GetBody(Reader& r, TaskFailed* e) {
  e->task = r.String("task");
  e->reason = r.String("reason");
}
void PutBody(Writer& w, const RunFailed& e) { w.String(e.reason); }
void GetBody(Reader& r, RunFailed* e) { e->reason = r.String("reason"); }
void PutBody(Writer&, const RunCompleted&) {}
void GetBody(Reader&, RunCompleted*) {}
void PutBody(Writer& w, const DrainRequested& e) { w.String(e.reason); }
void GetBody(Reader& r, DrainRequested* e) { e->reason = r.String("reason"); }
void PutBody(Writer&, const DrainCompleted&) {}
void GetBody(Reader&, DrainCompleted*) {}
void PutBody(Writer& w, const RunResumed& e) { w.String(e.note); }
void GetBody(Reader& r, RunResumed* e) { e->note = r.String("note"); }
void PutBody(Writer& w, const SegmentEvictable& e) {
  w.Signed(e.segment);
  w.Signed(e.stage);
}
void GetBody(Reader& r, SegmentEvictable* e) {
  e->segment = r.Int("segment");
  e->stage = r.Int("stage");
}
void PutBody(Writer& w, const SegmentEvicted& e) {
  w.Signed(e.segment);
  w.Signed(e.stage);
}
void GetBody(Reader& r, SegmentEvicted* e) {
  e->segment = r.Int("segment");
  e->stage = r.Int("stage");
}

template <typename T>
void DecodeAs(Reader& r, EventBody* body) {
  T v;
  GetBody(r, &v);
  *body = std::move(v);
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::string EncodeEvent(const Event& e) {
  Writer w;
  w.Signed(e.at_ms);
  std::visit([&](const auto& b) { PutBody(w, b); }, e.body);
  return state_codec::Frame(static_cast<std::uint8_t>(KindOf(e.body)), w.out());
}

Status DecodeEvent(std::string_view value, std::string_view key, Event* out) {
  std::uint8_t kind = 0;
  std::string_view payload;
  RADLADS_RETURN_IF_ERROR(state_codec::Unframe(value, key, &kind, &payload));
  Reader r(payload);
  out->at_ms = r.Signed("at_ms");
  switch (static_cast<EventKind>(kind)) {
    case EventKind::kRunCreated: DecodeAs<RunCreated>(r, &out->body); break;
    case EventKind::kWorkerRegistered: DecodeAs<WorkerRegistered>(r, &out->body); break;
    case EventKind::kWorkerLost: DecodeAs<WorkerLost>(r, &out->body); break;
    case EventKind::kTaskReady: DecodeAs<TaskReady>(r, &out->body); break;
    case EventKind::kTaskLeased: DecodeAs<TaskLeased>(r, &out->body); break;
    case EventKind::kTaskProgress: DecodeAs<TaskProgress>(r, &out->body); break;
    case EventKind::kCheckpointCommitted: DecodeAs<CheckpointCommitted>(r, &out->body); break;
    case EventKind::kTaskCompleted: DecodeAs<TaskCompleted>(r, &out->body); break;
    case EventKind::kLeaseEnded: DecodeAs<LeaseEnded>(r, &out->body); break;
    case EventKind::kTaskFailed: DecodeAs<TaskFailed>(r, &out->body); break;
    case EventKind::kRunFailed: DecodeAs<RunFailed>(r, &out->body); break;
    case EventKind::kRunCompleted: DecodeAs<RunCompleted>(r, &out->body); break;
    case EventKind::kDrainRequested: DecodeAs<DrainRequested>(r, &out->body); break;
    case EventKind::kDrainCompleted: DecodeAs<DrainCompleted>(r, &out->body); break;
    case EventKind::kRunResumed: DecodeAs<RunResumed>(r, &out->body); break;
    case EventKind::kSegmentEvictable: DecodeAs<SegmentEvictable>(r, &out->body); break;
    case EventKind::kSegmentEvicted: DecodeAs<SegmentEvicted>(r, &out->body); break;
    default:
      return Status::Corruption(std::string(key) + ": unknown event kind " + std::to_string(kind));
  }
  return state_codec::Finish(
      r, key, std::string(EventKindName(static_cast<EventKind>(kind))) + " event");
}

std::string DescribeEvent(const Event& e) {
  char head[96];
  std::snprintf(head, sizeof(head), "#%" PRIu64 " @%" PRId64 " ", e.seq, e.at_ms);
  std::string out = head;
  out += EventKindName(KindOf(e.body));
  auto num = [](std::int64_t v) { return std::to_string(v); };
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, RunCreated>) {
          out += " run=" + Quote(b.config.run_id) + " tasks=" + num(b.tasks.size()) +
                 " ttl_ms=" + num(b.config.lease_ttl_ms) +
                 " retry_limit=" + num(b.config.retry_limit) +
                 " cache_window=" + num(b.config.cache_window);
        } else if constexpr (std::is_same_v<T, WorkerRegistered>) {
          out += " worker=" + Quote(b.worker.id) + " host=" + Quote(b.worker.host) +
                 " group_size=" + num(b.worker.group_size);
        } else if constexpr (std::is_same_v<T, WorkerLost>) {
          out += " worker=" + Quote(b.worker) + " reason=" + Quote(b.reason);
        } else if constexpr (std::is_same_v<T, TaskReady>) {
          out += " task=" + b.task;
        } else if constexpr (std::is_same_v<T, TaskLeased>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " worker=" + Quote(b.worker) + " attempt=" + num(b.attempt) +
                 " deadline=" + num(b.deadline_ms);
        } else if constexpr (std::is_same_v<T, TaskProgress>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " tokens=" + num(b.progress.tokens) + " step=" + num(b.progress.step);
        } else if constexpr (std::is_same_v<T, CheckpointCommitted>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " step=" + num(b.checkpoint.step) +
                 " tokens=" + num(b.checkpoint.tokens_consumed) +
                 " credited=" + num(b.tokens_credited);
        } else if constexpr (std::is_same_v<T, TaskCompleted>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " tokens=" + num(b.final_record.checkpoint.tokens_consumed) +
                 " credited=" + num(b.tokens_credited);
        } else if constexpr (std::is_same_v<T, LeaseEnded>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " cause=" + std::string(LeaseEndCauseName(b.cause)) + " reason=" +
                 Quote(b.reason);
        } else if constexpr (std::is_same_v<T, TaskFailed>) {
          out += " task=" + b.task + " reason=" + Quote(b.reason);
        } else if constexpr (std::is_same_v<T, RunFailed> || std::is_same_v<T, DrainRequested>) {
          out += " reason=" + Quote(b.reason);
        } else if constexpr (std::is_same_v<T, RunResumed>) {
          out += " note=" + Quote(b.note);
        } else if constexpr (std::is_same_v<T, SegmentEvictable> ||
                             std::is_same_v<T, SegmentEvicted>) {
          out += " segment=" + num(b.segment) + " stage=" + num(b.stage);
        }
      },
      e.body);
  return out;
}

}  // namespace radlads
