#include "worker/task_env.h"

#include "base/host_info.h"
#include "worker/device_training.h"

namespace radlads {

namespace {

Result<TaskResult> Dispatch(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  switch (grant.task.type) {
    case TaskType::kTransfer: return RunTransferTask(env, grant, reporter);
    case TaskType::kCache: return RunCacheTask(env, grant, reporter);
    case TaskType::kAlign: return RunAlignTask(env, grant, reporter);
    case TaskType::kDistill:
    case TaskType::kFinetune: return RunGangTask(env, grant, reporter);
    case TaskType::kExport: return RunExportTask(env, grant, reporter);
    case TaskType::kEval: return RunEvalTask(env, grant, reporter);
  }
  return Status::Internal("unknown task type");
}

}  // namespace

double PeakRssMib() { return static_cast<double>(PeakRssBytes().value_or(0)) / (1024.0 * 1024.0); }

double PeakAnonMib(const TaskEnv& env) { return env.memory != nullptr ? env.memory->PeakMib() : 0.0; }

Result<TaskResult> RunTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  ResetPeakRss();
  AnonPeakSampler memory;
  env.memory = &memory;
  BeginDeviceTask(env, grant.task.type);
  Result<TaskResult> r = Dispatch(env, grant, reporter);
  memory.Stop();
  env.memory = nullptr;
  if (r.ok() && r->outcome == TaskOutcome::kCompleted) EndDeviceTask(env, grant.task.type, r->final);
  // The process's peak while it ran this task (gang tasks report the maximum over their ranks).
  const bool gang = grant.task.type == TaskType::kDistill || grant.task.type == TaskType::kFinetune;
  if (r.ok() && r->outcome == TaskOutcome::kCompleted && !gang) {
    r->final.metrics.push_back({"peak_rss_mib", PeakRssMib()});
    r->final.metrics.push_back({"peak_anon_mib", memory.PeakMib()});
  }
  return r;
}

Result<const CommittedCheckpoint*> DependencyRecord(const LeaseGrant& grant, const std::string& dep_id) {
  for (std::size_t i = 0; i < grant.task.deps.size() && i < grant.inputs.size(); ++i) {
    if (grant.task.deps[i] == dep_id) return &grant.inputs[i];
  }
  return Status::NotFound(grant.task.id + ": no committed record of its dependency " + dep_id);
}

bool CheckpointClock::Due(std::int64_t steps_since_start) const {
  if (every_steps_ > 0 && steps_since_start > 0 && steps_since_start % every_steps_ == 0) return true;
  if (every_seconds_ > 0) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_).count();
    if (s >= every_seconds_) return true;
  }
  return false;
}

}  // namespace radlads
