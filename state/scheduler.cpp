#include "state/scheduler.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>

#include "contract/codec.h"

namespace radlads {


namespace {

// The eviction decision on a state (Scheduler::PendingEvictions), at most `limit` segments.
std::vector<SegmentEviction> EvictionsOf(const RunState& s, std::size_t limit) {
  std::vector<SegmentEviction> out;
  const int window = s.config().cache_window;
  if (window <= 0) return out;
  std::map<int, int> per_stage;  // stage -> segments
  for (const auto& [key, seg] : s.segments()) ++per_stage[seg.stage];
  for (const auto& [key, seg] : s.segments()) {
    if (out.size() >= limit) break;
    if (seg.state != SegmentState::kEvictable || per_stage[seg.stage] <= window) continue;
    SegmentEviction e{seg.segment, seg.stage, {}};
    if (const CommittedCheckpoint* c = s.LastCheckpoint(seg.task); c != nullptr && c->final) {
      e.files = c->record.files;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Evictions handed out with one lease reply (each costs the worker a delete and a call).
constexpr std::size_t kEvictionsPerReply = 8;


#define APPEND(tx, now, ...) RADLADS_RETURN_IF_ERROR((tx).Append((now), __VA_ARGS__))

constexpr std::size_t kMaxReason = 4096;
constexpr std::size_t kMaxId = 200;

std::string Clip(std::string_view s) {
  if (s.size() <= kMaxReason) return std::string(s);
  return std::string(s.substr(0, kMaxReason)) + "...";
}

std::string L(LeaseId id) { return "lease " + std::to_string(id); }

bool ValidWorkerId(std::string_view id) {
  if (id.empty() || id.size() > kMaxId) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '/' || c == '-' || c == ':' || c == '@';
    if (!ok) return false;
  }
  return true;
}

bool SameRecord(const CheckpointRecord& a, const CheckpointRecord& b) {
  if (a.step != b.step || a.tokens_consumed != b.tokens_consumed ||
      a.files.size() != b.files.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    if (a.files[i].path != b.files[i].path || a.files[i].bytes != b.files[i].bytes ||
        a.files[i].checksum != b.files[i].checksum) {
      return false;
    }
  }
  return true;
}

bool SameValues(const std::vector<NamedValue>& a, const std::vector<NamedValue>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Bit-exact: the record is replayed bit-exact too.
    if (a[i].name != b[i].name || std::memcmp(&a[i].value, &b[i].value, sizeof(double)) != 0) {
      return false;
    }
  }
  return true;
}

bool SameInfo(const WorkerInfo& a, const WorkerInfo& b) { return a == b; }

std::string EncodedPlan(const RunConfig& c, const std::vector<TaskSpec>& tasks) {
  codec::VarintOut w;
  w.Rec("config", c);
  for (const auto& t : tasks) w.Rec("task", t);
  return w.out();
}

Status ValidateFiles(const std::vector<FileRecord>& files, std::string_view what) {
  std::set<std::string_view> seen;
  for (const auto& f : files) {
    if (f.path.empty() || f.checksum.empty() || f.bytes < 0) {
      return Status::InvalidArgument(std::string(what) + ": file '" + f.path +
                                     "' needs a path, a checksum and bytes >= 0");
    }
    if (!seen.insert(f.path).second) {
      return Status::InvalidArgument(std::string(what) + ": file '" + f.path + "' listed twice");
    }
  }
  return Status::Ok();
}

Status RequireRun(const RunState& s) {
  if (s.phase() == RunPhase::kEmpty) {
    return Status::FailedPrecondition("no run in this state store: CreateRun first");
  }
  return Status::Ok();
}

bool RunOver(const RunState& s) {
  return s.phase() == RunPhase::kCompleted || s.phase() == RunPhase::kFailed;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public operations: one durable transition each
// ---------------------------------------------------------------------------------------------

Status Scheduler::CreateRun(const RunConfig& config, const std::vector<TaskSpec>& tasks) {
  return store_->Transact([&](Txn& tx) { return DoCreateRun(tx, config, tasks); });
}
Status Scheduler::Resume(std::string_view note) {
  return store_->Transact([&](Txn& tx) { return DoResume(tx, note); });
}
Status Scheduler::RecordJobStart(const JobStart& job) {
  return store_->Transact([&](Txn& tx) -> Status {
    RADLADS_RETURN_IF_ERROR(RequireRun(tx.state()));
    if (job.job_id.empty() || job.restart < 0) {
      return Status::InvalidArgument("job start: a job id and a restart count >= 0 are required");
    }
    JobStart j = job;
    j.nodes = Clip(j.nodes);
    j.refused = Clip(j.refused);
    APPEND(tx, clock_->NowMs(), JobStarted{std::move(j)});
    return Status::Ok();
  });
}
Status Scheduler::Cancel(std::string_view reason, std::string_view job_id) {
  return store_->Transact([&](Txn& tx) -> Status {
    const RunState& s = tx.state();
    RADLADS_RETURN_IF_ERROR(RequireRun(s));
    if (s.phase() == RunPhase::kCompleted || s.phase() == RunPhase::kFailed) {
      return Status::FailedPrecondition("cancel: the run is already " + std::string(RunPhaseName(s.phase())));
    }
    APPEND(tx, clock_->NowMs(), RunCancelled{Clip(reason.empty() ? "cancelled" : reason), std::string(job_id)});
    return DoDrain(tx, "cancelled: " + std::string(reason));
  });
}
Status Scheduler::RegisterWorker(const WorkerInfo& info) {
  return store_->Transact([&](Txn& tx) { return DoRegisterWorker(tx, info); });
}
Result<LeaseReply> Scheduler::Lease(std::string_view worker, const Capabilities& caps) {
  return store_->Transact([&](Txn& tx) { return DoLease(tx, worker, caps); });
}
Result<HeartbeatReply> Scheduler::Heartbeat(LeaseId lease, const Progress& progress) {
  return store_->Transact([&](Txn& tx) { return DoHeartbeat(tx, lease, progress); });
}
Result<CommitReply> Scheduler::CommitCheckpoint(LeaseId lease, const CheckpointRecord& ck) {
  return store_->Transact([&](Txn& tx) { return DoCommit(tx, lease, ck); });
}
Result<CommitReply> Scheduler::Complete(LeaseId lease, const FinalRecord& final_record) {
  return store_->Transact([&](Txn& tx) { return DoComplete(tx, lease, final_record); });
}
Status Scheduler::Fail(LeaseId lease, std::string_view reason, bool retryable) {
  return store_->Transact([&](Txn& tx) { return DoFail(tx, lease, reason, retryable); });
}
Status Scheduler::Release(LeaseId lease, std::string_view reason) {
  return store_->Transact([&](Txn& tx) { return DoRelease(tx, lease, reason); });
}
Status Scheduler::DiscardCheckpoint(LeaseId lease, std::int64_t step, std::string_view reason) {
  return store_->Transact([&](Txn& tx) { return DoDiscardCheckpoint(tx, lease, step, reason); });
}
Status Scheduler::Drain(std::string_view reason) {
  return store_->Transact([&](Txn& tx) { return DoDrain(tx, reason); });
}
Result<int> Scheduler::ExpireLeases() {
  return store_->Transact([&](Txn& tx) { return DoExpire(tx); });
}
Result<LeaseReply> Scheduler::CompleteAndContinue(LeaseId lease, const FinalRecord& final_record) {
  return store_->Transact([&](Txn& tx) { return DoCompleteAndContinue(tx, lease, final_record); });
}
Status Scheduler::EvictSegment(int segment, int stage) {
  return store_->Transact([&](Txn& tx) { return DoEvict(tx, segment, stage); });
}

void Scheduler::HeartbeatAsync(LeaseId lease, const Progress& progress,
                               std::function<void(Result<HeartbeatReply>)> done) {
  store_->TransactAsync([&](Txn& tx) { return DoHeartbeat(tx, lease, progress); },
                        std::move(done));
}
void Scheduler::CommitCheckpointAsync(LeaseId lease, const CheckpointRecord& ck,
                                      std::function<void(Result<CommitReply>)> done) {
  store_->TransactAsync([&](Txn& tx) { return DoCommit(tx, lease, ck); }, std::move(done));
}
void Scheduler::LeaseAsync(std::string_view worker, const Capabilities& caps,
                           std::function<void(Result<LeaseReply>)> done) {
  store_->TransactAsync([&](Txn& tx) { return DoLease(tx, worker, caps); }, std::move(done));
}
void Scheduler::CompleteAsync(LeaseId lease, const FinalRecord& final_record,
                              std::function<void(Result<CommitReply>)> done) {
  store_->TransactAsync([&](Txn& tx) { return DoComplete(tx, lease, final_record); },
                        std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

Result<const LeaseRecord*> Scheduler::LiveLease(const RunState& s, LeaseId lease, TimeMs now,
                                                std::string_view op) const {
  const LeaseRecord* l = s.FindLease(lease);
  if (l == nullptr) {
    return Status::FailedPrecondition(std::string(op) + ": " + L(lease) +
                                      " is not outstanding (expired, ended or unknown): stop "
                                      "working on it");
  }
  if (now >= l->deadline_ms) {
    return Status::FailedPrecondition(std::string(op) + ": " + L(lease) + " of task '" + l->task +
                                      "' passed its deadline " + std::to_string(l->deadline_ms) +
                                      " (now " + std::to_string(now) + "): stop working on it");
  }
  return l;
}

Status Scheduler::EndLease(Txn& tx, TimeMs now, const LeaseRecord& lease, LeaseEndCause cause,
                           std::string reason, bool retryable) {
  const RunState& s = tx.state();
  const TaskRecord* t = s.FindTask(lease.task);
  if (t == nullptr) return Status::Internal("lease of unknown task '" + lease.task + "'");
  const std::string task = lease.task;
  const std::string worker = lease.worker;
  const int failures = t->failures + (CountsAsFailure(cause) ? 1 : 0);
  APPEND(tx, now, LeaseEnded{task, lease.id, cause, reason});
  if (cause == LeaseEndCause::kExpired) {
    const WorkerRecord* w = s.FindWorker(worker);
    if (w != nullptr && w->state != WorkerState::kLost) {
      APPEND(tx, now, WorkerLost{worker, L(lease.id) + " of task '" + task + "' expired"});
    }
  }
  if (!CountsAsFailure(cause)) return Status::Ok();
  const int limit = s.config().retry_limit;
  if (retryable && failures <= limit) return Status::Ok();
  std::string why = retryable ? "failed after " + std::to_string(failures) +
                                    " attempts (retry limit " + std::to_string(limit) +
                                    "): " + reason
                              : "failed with a non-retryable error: " + reason;
  // The last attempt expired or its worker restarted: the error a worker last reported for
  // this task is usually the cause (a full disk, a bad file), so it is named too.
  if (cause != LeaseEndCause::kFailed && !t->reported_error.empty() && t->reported_error != reason) {
    why += "; the last error a worker reported: " + t->reported_error;
  }
  APPEND(tx, now, TaskFailed{task, why});
  if (!RunOver(s)) APPEND(tx, now, RunFailed{"task '" + task + "' " + why});
  return Status::Ok();
}

Status Scheduler::MaybeFinishDrain(Txn& tx, TimeMs now) {
  const RunState& s = tx.state();
  if (s.phase() == RunPhase::kDraining && s.leases().empty()) APPEND(tx, now, DrainCompleted{});
  return Status::Ok();
}

LeaseGrant Scheduler::MakeGrant(const RunState& s, const LeaseRecord& lease) const {
  LeaseGrant g;
  const int i = s.TaskIndex(lease.task);
  const TaskRecord& t = s.tasks()[i];
  g.lease = lease.id;
  g.task = t.spec;
  g.attempt = lease.attempt;
  g.deadline_ms = lease.deadline_ms;
  if (const CommittedCheckpoint* c = s.LastCheckpoint(t.spec.id)) g.resume_from = *c;
  for (int d : s.DepIndices(i)) {
    if (const CommittedCheckpoint* c = s.LastCheckpoint(s.tasks()[d].spec.id)) g.inputs.push_back(*c);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

Status Scheduler::DoCreateRun(Txn& tx, const RunConfig& config, const std::vector<TaskSpec>& tasks) {
  RADLADS_RETURN_IF_ERROR(ValidatePlan(config, tasks));
  const RunState& s = tx.state();
  if (s.phase() != RunPhase::kEmpty) {
    std::vector<TaskSpec> existing;
    existing.reserve(s.tasks().size());
    for (const auto& t : s.tasks()) existing.push_back(t.spec);
    if (EncodedPlan(s.config(), existing) == EncodedPlan(config, tasks)) return Status::Ok();
    // The same run re-laid out: the same tasks, only the lease TTL and gang sizes differ (a
    // resume on other workers; the gangs' checkpoints load into any layout).
    if (existing.size() == tasks.size()) {
      RunConfig same_config = config;
      same_config.lease_ttl_ms = s.config().lease_ttl_ms;
      std::vector<TaskSpec> same_sizes = tasks;
      RunRelaid relaid{config.lease_ttl_ms, {}};
      for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (same_sizes[i].workers == existing[i].workers) continue;
        same_sizes[i].workers = existing[i].workers;
        const TaskRecord& t = s.tasks()[i];
        if (t.spec.type != TaskType::kDistill && t.spec.type != TaskType::kFinetune) {
          return Status::FailedPrecondition("task '" + t.spec.id + "' would run on " +
                                            std::to_string(tasks[i].workers) + " workers, but only a gang "
                                            "task (distill, finetune) changes size with the layout");
        }
        if (t.state == TaskState::kLeased) {
          return Status::FailedPrecondition("task '" + t.spec.id + "' is leased (by " + t.worker +
                                            "); its gang size can change only between leases: resume first");
        }
        relaid.gangs.push_back({tasks[i].id, tasks[i].workers});
      }
      if (EncodedPlan(s.config(), existing) == EncodedPlan(same_config, same_sizes)) {
        APPEND(tx, clock_->NowMs(), std::move(relaid));
        return Status::Ok();
      }
    }
    return Status::FailedPrecondition("run '" + s.config().run_id +
                                      "' already exists in this state store with another plan");
  }
  const TimeMs now = clock_->NowMs();
  APPEND(tx, now, RunCreated{config, tasks});
  for (const auto& t : tasks) {
    if (t.deps.empty()) APPEND(tx, now, TaskReady{t.id});
  }
  return Status::Ok();
}

Status Scheduler::DoResume(Txn& tx, std::string_view note) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const TimeMs now = clock_->NowMs();
  const std::vector<LeaseRecord> leases = [&] {
    std::vector<LeaseRecord> v;
    for (const auto& [id, l] : s.leases()) v.push_back(l);
    return v;
  }();
  for (const auto& l : leases) {
    RADLADS_RETURN_IF_ERROR(EndLease(tx, now, l, LeaseEndCause::kCoordinatorRestart,
                                     "coordinator restarted: " + Clip(note), true));
  }
  std::vector<std::string> live;
  for (const auto& [id, w] : s.workers()) {
    if (w.state != WorkerState::kLost) live.push_back(id);
  }
  for (const auto& id : live) {
    APPEND(tx, now, WorkerLost{id, "coordinator restarted: " + Clip(note)});
  }
  // A failed run started again: its cause was fixed; the failed tasks go on from their last
  // commits.
  if (s.phase() == RunPhase::kFailed) APPEND(tx, now, RunReopened{Clip(note)});
  APPEND(tx, now, RunResumed{Clip(note)});
  return Status::Ok();
}

Status Scheduler::DoRegisterWorker(Txn& tx, const WorkerInfo& info) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  if (!ValidWorkerId(info.id)) {
    return Status::InvalidArgument("worker id '" + info.id +
                                   "' must be 1-200 characters of [A-Za-z0-9_./:@-]");
  }
  if (info.group_size < 1 || info.group_size > (1 << 20)) {
    return Status::InvalidArgument("worker '" + info.id + "': group_size must be >= 1, got " +
                                   std::to_string(info.group_size));
  }
  if (info.capabilities == 0 || (info.capabilities & ~kAllTaskTypes) != 0) {
    return Status::InvalidArgument("worker '" + info.id + "': capabilities must be a non-empty "
                                   "set of task types");
  }
  if (info.host.size() > kMaxReason || info.members.size() > (1u << 20)) {
    return Status::InvalidArgument("worker '" + info.id + "': host or members too long");
  }
  const TimeMs now = clock_->NowMs();
  if (const WorkerRecord* w = s.FindWorker(info.id)) {
    if (w->state == WorkerState::kIdle && SameInfo(w->info, info)) return Status::Ok();
    if (w->lease != 0) {
      const LeaseRecord lease = *s.FindLease(w->lease);
      RADLADS_RETURN_IF_ERROR(EndLease(tx, now, lease, LeaseEndCause::kWorkerRestarted,
                                       "worker '" + info.id +
                                           "' registered again while holding the lease "
                                           "(its process restarted?)",
                                       true));
      RADLADS_RETURN_IF_ERROR(MaybeFinishDrain(tx, now));
    }
  }
  APPEND(tx, now, WorkerRegistered{info});
  return Status::Ok();
}

Result<LeaseReply> Scheduler::DoLease(Txn& tx, std::string_view worker, const Capabilities& caps) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const WorkerRecord* w = s.FindWorker(worker);
  if (w == nullptr) {
    return Status::NotFound("unknown worker '" + std::string(worker) + "': RegisterWorker first");
  }
  if (w->state == WorkerState::kLost) {
    return Status::FailedPrecondition("worker '" + std::string(worker) + "' was declared lost (" +
                                      w->lost_reason + "): register again");
  }
  const TimeMs now = clock_->NowMs();
  LeaseReply reply;
  reply.evict = EvictionsOf(s, kEvictionsPerReply);
  if (w->state == WorkerState::kBusy) {
    // The worker asks again while holding a lease: its last reply was lost. Same lease.
    RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, w->lease, now, "lease"));
    reply.outcome = LeaseOutcome::kGranted;
    reply.grant = MakeGrant(s, *l);
    return reply;
  }
  if (RunOver(s)) {
    reply.outcome = LeaseOutcome::kRunOver;
    return reply;
  }
  if (s.phase() != RunPhase::kRunning) {
    reply.outcome = LeaseOutcome::kDraining;
    return reply;
  }
  const std::uint32_t mask = caps.task_types & w->info.capabilities;
  const int window = s.config().cache_window;
  std::map<int, int> slots;  // stage -> slots used, computed on demand
  for (int i : s.ready()) {
    const TaskRecord& t = s.tasks()[i];
    if ((mask & TaskTypeBit(t.spec.type)) == 0) continue;
    if (t.spec.workers != w->info.group_size) continue;
    if (t.spec.type == TaskType::kCache && window > 0) {
      const SegmentRecord* seg = s.FindSegment(t.spec.segment, t.spec.stage);
      if (seg != nullptr && !HoldsWindowSlot(seg->state)) {
        auto it = slots.find(t.spec.stage);
        if (it == slots.end()) it = slots.emplace(t.spec.stage, s.WindowSlotsUsed(t.spec.stage)).first;
        if (it->second >= window) continue;
      }
    }
    const LeaseId id = s.next_lease_id();
    const std::string task = t.spec.id;
    APPEND(tx, now, TaskLeased{task, id, std::string(worker), t.failures + 1,
                               now + s.config().lease_ttl_ms});
    reply.outcome = LeaseOutcome::kGranted;
    reply.grant = MakeGrant(s, *s.FindLease(id));
    return reply;
  }
  reply.outcome = LeaseOutcome::kNoWork;
  return reply;
}

Result<HeartbeatReply> Scheduler::DoHeartbeat(Txn& tx, LeaseId lease, const Progress& progress) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const TimeMs now = clock_->NowMs();
  RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, lease, now, "heartbeat"));
  const TaskRecord* t = s.FindTask(l->task);
  if (progress.tokens < 0 || progress.tokens > t->spec.tokens || progress.step < 0 ||
      !std::isfinite(progress.throughput) || progress.throughput < 0) {
    return Status::InvalidArgument("heartbeat on " + L(lease) + " (task '" + l->task +
                                   "'): progress needs 0 <= tokens <= " +
                                   std::to_string(t->spec.tokens) +
                                   ", step >= 0 and a finite throughput >= 0; got tokens " +
                                   std::to_string(progress.tokens) + ", step " +
                                   std::to_string(progress.step));
  }
  if (progress.losses.size() > 1024) {
    return Status::InvalidArgument("heartbeat: more than 1024 losses");
  }
  const std::string task = l->task;
  const TimeMs deadline = now + s.config().lease_ttl_ms;
  APPEND(tx, now, TaskProgress{task, lease, deadline, progress});
  HeartbeatReply reply;
  reply.deadline_ms = deadline;
  if (s.phase() == RunPhase::kDraining || s.phase() == RunPhase::kDrained) {
    reply.stop = true;
    reply.stop_reason = "draining: " + s.status().reason;
  } else if (RunOver(s)) {
    reply.stop = true;
    reply.stop_reason = "the run is " + std::string(RunPhaseName(s.phase())) + ": " +
                        s.status().reason;
  }
  return reply;
}

Result<CommitReply> Scheduler::DoCommit(Txn& tx, LeaseId lease, const CheckpointRecord& ck) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  // A duplicate of a commit already recorded under this lease: acknowledge it, credit nothing.
  if (const int ti = s.TaskOfCommittingLease(lease); ti >= 0) {
    for (const auto& c : s.Checkpoints(ti)) {
      if (c.lease == lease && !c.final && SameRecord(c.record, ck)) {
        return CommitReply{0, true};
      }
    }
  }
  const TimeMs now = clock_->NowMs();
  RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, lease, now, "checkpoint commit"));
  const TaskRecord* t = s.FindTask(l->task);
  const std::string ctx = "checkpoint commit on " + L(lease) + " (task '" + l->task + "')";
  RADLADS_RETURN_IF_ERROR(ValidateFiles(ck.files, ctx));
  if (ck.files.empty()) return Status::InvalidArgument(ctx + ": a checkpoint needs files");
  if (ck.step < 0 || ck.tokens_consumed < 0) {
    return Status::InvalidArgument(ctx + ": step and tokens_consumed must be >= 0");
  }
  if (ck.tokens_consumed > t->spec.tokens) {
    return Status::InvalidArgument(ctx + ": token cursor " + std::to_string(ck.tokens_consumed) +
                                   " exceeds the task's budget " + std::to_string(t->spec.tokens));
  }
  if (ck.step <= t->checkpoint_step) {
    return Status::FailedPrecondition(ctx + ": step " + std::to_string(ck.step) +
                                      " is not after the committed step " +
                                      std::to_string(t->checkpoint_step) +
                                      " (a stale or reordered commit)");
  }
  if (ck.tokens_consumed < t->committed_tokens) {
    return Status::FailedPrecondition(ctx + ": token cursor " +
                                      std::to_string(ck.tokens_consumed) +
                                      " is behind the committed cursor " +
                                      std::to_string(t->committed_tokens));
  }
  const std::int64_t credited = ck.tokens_consumed - t->committed_tokens;
  const std::string task = l->task;
  const std::vector<int> durable = s.HeldChainBefore(t->index);  // made durable by this commit
  APPEND(tx, now, CheckpointCommitted{task, lease, ck, credited});
  RADLADS_RETURN_IF_ERROR(AppendEvictable(tx, now, durable));
  return CommitReply{credited, false};
}

Status Scheduler::AppendEvictable(Txn& tx, TimeMs now, const std::vector<int>& readers) {
  const RunState& s = tx.state();
  std::vector<int> caches;
  for (int i : readers) {
    if (s.tasks()[i].spec.type == TaskType::kCache) caches.push_back(i);
    for (int d : s.DepIndices(i)) {
      if (s.tasks()[d].spec.type == TaskType::kCache) caches.push_back(d);
    }
  }
  for (int c : caches) {
    const TaskSpec& cs = s.tasks()[c].spec;
    const SegmentRecord* seg = s.FindSegment(cs.segment, cs.stage);
    if (seg == nullptr || seg->state != SegmentState::kResident) continue;
    bool all_done = true;  // and durable: a held reader may have to read it again
    for (int r : s.Dependents(c)) {
      all_done = all_done && s.tasks()[r].state == TaskState::kDone && s.tasks()[r].held_lease == 0;
    }
    if (all_done) APPEND(tx, now, SegmentEvictable{cs.segment, cs.stage});
  }
  return Status::Ok();
}

Result<LeaseReply> Scheduler::DoCompleteAndContinue(Txn& tx, LeaseId lease, const FinalRecord& fr) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  LeaseReply no;
  no.outcome = LeaseOutcome::kNoWork;
  // A repeat of a call that took effect: the same continuation.
  for (const TaskRecord& h : s.tasks()) {
    if (h.held_lease != lease) continue;
    const int next = s.NextSegment(h.index);
    const LeaseRecord* nl = next >= 0 ? s.FindLease(s.tasks()[next].lease) : nullptr;
    if (nl == nullptr || nl->worker != h.worker) {
      return Status::FailedPrecondition("complete_and_continue: " + L(lease) + " was continued, and that "
                                        "lease is over: stop working on it");
    }
    LeaseReply again;
    again.outcome = LeaseOutcome::kGranted;
    again.grant = MakeGrant(s, *nl);
    return again;
  }
  const TimeMs now = clock_->NowMs();
  RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, lease, now, "complete_and_continue"));
  const int i = s.TaskIndex(l->task);
  const TaskRecord& t = s.tasks()[i];
  const std::string ctx = "complete_and_continue on " + L(lease) + " (task '" + l->task + "')";
  const CheckpointRecord& ck = fr.checkpoint;
  if (!ck.files.empty()) return Status::InvalidArgument(ctx + ": the state is held in memory: no files");
  if (ck.tokens_consumed != t.spec.tokens || ck.step < t.checkpoint_step) {
    return Status::InvalidArgument(ctx + ": the final cursor must be the budget " + std::to_string(t.spec.tokens) +
                                   " and the step not before the committed one");
  }
  // Continue only where the next segment can start at once on this worker.
  const int next = s.NextSegment(i);
  if (next < 0 || s.phase() != RunPhase::kRunning) return no;
  const TaskRecord& n = s.tasks()[next];
  const WorkerRecord* w = s.FindWorker(l->worker);
  if (n.state != TaskState::kBlocked || w == nullptr || n.spec.workers != w->info.group_size ||
      (w->info.capabilities & TaskTypeBit(TaskType::kAlign)) == 0) {
    return no;
  }
  for (int d : s.DepIndices(next)) {
    if (d != i && (s.tasks()[d].state != TaskState::kDone || s.tasks()[d].held_lease != 0)) return no;
  }
  const std::string task = t.spec.id, worker = l->worker, next_id = n.spec.id;
  const int attempt = n.failures + 1;
  APPEND(tx, now, TaskCompleted{task, lease, fr, 0, /*held=*/true});
  APPEND(tx, now, TaskReady{next_id});
  const LeaseId id = s.next_lease_id();
  APPEND(tx, now, TaskLeased{next_id, id, worker, attempt, now + s.config().lease_ttl_ms});
  LeaseReply reply;
  reply.outcome = LeaseOutcome::kGranted;
  reply.grant = MakeGrant(s, *s.FindLease(id));
  return reply;
}

Result<CommitReply> Scheduler::DoComplete(Txn& tx, LeaseId lease, const FinalRecord& fr) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  if (const int ti = s.TaskOfCommittingLease(lease); ti >= 0) {
    const auto& list = s.Checkpoints(ti);
    if (!list.empty() && list.back().final && list.back().lease == lease) {
      if (SameRecord(list.back().record, fr.checkpoint) &&
          SameValues(s.tasks()[ti].final_metrics, fr.metrics)) {
        return CommitReply{0, true};
      }
      return Status::FailedPrecondition("complete on " + L(lease) + ": task '" +
                                        s.tasks()[ti].spec.id +
                                        "' was already completed with another final record");
    }
  }
  const TimeMs now = clock_->NowMs();
  RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, lease, now, "complete"));
  const int i = s.TaskIndex(l->task);
  const TaskRecord& t = s.tasks()[i];
  const std::string ctx = "complete on " + L(lease) + " (task '" + l->task + "')";
  const CheckpointRecord& ck = fr.checkpoint;
  RADLADS_RETURN_IF_ERROR(ValidateFiles(ck.files, ctx));
  if (ck.step < 0) return Status::InvalidArgument(ctx + ": step must be >= 0");
  if (ck.tokens_consumed != t.spec.tokens) {
    return Status::InvalidArgument(ctx + ": the token budget is exact: the final cursor is " +
                                   std::to_string(ck.tokens_consumed) + ", the budget " +
                                   std::to_string(t.spec.tokens));
  }
  if (ck.step < t.checkpoint_step) {
    return Status::FailedPrecondition(ctx + ": final step " + std::to_string(ck.step) +
                                      " is before the committed step " +
                                      std::to_string(t.checkpoint_step));
  }
  const std::int64_t credited = ck.tokens_consumed - t.committed_tokens;
  const std::string task = t.spec.id;
  std::vector<int> durable = s.HeldChainBefore(i);  // made durable by this completion
  durable.push_back(i);
  APPEND(tx, now, TaskCompleted{task, lease, fr, credited});
  // Consequences, in one transition with the completion.
  for (int d : s.Dependents(i)) {
    if (s.tasks()[d].state == TaskState::kBlocked && s.DepsDone(d)) {
      APPEND(tx, now, TaskReady{s.tasks()[d].spec.id});
    }
  }
  RADLADS_RETURN_IF_ERROR(AppendEvictable(tx, now, durable));
  if (s.TasksIn(TaskState::kDone) == static_cast<int>(s.tasks().size()) && !RunOver(s)) {
    APPEND(tx, now, RunCompleted{});
  } else {
    RADLADS_RETURN_IF_ERROR(MaybeFinishDrain(tx, now));
  }
  return CommitReply{credited, false};
}

Status Scheduler::DoFail(Txn& tx, LeaseId lease, std::string_view reason, bool retryable) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const LeaseRecord* l = s.FindLease(lease);
  if (l == nullptr) {
    return Status::FailedPrecondition("fail: " + L(lease) + " is not outstanding");
  }
  const TimeMs now = clock_->NowMs();
  const LeaseRecord copy = *l;
  RADLADS_RETURN_IF_ERROR(EndLease(tx, now, copy, LeaseEndCause::kFailed, Clip(reason), retryable));
  return MaybeFinishDrain(tx, now);
}

Status Scheduler::DoRelease(Txn& tx, LeaseId lease, std::string_view reason) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const LeaseRecord* l = s.FindLease(lease);
  if (l == nullptr) {
    return Status::FailedPrecondition("release: " + L(lease) + " is not outstanding");
  }
  const TimeMs now = clock_->NowMs();
  const LeaseRecord copy = *l;
  RADLADS_RETURN_IF_ERROR(EndLease(tx, now, copy, LeaseEndCause::kReleased, Clip(reason), true));
  return MaybeFinishDrain(tx, now);
}

Status Scheduler::DoDiscardCheckpoint(Txn& tx, LeaseId lease, std::int64_t step, std::string_view reason) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const TimeMs now = clock_->NowMs();
  RADLADS_ASSIGN_OR_RETURN(const LeaseRecord* l, LiveLease(s, lease, now, "checkpoint discard"));
  const LeaseRecord copy = *l;
  const int i = s.TaskIndex(copy.task);
  const TaskRecord& t = s.tasks()[static_cast<std::size_t>(i)];
  const std::string ctx = "checkpoint discard on " + L(lease) + " (task '" + t.spec.id + "')";
  const std::int64_t p = s.LastValidPosition(i);
  if (p < 0) return Status::FailedPrecondition(ctx + ": the task has no commit to discard");
  const CommittedCheckpoint& newest = s.Checkpoints(i)[static_cast<std::size_t>(p)];
  if (newest.record.step != step) {
    return Status::FailedPrecondition(ctx + ": the task resumes from step " + std::to_string(newest.record.step) +
                                      ", not step " + std::to_string(step));
  }
  const std::int64_t q = s.LastValidPosition(i, p);
  std::int64_t redone = newest.record.tokens_consumed -
                        (q < 0 ? 0 : s.Checkpoints(i)[static_cast<std::size_t>(q)].record.tokens_consumed);
  std::string to = q < 0 ? std::string("the task's start")
                         : "step " + std::to_string(s.Checkpoints(i)[static_cast<std::size_t>(q)].record.step);
  // Without an earlier commit the task starts again from its inputs. An align task whose
  // previous segments were done in memory (layer affinity) and made durable by the discarded
  // commit has no such input: those segments are redone too, from their own last commits. Their
  // cache segments must still be there: refused when the window may have evicted one.
  if (q < 0) {
    const std::vector<int> chain = s.DurableHeldChainBefore(i);
    std::map<int, int> per_stage;
    for (const auto& [key, seg] : s.segments()) ++per_stage[seg.stage];
    for (int k : chain) {
      const TaskRecord& r = s.tasks()[static_cast<std::size_t>(k)];
      const SegmentRecord* seg = s.FindSegment(r.spec.segment, r.spec.stage);
      const bool may_be_evicted =
          seg != nullptr && (seg->state == SegmentState::kEvicted ||
                             (seg->state == SegmentState::kEvictable && s.config().cache_window > 0 &&
                              per_stage[seg->stage] > s.config().cache_window));
      if (may_be_evicted) {
        return Status::Corruption(ctx + ": cannot fall back: " + r.spec.id + ", whose end state was only in this "
                                  "checkpoint, needs cache segment " + std::to_string(r.spec.segment) +
                                  ", which the cache window has evicted");
      }
      const std::int64_t rq = s.LastValidPosition(k);
      redone += r.committed_tokens -
                (rq < 0 ? 0 : s.Checkpoints(k)[static_cast<std::size_t>(rq)].record.tokens_consumed);
    }
    if (!chain.empty()) to = "the task's start; " + std::to_string(chain.size()) + " held segment(s) before it are redone";
  }
  APPEND(tx, now, CheckpointDiscarded{t.spec.id, lease, step, newest.record.tokens_consumed, redone, Clip(reason)});
  RADLADS_RETURN_IF_ERROR(EndLease(tx, now, copy, LeaseEndCause::kReleased,
                                   "checkpoint at step " + std::to_string(step) + " discarded; resuming from " + to,
                                   true));
  return MaybeFinishDrain(tx, now);
}

Status Scheduler::DoDrain(Txn& tx, std::string_view reason) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  if (s.phase() != RunPhase::kRunning) return Status::Ok();  // draining, drained or over
  const TimeMs now = clock_->NowMs();
  APPEND(tx, now, DrainRequested{Clip(reason)});
  return MaybeFinishDrain(tx, now);
}

Result<int> Scheduler::DoExpire(Txn& tx) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const TimeMs now = clock_->NowMs();
  std::vector<LeaseRecord> expired;
  for (const auto& [id, l] : s.leases()) {
    if (l.deadline_ms <= now) expired.push_back(l);
  }
  for (const auto& l : expired) {
    const std::string since =
        l.last_heartbeat_ms > 0 ? "last heartbeat at " + std::to_string(l.last_heartbeat_ms)
                                : "no heartbeat since the grant at " + std::to_string(l.granted_ms);
    RADLADS_RETURN_IF_ERROR(EndLease(tx, now, l, LeaseEndCause::kExpired,
                                     "worker '" + l.worker + "' missed the deadline " +
                                         std::to_string(l.deadline_ms) + " (" + since + ")",
                                     true));
  }
  if (!expired.empty()) RADLADS_RETURN_IF_ERROR(MaybeFinishDrain(tx, now));
  return static_cast<int>(expired.size());
}


std::vector<SegmentEviction> Scheduler::PendingEvictions() const {
  return store_->Read([](const RunState& s) { return EvictionsOf(s, SIZE_MAX); });
}

Status Scheduler::DoEvict(Txn& tx, int segment, int stage) {
  const RunState& s = tx.state();
  RADLADS_RETURN_IF_ERROR(RequireRun(s));
  const SegmentRecord* seg = s.FindSegment(segment, stage);
  if (seg == nullptr) {
    return Status::NotFound("no cache segment " + std::to_string(segment) + " of stage " +
                            std::to_string(stage));
  }
  if (seg->state == SegmentState::kEvicted) return Status::Ok();
  if (seg->state != SegmentState::kEvictable) {
    return Status::FailedPrecondition("cache segment " + std::to_string(segment) + " of stage " +
                                      std::to_string(stage) + " is " +
                                      std::string(SegmentStateName(seg->state)) +
                                      ", not evictable yet");
  }
  APPEND(tx, clock_->NowMs(), SegmentEvicted{segment, stage});
  return Status::Ok();
}

}  // namespace radlads
