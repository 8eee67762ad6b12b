#include "worker/executor.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/file.h"
#include "base/log.h"
#include "base/profile.h"
#include "worker/checkpoint_io.h"

namespace radlads {
namespace {

bool LeaseGone(const Status& s) { return s.code() == Status::Code::kFailedPrecondition; }

// Every file of a resume point against its committed size and checksum (one read of each; the
// task's load reads it again, from the page cache when it fits). Other errors (IOError) are left
// to the task, which reports them as transient.
Status VerifyResumePoint(const std::string& run_dir, const CommittedCheckpoint& c) {
  for (const FileRecord& f : c.record.files) RADLADS_RETURN_IF_ERROR(VerifyCheckpointFile(run_dir, f));
  return Status::Ok();
}

// Progress and commits of one leased task, through the port.
class PortReporter final : public TaskReporter {
 public:
  PortReporter(CoordinatorPort& port, ExecutorHooks& hooks, const LeaseGrant& grant, bool signal_drains_run)
      : port_(port), hooks_(hooks), grant_(grant), signal_drains_run_(signal_drains_run) {}

  std::optional<LeaseGrant> CompleteAndContinue(const FinalRecord& held) override {
    const profile::Scope scope(profile::Family::kScheduling);
    if (lost_ || hooks_.DrainRequested()) return std::nullopt;
    Result<LeaseReply> r = port_.CompleteAndContinue(grant_.lease, held);
    if (!r.ok()) {
      if (LeaseGone(r.status())) lost_ = true;
      log::Warn(grant_.task.id + ": continuing with the next segment failed: " + r.status().ToString());
      return std::nullopt;
    }
    if (r->outcome != LeaseOutcome::kGranted || !r->grant) return std::nullopt;
    hooks_.OnComplete(grant_.task, held);
    grant_ = *r->grant;
    hooks_.OnStart(grant_.task);
    return grant_;
  }
  // The task being run now (the last one continued to).
  const LeaseGrant& grant() const { return grant_; }

  bool Heartbeat(const Progress& p) override {
    const profile::Scope scope(profile::Family::kScheduling);
    hooks_.OnProgress(grant_.task, p);
    Result<HeartbeatReply> r = port_.Heartbeat(grant_.lease, p);
    if (!r.ok()) {
      if (LeaseGone(r.status())) {
        lost_ = true;
        log::Warn(grant_.task.id + ": the lease is no longer ours (" + r.status().message() + "): stopping");
      } else {
        log::Warn(grant_.task.id + ": heartbeat failed: " + r.status().ToString());
      }
      return true;
    }
    if (hooks_.DrainRequested()) {
      if (signal_drains_run_ && !drain_sent_) {
        drain_sent_ = true;
        (void)port_.Drain("a stop signal reached worker");
      }
      return true;
    }
    return r->stop;
  }

  Status Commit(const CheckpointRecord& c) override {
    const profile::Scope scope(profile::Family::kScheduling);
    if (lost_) return Status::FailedPrecondition(grant_.task.id + ": the lease is no longer ours");
    Result<CommitReply> r = port_.CommitCheckpoint(grant_.lease, c);
    if (!r.ok() && LeaseGone(r.status())) lost_ = true;
    return r.ok() ? Status::Ok() : r.status();
  }

  bool lost() const { return lost_; }

 private:
  CoordinatorPort& port_;
  ExecutorHooks& hooks_;
  LeaseGrant grant_;
  bool signal_drains_run_;
  bool lost_ = false;
  bool drain_sent_ = false;
};

}  // namespace

void SaveProfile(const ProcessProfile& profile) {
  if (Status st = profile.Save(); !st.ok()) log::Warn("the run profile was not saved: " + st.ToString());
}

Result<TaskResult> ExecutorHooks::RunGang(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  return RunTask(env, grant, reporter);
}

Status ExecutorHooks::FinishGang(const LeaseGrant&, FinalRecord*) { return Status::Ok(); }

Status CarryOutEvictions(CoordinatorPort& port, const std::string& run_dir,
                         const std::vector<SegmentEviction>& evictions) {
  for (const SegmentEviction& e : evictions) {
    for (const FileRecord& f : e.files) {
      const std::string path = JoinPath(run_dir, f.path);
      RADLADS_RETURN_IF_ERROR(RemoveFile(path));
    }
    Status st = port.EvictSegment(e.segment, e.stage);
    // Reported twice (a retried call, another worker): OK. FailedPrecondition means the segment
    // is not evictable (yet); the files are gone either way, and the scheduler decides again.
    if (!st.ok() && st.code() != Status::Code::kFailedPrecondition) return st;
  }
  return Status::Ok();
}

FailureReport ReportFor(const Status& error, bool stop_on_task_error) {
  const ErrorClass cls = ClassifyError(error);
  return FailureReport{std::string(ErrorClassName(cls)) + ": " + error.ToString(),
                       cls == ErrorClass::kTransient || (cls == ErrorClass::kFatal && !stop_on_task_error)};
}

Result<ExecutorExit> RunWorkerLoop(CoordinatorPort& port, TaskEnv& env, const ExecutorOptions& options,
                                   ExecutorHooks& hooks) {
  if (options.identities.empty()) return Status::InvalidArgument("worker loop: no identity to register");
  // The time outside tasks is the profile's "scheduling", up to however the loop ends.
  struct ProfileAtExit {
    ProcessProfile* p;
    ~ProfileAtExit() {
      if (p == nullptr) return;
      p->Charge("scheduling");
      SaveProfile(*p);
    }
  } profile_at_exit{options.profile};
  for (const WorkerIdentity& id : options.identities) RADLADS_RETURN_IF_ERROR(port.RegisterWorker(id.info));
  bool drain_asked = false;
  int consecutive_failures = 0;  // retryable task failures in a row (the backoff doubles)
  for (;;) {
    if (hooks.DrainRequested()) {
      if (!options.signal_drains_run) {
        log::Info(options.identities[0].info.id + ": stop signal: leaving the run");
        return ExecutorExit::kDrained;
      }
      if (!drain_asked) {
        drain_asked = true;
        (void)port.Drain("a stop signal reached worker " + options.identities[0].info.id);
      }
    }
    hooks.BeforeLease();
    bool idle = true;
    bool evicted = false;
    for (std::size_t k = 0; k < options.identities.size() && idle; ++k) {
      const WorkerIdentity& id = options.identities[k];
      Result<LeaseReply> reply = port.Lease(id.info.id, id.caps);
      if (!reply.ok() && (reply.status().code() == Status::Code::kNotFound || LeaseGone(reply.status()))) {
        // Unknown or declared lost (an expired lease, a restarted coordinator): join again.
        log::Info(id.info.id + ": registering again (" + reply.status().message() + ")");
        RADLADS_RETURN_IF_ERROR(port.RegisterWorker(id.info));
        reply = port.Lease(id.info.id, id.caps);
      }
      if (!reply.ok()) return reply.status().WithContext("lease for " + id.info.id);
      RADLADS_RETURN_IF_ERROR(CarryOutEvictions(port, env.layout.dir, reply->evict));
      evicted = evicted || !reply->evict.empty();
      if (reply->outcome == LeaseOutcome::kRunOver) return ExecutorExit::kRunOver;
      if (reply->outcome == LeaseOutcome::kDraining) return ExecutorExit::kDrained;
      if (reply->outcome == LeaseOutcome::kNoWork) continue;
      idle = false;

      // Checkpoint fallback: a resume point that fails its checksum or is gone is reported, and
      // the next lease of the task resumes from the commit before it (or the task's start).
      if (const auto& from = reply->grant->resume_from) {
        if (Status bad = VerifyResumePoint(env.layout.dir, *from);
            bad.code() == Status::Code::kCorruption || bad.code() == Status::Code::kNotFound) {
          const LeaseGrant& g = *reply->grant;
          log::Warn(g.task.id + ": its checkpoint at step " + std::to_string(from->record.step) +
                    " cannot be read (" + bad.message() + "); falling back to the commit before it");
          Status d = port.DiscardCheckpoint(g.lease, from->record.step, bad.message());
          if (d.code() == Status::Code::kCorruption) {  // nothing to fall back to
            (void)port.Fail(g.lease, "bad input: " + d.message(), false);
            if (options.stop_on_task_error) return d.WithContext("task " + g.task.id);
          } else if (!d.ok() && !LeaseGone(d)) {
            return d.WithContext("discarding the checkpoint of " + g.task.id);
          }
          continue;
        }
      }
      hooks.OnStart(reply->grant->task);
      PortReporter reporter(port, hooks, *reply->grant, options.signal_drains_run);
      if (options.profile != nullptr) options.profile->Charge("scheduling");
      Result<TaskResult> result =
          k == 0 ? RunTask(env, *reply->grant, reporter) : hooks.RunGang(env, *reply->grant, reporter);
      if (options.profile != nullptr) {
        options.profile->Charge(TaskTypeName(reply->grant->task.type), 1);
        SaveProfile(*options.profile);
      }
      if (reporter.lost()) continue;  // the coordinator gave the task to someone else
      // The task the runner ended on: the leased one, or the last segment it continued to.
      const LeaseGrant& grant = reporter.grant();
      if (!result.ok()) {
        // Retry what can succeed later (base/status.h ClassifyError): a transient error always;
        // a fatal one only where another worker may try (not in the process that owns the run).
        const auto [reason, retryable] = ReportFor(result.status(), options.stop_on_task_error);
        log::Warn(grant.task.id + " failed (" + reason + ")" + (retryable ? "; it will be retried" : ""));
        (void)port.Fail(grant.lease, reason, retryable);
        if (retryable) {
          ++consecutive_failures;
          const std::int64_t wait = std::min<std::int64_t>(
              options.retry_backoff_max_ms, options.retry_backoff_ms << std::min(consecutive_failures - 1, 16));
          const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
          while (std::chrono::steady_clock::now() < until && !hooks.DrainRequested()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          continue;
        }
        if (options.stop_on_task_error) return result.status().WithContext("task " + grant.task.id);
        continue;
      }
      consecutive_failures = 0;
      if (result->outcome == TaskOutcome::kStopped) {
        (void)port.Release(grant.lease, "drain");
        continue;  // the next lease answers kDraining
      }
      if (k > 0) RADLADS_RETURN_IF_ERROR(hooks.FinishGang(grant, &result->final));
      Result<CommitReply> done = port.Complete(grant.lease, result->final);
      if (!done.ok()) {
        if (LeaseGone(done.status())) continue;
        return done.status().WithContext("completing " + grant.task.id);
      }
      hooks.OnComplete(grant.task, result->final);
    }
    if (!idle || evicted) continue;  // evictions free window slots: ask again at once
    RADLADS_ASSIGN_OR_RETURN(const bool wait, hooks.OnIdle());
    if (wait) std::this_thread::sleep_for(std::chrono::milliseconds(options.idle_poll_ms));
  }
}

}  // namespace radlads
