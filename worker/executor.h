// The worker's loop: register, lease, run the task, report progress, commit checkpoints,
// complete or fail, delete the cache segments the coordinator says to evict; until the run is
// over or drained. Written once against the coordinator port (contract/coordinator_port.h):
// `radlads-coord run` drives it in process with the Scheduler, every radlads-worker rank with
// the rpc Client.
//
// Contract:
// - The worker registers with `identities[0]`; gang leaders register a second identity (group
//   size > 1) for gang tasks, tried after the single one finds nothing (ExecutorOptions).
// - A lease reply's evictions are carried out before anything else: the files are deleted
//   (already gone is fine) and each segment reported with EvictSegment.
// - A heartbeat or commit answered FailedPrecondition (the lease expired, the coordinator
//   restarted and ended it) means the task is no longer ours: the loop drops it and asks again;
//   a lease answered "unknown" or "lost" worker re-registers first.
// - A task that fails is reported with Fail(retryable), its error's class first in the reason
//   (base/status.h ClassifyError): transient errors are retryable (the scheduler's retry limit
//   decides; this loop waits retry_backoff_ms, doubled for each failure in a row up to
//   retry_backoff_max_ms, before it leases again); bad input never is; a fatal error is
//   retryable only without ExecutorOptions::stop_on_task_error (another worker may succeed).
//   With stop_on_task_error a non-retryable failure ends the loop with the task's error.
// - A drain (DrainRequested hook, or a heartbeat answer saying stop) makes the running task
//   checkpoint at its next step boundary and Release. A heartbeat's stop: the loop ends when
//   the coordinator says the run is draining. A local stop signal (DrainRequested) with
//   ExecutorOptions::signal_drains_run (the in-process worker of `run`: the process's signal
//   is the run's) asks the coordinator to drain the whole run; without it (a worker process)
//   only this worker stops: it releases its task and the loop ends (kDrained) while the run
//   goes on with the other workers.
// Thread-safety: one loop per thread; the hooks run on it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "contract/coordinator_port.h"
#include "worker/run_profile.h"
#include "worker/task_env.h"

namespace radlads {

struct WorkerIdentity {
  WorkerInfo info;
  Capabilities caps;
};

struct ExecutorOptions {
  std::vector<WorkerIdentity> identities;  // [0]: the single worker; [1]: a gang leader (optional)
  std::int64_t idle_poll_ms = 200;         // after "no work": wait this long before asking again
  bool stop_on_task_error = false;         // true: a non-retryable failure ends the loop (see above)
  std::int64_t retry_backoff_ms = 500;     // wait after a retryable failure, doubled per failure in a row
  std::int64_t retry_backoff_max_ms = 30'000;
  bool signal_drains_run = true;           // see the header comment
  // Where the loop's time goes (worker/run_profile.h): "scheduling" outside tasks, each task's
  // time to its type; saved after each task and when the loop ends. Null: not profiled.
  ProcessProfile* profile = nullptr;
};

enum class ExecutorExit {
  kRunOver,  // the run completed or failed
  kDrained,  // the run is draining: this worker stopped
};

class ExecutorHooks {
 public:
  virtual ~ExecutorHooks() = default;
  // Before each lease request (the in-process run expires leases here).
  virtual void BeforeLease() {}
  // A stop signal arrived (see ExecutorOptions::signal_drains_run).
  virtual bool DrainRequested() { return false; }
  virtual void OnStart(const TaskSpec&) {}
  virtual void OnProgress(const TaskSpec&, const Progress&) {}
  virtual void OnComplete(const TaskSpec&, const FinalRecord&) {}
  // No identity found work. Return an error to end the loop with it; true to wait
  // idle_poll_ms and ask again; false to ask again at once (something was done meanwhile,
  // e.g. a gang member joined its leader's task).
  virtual Result<bool> OnIdle() { return true; }
  // Runs a leased task of a gang identity (identities[1]); default: RunTask.
  virtual Result<TaskResult> RunGang(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
  // Before the final record of a completed gang task is sent (the leader adds its members'
  // shard files); default: unchanged.
  virtual Status FinishGang(const LeaseGrant& grant, FinalRecord* final_record);
};

// How a task's error is reported (Fail): its class first in the reason (base/status.h
// ClassifyError) and whether it may be retried (transient always; fatal unless
// stop_on_task_error; bad input never). Shared with the gang ranks (worker/worker_job.h), which
// report before they end their job.
struct FailureReport {
  std::string reason;
  bool retryable = false;
};
FailureReport ReportFor(const Status& error, bool stop_on_task_error);

Result<ExecutorExit> RunWorkerLoop(CoordinatorPort& port, TaskEnv& env, const ExecutorOptions& options,
                                   ExecutorHooks& hooks);

// Deletes a lease reply's evicted segments' files under RUN/ (missing files are fine) and
// reports each segment. IOError naming the file when one cannot be deleted.
// ProcessProfile::Save; a failure is logged as a warning (a profile never fails a run).
void SaveProfile(const ProcessProfile& profile);

Status CarryOutEvictions(CoordinatorPort& port, const std::string& run_dir,
                         const std::vector<SegmentEviction>& evictions);

}  // namespace radlads
