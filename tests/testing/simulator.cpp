#include "tests/testing/simulator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "base/checksum.h"
#include "plan/plan_report.h"
#include "state/scheduler.h"
#include "state/state_store.h"

namespace radlads {

// ---------------------------------------------------------------------------------------------
// Checks and summaries
// ---------------------------------------------------------------------------------------------

Status CheckCompletedExactly(const RunState& s) {
  if (s.phase() != RunPhase::kCompleted) {
    return Status::Internal("the run is " + std::string(RunPhaseName(s.phase())) +
                            ", not completed: " + s.status().reason);
  }
  const int n = static_cast<int>(s.tasks().size());
  if (s.TasksIn(TaskState::kDone) != n) {
    return Status::Internal(std::to_string(s.TasksIn(TaskState::kDone)) + " of " +
                            std::to_string(n) + " tasks done");
  }
  for (const TaskRecord& t : s.tasks()) {
    if (t.committed_tokens != t.spec.tokens) {
      return Status::Internal("task '" + t.spec.id + "': committed cursor " +
                              std::to_string(t.committed_tokens) + " != budget " +
                              std::to_string(t.spec.tokens));
    }
  }
  const TokenLedger& ledger = s.ledger();
  for (std::size_t i = 0; i < ledger.by_type.size(); ++i) {
    const StepLedger& l = ledger.by_type[i];
    if (l.credited != l.budget) {
      return Status::Internal("ledger of " + std::string(TaskTypeName(static_cast<TaskType>(i))) +
                              ": credited " + std::to_string(l.credited) + " != budget " +
                              std::to_string(l.budget));
    }
  }
  for (const auto& [layer, l] : ledger.align_layers) {
    if (l.credited != l.budget || l.budget != ledger.AlignBudget()) {
      return Status::Internal("step-1 ledger of layer " + std::to_string(layer) + ": credited " +
                              std::to_string(l.credited) + ", budget " + std::to_string(l.budget) +
                              ", B1 " + std::to_string(ledger.AlignBudget()));
    }
  }
  if (ledger.AlignMinTokens() != ledger.AlignBudget()) {
    return Status::Internal("step-1 tokens used " + std::to_string(ledger.AlignMinTokens()) +
                            " != B1 " + std::to_string(ledger.AlignBudget()));
  }
  return s.CheckInvariants();
}

LatencyStats Summarize(std::vector<double>& v) {
  LatencyStats s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    const std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
    return v[std::min(v.size() - 1, i)];
  };
  s.p50_us = at(0.50);
  s.p90_us = at(0.90);
  s.p99_us = at(0.99);
  s.max_us = v.back();
  return s;
}

std::string FormatSimResult(const SimResult& r) {
  char buf[2048];
  auto ms = [](double us) { return us / 1000.0; };
  std::snprintf(
      buf, sizeof(buf),
      "rounds %lld (%.1f h simulated) in %.2f s wall (%.2f s of it closing and reopening the "
      "store)\n"
      "durable transitions %llu: %.0f/s overall, %.0f/s outside restarts (in flight when a "
      "message is sent: mean %.0f, max %zu)\n"
      "Lease latency (request to durable reply), %zu calls: p50 %.2f ms, p90 %.2f ms, p99 %.2f "
      "ms, max %.2f ms\n"
      "  granted only, %zu: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n"
      "survived: %d worker deaths, %d reported failures, %d leases expired, %d coordinator "
      "crashes, %d drain+requeue restarts\n"
      "refused %d late commits from dead processes; acknowledged %d duplicates with 0 tokens\n"
      "tokens: budget %s (layer-tokens for step 1), credited %s exactly once, %s redone after "
      "deaths\n"
      "events %llu, leases granted %lld, final state %s\n",
      static_cast<long long>(r.rounds), static_cast<double>(r.sim_ms) / 3.6e6, r.wall_s,
      r.restart_wall_s, static_cast<unsigned long long>(r.transitions), r.transitions_per_s,
      r.steady_transitions_per_s, r.mean_in_flight, r.max_in_flight, r.lease_all.count, ms(r.lease_all.p50_us), ms(r.lease_all.p90_us),
      ms(r.lease_all.p99_us), ms(r.lease_all.max_us), r.lease_granted.count,
      ms(r.lease_granted.p50_us), ms(r.lease_granted.p90_us), ms(r.lease_granted.p99_us),
      ms(r.lease_granted.max_us), r.deaths, r.reported_failures, r.leases_expired,
      r.crash_restarts, r.requeue_restarts, r.late_commits_refused, r.duplicates_acked,
      FormatCount(r.tokens_budget).c_str(), FormatCount(r.tokens_credited).c_str(),
      FormatCount(r.tokens_redone).c_str(), static_cast<unsigned long long>(r.events),
      static_cast<long long>(r.leases_granted), r.final_state_dump_digest.c_str());
  return buf;
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------
namespace {

using Steady = std::chrono::steady_clock;

double SecondsSince(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

enum class WState { kDown, kNeedRegister, kIdle, kWorking, kOver };

struct LateCommit {
  LeaseId lease = 0;
  CheckpointRecord record;
};

struct SimWorker {
  std::string id, host;
  int group = 1;
  WState state = WState::kNeedRegister;
  int gen = 0;       // bumped when the process dies or restarts: replies to older ones are stale
  int inflight = 0;  // messages of this generation awaiting their reply
  int down_rounds = 0;
  std::int64_t pid = 0;
  // The current lease.
  LeaseId lease = 0;
  int task = -1;
  int attempt = 0;
  std::int64_t steps = 1, per_round = 1, tokens = 0;
  std::int64_t step = 0, committed_step = 0;
  int since_commit = 0;
  // Idle: rounds to wait before asking again (1, 2, 4, ... after answers without work).
  int no_work = 0;
  std::int64_t poll_backoff = 0;
  std::int64_t next_poll_round = 0;  // kRounds
  // Pending actions.
  bool fail_now = false, release_now = false;
  std::optional<CheckpointRecord> dup_commit;
  std::optional<FinalRecord> dup_final;
  LeaseId dup_lease = 0;
  std::optional<LateCommit> late;  // sent once the replacement process has registered

  std::int64_t Cursor(std::int64_t k) const { return tokens * k / steps; }
};

enum class OpKind { kLease, kHeartbeat, kCommit, kComplete, kDupCommit, kDupComplete };

struct Op {
  std::uint64_t seq = 0;  // issue order
  OpKind kind = OpKind::kLease;
  int worker = 0;
  int gen = 0;
  int task = -1;  // the task the message is about (for the credit tally)
  LeaseId lease = 0;
  std::int64_t step = 0;
  TimeMs issue_ms = 0;
  Progress progress;
  CheckpointRecord record;
  FinalRecord final_record;
  Steady::time_point t0;
  double us = 0;
  std::optional<Result<LeaseReply>> lease_reply;
  std::optional<Result<HeartbeatReply>> hb_reply;
  std::optional<Result<CommitReply>> commit_reply;
};

// Runs jobs on `threads` threads (blocking scheduler calls, so that group commit batches them).
void RunParallel(std::vector<std::function<void()>>& jobs, int threads) {
  if (jobs.empty()) return;
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(jobs.size())));
  std::atomic<std::size_t> next{0};
  auto body = [&] {
    for (std::size_t i = next++; i < jobs.size(); i = next++) jobs[i]();
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(body);
  body();
  for (auto& t : pool) t.join();
}

bool IsPrecondition(const Status& s) {
  return s.code() == Status::Code::kFailedPrecondition || s.code() == Status::Code::kNotFound;
}

// Acknowledged asynchronous messages, handed from the committer thread to the driver.
class Mailbox {
 public:
  ~Mailbox() {
    for (Op* op : done_) delete op;  // left behind by an error
  }
  void Post(Op* op) {
    std::lock_guard<std::mutex> lock(mu_);
    done_.push_back(op);
    cv_.notify_one();
  }
  // Waits until at least `min` messages are there (0: does not wait), then takes them all.
  std::vector<Op*> Take(std::size_t min) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_.size() >= min; });
    std::vector<Op*> out;
    out.swap(done_);
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Op*> done_;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : o_(o), rng_(o.seed) {}
  ~Simulation() {
    if (background_.joinable()) background_.join();
  }
  Result<SimResult> Run();

 private:
  double Uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  SimWorker& W(int i) { return workers_[static_cast<std::size_t>(i)]; }

  Status Open();
  Status Close();
  Status Restart(bool requeue);
  // The coordinator side of a round (see simulator.h); `quiesce` waits for every message in
  // flight first (stream mode, before a restart).
  Status CoordinatorSide(const std::function<Status()>& quiesce);
  // Evictions of evictable cache segments and ExpireLeases (on `background_` in stream mode).
  Status EvictAndExpire();
  Status JoinBackground();
  void RandomEvents();
  Status BlockingPhase();
  void Die(SimWorker& w, bool count_death);
  Status MaybeScheduleRestart();

  // The messages worker i sends now (a duplicate first, then its own), or none.
  std::vector<std::unique_ptr<Op>> NextOps(int i);
  void Issue(Op* op, Mailbox* mailbox);
  Status ApplyReply(Op& op);
  Status StartTask(SimWorker& w, const LeaseGrant& g);
  void DropLease(SimWorker& w);

  Status RunRounds();
  Status RunStream();
  Status FinalChecks(SimResult* r);

  CheckpointRecord Record(const SimWorker& w, std::int64_t step) const;
  std::vector<NamedValue> Losses(const SimWorker& w, std::int64_t step) const;
  bool Over() const {
    const RunPhase p = store_->Read([](const RunState& s) { return s.phase(); });
    return p == RunPhase::kCompleted || p == RunPhase::kFailed;
  }

  const SimOptions& o_;
  std::mt19937_64 rng_;
  FakeClock clock_;
  Mailbox mailbox_;  // declared before the store: replies may arrive until the store is closed
  std::uint64_t op_seq_ = 0;
  double in_flight_sum_ = 0, in_flight_samples_ = 0;  // in flight when a message is sent
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<SimWorker> workers_;
  std::unordered_map<std::string, int> task_index_;
  std::vector<std::int64_t> acked_credit_;  // per task, from the replies
  std::vector<double> lease_all_us_, lease_granted_us_;
  std::vector<double> restart_points_;  // fractions of tasks done, descending
  std::vector<int> registered_now_;     // workers that registered in this round's blocking phase
  bool draining_ = false;
  bool crash_pending_ = false;
  std::thread background_;
  Status background_status_;
  std::uint64_t transitions_closed_ = 0;  // durable transitions of closed incarnations
  std::int64_t pid_counter_ = 1000;
  SimResult res_;
};

CheckpointRecord Simulation::Record(const SimWorker& w, std::int64_t step) const {
  const TaskSpec& t = o_.tasks[static_cast<std::size_t>(w.task)];
  const bool cache = t.type == TaskType::kCache;
  FileRecord f;
  f.path = (cache ? "cache/" : "ckpt/") + t.id + "/a" + std::to_string(w.attempt) + "-s" +
           std::to_string(step) + (cache ? ".h5" : ".safetensors");
  f.bytes = 1 << 20;
  f.checksum = FormatChecksum(Checksum64(f.path + "#" + std::to_string(w.lease)));
  CheckpointRecord c;
  c.step = step;
  c.tokens_consumed = w.Cursor(step);
  c.files.push_back(std::move(f));
  return c;
}

std::vector<NamedValue> Simulation::Losses(const SimWorker& w, std::int64_t step) const {
  const TaskSpec& t = o_.tasks[static_cast<std::size_t>(w.task)];
  const double frac = static_cast<double>(step) / static_cast<double>(w.steps);
  switch (t.type) {
    case TaskType::kAlign:
      return {{"l2", 0.02 + 0.4 / (1.0 + 3.0 * (t.segment + frac)) + 0.001 * (t.layer % 7)}};
    case TaskType::kDistill:
      return {{"kl", 0.15 + 2.0 / (1.0 + 20.0 * frac)}, {"top1", 0.55 + 0.3 * frac}};
    case TaskType::kFinetune:
      return {{"ce", 2.1 + 0.5 / (1.0 + 10.0 * frac)}};
    default:
      return {};
  }
}

Status Simulation::Open() {
  StateStoreOptions so;
  so.sync = o_.sync;
  so.verify = o_.verify_replay_on_reopen ? StateStoreOptions::Verify::kReplay
                                         : StateStoreOptions::Verify::kTables;
  RADLADS_ASSIGN_OR_RETURN(store_, StateStore::Open(o_.dir, so));
  sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
  return Status::Ok();
}

Status Simulation::Close() {
  sched_.reset();
  if (store_) {
    RADLADS_RETURN_IF_ERROR(store_->health());
    transitions_closed_ += store_->transitions_durable();
  }
  store_.reset();  // waits for queued transitions to become durable
  return Status::Ok();
}

void Simulation::Die(SimWorker& w, bool count_death) {
  if (w.state == WState::kWorking) {
    res_.tokens_redone += w.Cursor(w.step) - w.Cursor(w.committed_step);
    const std::int64_t next = std::min(w.steps, std::max(w.step, w.committed_step) + 1);
    if (next > w.committed_step && Uniform() < o_.late_commit_rate) {
      w.late = LateCommit{w.lease, Record(w, next)};
    }
  }
  if (count_death) ++res_.deaths;
  ++w.gen;
  w.inflight = 0;
  w.lease = 0;
  w.task = -1;
  w.fail_now = w.release_now = false;
  w.dup_commit.reset();
  w.dup_final.reset();
}

Status Simulation::Restart(bool requeue) {
  const Steady::time_point t0 = Steady::now();
  const RunState before = store_->Snapshot();
  RADLADS_RETURN_IF_ERROR(Close());
  RADLADS_RETURN_IF_ERROR(Open());
  if (!(store_->Snapshot() == before)) {
    return Status::Internal("the reopened state differs from the state before the close");
  }
  RADLADS_RETURN_IF_ERROR(sched_->Resume(requeue ? "simulated requeue after a drain"
                                                 : "simulated coordinator crash"));
  (requeue ? res_.requeue_restarts : res_.crash_restarts) += 1;
  draining_ = false;
  // The Slurm job starts again: every worker process is new and registers again. Work past the
  // last commit is lost; an old process may still send a late commit on its ended lease.
  for (SimWorker& w : workers_) {
    if (w.state == WState::kOver) continue;
    Die(w, /*count_death=*/false);
    w.state = WState::kNeedRegister;
  }
  res_.restart_wall_s += SecondsSince(t0);
  return Status::Ok();
}

void Simulation::RandomEvents() {
  for (SimWorker& w : workers_) {
    if (w.state == WState::kDown) {
      if (--w.down_rounds <= 0) w.state = WState::kNeedRegister;
      continue;
    }
    if (w.state != WState::kWorking || draining_) continue;
    const double u = Uniform();
    if (u < o_.death_rate) {
      Die(w, /*count_death=*/true);
      w.state = WState::kDown;
      w.down_rounds = 1 + Pick(std::max(1, o_.revive_after_rounds));
    } else if (u < o_.death_rate + o_.fail_rate) {
      w.fail_now = true;
    }
  }
}

Status Simulation::BlockingPhase() {
  // Phase a: registrations, failures, releases (they commute).
  std::vector<std::function<void()>> jobs;
  std::vector<int> reg, fail, release;
  for (int i = 0; i < static_cast<int>(workers_.size()); ++i) {
    SimWorker& w = W(i);
    if (w.state == WState::kNeedRegister) {
      reg.push_back(i);
      w.pid = ++pid_counter_;
    } else if (w.state == WState::kWorking && w.inflight == 0 && w.fail_now) {
      fail.push_back(i);
    } else if (w.state == WState::kWorking && w.inflight == 0 && w.release_now) {
      release.push_back(i);
    }
  }
  std::vector<Status> reg_st(reg.size()), fail_st(fail.size()), release_st(release.size());
  for (std::size_t k = 0; k < reg.size(); ++k) {
    jobs.push_back([this, k, &reg, &reg_st] {
      const SimWorker& w = W(reg[k]);
      WorkerInfo info;
      info.id = w.id;
      info.host = w.host;
      info.pid = w.pid;
      info.group_size = w.group;
      reg_st[k] = sched_->RegisterWorker(info);
    });
  }
  for (std::size_t k = 0; k < fail.size(); ++k) {
    jobs.push_back([this, k, &fail, &fail_st] {
      fail_st[k] = sched_->Fail(W(fail[k]).lease, "simulated failure: CUDA error 700", true);
    });
  }
  for (std::size_t k = 0; k < release.size(); ++k) {
    jobs.push_back([this, k, &release, &release_st] {
      const SimWorker& w = W(release[k]);
      release_st[k] = sched_->Release(w.lease, "drain: checkpointed at step " +
                                                   std::to_string(w.committed_step));
    });
  }
  RunParallel(jobs, o_.blocking_threads);
  registered_now_.clear();
  for (std::size_t k = 0; k < reg.size(); ++k) {
    if (!reg_st[k].ok()) return reg_st[k].WithContext("RegisterWorker");
    SimWorker& w = W(reg[k]);
    w.state = WState::kIdle;
    w.no_work = 0;
    w.poll_backoff = 0;
    w.next_poll_round = 0;
    registered_now_.push_back(reg[k]);
  }
  for (std::size_t k = 0; k < fail.size(); ++k) {
    if (!fail_st[k].ok() && !IsPrecondition(fail_st[k])) return fail_st[k].WithContext("Fail");
    if (fail_st[k].ok()) ++res_.reported_failures;
    DropLease(W(fail[k]));
    registered_now_.push_back(fail[k]);  // idle now: asks for work at once
  }
  for (std::size_t k = 0; k < release.size(); ++k) {
    if (!release_st[k].ok() && !IsPrecondition(release_st[k])) {
      return release_st[k].WithContext("Release");
    }
    DropLease(W(release[k]));
    registered_now_.push_back(release[k]);
  }
  // Phase b: late commits of dead processes whose replacement has registered: the lease is over
  // (expired, ended by the re-registration or by the restart), so each must be refused.
  jobs.clear();
  std::vector<int> late;
  for (int i : reg) {
    if (W(i).late) late.push_back(i);
  }
  std::vector<std::optional<Result<CommitReply>>> late_st(late.size());
  for (std::size_t k = 0; k < late.size(); ++k) {
    jobs.push_back([this, k, &late, &late_st] {
      const LateCommit& l = *W(late[k]).late;
      late_st[k].emplace(sched_->CommitCheckpoint(l.lease, l.record));
    });
  }
  RunParallel(jobs, o_.blocking_threads);
  for (std::size_t k = 0; k < late.size(); ++k) {
    SimWorker& w = W(late[k]);
    const Result<CommitReply>& r = *late_st[k];
    if (r.ok()) {
      return Status::Internal("a late commit on ended lease " + std::to_string(w.late->lease) +
                              " of a dead process of worker " + w.id + " was accepted");
    }
    if (r.status().code() != Status::Code::kFailedPrecondition) {
      return r.status().WithContext("late commit");
    }
    ++res_.late_commits_refused;
    w.late.reset();
  }
  return Status::Ok();
}

Status Simulation::MaybeScheduleRestart() {
  if (restart_points_.empty() || draining_ || crash_pending_) return Status::Ok();
  const int done = store_->Read([](const RunState& s) { return s.TasksIn(TaskState::kDone); });
  if (static_cast<double>(done) / static_cast<double>(o_.tasks.size()) < restart_points_.back()) {
    return Status::Ok();
  }
  restart_points_.pop_back();
  if (Uniform() < o_.graceful_fraction) {
    RADLADS_RETURN_IF_ERROR(sched_->Drain("simulated Slurm time limit (SIGUSR1)"));
    draining_ = true;
  } else {
    crash_pending_ = true;
  }
  return Status::Ok();
}

Status Simulation::CoordinatorSide(const std::function<Status()>& quiesce) {
  const RunPhase phase = store_->Read([](const RunState& s) { return s.phase(); });
  if (crash_pending_ || (draining_ && phase == RunPhase::kDrained)) {
    RADLADS_RETURN_IF_ERROR(JoinBackground());
    RADLADS_RETURN_IF_ERROR(quiesce());
    RADLADS_RETURN_IF_ERROR(Restart(!crash_pending_));
    crash_pending_ = false;
  }
  const int rounds = o_.mode == SimMode::kStream ? std::max(1, o_.tick_rounds) : 1;
  for (int k = 0; k < rounds; ++k) RandomEvents();
  RADLADS_RETURN_IF_ERROR(BlockingPhase());
  if (o_.mode == SimMode::kRounds) return EvictAndExpire();
  // Stream: the server's timers run beside the traffic, as in a real coordinator.
  RADLADS_RETURN_IF_ERROR(JoinBackground());
  background_ = std::thread([this] { background_status_ = EvictAndExpire(); });
  return Status::Ok();
}

Status Simulation::JoinBackground() {
  if (background_.joinable()) background_.join();
  Status s = background_status_;
  background_status_ = Status::Ok();
  return s;
}

Status Simulation::EvictAndExpire() {
  // The scheduler decides which segments go; the simulated workers "delete" them at once.
  const std::vector<SegmentEviction> evictable = sched_->PendingEvictions();
  std::vector<std::function<void()>> jobs;
  std::vector<Status> evict_st(evictable.size());
  for (std::size_t k = 0; k < evictable.size(); ++k) {
    jobs.push_back([this, k, &evictable, &evict_st] {
      evict_st[k] = sched_->EvictSegment(evictable[k].segment, evictable[k].stage);
    });
  }
  RunParallel(jobs, o_.blocking_threads);
  for (const Status& s : evict_st) {
    if (!s.ok()) return s.WithContext("EvictSegment");
  }
  RADLADS_ASSIGN_OR_RETURN(const int expired, sched_->ExpireLeases());
  (void)expired;
  return Status::Ok();
}

void Simulation::DropLease(SimWorker& w) {
  w.lease = 0;
  w.task = -1;
  w.state = WState::kIdle;
  w.fail_now = w.release_now = false;
  w.poll_backoff = 0;
}

Status Simulation::StartTask(SimWorker& w, const LeaseGrant& g) {
  auto it = task_index_.find(g.task.id);
  if (it == task_index_.end()) return Status::Internal("granted unknown task " + g.task.id);
  w.state = WState::kWorking;
  w.lease = g.lease;
  w.task = it->second;
  w.attempt = g.attempt;
  w.steps = std::max<std::int64_t>(1, g.task.optimizer_steps);
  w.tokens = g.task.tokens;
  w.per_round = (w.steps + o_.rounds_per_task - 1) / o_.rounds_per_task;
  w.step = 0;
  if (g.resume_from) {
    w.step = g.resume_from->record.step;
    if (w.Cursor(w.step) != g.resume_from->record.tokens_consumed) {
      return Status::Internal("task " + g.task.id + ": resume point step " +
                              std::to_string(w.step) + " has cursor " +
                              std::to_string(g.resume_from->record.tokens_consumed) +
                              ", expected " + std::to_string(w.Cursor(w.step)));
    }
  }
  w.committed_step = w.step;
  w.since_commit = 0;
  return Status::Ok();
}

std::vector<std::unique_ptr<Op>> Simulation::NextOps(int i) {
  std::vector<std::unique_ptr<Op>> out;
  SimWorker& w = W(i);
  auto make = [&](OpKind kind) {
    auto op = std::make_unique<Op>();
    op->kind = kind;
    op->worker = i;
    op->gen = w.gen;
    op->task = w.task;
    op->lease = w.lease;
    return op;
  };
  if (w.dup_commit) {
    auto op = make(OpKind::kDupCommit);
    op->lease = w.dup_lease;
    op->record = *w.dup_commit;
    w.dup_commit.reset();
    out.push_back(std::move(op));
  }
  if (w.dup_final) {
    auto op = make(OpKind::kDupComplete);
    op->lease = w.dup_lease;
    op->final_record = *w.dup_final;
    w.dup_final.reset();
    out.push_back(std::move(op));
  }
  if (w.state == WState::kIdle) {
    out.push_back(make(OpKind::kLease));
    return out;
  }
  if (w.state != WState::kWorking || w.fail_now || w.release_now) return out;
  OpKind kind;
  if (draining_) {
    // Told to stop: checkpoint at this step boundary, then release (by the coordinator side).
    if (w.step >= w.steps) {
      kind = OpKind::kComplete;
    } else if (w.step > w.committed_step) {
      kind = OpKind::kCommit;
    } else {
      w.release_now = true;
      return out;
    }
  } else {
    w.step = std::min(w.steps, w.step + w.per_round);
    ++w.since_commit;
    kind = w.step >= w.steps ? OpKind::kComplete
           : w.since_commit >= o_.checkpoint_every ? OpKind::kCommit
                                                   : OpKind::kHeartbeat;
  }
  auto op = make(kind);
  op->step = w.step;
  if (kind == OpKind::kHeartbeat) {
    op->progress.tokens = w.Cursor(w.step);
    op->progress.step = w.step;
    op->progress.losses = Losses(w, w.step);
    op->progress.throughput = static_cast<double>(w.Cursor(std::min(w.steps, w.per_round))) /
                              (static_cast<double>(o_.round_ms) / 1000.0);
  } else if (kind == OpKind::kCommit) {
    op->record = Record(w, w.step);
  } else {
    op->final_record.checkpoint = Record(w, w.steps);
    op->final_record.metrics = Losses(w, w.steps);
  }
  out.push_back(std::move(op));
  return out;
}

void Simulation::Issue(Op* p, Mailbox* mailbox) {
  p->seq = ++op_seq_;
  ++W(p->worker).inflight;
  p->issue_ms = clock_.NowMs();
  p->t0 = Steady::now();
  auto done = [p, mailbox] {
    p->us = std::chrono::duration<double, std::micro>(Steady::now() - p->t0).count();
    mailbox->Post(p);
  };
  switch (p->kind) {
    case OpKind::kLease:
      sched_->LeaseAsync(W(p->worker).id, Capabilities{}, [p, done](Result<LeaseReply> r) {
        p->lease_reply.emplace(std::move(r));
        done();
      });
      break;
    case OpKind::kHeartbeat:
      sched_->HeartbeatAsync(p->lease, p->progress, [p, done](Result<HeartbeatReply> r) {
        p->hb_reply.emplace(std::move(r));
        done();
      });
      break;
    case OpKind::kCommit:
    case OpKind::kDupCommit:
      sched_->CommitCheckpointAsync(p->lease, p->record, [p, done](Result<CommitReply> r) {
        p->commit_reply.emplace(std::move(r));
        done();
      });
      break;
    case OpKind::kComplete:
    case OpKind::kDupComplete:
      sched_->CompleteAsync(p->lease, p->final_record, [p, done](Result<CommitReply> r) {
        p->commit_reply.emplace(std::move(r));
        done();
      });
      break;
  }
}

// Applies one acknowledged message to its worker. A reply to a process that has since died or
// restarted (older generation), or about a lease the worker no longer holds, changes nothing
// but the credit tally: the coordinator did credit those tokens.
Status Simulation::ApplyReply(Op& op) {
  SimWorker& w = W(op.worker);
  const bool current = op.gen == w.gen;
  if (current) --w.inflight;
  switch (op.kind) {
    case OpKind::kLease: {
      const Result<LeaseReply>& r = *op.lease_reply;
      lease_all_us_.push_back(op.us);
      if (!r.ok()) {
        if (!IsPrecondition(r.status())) return r.status().WithContext("Lease " + w.id);
        if (current) w.state = WState::kNeedRegister;  // declared lost: register again
        return Status::Ok();
      }
      if (r->outcome == LeaseOutcome::kGranted) {
        lease_granted_us_.push_back(op.us);
        ++res_.leases_granted;
      }
      if (!current || w.state != WState::kIdle) return Status::Ok();
      if (r->outcome == LeaseOutcome::kGranted) {
        w.no_work = 0;
        w.poll_backoff = 0;
        return StartTask(w, *r->grant);
      }
      if (r->outcome == LeaseOutcome::kRunOver) {
        w.state = WState::kOver;
        return Status::Ok();
      }
      w.no_work = std::min(w.no_work + 1, 30);
      w.poll_backoff = std::min<std::int64_t>(std::int64_t{1} << (w.no_work - 1), o_.max_poll_backoff);
      w.next_poll_round = res_.rounds + w.poll_backoff;
      return Status::Ok();
    }
    case OpKind::kHeartbeat: {
      const Result<HeartbeatReply>& r = *op.hb_reply;
      if (!r.ok()) {
        if (!IsPrecondition(r.status())) return r.status().WithContext("Heartbeat " + w.id);
        if (current && w.lease == op.lease) DropLease(w);
      }
      return Status::Ok();
    }
    case OpKind::kCommit:
    case OpKind::kComplete: {
      const Result<CommitReply>& r = *op.commit_reply;
      const char* what = op.kind == OpKind::kCommit ? "CommitCheckpoint " : "Complete ";
      if (!r.ok()) {
        if (!IsPrecondition(r.status())) return r.status().WithContext(what + w.id);
        if (current && w.lease == op.lease) DropLease(w);
        return Status::Ok();
      }
      if (r->duplicate) {
        return Status::Internal(std::string(what) + "of lease " + std::to_string(op.lease) +
                                " was taken for a duplicate");
      }
      acked_credit_[static_cast<std::size_t>(op.task)] += r->tokens_credited;
      if (!current || w.lease != op.lease) return Status::Ok();
      const bool dup = Uniform() < o_.duplicate_rate;
      if (op.kind == OpKind::kCommit) {
        w.committed_step = op.step;
        w.since_commit = 0;
        if (dup) w.dup_commit = op.record;
      } else {
        if (dup) w.dup_final = op.final_record;
        DropLease(w);
      }
      if (dup) w.dup_lease = op.lease;
      return Status::Ok();
    }
    case OpKind::kDupCommit:
    case OpKind::kDupComplete: {
      const Result<CommitReply>& r = *op.commit_reply;
      if (!r.ok() || !r->duplicate || r->tokens_credited != 0) {
        return Status::Internal("a duplicate on lease " + std::to_string(op.lease) + " of " +
                                w.id + " was not acknowledged as one: " +
                                (r.ok() ? "credited " + std::to_string(r->tokens_credited)
                                        : r.status().ToString()));
      }
      ++res_.duplicates_acked;
      return Status::Ok();
    }
  }
  return Status::Ok();
}

// ---- lock-step rounds ----
Status Simulation::RunRounds() {
  for (res_.rounds = 1; res_.rounds <= o_.max_rounds; ++res_.rounds) {
    clock_.Advance(o_.round_ms);
    RADLADS_RETURN_IF_ERROR(CoordinatorSide([] { return Status::Ok(); }));
    std::size_t issued = 0;
    for (int i = 0; i < static_cast<int>(workers_.size()); ++i) {
      const SimWorker& w = W(i);
      if (w.state == WState::kIdle && res_.rounds < w.next_poll_round && !w.dup_commit &&
          !w.dup_final) {
        continue;
      }
      for (auto& op : NextOps(i)) {
        if (op->kind == OpKind::kLease && res_.rounds < w.next_poll_round) continue;
        Issue(op.release(), &mailbox_);
        ++issued;
      }
    }
    res_.max_in_flight = std::max(res_.max_in_flight, issued);
    in_flight_sum_ += static_cast<double>(issued) * static_cast<double>(issued + 1) / 2.0;
    in_flight_samples_ += static_cast<double>(issued);
    std::vector<Op*> taken = mailbox_.Take(issued);  // every acknowledgement (all durable)
    std::vector<std::unique_ptr<Op>> ops;
    for (Op* op : taken) ops.emplace_back(op);
    std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a->seq < b->seq; });
    for (auto& op : ops) RADLADS_RETURN_IF_ERROR(ApplyReply(*op));  // in issue (worker) order
    if (o_.on_round) {
      store_->Read([&](const RunState& s) {
        o_.on_round(s, clock_.NowMs(), res_.rounds);
        return 0;
      });
    }
    if (Over()) return Status::Ok();
    RADLADS_RETURN_IF_ERROR(MaybeScheduleRestart());
  }
  return Status::Internal("the simulated run did not finish in " + std::to_string(o_.max_rounds) +
                          " rounds");
}

// ---- closed loop ----
Status Simulation::RunStream() {
  std::multiset<TimeMs> inflight;  // issue times of the messages in flight
  using Due = std::pair<TimeMs, int>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due;  // (time, worker)
  std::vector<char> queued(workers_.size(), 0);
  auto schedule = [&](int i, TimeMs at) {
    if (queued[static_cast<std::size_t>(i)]) return;
    queued[static_cast<std::size_t>(i)] = 1;
    due.emplace(at, i);
  };
  // What a worker does next, once all its messages are acknowledged.
  auto follow_up = [&](int i, TimeMs issued) {
    const SimWorker& w = W(i);
    if (w.inflight > 0) return;
    if (w.state == WState::kWorking && !w.fail_now && !w.release_now) {
      schedule(i, issued + o_.round_ms);
    } else if (w.state == WState::kIdle) {
      schedule(i, clock_.NowMs() + w.poll_backoff * o_.round_ms);
    }
  };
  auto apply = [&](std::vector<Op*> done) -> Status {
    std::vector<std::unique_ptr<Op>> ops;
    for (Op* raw : done) ops.emplace_back(raw);
    for (auto& op : ops) {
      inflight.erase(inflight.find(op->issue_ms));
      RADLADS_RETURN_IF_ERROR(ApplyReply(*op));
      if (op->gen == W(op->worker).gen) follow_up(op->worker, op->issue_ms);
    }
    return Status::Ok();
  };
  auto quiesce = [&]() -> Status {
    while (!inflight.empty()) RADLADS_RETURN_IF_ERROR(apply(mailbox_.Take(1)));
    return Status::Ok();
  };
  const TimeMs tick = o_.round_ms * std::max(1, o_.tick_rounds);
  TimeMs next_tick = clock_.NowMs();
  const TimeMs start_ms = clock_.NowMs();
  while (true) {
    RADLADS_RETURN_IF_ERROR(apply(mailbox_.Take(0)));
    if (Over()) {
      RADLADS_RETURN_IF_ERROR(JoinBackground());
      RADLADS_RETURN_IF_ERROR(quiesce());
      break;
    }
    // Simulated time may not pass the oldest message in flight by more than max_lag_rounds: a
    // worker whose reply is slow sends its next message at most that late (well inside the
    // lease ttl), and one slow reply does not hold everyone else back.
    const TimeMs bound = inflight.empty()
                             ? std::numeric_limits<TimeMs>::max()
                             : *inflight.begin() + o_.round_ms * std::max(1, o_.max_lag_rounds);
    const TimeMs next_due = due.empty() ? std::numeric_limits<TimeMs>::max() : due.top().first;
    if (next_tick <= next_due && next_tick <= bound) {
      clock_.Set(std::max(clock_.NowMs(), next_tick));
      next_tick += tick;
      res_.rounds = (clock_.NowMs() - start_ms) / o_.round_ms;
      if (res_.rounds > o_.max_rounds) {
        return Status::Internal("the simulated run did not finish in " +
                                std::to_string(o_.max_rounds) + " rounds");
      }
      RADLADS_RETURN_IF_ERROR(CoordinatorSide(quiesce));
      for (int i : registered_now_) schedule(i, clock_.NowMs());
      if (o_.on_round) {
        store_->Read([&](const RunState& s) {
          o_.on_round(s, clock_.NowMs(), res_.rounds);
          return 0;
        });
      }
      RADLADS_RETURN_IF_ERROR(MaybeScheduleRestart());
      // After a restart or a drain, workers that were waiting get going again.
      for (int i = 0; i < static_cast<int>(workers_.size()); ++i) {
        const SimWorker& w = W(i);
        if (w.inflight == 0 && (w.state == WState::kIdle || w.state == WState::kWorking) &&
            !w.fail_now && !w.release_now) {
          schedule(i, clock_.NowMs() + (w.state == WState::kIdle ? w.poll_backoff * o_.round_ms : 0));
        }
      }
      continue;
    }
    if (next_due <= bound) {
      clock_.Set(std::max(clock_.NowMs(), next_due));
      while (!due.empty() && due.top().first <= clock_.NowMs()) {
        const int i = due.top().second;
        due.pop();
        queued[static_cast<std::size_t>(i)] = 0;
        if (W(i).inflight > 0) continue;
        for (auto& op : NextOps(i)) {
          inflight.insert(clock_.NowMs());
          Issue(op.release(), &mailbox_);
          in_flight_sum_ += static_cast<double>(inflight.size());
          ++in_flight_samples_;
        }
      }
      res_.max_in_flight = std::max(res_.max_in_flight, inflight.size());
      continue;
    }
    RADLADS_RETURN_IF_ERROR(apply(mailbox_.Take(1)));  // wait for the oldest to come back
  }
  return Status::Ok();
}

Status Simulation::FinalChecks(SimResult* r) {
  const RunState final_state = store_->Snapshot();
  RADLADS_RETURN_IF_ERROR(CheckCompletedExactly(final_state));
  for (std::size_t i = 0; i < o_.tasks.size(); ++i) {
    if (acked_credit_[i] != o_.tasks[i].tokens) {
      return Status::Internal("task '" + o_.tasks[i].id + "': credits acknowledged to workers sum to " +
                              std::to_string(acked_credit_[i]) + ", budget " +
                              std::to_string(o_.tasks[i].tokens));
    }
    r->tokens_credited += acked_credit_[i];
    r->tokens_budget += o_.tasks[i].tokens;
  }
  // The durable log itself: every credit, once.
  std::vector<std::int64_t> logged(o_.tasks.size(), 0);
  const std::uint64_t last = final_state.last_seq();
  for (std::uint64_t first = 1; first <= last; first += 8192) {
    RADLADS_ASSIGN_OR_RETURN(std::vector<Event> evs, store_->ReadEvents(first, 8192));
    for (const Event& e : evs) {
      if (const auto* c = std::get_if<CheckpointCommitted>(&e.body)) {
        logged[static_cast<std::size_t>(task_index_.at(c->task))] += c->tokens_credited;
      } else if (const auto* d = std::get_if<TaskCompleted>(&e.body)) {
        logged[static_cast<std::size_t>(task_index_.at(d->task))] += d->tokens_credited;
      }
    }
  }
  for (std::size_t i = 0; i < o_.tasks.size(); ++i) {
    if (logged[i] != o_.tasks[i].tokens) {
      return Status::Internal("task '" + o_.tasks[i].id + "': the event log credits " +
                              std::to_string(logged[i]) + " tokens, budget " +
                              std::to_string(o_.tasks[i].tokens));
    }
  }
  RADLADS_ASSIGN_OR_RETURN(RunState replayed, store_->ReplayLog());
  if (!(replayed == final_state)) {
    return Status::Internal("replaying the event log does not rebuild the final state");
  }
  r->events = last;
  r->final_state_dump_digest = FormatChecksum(Checksum64(final_state.CanonicalDump()));
  r->leases_expired = static_cast<int>(final_state.metrics().leases_expired);
  return Status::Ok();
}

Result<SimResult> Simulation::Run() {
  if (o_.checkpoint_every < 2) {
    return Status::InvalidArgument("simulator: checkpoint_every must be >= 2 (heartbeats renew "
                                   "the lease in the rounds between commits)");
  }
  if (o_.rounds_per_task < 1 || o_.workers < 1 || o_.tasks.empty() || o_.round_ms <= 0) {
    return Status::InvalidArgument(
        "simulator: needs rounds_per_task >= 1, workers >= 1, round_ms > 0 and tasks");
  }
  std::error_code ec;
  if (std::filesystem::exists(o_.dir, ec) && !std::filesystem::is_empty(o_.dir, ec)) {
    return Status::InvalidArgument("simulator: " + o_.dir + " is not empty");
  }
  int gang = 1;
  for (std::size_t i = 0; i < o_.tasks.size(); ++i) {
    task_index_[o_.tasks[i].id] = static_cast<int>(i);
    gang = std::max(gang, o_.tasks[i].workers);
  }
  acked_credit_.assign(o_.tasks.size(), 0);
  for (int i = 0; i < o_.workers; ++i) {
    SimWorker w;
    char id[32], host[16];
    std::snprintf(host, sizeof(host), "n%03d", i / 8);
    std::snprintf(id, sizeof(id), "n%03d/r%d", i / 8, i % 8);
    w.id = id;
    w.host = host;
    workers_.push_back(std::move(w));
  }
  if (gang > 1) {  // the leader of the gang tasks' worker group (docs/design.md §5)
    SimWorker w;
    w.id = "n000/group";
    w.host = "n000";
    w.group = gang;
    workers_.push_back(std::move(w));
  }
  for (int k = 0; k < o_.restarts; ++k) restart_points_.push_back(0.03 + 0.94 * Uniform());
  std::sort(restart_points_.begin(), restart_points_.end(), std::greater<>());

  const Steady::time_point start = Steady::now();
  RADLADS_RETURN_IF_ERROR(Open());
  RADLADS_RETURN_IF_ERROR(sched_->CreateRun(o_.run, o_.tasks));
  RADLADS_RETURN_IF_ERROR(o_.mode == SimMode::kStream ? RunStream() : RunRounds());
  const RunStatus st = store_->Read([](const RunState& s) { return s.status(); });
  if (st.phase == RunPhase::kFailed) {
    return Status::Internal("the simulated run failed: " + st.reason);
  }
  res_.sim_ms = clock_.NowMs() - FakeClock::kDefaultStartMs;
  res_.transitions = transitions_closed_ + store_->transitions_durable();
  res_.wall_s = SecondsSince(start);
  res_.transitions_per_s = static_cast<double>(res_.transitions) / res_.wall_s;
  res_.steady_transitions_per_s =
      static_cast<double>(res_.transitions) / std::max(1e-9, res_.wall_s - res_.restart_wall_s);
  res_.mean_in_flight = in_flight_samples_ > 0 ? in_flight_sum_ / in_flight_samples_ : 0.0;
  res_.lease_all = Summarize(lease_all_us_);
  res_.lease_granted = Summarize(lease_granted_us_);
  RADLADS_RETURN_IF_ERROR(FinalChecks(&res_));
  RADLADS_RETURN_IF_ERROR(Close());
  return res_;
}

}  // namespace

Result<SimResult> RunSimulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

}  // namespace radlads
