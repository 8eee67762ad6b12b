#include "state/events.h"

#include <array>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "base/checksum.h"
#include "contract/codec.h"

namespace radlads {

static_assert(std::endian::native == std::endian::little, "the state codec assumes little-endian");

std::string_view LeaseEndCauseName(LeaseEndCause c) {
  switch (c) {
    case LeaseEndCause::kExpired: return "expired";
    case LeaseEndCause::kFailed: return "failed";
    case LeaseEndCause::kReleased: return "released";
    case LeaseEndCause::kCoordinatorRestart: return "coordinator_restart";
    case LeaseEndCause::kWorkerRestarted: return "worker_restarted";
  }
  return "unknown";
}

bool ParseLeaseEndCause(std::string_view name, LeaseEndCause* out) {
  for (auto c : {LeaseEndCause::kExpired, LeaseEndCause::kFailed, LeaseEndCause::kReleased,
                 LeaseEndCause::kCoordinatorRestart, LeaseEndCause::kWorkerRestarted}) {
    if (LeaseEndCauseName(c) == name) {
      *out = c;
      return true;
    }
  }
  return false;
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
  else if constexpr (std::is_same_v<T, RunRelaid>) return EventKind::kRunRelaid;
  else if constexpr (std::is_same_v<T, JobStarted>) return EventKind::kJobStarted;
  else if constexpr (std::is_same_v<T, RunCancelled>) return EventKind::kRunCancelled;
  else if constexpr (std::is_same_v<T, RunReopened>) return EventKind::kRunReopened;
  else if constexpr (std::is_same_v<T, CheckpointDiscarded>) return EventKind::kCheckpointDiscarded;
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
    case EventKind::kRunRelaid: return "run_relaid";
    case EventKind::kJobStarted: return "job_started";
    case EventKind::kRunCancelled: return "run_cancelled";
    case EventKind::kRunReopened: return "run_reopened";
    case EventKind::kCheckpointDiscarded: return "checkpoint_discarded";
  }
  return "unknown";
}

namespace state_codec {

std::string Frame(std::uint8_t kind, std::string_view payload, int version) {
  std::string out;
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<char>(version));
  out.push_back(static_cast<char>(kind));
  out.append(payload.data(), payload.size());
  const std::uint64_t sum = Checksum64(std::string_view(out));
  char buf[8];
  std::memcpy(buf, &sum, 8);
  out.append(buf, 8);
  return out;
}

Status Unframe(std::string_view value, std::string_view key, std::uint8_t* kind,
               std::string_view* payload, int* version_out) {
  const std::string k(key);
  if (value.empty()) return Status::Corruption(k + ": empty value");
  const auto version = static_cast<std::uint8_t>(value[0]);
  if (version < 1 || version > kStateFormatVersion) {
    return Status::Corruption(k + ": state format version " + std::to_string(version) +
                              "; this build reads versions 1 to " +
                              std::to_string(kStateFormatVersion));
  }
  if (version_out != nullptr) *version_out = version;
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

}  // namespace state_codec

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------
namespace {

template <typename T>
void DecodeAs(codec::VarintIn& in, EventBody* body) {
  T v;
  VisitFields(in, v);
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

std::string EncodeEvent(const Event& e, int version) {
  codec::VarintOut w(version);
  w.ZigZag(e.at_ms);
  std::visit([&](const auto& b) { w.Rec("", b); }, e.body);
  return state_codec::Frame(static_cast<std::uint8_t>(KindOf(e.body)), w.out(), version);
}

Status DecodeEvent(std::string_view value, std::string_view key, Event* out) {
  std::uint8_t kind = 0;
  std::string_view payload;
  int version = 0;
  RADLADS_RETURN_IF_ERROR(state_codec::Unframe(value, key, &kind, &payload, &version));
  codec::ByteReader r(payload, version);
  out->at_ms = r.ZigZag("at_ms");
  codec::VarintIn in(r);
  switch (static_cast<EventKind>(kind)) {
    case EventKind::kRunCreated: DecodeAs<RunCreated>(in, &out->body); break;
    case EventKind::kWorkerRegistered: DecodeAs<WorkerRegistered>(in, &out->body); break;
    case EventKind::kWorkerLost: DecodeAs<WorkerLost>(in, &out->body); break;
    case EventKind::kTaskReady: DecodeAs<TaskReady>(in, &out->body); break;
    case EventKind::kTaskLeased: DecodeAs<TaskLeased>(in, &out->body); break;
    case EventKind::kTaskProgress: DecodeAs<TaskProgress>(in, &out->body); break;
    case EventKind::kCheckpointCommitted: DecodeAs<CheckpointCommitted>(in, &out->body); break;
    case EventKind::kTaskCompleted: DecodeAs<TaskCompleted>(in, &out->body); break;
    case EventKind::kLeaseEnded: DecodeAs<LeaseEnded>(in, &out->body); break;
    case EventKind::kTaskFailed: DecodeAs<TaskFailed>(in, &out->body); break;
    case EventKind::kRunFailed: DecodeAs<RunFailed>(in, &out->body); break;
    case EventKind::kRunCompleted: DecodeAs<RunCompleted>(in, &out->body); break;
    case EventKind::kDrainRequested: DecodeAs<DrainRequested>(in, &out->body); break;
    case EventKind::kDrainCompleted: DecodeAs<DrainCompleted>(in, &out->body); break;
    case EventKind::kRunResumed: DecodeAs<RunResumed>(in, &out->body); break;
    case EventKind::kSegmentEvictable: DecodeAs<SegmentEvictable>(in, &out->body); break;
    case EventKind::kSegmentEvicted: DecodeAs<SegmentEvicted>(in, &out->body); break;
    case EventKind::kRunRelaid: DecodeAs<RunRelaid>(in, &out->body); break;
    case EventKind::kJobStarted: DecodeAs<JobStarted>(in, &out->body); break;
    case EventKind::kRunCancelled: DecodeAs<RunCancelled>(in, &out->body); break;
    case EventKind::kRunReopened: DecodeAs<RunReopened>(in, &out->body); break;
    case EventKind::kCheckpointDiscarded: DecodeAs<CheckpointDiscarded>(in, &out->body); break;
    default:
      return Status::Corruption(std::string(key) + ": unknown event kind " + std::to_string(kind));
  }
  return codec::FinishRead(
      r, std::string(key) + ": " + std::string(EventKindName(static_cast<EventKind>(kind))) + " event");
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
        } else if constexpr (std::is_same_v<T, RunResumed> || std::is_same_v<T, RunReopened>) {
          out += " note=" + Quote(b.note);
        } else if constexpr (std::is_same_v<T, SegmentEvictable> ||
                             std::is_same_v<T, SegmentEvicted>) {
          out += " segment=" + num(b.segment) + " stage=" + num(b.stage);
        } else if constexpr (std::is_same_v<T, RunRelaid>) {
          out += " ttl_ms=" + num(b.lease_ttl_ms);
          for (const GangSize& g : b.gangs) out += " " + g.task + "=" + num(g.workers);
        } else if constexpr (std::is_same_v<T, JobStarted>) {
          out += " " + b.job.scheduler + "_job=" + Quote(b.job.job_id) + " restart=" + num(b.job.restart) +
                 " nodes=" + Quote(b.job.nodes) + " progress=" + num(b.job.progress);
          if (!b.job.refused.empty()) out += " refused=" + Quote(b.job.refused);
        } else if constexpr (std::is_same_v<T, RunCancelled>) {
          out += " reason=" + Quote(b.reason) + " job=" + Quote(b.job_id);
        } else if constexpr (std::is_same_v<T, CheckpointDiscarded>) {
          out += " task=" + b.task + " lease=" + num(static_cast<std::int64_t>(b.lease)) +
                 " step=" + num(b.step) + " tokens=" + num(b.tokens_consumed) +
                 " redone=" + num(b.tokens_redone) + " reason=" + Quote(b.reason);
        }
      },
      e.body);
  return out;
}

}  // namespace radlads
