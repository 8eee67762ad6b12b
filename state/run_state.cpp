#include "state/run_state.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <type_traits>

namespace radlads {

namespace {
constexpr std::array<std::string_view, 5> kTaskStateNames = {"blocked", "ready", "leased", "done",
                                                             "failed"};
}  // namespace

std::string_view TaskStateName(TaskState s) { return kTaskStateNames[static_cast<std::size_t>(s)]; }

bool ParseTaskState(std::string_view name, TaskState* out) {
  for (std::size_t i = 0; i < kTaskStateNames.size(); ++i) {
    if (kTaskStateNames[i] == name) {
      *out = static_cast<TaskState>(i);
      return true;
    }
  }
  return false;
}


std::string_view RunPhaseName(RunPhase p) {
  switch (p) {
    case RunPhase::kEmpty: return "empty";
    case RunPhase::kRunning: return "running";
    case RunPhase::kDraining: return "draining";
    case RunPhase::kDrained: return "drained";
    case RunPhase::kCompleted: return "completed";
    case RunPhase::kFailed: return "failed";
  }
  return "unknown";
}

std::string_view WorkerStateName(WorkerState s) {
  switch (s) {
    case WorkerState::kIdle: return "idle";
    case WorkerState::kBusy: return "busy";
    case WorkerState::kLost: return "lost";
  }
  return "unknown";
}

std::string_view SegmentStateName(SegmentState s) {
  switch (s) {
    case SegmentState::kPending: return "pending";
    case SegmentState::kProducing: return "producing";
    case SegmentState::kResident: return "resident";
    case SegmentState::kEvictable: return "evictable";
    case SegmentState::kEvicted: return "evicted";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Ledger
// ---------------------------------------------------------------------------------------------

std::int64_t TokenLedger::AlignBudget() const {
  return align_layers.empty() ? 0 : align_layers.begin()->second.budget;
}

std::int64_t TokenLedger::AlignMinTokens() const {
  if (align_layers.empty()) return 0;
  std::int64_t m = align_layers.begin()->second.credited;
  for (const auto& [layer, l] : align_layers) m = std::min(m, l.credited);
  return m;
}

double TokenLedger::AlignMeanTokens() const {
  if (align_layers.empty()) return 0.0;
  double sum = 0.0;
  for (const auto& [layer, l] : align_layers) sum += static_cast<double>(l.credited);
  return sum / static_cast<double>(align_layers.size());
}

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
// Queries
// ---------------------------------------------------------------------------------------------

int RunState::TaskIndex(std::string_view id) const {
  auto it = index_.find(std::string(id));
  return it == index_.end() ? -1 : it->second;
}

const TaskRecord* RunState::FindTask(std::string_view id) const {
  const int i = TaskIndex(id);
  return i < 0 ? nullptr : &tasks_[i];
}

bool RunState::DepsDone(int index) const {
  for (int d : deps_[index]) {
    if (tasks_[d].state != TaskState::kDone) return false;
  }
  return true;
}

const LeaseRecord* RunState::FindLease(LeaseId id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : &it->second;
}

const WorkerRecord* RunState::FindWorker(std::string_view id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

const CommittedCheckpoint* RunState::LastCheckpoint(std::string_view task) const {
  const int i = TaskIndex(task);
  if (i < 0 || ckpts_[i].empty()) return nullptr;
  return &ckpts_[i].back();
}

int RunState::TaskOfCommittingLease(LeaseId lease) const {
  auto it = committing_leases_.find(lease);
  return it == committing_leases_.end() ? -1 : it->second;
}

const SegmentRecord* RunState::FindSegment(int segment, int stage) const {
  auto it = segments_.find({stage, segment});
  return it == segments_.end() ? nullptr : &it->second;
}

int RunState::WindowSlotsUsed(int stage) const {
  int n = 0;
  for (auto it = segments_.lower_bound({stage, INT_MIN});
       it != segments_.end() && it->first.first == stage; ++it) {
    if (HoldsWindowSlot(it->second.state)) ++n;
  }
  return n;
}

void RunState::SetTaskState(TaskRecord& t, TaskState s) {
  --state_counts_[static_cast<std::size_t>(t.state)];
  ++state_counts_[static_cast<std::size_t>(s)];
  t.state = s;
  if (s == TaskState::kReady) {
    ready_.insert(t.index);
  } else {
    ready_.erase(t.index);
  }
}

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

Status RunState::Fail(const Event& e, std::string_view what) const {
  return Status::Corruption("event #" + std::to_string(e.seq) + " (" +
                            std::string(EventKindName(KindOf(e.body))) +
                            ") does not fit the state: " + std::string(what));
}

Status RunState::Apply(const Event& e, RowChanges* changes) {
  RowChanges scratch;
  RowChanges* c = changes ? changes : &scratch;
  if (e.seq != last_seq_ + 1) {
    return Fail(e, "expected sequence number " + std::to_string(last_seq_ + 1));
  }
  if (status_.phase == RunPhase::kEmpty && !std::holds_alternative<RunCreated>(e.body)) {
    return Fail(e, "the run has not been created (the first event must be run_created)");
  }
  Status st = std::visit(
      [&](const auto& b) -> Status {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, RunCreated>) return ApplyRunCreated(e, b, c);
        else if constexpr (std::is_same_v<T, WorkerRegistered>) return ApplyWorkerRegistered(e, b, c);
        else if constexpr (std::is_same_v<T, WorkerLost>) return ApplyWorkerLost(e, b, c);
        else if constexpr (std::is_same_v<T, TaskReady>) return ApplyTaskReady(e, b, c);
        else if constexpr (std::is_same_v<T, TaskLeased>) return ApplyTaskLeased(e, b, c);
        else if constexpr (std::is_same_v<T, TaskProgress>) return ApplyTaskProgress(e, b, c);
        else if constexpr (std::is_same_v<T, CheckpointCommitted>)
          return ApplyCheckpointCommitted(e, b, c);
        else if constexpr (std::is_same_v<T, TaskCompleted>) return ApplyTaskCompleted(e, b, c);
        else if constexpr (std::is_same_v<T, LeaseEnded>) return ApplyLeaseEnded(e, b, c);
        else if constexpr (std::is_same_v<T, TaskFailed>) return ApplyTaskFailed(e, b, c);
        else if constexpr (std::is_same_v<T, RunFailed>) return ApplyRunFailed(e, b, c);
        else if constexpr (std::is_same_v<T, RunCompleted>) return ApplyRunCompleted(e, b, c);
        else if constexpr (std::is_same_v<T, DrainRequested>) return ApplyDrainRequested(e, b, c);
        else if constexpr (std::is_same_v<T, DrainCompleted>) return ApplyDrainCompleted(e, b, c);
        else if constexpr (std::is_same_v<T, RunResumed>) return ApplyRunResumed(e, b, c);
        else if constexpr (std::is_same_v<T, SegmentEvictable>)
          return ApplySegmentEvictable(e, b, c);
        else return ApplySegmentEvicted(e, b, c);
      },
      e.body);
  if (!st.ok()) return st;
  last_seq_ = e.seq;
  ++metrics_.events;
  c->run = true;
  return Status::Ok();
}

void RunState::SetPhase(RunPhase p, TimeMs at) {
  status_.phase = p;
  status_.phase_since_ms = at;
}

Status RunState::CheckLease(const Event& e, LeaseId lease, std::string_view task) const {
  const LeaseRecord* l = FindLease(lease);
  if (l == nullptr) return Fail(e, "lease " + std::to_string(lease) + " is not outstanding");
  if (l->task != task) {
    return Fail(e, "lease " + std::to_string(lease) + " belongs to task '" + l->task + "', not '" +
                       std::string(task) + "'");
  }
  return Status::Ok();
}

void RunState::Credit(const TaskRecord& t, std::int64_t tokens) {
  ledger_.by_type[static_cast<std::size_t>(t.spec.type)].credited += tokens;
  if (t.spec.type == TaskType::kAlign) ledger_.align_layers[t.spec.layer].credited += tokens;
}

Status RunState::ApplyRunCreated(const Event& e, const RunCreated& b, RowChanges* c) {
  if (status_.phase != RunPhase::kEmpty || last_seq_ != 0) {
    return Fail(e, "the run already exists");
  }
  Status v = ValidatePlan(b.config, b.tasks);
  if (!v.ok()) return Fail(e, v.message());
  config_ = b.config;
  tasks_.clear();
  tasks_.reserve(b.tasks.size());
  for (std::size_t i = 0; i < b.tasks.size(); ++i) {
    TaskRecord r;
    r.spec = b.tasks[i];
    r.index = static_cast<int>(i);
    r.changed_at_ms = e.at_ms;
    tasks_.push_back(std::move(r));
  }
  ckpts_.assign(tasks_.size(), {});
  ledger_ = TokenLedger{};
  for (const auto& t : tasks_) {
    ledger_.by_type[static_cast<std::size_t>(t.spec.type)].budget += t.spec.tokens;
    if (t.spec.type == TaskType::kAlign) ledger_.align_layers[t.spec.layer].budget += t.spec.tokens;
    if (t.spec.type == TaskType::kCache) {
      SegmentRecord s;
      s.segment = t.spec.segment;
      s.stage = t.spec.stage;
      s.task = t.spec.id;
      s.changed_ms = e.at_ms;
      segments_[{s.stage, s.segment}] = s;
      c->segments.insert({s.stage, s.segment});
    }
  }
  status_.created_ms = e.at_ms;
  SetPhase(RunPhase::kRunning, e.at_ms);
  Status st = RebuildIndexes();
  if (!st.ok()) return st;  // unreachable: ValidatePlan passed
  c->plan = true;
  c->ledger = true;
  for (std::size_t i = 0; i < tasks_.size(); ++i) c->tasks.insert(static_cast<int>(i));
  return Status::Ok();
}

Status RunState::ApplyWorkerRegistered(const Event& e, const WorkerRegistered& b, RowChanges* c) {
  if (b.worker.id.empty()) return Fail(e, "empty worker id");
  if (b.worker.group_size < 1) return Fail(e, "group_size < 1");
  auto it = workers_.find(b.worker.id);
  if (it != workers_.end() && it->second.lease != 0) {
    return Fail(e, "worker '" + b.worker.id + "' still holds lease " +
                       std::to_string(it->second.lease));
  }
  WorkerRecord& w = workers_[b.worker.id];
  const std::int64_t leases = w.leases, done = w.tasks_completed;
  w = WorkerRecord{};
  w.info = b.worker;
  w.state = WorkerState::kIdle;
  w.registered_ms = e.at_ms;
  w.last_seen_ms = e.at_ms;
  w.leases = leases;
  w.tasks_completed = done;
  c->workers.insert(b.worker.id);
  return Status::Ok();
}

Status RunState::ApplyWorkerLost(const Event& e, const WorkerLost& b, RowChanges* c) {
  auto it = workers_.find(b.worker);
  if (it == workers_.end()) return Fail(e, "unknown worker '" + b.worker + "'");
  if (it->second.lease != 0) return Fail(e, "worker '" + b.worker + "' still holds a lease");
  if (it->second.state == WorkerState::kLost) return Fail(e, "worker '" + b.worker + "' is already lost");
  it->second.state = WorkerState::kLost;
  it->second.lost_reason = b.reason;
  ++metrics_.workers_lost;
  c->workers.insert(b.worker);
  return Status::Ok();
}

Status RunState::ApplyTaskReady(const Event& e, const TaskReady& b, RowChanges* c) {
  const int i = TaskIndex(b.task);
  if (i < 0) return Fail(e, "unknown task '" + b.task + "'");
  TaskRecord& t = tasks_[i];
  if (t.state != TaskState::kBlocked) {
    return Fail(e, "task '" + b.task + "' is " + std::string(TaskStateName(t.state)) +
                       ", not blocked");
  }
  if (!DepsDone(i)) return Fail(e, "task '" + b.task + "' has dependencies not done");
  SetTaskState(t, TaskState::kReady);
  t.changed_at_ms = e.at_ms;
  c->tasks.insert(i);
  return Status::Ok();
}

Status RunState::ApplyTaskLeased(const Event& e, const TaskLeased& b, RowChanges* c) {
  if (status_.phase != RunPhase::kRunning) {
    return Fail(e, "the run is " + std::string(RunPhaseName(status_.phase)) + ", not running");
  }
  const int i = TaskIndex(b.task);
  if (i < 0) return Fail(e, "unknown task '" + b.task + "'");
  TaskRecord& t = tasks_[i];
  if (t.state != TaskState::kReady) {
    return Fail(e, "task '" + b.task + "' is " + std::string(TaskStateName(t.state)) +
                       ", not ready");
  }
  if (b.lease != next_lease_id_) {
    return Fail(e, "lease id " + std::to_string(b.lease) + ", expected " +
                       std::to_string(next_lease_id_));
  }
  if (b.attempt != t.failures + 1) {
    return Fail(e, "attempt " + std::to_string(b.attempt) + ", expected " +
                       std::to_string(t.failures + 1));
  }
  auto wit = workers_.find(b.worker);
  if (wit == workers_.end()) return Fail(e, "unknown worker '" + b.worker + "'");
  WorkerRecord& w = wit->second;
  if (w.state != WorkerState::kIdle) {
    return Fail(e, "worker '" + b.worker + "' is " + std::string(WorkerStateName(w.state)));
  }
  SetTaskState(t, TaskState::kLeased);
  t.lease = b.lease;
  t.attempt = b.attempt;
  t.worker = b.worker;
  t.changed_at_ms = e.at_ms;
  LeaseRecord l;
  l.id = b.lease;
  l.task = b.task;
  l.worker = b.worker;
  l.attempt = b.attempt;
  l.granted_ms = e.at_ms;
  l.deadline_ms = b.deadline_ms;
  leases_[l.id] = l;
  w.state = WorkerState::kBusy;
  w.lease = b.lease;
  w.last_seen_ms = e.at_ms;
  ++w.leases;
  ++next_lease_id_;
  ++metrics_.leases_granted;
  if (t.spec.type == TaskType::kCache) {
    auto sit = segments_.find({t.spec.stage, t.spec.segment});
    if (sit != segments_.end() && sit->second.state == SegmentState::kPending) {
      sit->second.state = SegmentState::kProducing;
      sit->second.changed_ms = e.at_ms;
      c->segments.insert(sit->first);
    }
  }
  c->tasks.insert(i);
  c->leases.insert(b.lease);
  c->workers.insert(b.worker);
  return Status::Ok();
}

Status RunState::ApplyTaskProgress(const Event& e, const TaskProgress& b, RowChanges* c) {
  Status st = CheckLease(e, b.lease, b.task);
  if (!st.ok()) return st;
  LeaseRecord& l = leases_[b.lease];
  const int i = TaskIndex(b.task);
  l.deadline_ms = b.deadline_ms;
  l.last_heartbeat_ms = e.at_ms;
  ++l.heartbeats;
  TaskRecord& t = tasks_[i];
  t.progress = b.progress;
  t.progress_at_ms = e.at_ms;
  auto wit = workers_.find(l.worker);
  if (wit != workers_.end()) {
    wit->second.last_seen_ms = e.at_ms;
    c->workers.insert(l.worker);
  }
  ++metrics_.heartbeats;
  c->leases.insert(b.lease);
  c->tasks.insert(i);
  return Status::Ok();
}

Status RunState::ApplyCheckpointCommitted(const Event& e, const CheckpointCommitted& b,
                                          RowChanges* c) {
  Status st = CheckLease(e, b.lease, b.task);
  if (!st.ok()) return st;
  const int i = TaskIndex(b.task);
  TaskRecord& t = tasks_[i];
  const CheckpointRecord& ck = b.checkpoint;
  if (ck.step <= t.checkpoint_step) {
    return Fail(e, "checkpoint step " + std::to_string(ck.step) + " is not after step " +
                       std::to_string(t.checkpoint_step));
  }
  if (ck.tokens_consumed < t.committed_tokens || ck.tokens_consumed > t.spec.tokens) {
    return Fail(e, "token cursor " + std::to_string(ck.tokens_consumed) + " outside [" +
                       std::to_string(t.committed_tokens) + ", " + std::to_string(t.spec.tokens) +
                       "]");
  }
  if (b.tokens_credited != ck.tokens_consumed - t.committed_tokens) {
    return Fail(e, "credits " + std::to_string(b.tokens_credited) + " tokens; the cursor moved " +
                       std::to_string(ck.tokens_consumed - t.committed_tokens));
  }
  const LeaseRecord& l = leases_[b.lease];
  CommittedCheckpoint cc;
  cc.task = b.task;
  cc.record = ck;
  cc.lease = b.lease;
  cc.attempt = l.attempt;
  cc.committed_ms = e.at_ms;
  cc.final = false;
  ckpts_[i].push_back(std::move(cc));
  c->checkpoints.emplace_back(i, ckpts_[i].size() - 1);
  committing_leases_[b.lease] = i;
  Credit(t, b.tokens_credited);
  t.committed_tokens = ck.tokens_consumed;
  t.checkpoint_step = ck.step;
  ++t.checkpoints;
  ++metrics_.checkpoints_committed;
  c->tasks.insert(i);
  c->ledger = true;
  return Status::Ok();
}

Status RunState::ApplyTaskCompleted(const Event& e, const TaskCompleted& b, RowChanges* c) {
  Status st = CheckLease(e, b.lease, b.task);
  if (!st.ok()) return st;
  const int i = TaskIndex(b.task);
  TaskRecord& t = tasks_[i];
  const CheckpointRecord& ck = b.final_record.checkpoint;
  if (ck.tokens_consumed != t.spec.tokens) {
    return Fail(e, "final token cursor " + std::to_string(ck.tokens_consumed) +
                       " is not the task's budget " + std::to_string(t.spec.tokens));
  }
  if (ck.step < t.checkpoint_step) {
    return Fail(e, "final step " + std::to_string(ck.step) + " is before the committed step " +
                       std::to_string(t.checkpoint_step));
  }
  if (b.tokens_credited != ck.tokens_consumed - t.committed_tokens) {
    return Fail(e, "credits " + std::to_string(b.tokens_credited) + " tokens; the cursor moved " +
                       std::to_string(ck.tokens_consumed - t.committed_tokens));
  }
  auto lit = leases_.find(b.lease);
  const std::string worker = lit->second.worker;
  CommittedCheckpoint cc;
  cc.task = b.task;
  cc.record = ck;
  cc.lease = b.lease;
  cc.attempt = lit->second.attempt;
  cc.committed_ms = e.at_ms;
  cc.final = true;
  ckpts_[i].push_back(std::move(cc));
  c->checkpoints.emplace_back(i, ckpts_[i].size() - 1);
  committing_leases_[b.lease] = i;
  leases_.erase(lit);
  Credit(t, b.tokens_credited);
  t.committed_tokens = ck.tokens_consumed;
  t.checkpoint_step = ck.step;
  ++t.checkpoints;
  SetTaskState(t, TaskState::kDone);
  t.lease = 0;
  t.final_metrics = b.final_record.metrics;
  t.changed_at_ms = e.at_ms;
  auto wit = workers_.find(worker);
  if (wit != workers_.end()) {
    wit->second.state = WorkerState::kIdle;
    wit->second.lease = 0;
    wit->second.last_seen_ms = e.at_ms;
    ++wit->second.tasks_completed;
    c->workers.insert(worker);
  }
  if (t.spec.type == TaskType::kCache) {
    auto sit = segments_.find({t.spec.stage, t.spec.segment});
    if (sit != segments_.end()) {
      sit->second.state = SegmentState::kResident;
      sit->second.changed_ms = e.at_ms;
      c->segments.insert(sit->first);
    }
  }
  ++metrics_.tasks_completed;
  c->tasks.insert(i);
  c->leases.insert(b.lease);
  c->ledger = true;
  return Status::Ok();
}

Status RunState::ApplyLeaseEnded(const Event& e, const LeaseEnded& b, RowChanges* c) {
  Status st = CheckLease(e, b.lease, b.task);
  if (!st.ok()) return st;
  const int i = TaskIndex(b.task);
  TaskRecord& t = tasks_[i];
  auto lit = leases_.find(b.lease);
  const std::string worker = lit->second.worker;
  leases_.erase(lit);
  SetTaskState(t, TaskState::kReady);
  t.lease = 0;
  t.changed_at_ms = e.at_ms;
  if (CountsAsFailure(b.cause)) {
    ++t.failures;
    t.last_error = b.reason;
  }
  auto wit = workers_.find(worker);
  if (wit != workers_.end()) {
    wit->second.state = WorkerState::kIdle;
    wit->second.lease = 0;
    c->workers.insert(worker);
  }
  switch (b.cause) {
    case LeaseEndCause::kExpired: ++metrics_.leases_expired; break;
    case LeaseEndCause::kFailed: ++metrics_.leases_failed; break;
    case LeaseEndCause::kReleased: ++metrics_.leases_released; break;
    case LeaseEndCause::kCoordinatorRestart: ++metrics_.leases_abandoned; break;
  }
  c->tasks.insert(i);
  c->leases.insert(b.lease);
  return Status::Ok();
}

Status RunState::ApplyTaskFailed(const Event& e, const TaskFailed& b, RowChanges* c) {
  const int i = TaskIndex(b.task);
  if (i < 0) return Fail(e, "unknown task '" + b.task + "'");
  TaskRecord& t = tasks_[i];
  if (t.state != TaskState::kReady) {
    return Fail(e, "task '" + b.task + "' is " + std::string(TaskStateName(t.state)) +
                       ", not ready");
  }
  SetTaskState(t, TaskState::kFailed);
  t.last_error = b.reason;
  t.changed_at_ms = e.at_ms;
  c->tasks.insert(i);
  return Status::Ok();
}

Status RunState::ApplyRunFailed(const Event& e, const RunFailed& b, RowChanges*) {
  if (status_.phase == RunPhase::kCompleted || status_.phase == RunPhase::kFailed) {
    return Fail(e, "the run is already " + std::string(RunPhaseName(status_.phase)));
  }
  status_.reason = b.reason;
  SetPhase(RunPhase::kFailed, e.at_ms);
  return Status::Ok();
}

Status RunState::ApplyRunCompleted(const Event& e, const RunCompleted&, RowChanges*) {
  if (status_.phase == RunPhase::kCompleted || status_.phase == RunPhase::kFailed) {
    return Fail(e, "the run is already " + std::string(RunPhaseName(status_.phase)));
  }
  if (TasksIn(TaskState::kDone) != static_cast<int>(tasks_.size())) {
    return Fail(e, std::to_string(tasks_.size() - TasksIn(TaskState::kDone)) +
                       " tasks are not done");
  }
  status_.reason.clear();
  SetPhase(RunPhase::kCompleted, e.at_ms);
  return Status::Ok();
}

Status RunState::ApplyDrainRequested(const Event& e, const DrainRequested& b, RowChanges*) {
  if (status_.phase != RunPhase::kRunning) {
    return Fail(e, "the run is " + std::string(RunPhaseName(status_.phase)) + ", not running");
  }
  status_.reason = b.reason;
  SetPhase(RunPhase::kDraining, e.at_ms);
  ++metrics_.drains;
  return Status::Ok();
}

Status RunState::ApplyDrainCompleted(const Event& e, const DrainCompleted&, RowChanges*) {
  if (status_.phase != RunPhase::kDraining) {
    return Fail(e, "the run is " + std::string(RunPhaseName(status_.phase)) + ", not draining");
  }
  if (!leases_.empty()) return Fail(e, std::to_string(leases_.size()) + " leases outstanding");
  SetPhase(RunPhase::kDrained, e.at_ms);
  return Status::Ok();
}

Status RunState::ApplyRunResumed(const Event& e, const RunResumed&, RowChanges*) {
  if (!leases_.empty()) return Fail(e, std::to_string(leases_.size()) + " leases outstanding");
  if (status_.phase == RunPhase::kDraining || status_.phase == RunPhase::kDrained) {
    status_.reason.clear();
    SetPhase(RunPhase::kRunning, e.at_ms);
  }
  ++status_.incarnation;
  ++metrics_.resumes;
  return Status::Ok();
}

Status RunState::ApplySegmentEvictable(const Event& e, const SegmentEvictable& b, RowChanges* c) {
  auto it = segments_.find({b.stage, b.segment});
  if (it == segments_.end()) {
    return Fail(e, "no cache segment " + std::to_string(b.segment) + " of stage " +
                       std::to_string(b.stage));
  }
  if (it->second.state != SegmentState::kResident) {
    return Fail(e, "segment is " + std::string(SegmentStateName(it->second.state)) +
                       ", not resident");
  }
  const int i = TaskIndex(it->second.task);
  for (int d : dependents_[i]) {
    if (tasks_[d].state != TaskState::kDone) {
      return Fail(e, "reader '" + tasks_[d].spec.id + "' is not done");
    }
  }
  it->second.state = SegmentState::kEvictable;
  it->second.changed_ms = e.at_ms;
  c->segments.insert(it->first);
  return Status::Ok();
}

Status RunState::ApplySegmentEvicted(const Event& e, const SegmentEvicted& b, RowChanges* c) {
  auto it = segments_.find({b.stage, b.segment});
  if (it == segments_.end()) {
    return Fail(e, "no cache segment " + std::to_string(b.segment) + " of stage " +
                       std::to_string(b.stage));
  }
  if (it->second.state != SegmentState::kEvictable) {
    return Fail(e, "segment is " + std::string(SegmentStateName(it->second.state)) +
                       ", not evictable");
  }
  it->second.state = SegmentState::kEvicted;
  it->second.changed_ms = e.at_ms;
  ++metrics_.segments_evicted;
  c->segments.insert(it->first);
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
    if (t.spec.type == TaskType::kAlign) {
      expect.align_layers[t.spec.layer].budget += t.spec.tokens;
      expect.align_layers[t.spec.layer].credited += t.committed_tokens;
    }
    if (t.committed_tokens < 0 || t.committed_tokens > t.spec.tokens) {
      return bad("task '" + t.spec.id + "' cursor " + std::to_string(t.committed_tokens) +
                 " outside its budget " + std::to_string(t.spec.tokens));
    }
    if (t.state == TaskState::kDone && t.committed_tokens != t.spec.tokens) {
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
        expect.by_type[k].credited != ledger_.by_type[k].credited) {
      return bad("ledger of " + std::string(TaskTypeName(static_cast<TaskType>(k))) +
                 " says " + std::to_string(ledger_.by_type[k].credited) + "/" +
                 std::to_string(ledger_.by_type[k].budget) + ", tasks say " +
                 std::to_string(expect.by_type[k].credited) + "/" +
                 std::to_string(expect.by_type[k].budget));
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
  AppendF(&out, "config ttl_ms=%" PRId64 " retry_limit=%d cache_window=%d\n",
          config_.lease_ttl_ms, config_.retry_limit, config_.cache_window);
  const RunMetrics& m = metrics_;
  AppendF(&out,
          "metrics events=%" PRId64 " leases=%" PRId64 " heartbeats=%" PRId64
          " checkpoints=%" PRId64 " completed=%" PRId64 " expired=%" PRId64 " failed=%" PRId64
          " released=%" PRId64 " abandoned=%" PRId64 " workers_lost=%" PRId64
          " evicted=%" PRId64 " drains=%" PRId64 " resumes=%" PRId64 "\n",
          m.events, m.leases_granted, m.heartbeats, m.checkpoints_committed, m.tasks_completed,
          m.leases_expired, m.leases_failed, m.leases_released, m.leases_abandoned,
          m.workers_lost, m.segments_evicted, m.drains, m.resumes);
  for (std::size_t k = 0; k < ledger_.by_type.size(); ++k) {
    AppendF(&out, "ledger %s %" PRId64 "/%" PRId64 "\n",
            std::string(TaskTypeName(static_cast<TaskType>(k))).c_str(),
            ledger_.by_type[k].credited, ledger_.by_type[k].budget);
  }
  for (const auto& [layer, l] : ledger_.align_layers) {
    AppendF(&out, "ledger align/L%d %" PRId64 "/%" PRId64 "\n", layer, l.credited, l.budget);
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
            "] state=%s failures=%d attempt=%d lease=%" PRIu64 " worker=%s cursor=%" PRId64
            " ckpt_step=%" PRId64 " ckpts=%" PRId64 " changed=%" PRId64 " error=\"%s\"",
            std::string(TaskStateName(t.state)).c_str(), t.failures, t.attempt, t.lease,
            t.worker.c_str(), t.committed_tokens, t.checkpoint_step, t.checkpoints,
            t.changed_at_ms, t.last_error.c_str());
    AppendF(&out, " progress=%" PRId64 "/%" PRId64 "/%a@%" PRId64, t.progress.tokens,
            t.progress.step, t.progress.throughput, t.progress_at_ms);
    DumpValues(&out, t.progress.losses);
    out += " final=";
    DumpValues(&out, t.final_metrics);
    out.push_back('\n');
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
