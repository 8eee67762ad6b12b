// StatusTable: the human rendering of a StatusReport (docs/status.md has a sample).
// Padding is computed on the visible text first; colour codes are wrapped around it afterwards,
// so columns line up with and without colour.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/progress.h"
#include "plan/plan_report.h"
#include "status/status_report.h"

namespace radlads {
namespace {

constexpr int kListSmall = 16;   // up to this many layers / workers: one line each
constexpr int kListRows = 8;     // otherwise: this many rows, the most interesting first
constexpr int kGridColumns = 20;  // layers per row of the step-1 grid

class Painter {
 public:
  explicit Painter(bool on) : on_(on) {}
  std::string operator()(const std::string& s, const char* code) const {
    if (!on_ || s.empty()) return s;
    return std::string("\033[") + code + "m" + s + "\033[0m";
  }
  std::string Bold(const std::string& s) const { return (*this)(s, "1"); }
  std::string Dim(const std::string& s) const { return (*this)(s, "2"); }
  std::string Green(const std::string& s) const { return (*this)(s, "32"); }
  std::string Yellow(const std::string& s) const { return (*this)(s, "33"); }
  std::string Red(const std::string& s) const { return (*this)(s, "31"); }
  std::string Cyan(const std::string& s) const { return (*this)(s, "36"); }

 private:
  bool on_;
};

std::string Pad(std::string s, std::size_t w) {
  if (s.size() < w) s.append(w - s.size(), ' ');
  return s;
}
std::string PadLeft(std::string s, std::size_t w) {
  if (s.size() < w) s.insert(0, w - s.size(), ' ');
  return s;
}
std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}
std::string Pct(double frac) { return Fixed(100.0 * frac, 1) + "%"; }
std::string Clip(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  return n > 3 ? s.substr(0, n - 3) + "..." : s.substr(0, n);
}
std::string Bar(double frac, int w) {
  frac = std::clamp(std::isfinite(frac) ? frac : 0.0, 0.0, 1.0);
  const int filled = static_cast<int>(frac * w + 1e-9);
  std::string b = "[";
  for (int i = 0; i < w; ++i) b += i < filled ? '#' : '.';
  return b + "]";
}
std::string Losses(const std::vector<NamedValue>& v, std::size_t max = 4) {
  std::string o;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) {
    if (!o.empty()) o += "  ";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.4g", v[i].value);
    o += v[i].name + " " + buf;
  }
  if (v.size() > max) o += "  ...";
  return o;
}
std::string Ago(TimeMs now, TimeMs then) {
  return then > 0 ? FormatAge(static_cast<double>(now - then) / 1000.0) + " ago" : "never";
}
std::string Rate(double per_s, const char* unit) {
  if (per_s <= 0.0) return "-";
  return ProgressBar::HumanCount(per_s) + " " + unit + "/s";
}

std::string PhaseColored(const Painter& p, const std::string& phase) {
  if (phase == "running" || phase == "completed") return p.Green(phase);
  if (phase == "draining" || phase == "drained") return p.Yellow(phase);
  if (phase == "failed") return p.Red(phase);
  return phase;
}

void Header(const StatusReport& r, const Painter& p, std::string* o) {
  const TimeMs now = r.now_ms;
  *o += p.Bold("radlads status: run " + (r.run.id.empty() ? std::string("(unnamed)") : r.run.id)) +
        "   " + p.Dim(FormatUtc(now)) + "\n";
  std::string phase = "  phase     " + PhaseColored(p, r.run.phase);
  if (r.run.phase_since_ms > 0) {
    phase += " for " + FormatAge(static_cast<double>(now - r.run.phase_since_ms) / 1000.0);
  }
  if (!r.run.reason.empty()) phase += ": " + r.run.reason;
  *o += phase + "\n";
  *o += "  run       created " + Ago(now, r.run.created_ms) + "; coordinator incarnation " +
        std::to_string(r.run.incarnation) + "; " + FormatCount(static_cast<std::int64_t>(r.run.last_seq)) +
        " events\n";
  if (!r.run.cancelled.empty()) {
    *o += "  " + p.Red("cancelled") + " " + r.run.cancelled +
          (r.run.cancelled_job.empty() ? "" : " (job " + r.run.cancelled_job + ")") +
          "; the same run or submit command resumes\n";
  }
  if (!r.slurm.job_id.empty()) {
    const StatusSlurm& s = r.slurm;
    std::string line = "  slurm     job " + s.job_id + " " + (s.state.empty() ? "state unknown" : s.state);
    const std::string nodes = !s.live_nodes.empty() ? s.live_nodes : s.nodes;
    if (!nodes.empty()) line += " on " + nodes;
    line += "; start " + std::to_string(s.restart + 1) + " (" + std::to_string(s.restart) + " restarts)";
    if (!s.time_left.empty()) line += ", " + s.time_left + " left";
    line += "; " + std::to_string(r.metrics.drains) + " drains (preemptions), " + std::to_string(s.starts) +
            " starts recorded";
    if (s.state.empty() && !s.error.empty()) line += " [" + s.error + "]";
    *o += line + "\n";
    if (!s.refused.empty()) *o += "  " + p.Red("refused") + "   the last start: " + s.refused + "\n";
  }
  if (r.disk.checkpoint_bytes >= 0) {
    auto mib = [](std::int64_t b) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
      return std::string(buf);
    };
    *o += "  disk      checkpoints " + mib(r.disk.checkpoint_bytes) + " in " + std::to_string(r.disk.checkpoint_files) +
          " files, step-1 cache " + mib(std::max<std::int64_t>(0, r.disk.cache_bytes)) + "\n";
  }
  const StatusTaskCounts& t = r.tasks;
  std::string tasks = "  tasks     " + FormatCount(t.total) + ": " + FormatCount(t.done) + " done, " +
                      FormatCount(t.leased) + " leased, " + FormatCount(t.ready) + " ready, " +
                      FormatCount(t.blocked) + " blocked, ";
  const std::string failed = FormatCount(t.failed) + " failed";
  *o += tasks + (t.failed > 0 ? p.Red(failed) : failed) + "\n";
}

// Joins `parts` with "; " into lines no wider than `width`, each starting with `indent`.
std::string Wrap(const std::vector<std::string>& parts, const std::string& indent, int width,
                 const Painter& p) {
  std::string out, line;
  for (const std::string& part : parts) {
    if (!line.empty() && static_cast<int>(indent.size() + line.size() + 2 + part.size()) > width) {
      out += indent + p.Dim(line + ";") + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : "; ") + part;
  }
  if (!line.empty()) out += indent + p.Dim(line) + "\n";
  return out;
}

void Steps(const StatusReport& r, int width, const Painter& p, std::string* o) {
  if (r.steps.empty()) return;
  const int bar_w = std::clamp(width - 87, 10, 40);
  *o += "\n" + p.Dim("  " + Pad("STEP", 17) + Pad("PROGRESS", bar_w + 11) + Pad("TASKS", 20) +
                     Pad("RATE", 15) + "ETA") +
        "\n";
  for (const StatusStep& s : r.steps) {
    std::string bar = Bar(s.fraction, bar_w);
    if (s.state == "done") bar = p.Green(bar);
    else if (s.state == "failed") bar = p.Red(bar);
    else if (s.state == "running") bar = p.Cyan(bar);
    const std::string tasks =
        PadLeft(FormatCount(s.tasks.done) + "/" + FormatCount(s.tasks.total), 13) + " done";
    std::string rate = "-", eta = "-";
    if (s.has_tokens) {
      rate = Rate(s.tokens_per_s, s.name == "align" ? "ltok" : "tok");
      if (s.eta_s) eta = FormatAge(*s.eta_s);
    }
    if (s.state == "done") eta = "done";
    std::string line = "  " + Pad(s.label, 17) + bar + " " + PadLeft(Pct(s.fraction), 6) + "  " +
                       Pad(tasks, 20) + Pad(rate, 15) + Pad(eta, 9);
    if (s.tasks.leased > 0) line += p.Dim("(" + FormatCount(s.tasks.leased) + " leased)");
    if (s.tasks.failed > 0) line += "  " + p.Red(FormatCount(s.tasks.failed) + " failed");
    while (!line.empty() && line.back() == ' ') line.pop_back();
    *o += line + "\n";
    std::vector<std::string> sub;
    if (s.has_tokens) {
      const double pct = s.tokens_budget > 0 ? static_cast<double>(s.tokens_used) /
                                                   static_cast<double>(s.tokens_budget)
                                             : 0.0;
      sub.push_back("tokens " + FormatCount(s.tokens_used) + " / " + FormatCount(s.tokens_budget) +
                    " (" + Pct(pct) + ")" + (s.name == "align" ? " per layer (slowest layer)" : ""));
      if (s.work_in_flight > 0) {
        sub.push_back("in flight " + FormatCount(s.work_in_flight) + (s.name == "align" ? " ltok" : ""));
      }
    }
    if (!s.losses.empty()) {
      sub.push_back((s.name == "align" ? "loss (layer mean) " : "loss ") + Losses(s.losses));
    }
    *o += Wrap(sub, "  " + std::string(17, ' '), width, p);
  }
  bool align = false;
  for (const StatusStep& s : r.steps) align = align || s.name == "align";
  if (align) *o += p.Dim("  (ltok = layer-tokens: step 1 trains every layer on every token)") + "\n";
}

double LayerFraction(const StatusLayer& L) {
  if (L.tokens_budget > 0) {
    return static_cast<double>(L.tokens_credited) / static_cast<double>(L.tokens_budget);
  }
  return L.segments_total > 0 ? static_cast<double>(L.segments_done) / L.segments_total : 0.0;
}

void Layers(const StatusReport& r, int width, const Painter& p, std::string* o) {
  if (r.layers.empty()) return;
  double lo = 1.0, hi = 0.0, sum = 0.0;
  const StatusLayer* slowest = &r.layers.front();
  for (const StatusLayer& L : r.layers) {
    const double f = LayerFraction(L);
    if (f < lo) {
      lo = f;
      slowest = &L;
    }
    hi = std::max(hi, f);
    sum += f;
  }
  char lname[16];
  std::snprintf(lname, sizeof(lname), "L%03d", slowest->layer);
  *o += "\n  step 1 by layer: " + std::to_string(r.layers.size()) + " layers x " +
        std::to_string(r.align_segments) + " segments; tokens done min " + Pct(lo) + " (" + lname +
        "), mean " + Pct(sum / static_cast<double>(r.layers.size())) + ", max " + Pct(hi) + "\n";
  if (static_cast<int>(r.layers.size()) <= kListSmall) {
    const int bar_w = std::clamp(width - 80, 10, 20);
    for (const StatusLayer& L : r.layers) {
      std::snprintf(lname, sizeof(lname), "L%03d", L.layer);
      std::string state = L.state;
      if (L.state == "training") state = "training " + L.task;
      if (L.failures > 0) state += " (" + std::to_string(L.failures) + " failed attempts)";
      std::string bar = Bar(LayerFraction(L), bar_w);
      if (L.state == "done") bar = p.Green(bar);
      else if (L.state == "failed") bar = p.Red(bar);
      std::string line = "    " + std::string(lname) + " " + bar + " " +
                         PadLeft(Pct(LayerFraction(L)), 6) + "  " +
                         PadLeft(std::to_string(L.segments_done) + "/" +
                                     std::to_string(L.segments_total), 7) +
                         " seg  " + Pad(state, 34);
      if (!L.losses.empty()) line += " " + Losses(L.losses, 2);
      *o += line + "\n";
    }
    return;
  }
  // A grid: one cell per layer, kGridColumns per row.
  *o += p.Dim("    cell: tenths of the layer's tokens done (0-9), # done; then + training now, "
              "! retried, x failed") +
        "\n";
  for (std::size_t row = 0; row < r.layers.size(); row += kGridColumns) {
    const std::size_t end = std::min(r.layers.size(), row + kGridColumns);
    char label[32];
    std::snprintf(label, sizeof(label), "    L%03d-%03d ", r.layers[row].layer, r.layers[end - 1].layer);
    std::string line = label;
    for (std::size_t i = row; i < end; ++i) {
      const StatusLayer& L = r.layers[i];
      const double f = LayerFraction(L);
      std::string cell;
      if (L.state == "done") {
        cell = p.Green("#") + " ";
      } else {
        cell = std::string(1, static_cast<char>('0' + std::clamp(static_cast<int>(f * 10.0), 0, 9)));
        if (L.state == "failed") cell = p.Red(cell + "x");
        else if (L.failures > 0) cell = p.Yellow(cell + "!");
        else if (L.state == "training") cell = p.Cyan(cell + "+");
        else cell += " ";
      }
      line += cell + " ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    *o += line + "\n";
  }
}

void Workers(const StatusReport& r, const Painter& p, std::string* o) {
  const StatusWorkers& w = r.workers;
  std::string line = "\n  workers   " + FormatCount(w.total) + ": " + FormatCount(w.busy) + " busy, " +
                     FormatCount(w.idle) + " idle, ";
  const std::string lost = FormatCount(w.lost) + " lost";
  line += w.lost > 0 ? p.Yellow(lost) : lost;
  if (w.busy > 0) {
    const StatusWorker* oldest = nullptr;
    for (const StatusWorker& x : w.list) {
      if (x.state == "busy" && (oldest == nullptr || x.since_seen_s > oldest->since_seen_s)) oldest = &x;
    }
    if (oldest != nullptr) {
      line += "; oldest heartbeat of a busy worker " + FormatAge(oldest->since_seen_s) + " ago (" +
              oldest->id + ")";
    }
  }
  *o += line + "\n";
  if (w.list.empty()) return;
  // Lost first (newest loss first), then busy by heartbeat age (stalest first), then idle.
  std::vector<const StatusWorker*> order;
  for (const StatusWorker& x : w.list) order.push_back(&x);
  auto rank = [](const StatusWorker* x) { return x->state == "lost" ? 0 : x->state == "busy" ? 1 : 2; };
  std::stable_sort(order.begin(), order.end(), [&](const StatusWorker* a, const StatusWorker* b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    if (rank(a) == 1) return a->since_seen_s > b->since_seen_s;
    if (rank(a) == 0) return a->last_seen_ms > b->last_seen_ms;
    return false;
  });
  const bool all = static_cast<int>(order.size()) <= kListSmall;
  const std::size_t rows = all ? order.size() : static_cast<std::size_t>(kListRows);
  std::size_t id_w = 8;
  for (std::size_t i = 0; i < rows; ++i) id_w = std::max(id_w, std::min<std::size_t>(order[i]->id.size(), 24));
  *o += p.Dim("    " + Pad("WORKER", id_w + 2) + Pad("RANK", 6) + Pad("STATE", 7) + Pad("TASK", 22) +
              Pad("TOK/S", 9) + Pad("LAST SEEN", 12) + Pad("LEASES", 8) + "DONE") +
        "\n";
  for (std::size_t i = 0; i < rows; ++i) {
    const StatusWorker& x = *order[i];
    std::string state = Pad(x.state, 7);
    if (x.state == "lost") state = p.Yellow(state);
    std::string line = "    " + Pad(Clip(x.id, 24), id_w + 2) + Pad(x.rank >= 0 ? std::to_string(x.rank) : "-", 6) +
                       state + Pad(x.task.empty() ? "-" : Clip(x.task, 21), 22) +
                       Pad(x.tokens_per_s > 0 ? FormatCount(static_cast<std::int64_t>(x.tokens_per_s)) : "-", 9) +
                       Pad(FormatAge(x.since_seen_s) + " ago", 12) + Pad(FormatCount(x.leases), 8) +
                       FormatCount(x.tasks_completed);
    if (x.group_size > 1) line += "  leads a gang of " + FormatCount(x.group_size);
    if (x.group_size <= 1 && !x.gang.empty()) line += "  in " + x.gang;
    if (x.state == "lost" && !x.lost_reason.empty()) line += "  " + p.Dim(Clip(x.lost_reason, 60));
    *o += line + "\n";
  }
  if (!all) {
    *o += p.Dim("    (" + std::to_string(rows) + " of " + FormatCount(static_cast<std::int64_t>(order.size())) +
                " workers shown; --json lists all)") +
          "\n";
  }
}

void Leases(const StatusReport& r, const Painter& p, std::string* o) {
  std::string line = "  leases    " + FormatCount(static_cast<std::int64_t>(r.leases.size())) + " outstanding";
  if (!r.leases.empty()) {
    double next = r.leases.front().deadline_in_s;
    int overdue = 0;
    for (const StatusLease& l : r.leases) {
      next = std::min(next, l.deadline_in_s);
      if (l.deadline_in_s <= 0) ++overdue;
    }
    line += "; next deadline in " + FormatAge(std::max(0.0, next));
    if (overdue > 0) line += "; " + p.Yellow(std::to_string(overdue) + " overdue (expiring)");
  }
  line += "; ttl " + FormatAge(static_cast<double>(r.run.lease_ttl_ms) / 1000.0);
  *o += line + "\n";
}

void Failures(const StatusReport& r, int width, const Painter& p, std::string* o) {
  int failed = 0;
  for (const StatusFailure& f : r.failures) failed += f.state == "failed" ? 1 : 0;
  const int retried = static_cast<int>(r.failures.size()) - failed;
  std::string line = "  failures  ";
  if (r.failures.empty()) {
    line += "none";
  } else {
    line += FormatCount(retried) + " tasks retried, ";
    const std::string f = FormatCount(failed) + " failed for good";
    line += failed > 0 ? p.Red(f) : f;
  }
  line += " (retry limit " + std::to_string(r.run.retry_limit) + ": at most " +
          std::to_string(r.run.retry_limit + 1) + " attempts)";
  *o += line + "\n";
  const std::size_t rows = std::min<std::size_t>(r.failures.size(), kListRows);
  for (std::size_t i = 0; i < rows; ++i) {
    const StatusFailure& f = r.failures[i];
    std::string state = Pad(f.state, 8);
    if (f.state == "failed") state = p.Red(state);
    *o += "    " + Pad(f.task, 20) + state +
          Pad(std::to_string(f.failures) + " failed, attempt " + std::to_string(f.attempt) + "/" +
                  std::to_string(f.max_attempts),
              26) +
          Clip(f.last_error, static_cast<std::size_t>(std::max(20, width - 58))) + "\n";
  }
  if (r.failures.size() > rows) {
    *o += p.Dim("    (" + std::to_string(rows) + " of " + std::to_string(r.failures.size()) +
                " shown; --json lists all)") +
          "\n";
  }
}

// Checkpoint fallbacks: shown only when a commit was discarded.
void Fallbacks(const StatusReport& r, int width, const Painter& p, std::string* o) {
  if (r.fallbacks.empty()) return;
  std::int64_t redone = 0;
  for (const StatusFallback& f : r.fallbacks) redone += f.tokens_redone;
  const std::size_t n = r.fallbacks.size();
  *o += "  fallback  " + p.Yellow(FormatCount(static_cast<std::int64_t>(n)) + " unreadable checkpoint" +
                                  (n == 1 ? "" : "s") + " discarded") +
        "; " + FormatCount(redone) + " tokens redone (the ledger counts each once)\n";
  const std::size_t rows = std::min<std::size_t>(r.fallbacks.size(), kListRows);
  for (std::size_t i = 0; i < rows; ++i) {
    const StatusFallback& f = r.fallbacks[i];
    *o += "    " + Pad(f.task, 20) + Pad("step " + std::to_string(f.step), 12) +
          Pad(FormatCount(f.tokens_redone) + " redone", 16) +
          Clip(f.reason, static_cast<std::size_t>(std::max(20, width - 52))) + "\n";
  }
  if (r.fallbacks.size() > rows) {
    *o += p.Dim("    (" + std::to_string(rows) + " of " + std::to_string(r.fallbacks.size()) +
                " shown; --json lists all)") +
          "\n";
  }
}

void Drain(const StatusReport& r, const Painter& p, std::string* o) {
  std::string line = "  drain     ";
  if (!r.drain.active) {
    line += "not requested";
  } else if (r.drain.phase == "draining") {
    line += p.Yellow("requested " + Ago(r.now_ms, r.drain.since_ms)) + ": " + r.drain.reason +
            "; waiting for " + FormatCount(r.drain.leases_outstanding) +
            " leases to checkpoint and end";
  } else {
    line += p.Yellow("done " + Ago(r.now_ms, r.drain.since_ms)) + ": " + r.drain.reason +
            "; no lease outstanding, the coordinator may exit for requeue";
  }
  *o += line + "\n";
}

void Cache(const StatusReport& r, int width, std::string* o) {
  if (r.cache.empty()) return;
  *o += "  cache     step-1 activation cache, window " +
        (r.run.cache_window > 0 ? std::to_string(r.run.cache_window) + " segments per stage"
                                : std::string("unlimited (the whole cache is kept)")) +
        "\n";
  const int bar_w = std::clamp(r.run.cache_window, 1, std::clamp(width - 90, 4, 16));
  for (const StatusCacheStage& c : r.cache) {
    std::string line = "    stage " + PadLeft(std::to_string(c.stage), 2) + "  ";
    if (c.window > 0) {
      line += PadLeft(std::to_string(c.slots_used), 3) + "/" + std::to_string(c.window) + " slots " +
              Bar(static_cast<double>(c.slots_used) / c.window, bar_w) + "  ";
    } else {
      line += PadLeft(std::to_string(c.slots_used), 3) + " held  ";
    }
    line += "pending " + std::to_string(c.pending) + ", producing " + std::to_string(c.producing) +
            ", resident " + std::to_string(c.resident) + ", evictable " +
            std::to_string(c.evictable) + ", evicted " + std::to_string(c.evicted) + " of " +
            std::to_string(c.segments);
    *o += line + "\n";
  }
}

void Counters(const StatusReport& r, std::string* o) {
  const RunMetrics& m = r.metrics;
  *o += "  counters  leases " + FormatCount(m.leases_granted) + " granted, " +
        FormatCount(m.leases_expired) + " expired, " + FormatCount(m.leases_failed) + " failed, " +
        FormatCount(m.leases_released) + " released, " + FormatCount(m.leases_abandoned) +
        " ended by restarts; " + FormatCount(m.heartbeats) + " heartbeats; " +
        FormatCount(m.checkpoints_committed) + " checkpoints; " + FormatCount(m.workers_lost) +
        " workers lost\n";
}

}  // namespace

std::string StatusTable(const StatusReport& r, int width, bool color) {
  width = std::max(width, 60);
  const Painter p(color);
  std::string o;
  Header(r, p, &o);
  Steps(r, width, p, &o);
  Layers(r, width, p, &o);
  Workers(r, p, &o);
  Leases(r, p, &o);
  Failures(r, width, p, &o);
  Fallbacks(r, width, p, &o);
  Drain(r, p, &o);
  Cache(r, width, &o);
  Counters(r, &o);
  return o;
}

}  // namespace radlads
