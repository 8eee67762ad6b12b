// BuildStatusReport (state -> report) and the JSON document (report <-> schema 1). The table is
// in status_table.cpp, the Prometheus text in status_metrics.cpp.
#include "status/status_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

namespace radlads {
namespace {

constexpr TaskType kProtocolOrder[] = {TaskType::kTransfer, TaskType::kCache,  TaskType::kAlign,
                                       TaskType::kDistill,  TaskType::kFinetune, TaskType::kExport,
                                       TaskType::kEval};

const char* StepLabel(TaskType t) {
  switch (t) {
    case TaskType::kTransfer: return "step 0 transfer";
    case TaskType::kCache: return "step 1 cache";
    case TaskType::kAlign: return "step 1 align";
    case TaskType::kDistill: return "step 2 distill";
    case TaskType::kFinetune: return "step 3 finetune";
    case TaskType::kExport: return "export";
    case TaskType::kEval: return "eval";
  }
  return "?";
}

void Count(StatusTaskCounts* c, TaskState s) {
  ++c->total;
  switch (s) {
    case TaskState::kBlocked: ++c->blocked; break;
    case TaskState::kReady: ++c->ready; break;
    case TaskState::kLeased: ++c->leased; break;
    case TaskState::kDone: ++c->done; break;
    case TaskState::kFailed: ++c->failed; break;
  }
}

double Seconds(TimeMs ms) { return static_cast<double>(ms) / 1000.0; }

// What a leased task reports beyond its commits, and how fast, from the state's timestamps.
struct LiveFigures {
  bool live = false;             // leased, and its last progress belongs to this lease
  std::int64_t in_flight = 0;    // heartbeat cursor - committed cursor (>= 0)
  double tokens_per_s = 0.0;
};

LiveFigures Live(const RunState& s, int index) {
  LiveFigures f;
  const TaskRecord& t = s.tasks()[index];
  if (t.state != TaskState::kLeased) return f;
  const LeaseRecord* l = s.FindLease(t.lease);
  if (l == nullptr || t.progress_at_ms < l->granted_ms || t.progress_at_ms == 0) return f;
  f.live = true;
  f.in_flight = std::max<std::int64_t>(0, t.progress.tokens - t.committed_tokens);
  // Cursor at the grant: the last commit made before this lease (retries resume there).
  std::int64_t start = 0;
  const auto& list = s.Checkpoints(index);
  for (std::size_t k = 0; k < list.size(); ++k) {
    if (list[k].lease != t.lease && !s.IsDiscarded(index, k)) start = list[k].record.tokens_consumed;
  }
  const TimeMs elapsed = t.progress_at_ms - l->granted_ms;
  if (elapsed > 0 && t.progress.tokens > start) {
    f.tokens_per_s = static_cast<double>(t.progress.tokens - start) / Seconds(elapsed);
  } else {
    f.tokens_per_s = t.progress.throughput;
  }
  return f;
}

// The most recent losses among a set of tasks: heartbeat losses or final metrics.
struct Latest {
  std::vector<NamedValue> values;
  TimeMs at_ms = 0;
  void Offer(const std::vector<NamedValue>& v, TimeMs at) {
    if (!v.empty() && at >= at_ms) {
      values = v;
      at_ms = at;
    }
  }
  void OfferTask(const TaskRecord& t) {
    if (t.progress_at_ms > 0) Offer(t.progress.losses, t.progress_at_ms);
    if (t.state == TaskState::kDone) Offer(t.final_metrics, t.changed_at_ms);
  }
};

std::string StepState(const StatusTaskCounts& c) {
  if (c.failed > 0) return "failed";
  if (c.total > 0 && c.done == c.total) return "done";
  if (c.leased > 0) return "running";
  if (c.done > 0) return "waiting";
  return "pending";
}

}  // namespace

StatusReport BuildStatusReport(const RunState& s, TimeMs now) {
  StatusReport r;
  r.now_ms = now;
  const RunStatus& st = s.status();
  r.run.id = s.config().run_id;
  r.run.phase = std::string(RunPhaseName(st.phase));
  r.run.reason = st.reason;
  r.run.created_ms = st.created_ms;
  r.run.phase_since_ms = st.phase_since_ms;
  r.run.incarnation = st.incarnation;
  r.run.cancelled = st.cancelled;
  r.run.cancelled_job = st.cancelled_job;
  r.slurm.starts = st.job_starts;
  if (!st.jobs.empty()) {
    const JobStart& j = st.jobs.back();
    r.slurm.job_id = j.job_id;
    r.slurm.restart = j.restart;
    r.slurm.nodes = j.nodes;
    r.slurm.end_ms = j.end_ms;
    r.slurm.refused = j.refused;
  }
  r.run.last_seq = s.last_seq();
  r.run.lease_ttl_ms = s.config().lease_ttl_ms;
  r.run.retry_limit = s.config().retry_limit;
  r.run.cache_window = s.config().cache_window;
  r.metrics = s.metrics();

  // ---- per step ----
  std::map<TaskType, StatusStep> steps;
  std::map<TaskType, Latest> step_losses;
  std::map<int, StatusLayer> layers;
  std::map<int, Latest> layer_losses;
  std::map<int, bool> layer_current_seen;  // the first align task not done (plan order)
  const auto& tasks = s.tasks();
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const TaskRecord& t = tasks[i];
    Count(&r.tasks, t.state);
    StatusStep& step = steps[t.spec.type];
    Count(&step.tasks, t.state);
    const LiveFigures live = Live(s, static_cast<int>(i));
    step.work_in_flight += live.in_flight;
    step.tokens_per_s += live.tokens_per_s;
    step_losses[t.spec.type].OfferTask(t);
    if (t.spec.type == TaskType::kAlign) {
      StatusLayer& L = layers[t.spec.layer];
      L.layer = t.spec.layer;
      ++L.segments_total;
      if (t.state == TaskState::kDone) ++L.segments_done;
      if (t.state == TaskState::kFailed) L.state = "failed";
      if (t.state == TaskState::kLeased) {
        L.task = t.spec.id;
        L.tokens_in_flight += live.in_flight;
      }
      // The layer's current task: its first one not done (plan order is segment order).
      if (t.state != TaskState::kDone && !layer_current_seen[t.spec.layer]) {
        layer_current_seen[t.spec.layer] = true;
        L.failures = t.failures;
      }
      layer_losses[t.spec.layer].OfferTask(t);
    }
  }
  const TokenLedger& ledger = s.ledger();
  for (TaskType type : kProtocolOrder) {
    auto it = steps.find(type);
    if (it == steps.end()) continue;
    StatusStep& step = it->second;
    step.name = std::string(TaskTypeName(type));
    step.label = StepLabel(type);
    step.state = StepState(step.tasks);
    if (type == TaskType::kAlign) {
      step.tokens_budget = ledger.AlignBudget();
      step.tokens_used = ledger.AlignMinTokens();
      step.work_budget = ledger.Of(type).budget;
      step.work_done = ledger.Of(type).credited;
    } else {
      step.tokens_budget = ledger.Of(type).budget;
      step.tokens_used = ledger.Of(type).credited;
      step.work_budget = step.tokens_budget;
      step.work_done = step.tokens_used;
    }
    step.work_redone = ledger.Of(type).redone;
    step.has_tokens = step.work_budget > 0;
    if (step.has_tokens) {
      step.fraction = static_cast<double>(step.work_done) / static_cast<double>(step.work_budget);
    } else {
      step.fraction = step.tasks.total > 0 ? static_cast<double>(step.tasks.done) /
                                                 static_cast<double>(step.tasks.total)
                                           : 0.0;
    }
    if (step.has_tokens && step.tasks.leased > 0 && step.tokens_per_s > 0.0) {
      const double left = static_cast<double>(
          std::max<std::int64_t>(0, step.work_budget - step.work_done - step.work_in_flight));
      step.eta_s = left / step.tokens_per_s;
    }
    if (type == TaskType::kAlign) {
      // The step's losses: per name, the mean over layers of each layer's latest value.
      std::vector<std::string> names;
      std::map<std::string, std::pair<double, int>> sums;
      TimeMs at = 0;
      for (const auto& [layer, latest] : layer_losses) {
        at = std::max(at, latest.at_ms);
        for (const NamedValue& v : latest.values) {
          auto [pos, inserted] = sums.try_emplace(v.name, 0.0, 0);
          if (inserted) names.push_back(v.name);
          pos->second.first += v.value;
          ++pos->second.second;
        }
      }
      for (const std::string& n : names) {
        step.losses.push_back({n, sums[n].first / sums[n].second});
      }
      step.losses_at_ms = at;
    } else {
      step.losses = step_losses[type].values;
      step.losses_at_ms = step_losses[type].at_ms;
    }
    r.steps.push_back(std::move(step));
  }

  // ---- step 1 per layer ----
  for (auto& [layer, L] : layers) {
    auto lit = ledger.align_layers.find(layer);
    if (lit != ledger.align_layers.end()) {
      L.tokens_budget = lit->second.budget;
      L.tokens_credited = lit->second.credited;
    }
    if (L.state.empty()) {
      if (L.segments_done == L.segments_total) {
        L.state = "done";
      } else if (!L.task.empty()) {
        L.state = "training";
      } else {
        L.state = "waiting";
      }
    }
    L.losses = layer_losses[layer].values;
    L.losses_at_ms = layer_losses[layer].at_ms;
    r.align_segments = std::max(r.align_segments, L.segments_total);
    r.layers.push_back(std::move(L));
  }

  // ---- workers and leases ----
  for (const auto& [id, w] : s.workers()) {
    StatusWorker o;
    o.id = id;
    o.host = w.info.host;
    o.pid = w.info.pid;
    o.group_size = w.info.group_size;
    o.rank = w.info.rank;
    o.gang = w.info.gang;
    o.device = w.info.device;
    o.memory_bytes = w.info.memory_bytes;
    o.state = std::string(WorkerStateName(w.state));
    o.lease = w.lease;
    if (const LeaseRecord* l = w.lease != 0 ? s.FindLease(w.lease) : nullptr) {
      o.task = l->task;
      if (const TaskRecord* t = s.FindTask(l->task); t != nullptr && t->lease == w.lease) {
        o.tokens_per_s = t->progress.throughput;
      }
    }
    o.last_seen_ms = w.last_seen_ms;
    o.since_seen_s = Seconds(now - w.last_seen_ms);
    o.leases = w.leases;
    o.tasks_completed = w.tasks_completed;
    o.lost_reason = w.lost_reason;
    ++r.workers.total;
    switch (w.state) {
      case WorkerState::kIdle: ++r.workers.idle; break;
      case WorkerState::kBusy:
        ++r.workers.busy;
        r.workers.max_busy_since_seen_s = std::max(r.workers.max_busy_since_seen_s, o.since_seen_s);
        break;
      case WorkerState::kLost: ++r.workers.lost; break;
    }
    r.workers.list.push_back(std::move(o));
  }
  for (const auto& [id, l] : s.leases()) {
    StatusLease o;
    o.id = id;
    o.task = l.task;
    o.worker = l.worker;
    o.attempt = l.attempt;
    o.granted_ms = l.granted_ms;
    o.deadline_ms = l.deadline_ms;
    o.last_heartbeat_ms = l.last_heartbeat_ms;
    o.heartbeats = l.heartbeats;
    o.deadline_in_s = Seconds(l.deadline_ms - now);
    r.leases.push_back(std::move(o));
  }

  // ---- failures ----
  std::vector<std::pair<int, StatusFailure>> fails;  // (plan index, failure)
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const TaskRecord& t = tasks[i];
    if (t.failures == 0 && t.state != TaskState::kFailed) continue;
    StatusFailure f;
    f.task = t.spec.id;
    f.state = std::string(TaskStateName(t.state));
    f.failures = t.failures;
    f.attempt = t.attempt;
    f.max_attempts = s.config().retry_limit + 1;
    f.last_error = t.last_error;
    f.changed_ms = t.changed_at_ms;
    fails.emplace_back(static_cast<int>(i), std::move(f));
  }
  // Failed for good first, then tasks still retrying, then retried and done; within each, the
  // most failures, then the most recent.
  auto group = [](const StatusFailure& f) { return f.state == "failed" ? 0 : f.state != "done" ? 1 : 2; };
  std::stable_sort(fails.begin(), fails.end(), [&](const auto& a, const auto& b) {
    if (group(a.second) != group(b.second)) return group(a.second) < group(b.second);
    if (a.second.failures != b.second.failures) return a.second.failures > b.second.failures;
    if (a.second.changed_ms != b.second.changed_ms) return a.second.changed_ms > b.second.changed_ms;
    return a.first < b.first;
  });
  for (auto& [i, f] : fails) r.failures.push_back(std::move(f));

  // ---- checkpoint fallbacks ----
  for (const TaskRecord& t : tasks) {
    for (const DiscardedCommit& d : t.discarded) {
      r.fallbacks.push_back(StatusFallback{t.spec.id, d.step, d.tokens_redone, d.reason, d.at_ms});
    }
  }
  std::stable_sort(r.fallbacks.begin(), r.fallbacks.end(),
                   [](const StatusFallback& a, const StatusFallback& b) { return a.at_ms > b.at_ms; });

  // ---- drain ----
  r.drain.phase = r.run.phase;
  r.drain.active = st.phase == RunPhase::kDraining || st.phase == RunPhase::kDrained;
  if (r.drain.active) {
    r.drain.reason = st.reason;
    r.drain.since_ms = st.phase_since_ms;
  }
  r.drain.leases_outstanding = static_cast<int>(s.leases().size());

  // ---- cache window ----
  std::map<int, StatusCacheStage> stages;
  for (const auto& [key, seg] : s.segments()) {
    StatusCacheStage& c = stages[seg.stage];
    c.stage = seg.stage;
    c.window = s.config().cache_window;
    ++c.segments;
    if (HoldsWindowSlot(seg.state)) ++c.slots_used;
    switch (seg.state) {
      case SegmentState::kPending: ++c.pending; break;
      case SegmentState::kProducing: ++c.producing; break;
      case SegmentState::kResident: ++c.resident; break;
      case SegmentState::kEvictable: ++c.evictable; break;
      case SegmentState::kEvicted: ++c.evicted; break;
    }
  }
  for (auto& [stage, c] : stages) r.cache.push_back(c);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Formatters
// ---------------------------------------------------------------------------------------------

std::string FormatAge(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  const bool neg = seconds < 0;
  const double a = std::fabs(seconds);
  char buf[48];
  if (a < 10.0) {
    std::snprintf(buf, sizeof(buf), "%.1f s", a);
  } else if (a < 100.0) {
    std::snprintf(buf, sizeof(buf), "%.0f s", a);
  } else {
    const auto total = static_cast<long long>(a + 0.5);
    const long long d = total / 86400, h = (total / 3600) % 24, m = (total / 60) % 60,
                    sec = total % 60;
    if (d > 0) {
      std::snprintf(buf, sizeof(buf), "%lldd %lld:%02lld:%02lld", d, h, m, sec);
    } else if (h > 0) {
      std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", h, m, sec);
    } else {
      std::snprintf(buf, sizeof(buf), "%lld:%02lld", m, sec);
    }
  }
  return neg ? std::string("-") + buf : std::string(buf);
}

std::string FormatUtc(TimeMs ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "?";
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// JSON (docs/status.md). Keys are stable; numbers are numbers; unknown values are null.
// ---------------------------------------------------------------------------------------------
namespace {

using Json = nlohmann::ordered_json;

Json CountsJson(const StatusTaskCounts& c) {
  return Json{{"total", c.total}, {"blocked", c.blocked}, {"ready", c.ready},
              {"leased", c.leased}, {"done", c.done},     {"failed", c.failed}};
}

Json ValuesJson(const std::vector<NamedValue>& v) {
  Json o = Json::object();
  for (const NamedValue& n : v) o[n.name] = std::isfinite(n.value) ? Json(n.value) : Json(nullptr);
  return o;
}

Json NullableTime(TimeMs ms) { return ms > 0 ? Json(ms) : Json(nullptr); }

}  // namespace

std::string StatusReportToJson(const StatusReport& r, bool pretty) {
  Json j;
  j["schema"] = r.schema;
  j["kind"] = "radlads.status";
  j["now_ms"] = r.now_ms;
  j["run"] = Json{{"id", r.run.id},
                  {"phase", r.run.phase},
                  {"reason", r.run.reason},
                  {"created_ms", r.run.created_ms},
                  {"phase_since_ms", r.run.phase_since_ms},
                  {"incarnation", r.run.incarnation},
                  {"events", r.run.last_seq},
                  {"lease_ttl_ms", r.run.lease_ttl_ms},
                  {"retry_limit", r.run.retry_limit},
                  {"cache_window", r.run.cache_window},
                  {"cancelled", r.run.cancelled},
                  {"cancelled_job", r.run.cancelled_job}};
  j["disk"] = Json{{"checkpoint_bytes", r.disk.checkpoint_bytes},
                   {"checkpoint_files", r.disk.checkpoint_files},
                   {"cache_bytes", r.disk.cache_bytes}};
  const StatusSlurm& sl = r.slurm;
  j["slurm"] = Json{{"job_id", sl.job_id},   {"restart", sl.restart},     {"starts", sl.starts},
                    {"nodes", sl.nodes},     {"end_ms", sl.end_ms},       {"refused", sl.refused},
                    {"state", sl.state},     {"time_left", sl.time_left}, {"live_nodes", sl.live_nodes},
                    {"source", sl.source},   {"error", sl.error}};
  j["tasks"] = CountsJson(r.tasks);
  Json steps = Json::array();
  for (const StatusStep& s : r.steps) {
    Json o{{"name", s.name}, {"label", s.label}, {"state", s.state}, {"tasks", CountsJson(s.tasks)}};
    if (s.has_tokens) {
      o["tokens"] = Json{{"budget", s.tokens_budget},
                         {"used", s.tokens_used},
                         {"percent", s.tokens_budget > 0 ? 100.0 * static_cast<double>(s.tokens_used) /
                                                               static_cast<double>(s.tokens_budget)
                                                         : 0.0}};
      o["work"] = Json{{"budget", s.work_budget},
                       {"done", s.work_done},
                       {"in_flight", s.work_in_flight},
                       {"redone", s.work_redone}};
    } else {
      o["tokens"] = nullptr;
      o["work"] = nullptr;
    }
    o["fraction"] = s.fraction;
    o["tokens_per_s"] = s.tokens_per_s;
    o["eta_s"] = s.eta_s ? Json(*s.eta_s) : Json(nullptr);
    o["losses"] = ValuesJson(s.losses);
    o["losses_at_ms"] = NullableTime(s.losses_at_ms);
    steps.push_back(std::move(o));
  }
  j["steps"] = std::move(steps);
  Json layers = Json::array();
  for (const StatusLayer& L : r.layers) {
    layers.push_back(Json{{"layer", L.layer},
                          {"tokens_budget", L.tokens_budget},
                          {"tokens_credited", L.tokens_credited},
                          {"tokens_in_flight", L.tokens_in_flight},
                          {"segments_done", L.segments_done},
                          {"segments_total", L.segments_total},
                          {"state", L.state},
                          {"task", L.task.empty() ? Json(nullptr) : Json(L.task)},
                          {"failures", L.failures},
                          {"losses", ValuesJson(L.losses)},
                          {"losses_at_ms", NullableTime(L.losses_at_ms)}});
  }
  j["align"] = Json{{"segments", r.align_segments}, {"layers", std::move(layers)}};
  Json workers = Json::array();
  for (const StatusWorker& w : r.workers.list) {
    workers.push_back(Json{{"id", w.id},
                           {"host", w.host},
                           {"pid", w.pid},
                           {"group_size", w.group_size},
                           {"rank", w.rank},
                           {"gang", w.gang},
                           {"device", w.device},
                           {"memory_bytes", w.memory_bytes},
                           {"tokens_per_s", w.tokens_per_s},
                           {"state", w.state},
                           {"task", w.task.empty() ? Json(nullptr) : Json(w.task)},
                           {"lease", w.lease != 0 ? Json(w.lease) : Json(nullptr)},
                           {"last_seen_ms", w.last_seen_ms},
                           {"since_seen_s", w.since_seen_s},
                           {"leases", w.leases},
                           {"tasks_completed", w.tasks_completed},
                           {"lost_reason", w.lost_reason}});
  }
  j["workers"] = Json{{"total", r.workers.total},
                      {"idle", r.workers.idle},
                      {"busy", r.workers.busy},
                      {"lost", r.workers.lost},
                      {"max_busy_since_seen_s", r.workers.max_busy_since_seen_s},
                      {"list", std::move(workers)}};
  Json leases = Json::array();
  for (const StatusLease& l : r.leases) {
    leases.push_back(Json{{"id", l.id},
                          {"task", l.task},
                          {"worker", l.worker},
                          {"attempt", l.attempt},
                          {"granted_ms", l.granted_ms},
                          {"deadline_ms", l.deadline_ms},
                          {"last_heartbeat_ms", NullableTime(l.last_heartbeat_ms)},
                          {"heartbeats", l.heartbeats},
                          {"deadline_in_s", l.deadline_in_s}});
  }
  j["leases"] = Json{{"outstanding", r.leases.size()}, {"list", std::move(leases)}};
  Json fails = Json::array();
  for (const StatusFailure& f : r.failures) {
    fails.push_back(Json{{"task", f.task},
                         {"state", f.state},
                         {"failures", f.failures},
                         {"attempt", f.attempt},
                         {"max_attempts", f.max_attempts},
                         {"last_error", f.last_error},
                         {"changed_ms", f.changed_ms}});
  }
  j["failures"] = std::move(fails);
  Json fallbacks = Json::array();
  for (const StatusFallback& f : r.fallbacks) {
    fallbacks.push_back(Json{{"task", f.task},
                             {"step", f.step},
                             {"tokens_redone", f.tokens_redone},
                             {"reason", f.reason},
                             {"at_ms", f.at_ms}});
  }
  j["fallbacks"] = std::move(fallbacks);
  j["drain"] = Json{{"active", r.drain.active},
                    {"phase", r.drain.phase},
                    {"reason", r.drain.reason},
                    {"since_ms", NullableTime(r.drain.since_ms)},
                    {"leases_outstanding", r.drain.leases_outstanding}};
  Json cache = Json::array();
  for (const StatusCacheStage& c : r.cache) {
    cache.push_back(Json{{"stage", c.stage},
                         {"window", c.window},
                         {"slots_used", c.slots_used},
                         {"segments", c.segments},
                         {"pending", c.pending},
                         {"producing", c.producing},
                         {"resident", c.resident},
                         {"evictable", c.evictable},
                         {"evicted", c.evicted}});
  }
  j["cache"] = Json{{"window", r.run.cache_window}, {"stages", std::move(cache)}};
  const RunMetrics& m = r.metrics;
  j["counters"] = Json{{"events", m.events},
                       {"leases_granted", m.leases_granted},
                       {"heartbeats", m.heartbeats},
                       {"checkpoints_committed", m.checkpoints_committed},
                       {"tasks_completed", m.tasks_completed},
                       {"leases_expired", m.leases_expired},
                       {"leases_failed", m.leases_failed},
                       {"leases_released", m.leases_released},
                       {"leases_abandoned", m.leases_abandoned},
                       {"workers_lost", m.workers_lost},
                       {"segments_evicted", m.segments_evicted},
                       {"drains", m.drains},
                       {"resumes", m.resumes},
                       {"checkpoints_discarded", m.checkpoints_discarded}};
  // Text from outside (Slurm's answers, reasons quoting file names) may hold bytes that are not
  // UTF-8: replaced, never a throw.
  std::string out = j.dump(pretty ? 2 : -1, ' ', false, Json::error_handler_t::replace);
  out += '\n';
  return out;
}

std::string StatusJson(const RunState& state, TimeMs now) {
  return StatusReportToJson(BuildStatusReport(state, now));
}

// ---- parsing (what a live server sent) ----
namespace {

// A value the document holds that its field cannot: e.g. 1e300 for an integer (nlohmann's
// get<long> converts a float without a range check, which is undefined behaviour).
struct RangeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A JSON value as T; integers must be JSON integers within T's range.
template <typename T>
T Checked(const Json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using L = std::numeric_limits<T>;
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(L::max())) throw RangeError("integer " + v.dump() + " out of range");
      return static_cast<T>(u);
    }
    if (v.is_number_integer()) {
      const auto i = v.get<std::int64_t>();
      const bool fits = std::is_signed_v<T> ? (i >= static_cast<std::int64_t>(L::min()) &&
                                               i <= static_cast<std::int64_t>(L::max()))
                                            : (i >= 0 && static_cast<std::uint64_t>(i) <= L::max());
      if (!fits) throw RangeError("integer " + v.dump() + " out of range");
      return static_cast<T>(i);
    }
    throw RangeError("expected an integer, got " + v.dump().substr(0, 40));
  } else {
    return v.get<T>();
  }
}

template <typename T>
void Get(const Json& o, const char* key, T* out) {
  *out = Checked<T>(o.at(key));
}
template <typename T>
void GetOr(const Json& o, const char* key, T* out) {  // null leaves the default
  const Json& v = o.at(key);
  if (!v.is_null()) *out = Checked<T>(v);
}

StatusTaskCounts CountsFrom(const Json& o) {
  StatusTaskCounts c;
  Get(o, "total", &c.total);
  Get(o, "blocked", &c.blocked);
  Get(o, "ready", &c.ready);
  Get(o, "leased", &c.leased);
  Get(o, "done", &c.done);
  Get(o, "failed", &c.failed);
  return c;
}

std::vector<NamedValue> ValuesFrom(const Json& o) {
  std::vector<NamedValue> v;
  for (auto it = o.begin(); it != o.end(); ++it) {
    v.push_back({it.key(), it.value().is_null() ? std::nan("") : it.value().get<double>()});
  }
  return v;
}

}  // namespace

Result<StatusReport> StatusReportFromJson(std::string_view text, std::string_view source) {
  const std::string src(source);
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption(src + ": the status is not a JSON object");
  }
  if (!j.contains("schema") || !j["schema"].is_number_integer() ||
      j["schema"].get<int>() != kStatusSchemaVersion) {
    return Status::Corruption(src + ": status schema " +
                              (j.contains("schema") ? j["schema"].dump() : std::string("(missing)")) +
                              ", expected " + std::to_string(kStatusSchemaVersion) +
                              " (coordinator and client from different versions?)");
  }
  StatusReport r;
  const char* where = "";
  try {
    where = "now_ms";
    Get(j, "now_ms", &r.now_ms);
    where = "run";
    const Json& run = j.at("run");
    Get(run, "id", &r.run.id);
    Get(run, "phase", &r.run.phase);
    Get(run, "reason", &r.run.reason);
    Get(run, "created_ms", &r.run.created_ms);
    Get(run, "phase_since_ms", &r.run.phase_since_ms);
    Get(run, "incarnation", &r.run.incarnation);
    Get(run, "events", &r.run.last_seq);
    Get(run, "lease_ttl_ms", &r.run.lease_ttl_ms);
    Get(run, "retry_limit", &r.run.retry_limit);
    Get(run, "cache_window", &r.run.cache_window);
    Get(run, "cancelled", &r.run.cancelled);
    Get(run, "cancelled_job", &r.run.cancelled_job);
    where = "disk";
    const Json& dk = j.at("disk");
    Get(dk, "checkpoint_bytes", &r.disk.checkpoint_bytes);
    Get(dk, "checkpoint_files", &r.disk.checkpoint_files);
    Get(dk, "cache_bytes", &r.disk.cache_bytes);
    where = "slurm";
    const Json& sl = j.at("slurm");
    Get(sl, "job_id", &r.slurm.job_id);
    Get(sl, "restart", &r.slurm.restart);
    Get(sl, "starts", &r.slurm.starts);
    Get(sl, "nodes", &r.slurm.nodes);
    Get(sl, "end_ms", &r.slurm.end_ms);
    Get(sl, "refused", &r.slurm.refused);
    Get(sl, "state", &r.slurm.state);
    Get(sl, "time_left", &r.slurm.time_left);
    Get(sl, "live_nodes", &r.slurm.live_nodes);
    Get(sl, "source", &r.slurm.source);
    Get(sl, "error", &r.slurm.error);
    where = "tasks";
    r.tasks = CountsFrom(j.at("tasks"));
    where = "steps";
    for (const Json& o : j.at("steps")) {
      StatusStep s;
      Get(o, "name", &s.name);
      Get(o, "label", &s.label);
      Get(o, "state", &s.state);
      s.tasks = CountsFrom(o.at("tasks"));
      if (!o.at("tokens").is_null()) {
        s.has_tokens = true;
        Get(o.at("tokens"), "budget", &s.tokens_budget);
        Get(o.at("tokens"), "used", &s.tokens_used);
        Get(o.at("work"), "budget", &s.work_budget);
        Get(o.at("work"), "done", &s.work_done);
        Get(o.at("work"), "in_flight", &s.work_in_flight);
        Get(o.at("work"), "redone", &s.work_redone);
      }
      Get(o, "fraction", &s.fraction);
      Get(o, "tokens_per_s", &s.tokens_per_s);
      if (!o.at("eta_s").is_null()) s.eta_s = o.at("eta_s").get<double>();
      s.losses = ValuesFrom(o.at("losses"));
      GetOr(o, "losses_at_ms", &s.losses_at_ms);
      r.steps.push_back(std::move(s));
    }
    where = "align";
    Get(j.at("align"), "segments", &r.align_segments);
    for (const Json& o : j.at("align").at("layers")) {
      StatusLayer L;
      Get(o, "layer", &L.layer);
      Get(o, "tokens_budget", &L.tokens_budget);
      Get(o, "tokens_credited", &L.tokens_credited);
      Get(o, "tokens_in_flight", &L.tokens_in_flight);
      Get(o, "segments_done", &L.segments_done);
      Get(o, "segments_total", &L.segments_total);
      Get(o, "state", &L.state);
      GetOr(o, "task", &L.task);
      Get(o, "failures", &L.failures);
      L.losses = ValuesFrom(o.at("losses"));
      GetOr(o, "losses_at_ms", &L.losses_at_ms);
      r.layers.push_back(std::move(L));
    }
    where = "workers";
    const Json& w = j.at("workers");
    Get(w, "total", &r.workers.total);
    Get(w, "idle", &r.workers.idle);
    Get(w, "busy", &r.workers.busy);
    Get(w, "lost", &r.workers.lost);
    Get(w, "max_busy_since_seen_s", &r.workers.max_busy_since_seen_s);
    for (const Json& o : w.at("list")) {
      StatusWorker x;
      Get(o, "id", &x.id);
      Get(o, "host", &x.host);
      Get(o, "pid", &x.pid);
      Get(o, "group_size", &x.group_size);
      Get(o, "rank", &x.rank);
      Get(o, "gang", &x.gang);
      Get(o, "device", &x.device);
      Get(o, "memory_bytes", &x.memory_bytes);
      Get(o, "tokens_per_s", &x.tokens_per_s);
      Get(o, "state", &x.state);
      GetOr(o, "task", &x.task);
      GetOr(o, "lease", &x.lease);
      Get(o, "last_seen_ms", &x.last_seen_ms);
      Get(o, "since_seen_s", &x.since_seen_s);
      Get(o, "leases", &x.leases);
      Get(o, "tasks_completed", &x.tasks_completed);
      Get(o, "lost_reason", &x.lost_reason);
      r.workers.list.push_back(std::move(x));
    }
    where = "leases";
    for (const Json& o : j.at("leases").at("list")) {
      StatusLease l;
      Get(o, "id", &l.id);
      Get(o, "task", &l.task);
      Get(o, "worker", &l.worker);
      Get(o, "attempt", &l.attempt);
      Get(o, "granted_ms", &l.granted_ms);
      Get(o, "deadline_ms", &l.deadline_ms);
      GetOr(o, "last_heartbeat_ms", &l.last_heartbeat_ms);
      Get(o, "heartbeats", &l.heartbeats);
      Get(o, "deadline_in_s", &l.deadline_in_s);
      r.leases.push_back(std::move(l));
    }
    where = "failures";
    for (const Json& o : j.at("failures")) {
      StatusFailure f;
      Get(o, "task", &f.task);
      Get(o, "state", &f.state);
      Get(o, "failures", &f.failures);
      Get(o, "attempt", &f.attempt);
      Get(o, "max_attempts", &f.max_attempts);
      Get(o, "last_error", &f.last_error);
      Get(o, "changed_ms", &f.changed_ms);
      r.failures.push_back(std::move(f));
    }
    where = "fallbacks";
    for (const Json& o : j.at("fallbacks")) {
      StatusFallback f;
      Get(o, "task", &f.task);
      Get(o, "step", &f.step);
      Get(o, "tokens_redone", &f.tokens_redone);
      Get(o, "reason", &f.reason);
      Get(o, "at_ms", &f.at_ms);
      r.fallbacks.push_back(std::move(f));
    }
    where = "drain";
    const Json& d = j.at("drain");
    Get(d, "active", &r.drain.active);
    Get(d, "phase", &r.drain.phase);
    Get(d, "reason", &r.drain.reason);
    GetOr(d, "since_ms", &r.drain.since_ms);
    Get(d, "leases_outstanding", &r.drain.leases_outstanding);
    where = "cache";
    for (const Json& o : j.at("cache").at("stages")) {
      StatusCacheStage c;
      Get(o, "stage", &c.stage);
      Get(o, "window", &c.window);
      Get(o, "slots_used", &c.slots_used);
      Get(o, "segments", &c.segments);
      Get(o, "pending", &c.pending);
      Get(o, "producing", &c.producing);
      Get(o, "resident", &c.resident);
      Get(o, "evictable", &c.evictable);
      Get(o, "evicted", &c.evicted);
      r.cache.push_back(c);
    }
    where = "counters";
    const Json& m = j.at("counters");
    Get(m, "events", &r.metrics.events);
    Get(m, "leases_granted", &r.metrics.leases_granted);
    Get(m, "heartbeats", &r.metrics.heartbeats);
    Get(m, "checkpoints_committed", &r.metrics.checkpoints_committed);
    Get(m, "tasks_completed", &r.metrics.tasks_completed);
    Get(m, "leases_expired", &r.metrics.leases_expired);
    Get(m, "leases_failed", &r.metrics.leases_failed);
    Get(m, "leases_released", &r.metrics.leases_released);
    Get(m, "leases_abandoned", &r.metrics.leases_abandoned);
    Get(m, "workers_lost", &r.metrics.workers_lost);
    Get(m, "segments_evicted", &r.metrics.segments_evicted);
    Get(m, "drains", &r.metrics.drains);
    Get(m, "resumes", &r.metrics.resumes);
    Get(m, "checkpoints_discarded", &r.metrics.checkpoints_discarded);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(src + ": status key '" + where + "': " + e.what());
  } catch (const RangeError& e) {
    return Status::Corruption(src + ": status key '" + where + "': " + e.what());
  }
  return r;
}

}  // namespace radlads
