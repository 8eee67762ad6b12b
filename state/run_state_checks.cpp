// The checks of the run state: plan validation (before a run is created), the cross-references
// of a loaded or replayed state (CheckInvariants), its derived indexes, and the canonical dump
// that defines equality. Split from state/run_state.cpp, which holds Apply.
#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <set>
#include <type_traits>

#include "state/run_state.h"

namespace radlads {

// ---------------------------------------------------------------------------------------------
// Plan validation
// ---------------------------------------------------------------------------------------------
namespace {

bool ValidIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '/' || c == '-';
}

std::string TaskCtx(const TaskSpec& t) { return "plan: task '" + t.id + "': "; }

}  // namespace

Status ValidatePlan(const RunConfig& config, const std::vector<TaskSpec>& tasks) {
  if (config.lease_ttl_ms <= 0) {
    return Status::InvalidArgument("plan: lease_ttl_ms must be > 0, got " +
                                   std::to_string(config.lease_ttl_ms));
  }
  if (config.retry_limit < 0 || config.retry_limit > 1000) {
    return Status::InvalidArgument("plan: retry_limit must be in [0, 1000], got " +
                                   std::to_string(config.retry_limit));
  }
  if (config.cache_window < 0) {
    return Status::InvalidArgument("plan: cache_window must be >= 0 (0 = unlimited), got " +
                                   std::to_string(config.cache_window));
  }
  if (tasks.empty()) return Status::InvalidArgument("plan: no tasks");
  std::unordered_map<std::string, int> index;
  index.reserve(tasks.size());
  std::set<std::pair<int, int>> cache_keys;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const TaskSpec& t = tasks[i];
    if (t.id.empty() || t.id.size() > 200) {
      return Status::InvalidArgument("plan: task #" + std::to_string(i) +
                                     ": id must be 1-200 characters, got '" + t.id + "'");
    }
    for (char c : t.id) {
      if (!ValidIdChar(c)) {
        return Status::InvalidArgument(TaskCtx(t) + "id may hold only [A-Za-z0-9_./-]");
      }
    }
    if (!index.emplace(t.id, static_cast<int>(i)).second) {
      return Status::InvalidArgument(TaskCtx(t) + "duplicate task id");
    }
    if (static_cast<unsigned>(t.type) > static_cast<unsigned>(TaskType::kEval)) {
      return Status::InvalidArgument(TaskCtx(t) + "unknown task type");
    }
    if (t.workers < 1) {
      return Status::InvalidArgument(TaskCtx(t) + "workers must be >= 1, got " +
                                     std::to_string(t.workers));
    }
    if (t.tokens < 0 || t.optimizer_steps < 0 || t.sample_end < t.sample_begin) {
      return Status::InvalidArgument(TaskCtx(t) +
                                     "tokens and optimizer_steps must be >= 0 and "
                                     "sample_end >= sample_begin");
    }
    if (t.type == TaskType::kCache) {
      if (t.segment < 0 || t.stage < 0) {
        return Status::InvalidArgument(TaskCtx(t) + "a cache task needs segment >= 0 and stage >= 0");
      }
      if (!cache_keys.emplace(t.stage, t.segment).second) {
        return Status::InvalidArgument(TaskCtx(t) + "a second cache task for segment " +
                                       std::to_string(t.segment) + " stage " +
                                       std::to_string(t.stage));
      }
    }
    if (t.type == TaskType::kAlign && (t.layer < 0 || t.segment < 0)) {
      return Status::InvalidArgument(TaskCtx(t) + "an align task needs layer >= 0 and segment >= 0");
    }
  }
  // Dependencies exist, are not the task itself, are not repeated; the graph is acyclic.
  std::vector<int> indegree(tasks.size(), 0);
  std::vector<std::vector<int>> out(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const TaskSpec& t = tasks[i];
    std::set<std::string_view> seen;
    for (const auto& d : t.deps) {
      auto it = index.find(d);
      if (it == index.end()) {
        return Status::InvalidArgument(TaskCtx(t) + "dependency '" + d + "' is not in the plan");
      }
      if (it->second == static_cast<int>(i)) {
        return Status::InvalidArgument(TaskCtx(t) + "depends on itself");
      }
      if (!seen.insert(d).second) {
        return Status::InvalidArgument(TaskCtx(t) + "dependency '" + d + "' listed twice");
      }
      out[it->second].push_back(static_cast<int>(i));
      ++indegree[i];
    }
  }
  std::deque<int> q;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (indegree[i] == 0) q.push_back(static_cast<int>(i));
  }
  std::size_t visited = 0;
  while (!q.empty()) {
    const int n = q.front();
    q.pop_front();
    ++visited;
    for (int m : out[n]) {
      if (--indegree[m] == 0) q.push_back(m);
    }
  }
  if (visited != tasks.size()) {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (indegree[i] > 0) {
        return Status::InvalidArgument(TaskCtx(tasks[i]) + "is part of a dependency cycle");
      }
    }
  }
  // Step 1: every layer trains on the same tokens.
  std::map<int, std::int64_t> per_layer;
  for (const auto& t : tasks) {
    if (t.type == TaskType::kAlign) per_layer[t.layer] += t.tokens;
  }
  if (!per_layer.empty()) {
    const auto& first = *per_layer.begin();
    for (const auto& [layer, tokens] : per_layer) {
      if (tokens != first.second) {
        return Status::InvalidArgument(
            "plan: step-1 token budgets differ between layers: layer " +
            std::to_string(first.first) + " has " + std::to_string(first.second) +
            " tokens over its align tasks, layer " + std::to_string(layer) + " has " +
            std::to_string(tokens) + " (every layer must train on every segment)");
      }
    }
  }
  return Status::Ok();
}


// ---------------------------------------------------------------------------------------------
// Indexes, invariants, dump
// ---------------------------------------------------------------------------------------------

Status RunState::RebuildIndexes() {
  index_.clear();
  index_.reserve(tasks_.size());
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (tasks_[i].index != static_cast<int>(i)) {
      return Status::Corruption("task '" + tasks_[i].spec.id + "' has plan index " +
                                std::to_string(tasks_[i].index) + " at position " +
                                std::to_string(i));
    }
    if (!index_.emplace(tasks_[i].spec.id, static_cast<int>(i)).second) {
      return Status::Corruption("duplicate task '" + tasks_[i].spec.id + "'");
    }
  }
  deps_.assign(tasks_.size(), {});
  dependents_.assign(tasks_.size(), {});
  ready_.clear();
  state_counts_.fill(0);
  for (const auto& t : tasks_) ++state_counts_[static_cast<std::size_t>(t.state)];
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    for (const auto& d : tasks_[i].spec.deps) {
      auto it = index_.find(d);
      if (it == index_.end()) {
        return Status::Corruption("task '" + tasks_[i].spec.id + "': unknown dependency '" + d +
                                  "'");
      }
      deps_[i].push_back(it->second);
      dependents_[it->second].push_back(static_cast<int>(i));
    }
    if (tasks_[i].state == TaskState::kReady) ready_.insert(static_cast<int>(i));
  }
  if (ckpts_.size() != tasks_.size()) ckpts_.resize(tasks_.size());
  committing_leases_.clear();
  for (std::size_t i = 0; i < ckpts_.size(); ++i) {
    for (const auto& c : ckpts_[i]) committing_leases_[c.lease] = static_cast<int>(i);
  }
  return Status::Ok();
}

Status RunState::CheckInvariants() const {
  auto bad = [](std::string m) { return Status::Corruption("state invariant: " + std::move(m)); };
  TokenLedger expect;
  for (const auto& t : tasks_) {
    auto& s = expect.by_type[static_cast<std::size_t>(t.spec.type)];
    s.budget += t.spec.tokens;
    s.credited += t.committed_tokens;
    for (const DiscardedCommit& d : t.discarded) s.redone += d.tokens_redone;
    if (t.spec.type == TaskType::kAlign) {
      expect.align_layers[t.spec.layer].budget += t.spec.tokens;
      expect.align_layers[t.spec.layer].credited += t.committed_tokens;
    }
    if (t.committed_tokens < 0 || t.committed_tokens > t.spec.tokens) {
      return bad("task '" + t.spec.id + "' cursor " + std::to_string(t.committed_tokens) +
                 " outside its budget " + std::to_string(t.spec.tokens));
    }
    if (t.held_lease != 0) {  // layer affinity: done, held by the chain's live lease
      const int next = NextSegment(t.index);
      const TaskRecord* n = next >= 0 ? &tasks_[static_cast<std::size_t>(next)] : nullptr;
      if (t.state != TaskState::kDone || n == nullptr ||
          !(n->state == TaskState::kLeased || (n->state == TaskState::kDone && n->held_lease != 0))) {
        return bad("held task '" + t.spec.id + "' is not followed by a live chain");
      }
    } else if (t.state == TaskState::kDone && t.committed_tokens != t.spec.tokens) {
      return bad("done task '" + t.spec.id + "' credited " + std::to_string(t.committed_tokens) +
                 " of " + std::to_string(t.spec.tokens) + " tokens");
    }
    const bool leased = t.state == TaskState::kLeased;
    if (leased != (t.lease != 0)) return bad("task '" + t.spec.id + "' lease field vs state");
    if (leased) {
      const LeaseRecord* l = FindLease(t.lease);
      if (l == nullptr || l->task != t.spec.id) {
        return bad("task '" + t.spec.id + "' names lease " + std::to_string(t.lease));
      }
    }
    if ((t.state == TaskState::kReady) != (ready_.count(t.index) == 1)) {
      return bad("task '" + t.spec.id + "' ready set");
    }
    if (t.state != TaskState::kBlocked && t.state != TaskState::kFailed && !DepsDone(t.index)) {
      return bad("task '" + t.spec.id + "' is " + std::string(TaskStateName(t.state)) +
                 " with dependencies not done");
    }
  }
  for (std::size_t k = 0; k < expect.by_type.size(); ++k) {
    if (expect.by_type[k].budget != ledger_.by_type[k].budget ||
        expect.by_type[k].credited != ledger_.by_type[k].credited ||
        expect.by_type[k].redone != ledger_.by_type[k].redone) {
      return bad("ledger of " + std::string(TaskTypeName(static_cast<TaskType>(k))) +
                 " says " + std::to_string(ledger_.by_type[k].credited) + "/" +
                 std::to_string(ledger_.by_type[k].budget) + " (redone " +
                 std::to_string(ledger_.by_type[k].redone) + "), tasks say " +
                 std::to_string(expect.by_type[k].credited) + "/" +
                 std::to_string(expect.by_type[k].budget) + " (redone " +
                 std::to_string(expect.by_type[k].redone) + ")");
    }
  }
  if (expect.align_layers.size() != ledger_.align_layers.size()) return bad("align layer ledger");
  for (const auto& [layer, l] : expect.align_layers) {
    auto it = ledger_.align_layers.find(layer);
    if (it == ledger_.align_layers.end() || it->second.budget != l.budget ||
        it->second.credited != l.credited) {
      return bad("align ledger of layer " + std::to_string(layer));
    }
  }
  for (const auto& [id, l] : leases_) {
    const TaskRecord* t = FindTask(l.task);
    if (t == nullptr || t->lease != id) return bad("lease " + std::to_string(id) + " vs its task");
    const WorkerRecord* w = FindWorker(l.worker);
    if (w == nullptr || w->lease != id || w->state != WorkerState::kBusy) {
      return bad("lease " + std::to_string(id) + " vs worker '" + l.worker + "'");
    }
    if (id >= next_lease_id_) return bad("lease id beyond next_lease_id");
  }
  for (const auto& [id, w] : workers_) {
    if ((w.state == WorkerState::kBusy) != (w.lease != 0)) return bad("worker '" + id + "' lease");
    if (w.lease != 0 && FindLease(w.lease) == nullptr) return bad("worker '" + id + "' lease");
  }
  if (config_.cache_window > 0) {
    std::map<int, int> used;
    for (const auto& [key, s] : segments_) used[key.first] += HoldsWindowSlot(s.state) ? 1 : 0;
    for (const auto& [stage, n] : used) {
      if (n > config_.cache_window) {
        return bad("stage " + std::to_string(stage) + " holds " + std::to_string(n) +
                   " segments, window is " + std::to_string(config_.cache_window));
      }
    }
  }
  if ((status_.phase == RunPhase::kDrained) && !leases_.empty()) return bad("drained with leases");
  return Status::Ok();
}

namespace {

void AppendF(std::string* out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void AppendF(std::string* out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (static_cast<std::size_t>(n) < sizeof(buf)) {
    out->append(buf, static_cast<std::size_t>(n));
    return;
  }
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(big.data(), big.size(), fmt, ap);
  va_end(ap);
  big.resize(static_cast<std::size_t>(n));
  out->append(big);
}

void DumpValues(std::string* out, const std::vector<NamedValue>& v) {
  out->push_back('[');
  for (const auto& nv : v) AppendF(out, "%s=%a,", nv.name.c_str(), nv.value);
  out->push_back(']');
}

void DumpCheckpoint(std::string* out, const CheckpointRecord& c) {
  AppendF(out, "step=%" PRId64 " tokens=%" PRId64 " files=[", c.step, c.tokens_consumed);
  for (const auto& f : c.files) {
    AppendF(out, "%s:%" PRId64 ":%s,", f.path.c_str(), f.bytes, f.checksum.c_str());
  }
  out->push_back(']');
}

}  // namespace

std::string RunState::CanonicalDump() const {
  std::string out;
  out.reserve(256 + tasks_.size() * 256);
  AppendF(&out, "run id=%s phase=%s reason=\"%s\" created=%" PRId64 " since=%" PRId64
                " incarnation=%" PRId64 " last_seq=%" PRIu64 " next_lease=%" PRIu64 "\n",
          config_.run_id.c_str(), std::string(RunPhaseName(status_.phase)).c_str(),
          status_.reason.c_str(), status_.created_ms, status_.phase_since_ms,
          status_.incarnation, last_seq_, next_lease_id_);
  AppendF(&out, "cancelled=\"%s\" job=\"%s\" job_starts=%" PRId64 "\n", status_.cancelled.c_str(),
          status_.cancelled_job.c_str(), status_.job_starts);
  for (const JobStart& j : status_.jobs) {
    AppendF(&out, "job %s %s restart=%d nodes=%s end=%" PRId64 " progress=%" PRId64 " refused=\"%s\"\n",
            j.scheduler.c_str(), j.job_id.c_str(), j.restart, j.nodes.c_str(), j.end_ms, j.progress,
            j.refused.c_str());
  }
  AppendF(&out, "config ttl_ms=%" PRId64 " retry_limit=%d cache_window=%d\n",
          config_.lease_ttl_ms, config_.retry_limit, config_.cache_window);
  const RunMetrics& m = metrics_;
  AppendF(&out,
          "metrics events=%" PRId64 " leases=%" PRId64 " heartbeats=%" PRId64
          " checkpoints=%" PRId64 " completed=%" PRId64 " expired=%" PRId64 " failed=%" PRId64
          " released=%" PRId64 " abandoned=%" PRId64 " workers_lost=%" PRId64
          " evicted=%" PRId64 " drains=%" PRId64 " resumes=%" PRId64 " discarded=%" PRId64 "\n",
          m.events, m.leases_granted, m.heartbeats, m.checkpoints_committed, m.tasks_completed,
          m.leases_expired, m.leases_failed, m.leases_released, m.leases_abandoned,
          m.workers_lost, m.segments_evicted, m.drains, m.resumes, m.checkpoints_discarded);
  for (std::size_t k = 0; k < ledger_.by_type.size(); ++k) {
    AppendF(&out, "ledger %s %" PRId64 "/%" PRId64 " redone=%" PRId64 "\n",
            std::string(TaskTypeName(static_cast<TaskType>(k))).c_str(),
            ledger_.by_type[k].credited, ledger_.by_type[k].budget, ledger_.by_type[k].redone);
  }
  for (const auto& [layer, l] : ledger_.align_layers) {
    AppendF(&out, "ledger align/L%d %" PRId64 "/%" PRId64 " redone=%" PRId64 "\n", layer, l.credited, l.budget,
            l.redone);
  }
  for (const auto& t : tasks_) {
    const TaskSpec& s = t.spec;
    AppendF(&out,
            "task %d %s type=%s layer=%d segment=%d stage=%d layers=[%d,%d) tokens=%" PRId64
            " samples=[%" PRId64 ",%" PRId64 ") steps=%" PRId64 " workers=%d deps=[",
            t.index, s.id.c_str(), std::string(TaskTypeName(s.type)).c_str(), s.layer, s.segment,
            s.stage, s.first_layer, s.last_layer, s.tokens, s.sample_begin, s.sample_end,
            s.optimizer_steps, s.workers);
    for (const auto& d : s.deps) AppendF(&out, "%s,", d.c_str());
    AppendF(&out,
            "] state=%s failures=%d attempt=%d lease=%" PRIu64 " held=%" PRIu64 " worker=%s cursor=%" PRId64
            " ckpt_step=%" PRId64 " ckpts=%" PRId64 " changed=%" PRId64 " error=\"%s\"",
            std::string(TaskStateName(t.state)).c_str(), t.failures, t.attempt, t.lease, t.held_lease,
            t.worker.c_str(), t.committed_tokens, t.checkpoint_step, t.checkpoints,
            t.changed_at_ms, t.last_error.c_str());
    AppendF(&out, " reported=\"%s\"", t.reported_error.c_str());
    AppendF(&out, " progress=%" PRId64 "/%" PRId64 "/%a@%" PRId64, t.progress.tokens,
            t.progress.step, t.progress.throughput, t.progress_at_ms);
    DumpValues(&out, t.progress.losses);
    out += " final=";
    DumpValues(&out, t.final_metrics);
    out.push_back('\n');
    for (const DiscardedCommit& d : t.discarded) {
      AppendF(&out, "  discarded position=%" PRId64 " step=%" PRId64 " redone=%" PRId64 " at=%" PRId64 " reason=\"%s\"\n",
              d.position, d.step, d.tokens_redone, d.at_ms, d.reason.c_str());
    }
    for (const auto& c : ckpts_[t.index]) {
      AppendF(&out, "  ckpt lease=%" PRIu64 " attempt=%d at=%" PRId64 " final=%d ", c.lease,
              c.attempt, c.committed_ms, c.final ? 1 : 0);
      DumpCheckpoint(&out, c.record);
      out.push_back('\n');
    }
  }
  for (const auto& [id, l] : leases_) {
    AppendF(&out,
            "lease %" PRIu64 " task=%s worker=%s attempt=%d granted=%" PRId64
            " deadline=%" PRId64 " last_hb=%" PRId64 " hbs=%" PRId64 "\n",
            id, l.task.c_str(), l.worker.c_str(), l.attempt, l.granted_ms, l.deadline_ms,
            l.last_heartbeat_ms, l.heartbeats);
  }
  for (const auto& [id, w] : workers_) {
    AppendF(&out,
            "worker %s host=%s pid=%" PRId64 " group=%d caps=%u state=%s lease=%" PRIu64
            " registered=%" PRId64 " seen=%" PRId64 " lost=\"%s\" leases=%" PRId64
            " done=%" PRId64 " members=[",
            id.c_str(), w.info.host.c_str(), w.info.pid, w.info.group_size,
            w.info.capabilities, std::string(WorkerStateName(w.state)).c_str(), w.lease,
            w.registered_ms, w.last_seen_ms, w.lost_reason.c_str(), w.leases,
            w.tasks_completed);
    for (const auto& mem : w.info.members) AppendF(&out, "%s,", mem.c_str());
    out += "]\n";
  }
  for (const auto& [key, s] : segments_) {
    AppendF(&out, "segment P%d S%d task=%s state=%s changed=%" PRId64 "\n", s.stage, s.segment,
            s.task.c_str(), std::string(SegmentStateName(s.state)).c_str(), s.changed_ms);
  }
  return out;
}


}  // namespace radlads
