// PrometheusText: a StatusReport in the Prometheus text exposition format 0.0.4. The metric
// names are listed, with their meaning, in docs/status.md; tests parse every line.
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "status/status_report.h"

namespace radlads {
namespace {

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

std::string EscapeLabel(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string EscapeHelp(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

void Family(std::string* out, std::string_view name, std::string_view type, std::string_view help,
            const std::vector<PromSample>& samples) {
  AppendPrometheusFamily(out, name, type, help, samples);
}

PromSample S(double v, Labels labels = {}) { return PromSample{std::move(labels), v}; }

}  // namespace

void AppendPrometheusFamily(std::string* out, std::string_view name, std::string_view type,
                            std::string_view help, const std::vector<PromSample>& samples) {
  if (samples.empty()) return;
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += EscapeHelp(help);
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
  for (const PromSample& s : samples) {
    *out += name;
    if (!s.labels.empty()) {
      *out += '{';
      for (std::size_t i = 0; i < s.labels.size(); ++i) {
        if (i > 0) *out += ',';
        *out += s.labels[i].first + "=\"" + EscapeLabel(s.labels[i].second) + "\"";
      }
      *out += '}';
    }
    *out += ' ';
    *out += Number(s.value);
    *out += '\n';
  }
}

std::string PrometheusText(const StatusReport& r) {
  std::string o;
  const auto d = [](auto v) { return static_cast<double>(v); };

  // ---- run ----
  Family(&o, "radlads_run_info", "gauge", "The run this coordinator serves (value is always 1).",
         {S(1, {{"run", r.run.id}})});
  {
    std::vector<PromSample> v;
    for (const char* ph : {"empty", "running", "draining", "drained", "completed", "failed"}) {
      v.push_back(S(r.run.phase == ph ? 1 : 0, {{"phase", ph}}));
    }
    Family(&o, "radlads_run_phase", "gauge", "1 for the run's current phase, 0 for the others.", v);
  }
  Family(&o, "radlads_run_incarnation", "gauge", "Coordinator restarts on this run (RunResumed events).",
         {S(d(r.run.incarnation))});
  Family(&o, "radlads_run_events_total", "counter", "Events in the run's durable log.",
         {S(d(r.run.last_seq))});
  Family(&o, "radlads_run_drain_active", "gauge", "1 while the run is draining or drained.",
         {S(r.drain.active ? 1 : 0)});

  // ---- tasks and steps ----
  {
    std::vector<PromSample> v;
    for (const StatusStep& s : r.steps) {
      const std::pair<const char*, int> states[] = {{"blocked", s.tasks.blocked}, {"ready", s.tasks.ready},
                                                    {"leased", s.tasks.leased},   {"done", s.tasks.done},
                                                    {"failed", s.tasks.failed}};
      for (const auto& [state, n] : states) v.push_back(S(n, {{"type", s.name}, {"state", state}}));
    }
    Family(&o, "radlads_tasks", "gauge", "Tasks by type and state.", v);
  }
  std::vector<PromSample> budget, credited, in_flight, redone, ratio, rate, eta, loss;
  for (const StatusStep& s : r.steps) {
    const Labels l{{"step", s.name}};
    ratio.push_back(S(s.fraction, l));
    for (const NamedValue& nv : s.losses) loss.push_back(S(nv.value, {{"step", s.name}, {"name", nv.name}}));
    if (!s.has_tokens) continue;
    budget.push_back(S(d(s.tokens_budget), l));
    credited.push_back(S(d(s.tokens_used), l));
    in_flight.push_back(S(d(s.work_in_flight), l));
    redone.push_back(S(d(s.work_redone), l));
    rate.push_back(S(s.tokens_per_s, l));
    if (s.eta_s) eta.push_back(S(*s.eta_s, l));
  }
  Family(&o, "radlads_step_tokens_budget", "gauge",
         "Token budget of a step (align: per layer, every layer trains on every token).", budget);
  Family(&o, "radlads_step_tokens_credited", "gauge",
         "Tokens credited by committed checkpoints (align: the minimum over layers).", credited);
  Family(&o, "radlads_step_tokens_redone_total", "counter",
         "Tokens given back by checkpoint fallbacks and trained again (align: layer-tokens).", redone);
  Family(&o, "radlads_step_tokens_in_flight", "gauge",
         "Tokens reported by heartbeats beyond the committed cursors (align: layer-tokens).",
         in_flight);
  Family(&o, "radlads_step_progress_ratio", "gauge",
         "Fraction of a step done (tokens, or tasks for steps without tokens).", ratio);
  Family(&o, "radlads_step_throughput_tokens_per_second", "gauge",
         "Current rate of a step's leased tasks (align: layer-tokens per second).", rate);
  Family(&o, "radlads_step_eta_seconds", "gauge",
         "Estimated seconds to the end of a step at the current rate (absent when not running).",
         eta);
  Family(&o, "radlads_step_loss", "gauge",
         "Latest loss or metric reported by a step's tasks (align: mean over layers).", loss);

  // ---- step 1 per layer ----
  {
    std::vector<PromSample> lb, lc, lf, ls, ll;
    for (const StatusLayer& L : r.layers) {
      const Labels l{{"layer", std::to_string(L.layer)}};
      lb.push_back(S(d(L.tokens_budget), l));
      lc.push_back(S(d(L.tokens_credited), l));
      lf.push_back(S(d(L.tokens_in_flight), l));
      ls.push_back(S(L.segments_done, l));
      for (const NamedValue& nv : L.losses) {
        ll.push_back(S(nv.value, {{"layer", std::to_string(L.layer)}, {"name", nv.name}}));
      }
    }
    Family(&o, "radlads_align_layer_tokens_budget", "gauge", "Step-1 token budget of a layer.", lb);
    Family(&o, "radlads_align_layer_tokens_credited", "gauge", "Step-1 tokens credited to a layer.", lc);
    Family(&o, "radlads_align_layer_tokens_in_flight", "gauge",
           "Step-1 tokens of a layer reported but not yet committed.", lf);
    Family(&o, "radlads_align_layer_segments_done", "gauge", "Step-1 segments a layer has finished.", ls);
    Family(&o, "radlads_align_layer_loss", "gauge", "Latest step-1 loss of a layer.", ll);
  }

  // ---- workers and leases ----
  Family(&o, "radlads_workers", "gauge", "Registered workers by state.",
         {S(r.workers.idle, {{"state", "idle"}}), S(r.workers.busy, {{"state", "busy"}}),
          S(r.workers.lost, {{"state", "lost"}})});
  {
    std::vector<PromSample> v;
    for (const StatusWorker& w : r.workers.list) {
      v.push_back(S(w.since_seen_s, {{"worker", w.id}, {"state", w.state}}));
    }
    Family(&o, "radlads_worker_seconds_since_heartbeat", "gauge",
           "Seconds since a worker was last heard from (heartbeat, lease or registration).", v);
  }
  int overdue = 0;
  for (const StatusLease& l : r.leases) overdue += l.deadline_in_s <= 0 ? 1 : 0;
  Family(&o, "radlads_leases_outstanding", "gauge", "Leases held by workers.", {S(d(r.leases.size()))});
  Family(&o, "radlads_leases_overdue", "gauge",
         "Outstanding leases past their deadline (the next expiry pass ends them).", {S(overdue)});
  {
    int retried = 0, failed = 0;
    for (const StatusFailure& f : r.failures) (f.state == "failed" ? failed : retried) += 1;
    Family(&o, "radlads_tasks_with_failures", "gauge",
           "Tasks with at least one failed attempt: still retrying, or failed for good.",
           {S(retried, {{"outcome", "retrying"}}), S(failed, {{"outcome", "failed"}})});
  }

  // ---- cache window ----
  {
    std::vector<PromSample> used, window, segs;
    for (const StatusCacheStage& c : r.cache) {
      const std::string st = std::to_string(c.stage);
      used.push_back(S(c.slots_used, {{"stage", st}}));
      window.push_back(S(c.window, {{"stage", st}}));
      const std::pair<const char*, int> states[] = {{"pending", c.pending},   {"producing", c.producing},
                                                    {"resident", c.resident}, {"evictable", c.evictable},
                                                    {"evicted", c.evicted}};
      for (const auto& [state, n] : states) segs.push_back(S(n, {{"stage", st}, {"state", state}}));
    }
    Family(&o, "radlads_cache_window_slots_used", "gauge",
           "Step-1 cache segments of a stage holding a window slot.", used);
    Family(&o, "radlads_cache_window_slots", "gauge", "The window W per stage (0: unlimited).", window);
    Family(&o, "radlads_cache_segments", "gauge", "Step-1 cache segments by stage and state.", segs);
  }

  // ---- counters (persisted with the run: they survive coordinator restarts) ----
  const RunMetrics& m = r.metrics;
  Family(&o, "radlads_leases_granted_total", "counter", "Leases granted.", {S(d(m.leases_granted))});
  Family(&o, "radlads_leases_ended_total", "counter", "Leases ended other than by completion, by cause.",
         {S(d(m.leases_expired), {{"cause", "expired"}}), S(d(m.leases_failed), {{"cause", "failed"}}),
          S(d(m.leases_released), {{"cause", "released"}}),
          S(d(m.leases_abandoned), {{"cause", "coordinator_restart"}})});
  Family(&o, "radlads_heartbeats_total", "counter", "Heartbeats recorded.", {S(d(m.heartbeats))});
  Family(&o, "radlads_checkpoints_committed_total", "counter",
         "Checkpoint commits recorded (final ones excluded).", {S(d(m.checkpoints_committed))});
  Family(&o, "radlads_tasks_completed_total", "counter", "Tasks completed.", {S(d(m.tasks_completed))});
  Family(&o, "radlads_workers_lost_total", "counter", "Workers declared lost.", {S(d(m.workers_lost))});
  Family(&o, "radlads_segments_evicted_total", "counter", "Step-1 cache segments evicted.",
         {S(d(m.segments_evicted))});
  Family(&o, "radlads_drains_total", "counter", "Drains requested.", {S(d(m.drains))});
  Family(&o, "radlads_resumes_total", "counter", "Coordinator restarts (Resume).", {S(d(m.resumes))});
  Family(&o, "radlads_checkpoints_discarded_total", "counter",
         "Checkpoints found unreadable and discarded (the task fell back to the commit before).",
         {S(d(m.checkpoints_discarded))});
  return o;
}

}  // namespace radlads
