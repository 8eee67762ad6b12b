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

bool RunState::IsDiscarded(int index, std::size_t position) const {
  for (const DiscardedCommit& d : tasks_[static_cast<std::size_t>(index)].discarded) {
    if (d.position == static_cast<std::int64_t>(position)) return true;
  }
  return false;
}

std::int64_t RunState::LastValidPosition(int index, std::int64_t before) const {
  const auto& list = ckpts_[static_cast<std::size_t>(index)];
  std::int64_t p = before < 0 ? static_cast<std::int64_t>(list.size()) : before;
  for (--p; p >= 0; --p) {
    if (!IsDiscarded(index, static_cast<std::size_t>(p))) return p;
  }
  return -1;
}

const CommittedCheckpoint* RunState::LastCheckpoint(std::string_view task) const {
  const int i = TaskIndex(task);
  if (i < 0) return nullptr;
  const std::int64_t p = LastValidPosition(i);
  return p < 0 ? nullptr : &ckpts_[i][static_cast<std::size_t>(p)];
}

int RunState::TaskOfCommittingLease(LeaseId lease) const {
  auto it = committing_leases_.find(lease);
  return it == committing_leases_.end() ? -1 : it->second;
}

int RunState::PreviousSegment(int index) const {
  const TaskSpec& s = tasks_[static_cast<std::size_t>(index)].spec;
  if (s.type != TaskType::kAlign || s.segment == 0) return -1;
  return TaskIndex(AlignTaskId(s.layer, s.segment - 1));
}

int RunState::NextSegment(int index) const {
  const TaskSpec& s = tasks_[static_cast<std::size_t>(index)].spec;
  if (s.type != TaskType::kAlign) return -1;
  return TaskIndex(AlignTaskId(s.layer, s.segment + 1));
}

std::vector<int> RunState::HeldChainBefore(int index) const {
  std::vector<int> chain;
  for (int p = PreviousSegment(index); p >= 0 && tasks_[static_cast<std::size_t>(p)].held_lease != 0;
       p = PreviousSegment(p)) {
    chain.push_back(p);
  }
  return chain;
}

std::vector<int> RunState::DurableHeldChainBefore(int index) const {
  std::vector<int> chain;
  for (int p = PreviousSegment(index); p >= 0; p = PreviousSegment(p)) {
    const TaskRecord& t = tasks_[static_cast<std::size_t>(p)];
    if (t.state != TaskState::kDone || t.held_lease != 0) break;
    const std::int64_t last = LastValidPosition(p);
    if (last >= 0 && ckpts_[static_cast<std::size_t>(p)][static_cast<std::size_t>(last)].final) break;
    chain.push_back(p);
  }
  return chain;
}

void RunState::RecordCommit(int i, const CheckpointRecord& ck, LeaseId lease, int attempt, TimeMs at,
                            bool final, std::int64_t credited, RowChanges* c) {
  TaskRecord& t = tasks_[static_cast<std::size_t>(i)];
  CommittedCheckpoint cc;
  cc.task = t.spec.id;
  cc.record = ck;
  cc.lease = lease;
  cc.attempt = attempt;
  cc.committed_ms = at;
  cc.final = final;
  ckpts_[i].push_back(std::move(cc));
  c->checkpoints.emplace_back(i, ckpts_[i].size() - 1);
  committing_leases_[lease] = i;
  Credit(t, credited);
  t.committed_tokens = ck.tokens_consumed;
  t.checkpoint_step = ck.step;
  ++t.checkpoints;
  MakeChainDurable(i, c);
}

void RunState::MakeChainDurable(int index, RowChanges* c) {
  for (int p : HeldChainBefore(index)) {
    TaskRecord& t = tasks_[static_cast<std::size_t>(p)];
    Credit(t, t.spec.tokens - t.committed_tokens);
    t.committed_tokens = t.spec.tokens;
    t.held_lease = 0;
    c->tasks.insert(p);
    c->ledger = true;
  }
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
        else if constexpr (std::is_same_v<T, RunRelaid>) return ApplyRunRelaid(e, b, c);
        else if constexpr (std::is_same_v<T, JobStarted>) return ApplyJobStarted(e, b, c);
        else if constexpr (std::is_same_v<T, RunCancelled>) return ApplyRunCancelled(e, b, c);
        else if constexpr (std::is_same_v<T, RunReopened>) return ApplyRunReopened(e, b, c);
        else if constexpr (std::is_same_v<T, CheckpointDiscarded>) return ApplyCheckpointDiscarded(e, b, c);
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
  RecordCommit(i, ck, b.lease, leases_[b.lease].attempt, e.at_ms, /*final=*/false, b.tokens_credited, c);
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
  if (b.held) {
    if (t.spec.type != TaskType::kAlign || NextSegment(i) < 0 || !ck.files.empty() || b.tokens_credited != 0) {
      return Fail(e, "a held completion needs an align task with a next segment, no files, no credit");
    }
  } else if (b.tokens_credited != ck.tokens_consumed - t.committed_tokens) {
    return Fail(e, "credits " + std::to_string(b.tokens_credited) + " tokens; the cursor moved " +
                       std::to_string(ck.tokens_consumed - t.committed_tokens));
  }
  auto lit = leases_.find(b.lease);
  const std::string worker = lit->second.worker;
  if (b.held) {  // its state in the worker's memory: no checkpoint, nothing credited
    t.held_lease = b.lease;
  } else {
    RecordCommit(i, ck, b.lease, lit->second.attempt, e.at_ms, /*final=*/true, b.tokens_credited, c);
  }
  leases_.erase(lit);
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
  // Ready again, unless a checkpoint fallback just reopened a segment before it.
  SetTaskState(t, DepsDone(i) ? TaskState::kReady : TaskState::kBlocked);
  t.lease = 0;
  t.changed_at_ms = e.at_ms;
  if (CountsAsFailure(b.cause)) {
    ++t.failures;
    t.last_error = b.reason;
    if (b.cause == LeaseEndCause::kFailed) t.reported_error = b.reason;
  }
  auto wit = workers_.find(worker);
  if (wit != workers_.end()) {
    wit->second.state = WorkerState::kIdle;
    wit->second.lease = 0;
    c->workers.insert(worker);
  }
  // Layer affinity: the chain of held segments before this task was in that worker's memory
  // only. It is undone: the earliest goes back to ready (its own last commit, or its
  // dependencies' durable records, is where it starts again), the later ones and this task
  // wait for it.
  if (const std::vector<int> chain = HeldChainBefore(i); !chain.empty()) {
    SetTaskState(t, TaskState::kBlocked);
    for (std::size_t k = 0; k < chain.size(); ++k) {
      TaskRecord& h = tasks_[static_cast<std::size_t>(chain[k])];
      SetTaskState(h, k + 1 == chain.size() ? TaskState::kReady : TaskState::kBlocked);
      h.held_lease = 0;
      h.final_metrics.clear();
      h.changed_at_ms = e.at_ms;
      c->tasks.insert(chain[k]);
    }
  }
  switch (b.cause) {
    case LeaseEndCause::kExpired: ++metrics_.leases_expired; break;
    case LeaseEndCause::kFailed:
    case LeaseEndCause::kWorkerRestarted: ++metrics_.leases_failed; break;
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
  // Blocked: its lease ended and undid the held chain before it (layer affinity).
  if (t.state != TaskState::kReady && t.state != TaskState::kBlocked) {
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
  status_.cancelled.clear();
  status_.cancelled_job.clear();
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
    if (tasks_[d].held_lease != 0) return Fail(e, "reader '" + tasks_[d].spec.id + "' is held in memory");
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

Status RunState::ApplyRunRelaid(const Event& e, const RunRelaid& b, RowChanges* c) {
  if (b.lease_ttl_ms <= 0) return Fail(e, "lease TTL " + std::to_string(b.lease_ttl_ms) + " ms");
  for (const GangSize& g : b.gangs) {
    const int i = TaskIndex(g.task);
    if (i < 0) return Fail(e, "no task '" + g.task + "'");
    const TaskRecord& t = tasks_[static_cast<std::size_t>(i)];
    if (t.spec.type != TaskType::kDistill && t.spec.type != TaskType::kFinetune) {
      return Fail(e, "task '" + g.task + "' is not a gang task");
    }
    if (t.state == TaskState::kLeased) return Fail(e, "task '" + g.task + "' is leased");
    if (g.workers < 1) return Fail(e, "gang size " + std::to_string(g.workers));
  }
  config_.lease_ttl_ms = b.lease_ttl_ms;
  for (const GangSize& g : b.gangs) {
    const int i = TaskIndex(g.task);
    tasks_[static_cast<std::size_t>(i)].spec.workers = g.workers;
    c->tasks.insert(i);
  }
  c->plan = true;
  return Status::Ok();
}

Status RunState::ApplyJobStarted(const Event& e, const JobStarted& b, RowChanges*) {
  if (b.job.job_id.empty()) return Fail(e, "no job id");
  if (b.job.restart < 0) return Fail(e, "restart count " + std::to_string(b.job.restart));
  status_.jobs.push_back(b.job);
  if (status_.jobs.size() > kMaxJobStarts) status_.jobs.erase(status_.jobs.begin());
  ++status_.job_starts;
  return Status::Ok();
}

Status RunState::ApplyRunCancelled(const Event& e, const RunCancelled& b, RowChanges*) {
  if (status_.phase == RunPhase::kCompleted || status_.phase == RunPhase::kFailed) {
    return Fail(e, "the run is already " + std::string(RunPhaseName(status_.phase)));
  }
  if (b.reason.empty()) return Fail(e, "no reason");
  status_.cancelled = b.reason;
  status_.cancelled_job = b.job_id;
  return Status::Ok();
}

Status RunState::ApplyRunReopened(const Event& e, const RunReopened&, RowChanges* c) {
  if (status_.phase != RunPhase::kFailed) {
    return Fail(e, "the run is " + std::string(RunPhaseName(status_.phase)) + ", not failed");
  }
  if (!leases_.empty()) return Fail(e, std::to_string(leases_.size()) + " leases outstanding");
  for (TaskRecord& t : tasks_) {
    if (t.state != TaskState::kFailed) continue;
    SetTaskState(t, DepsDone(t.index) ? TaskState::kReady : TaskState::kBlocked);
    t.failures = 0;
    t.changed_at_ms = e.at_ms;
    c->tasks.insert(t.index);
  }
  status_.reason.clear();
  SetPhase(RunPhase::kRunning, e.at_ms);
  return Status::Ok();
}

Status RunState::ApplyCheckpointDiscarded(const Event& e, const CheckpointDiscarded& b, RowChanges* c) {
  Status st = CheckLease(e, b.lease, b.task);
  if (!st.ok()) return st;
  const int i = TaskIndex(b.task);
  TaskRecord& t = tasks_[static_cast<std::size_t>(i)];
  const std::int64_t p = LastValidPosition(i);
  if (p < 0) return Fail(e, "task '" + b.task + "' has no valid commit to discard");
  const CommittedCheckpoint& newest = ckpts_[static_cast<std::size_t>(i)][static_cast<std::size_t>(p)];
  if (newest.final || newest.record.step != b.step || newest.record.tokens_consumed != b.tokens_consumed) {
    return Fail(e, "the newest valid commit of '" + b.task + "' is step " + std::to_string(newest.record.step) +
                       " at cursor " + std::to_string(newest.record.tokens_consumed) + ", not step " +
                       std::to_string(b.step) + " at " + std::to_string(b.tokens_consumed));
  }
  if (newest.record.tokens_consumed != t.committed_tokens) {
    return Fail(e, "the task's cursor " + std::to_string(t.committed_tokens) + " is not its newest commit's");
  }
  // Where each rewound task goes back to: (task, position of its last valid commit or -1).
  // The task itself to its previous valid commit; without one, to its start, and then the held
  // segments before it (whose end state lived only in the discarded commit) back to theirs.
  auto back_of = [&](int k, std::int64_t before) {
    const std::int64_t q = LastValidPosition(k, before);
    return std::pair<std::int64_t, std::int64_t>{
        q, q < 0 ? 0 : ckpts_[static_cast<std::size_t>(k)][static_cast<std::size_t>(q)].record.tokens_consumed};
  };
  const auto [q, back_cursor] = back_of(i, p);
  const std::vector<int> chain = q < 0 ? DurableHeldChainBefore(i) : std::vector<int>{};
  std::int64_t redone = b.tokens_consumed - back_cursor;
  for (int k : chain) redone += tasks_[static_cast<std::size_t>(k)].committed_tokens - back_of(k, -1).second;
  if (b.tokens_redone != redone) {
    return Fail(e, "redoes " + std::to_string(b.tokens_redone) + " tokens; the fallback redoes " +
                       std::to_string(redone));
  }
  auto rewind = [&](TaskRecord& r, std::int64_t q_r, std::int64_t cursor) {
    const std::int64_t given_back = r.committed_tokens - cursor;
    Credit(r, -given_back);
    ledger_.by_type[static_cast<std::size_t>(r.spec.type)].redone += given_back;
    if (r.spec.type == TaskType::kAlign) ledger_.align_layers[r.spec.layer].redone += given_back;
    r.committed_tokens = cursor;
    r.checkpoint_step =
        q_r < 0 ? -1 : ckpts_[static_cast<std::size_t>(r.index)][static_cast<std::size_t>(q_r)].record.step;
    r.changed_at_ms = e.at_ms;
    c->tasks.insert(r.index);
  };
  rewind(t, q, back_cursor);
  t.discarded.push_back(DiscardedCommit{p, b.step, b.tokens_redone, e.at_ms, b.reason});
  t.last_error = "checkpoint at step " + std::to_string(b.step) + " discarded: " + b.reason;
  for (std::size_t n = 0; n < chain.size(); ++n) {
    TaskRecord& r = tasks_[static_cast<std::size_t>(chain[n])];
    const auto [q_r, cursor] = back_of(r.index, -1);
    rewind(r, q_r, cursor);
    // The earliest runs again from its own last commit (or its start); the later ones wait.
    SetTaskState(r, n + 1 == chain.size() && DepsDone(r.index) ? TaskState::kReady : TaskState::kBlocked);
    r.final_metrics.clear();
    r.last_error = "redone: its end state was only in " + b.task + "'s discarded checkpoint";
    // Its cache segment has a reader again: resident (the scheduler refused the fallback if the
    // segment could have been evicted).
    auto sit = segments_.find({r.spec.stage, r.spec.segment});
    if (sit != segments_.end() && sit->second.state == SegmentState::kEvictable) {
      sit->second.state = SegmentState::kResident;
      sit->second.changed_ms = e.at_ms;
      c->segments.insert(sit->first);
    }
  }
  ++metrics_.checkpoints_discarded;
  c->ledger = true;
  return Status::Ok();
}

}  // namespace radlads
