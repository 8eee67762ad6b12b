// Task runners: what a worker does with a leased task (docs/design.md §3, §5). One function per task
// type, all behind RunTask. They read their inputs from RUN/ (the grant says which committed
// files), report progress at step boundaries, commit checkpoints, and return a final record;
// the caller (the local `run` executor or a remote worker) turns those into scheduler calls.
//
// Contract:
// - Runners are deterministic for a plan, seed and thread count, and resumable: given the
//   grant's resume_from (the task's last committed checkpoint) they continue from that
//   checkpoint's optimizer step and sample cursor and produce the same result as an
//   uninterrupted run.
// - Every file a runner commits is complete and durable before the commit (atomic writes), and
//   its record carries the file's checksum; readers verify the checksums of their inputs.
// - When TaskReporter::Heartbeat returns true (drain), the runner commits a checkpoint at the
//   step boundary and returns TaskOutcome::kStopped.
// Thread-safety: one task at a time per TaskEnv.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/anon_memory.h"
#include "base/status.h"
#include "configs/run_settings.h"
#include "contract/records.h"
#include "contract/run_layout.h"
#include "pipeline/model_io.h"
#include "pipeline/optimizer.h"
#include "plan/plan.h"
#include "storage/student_config.h"
#include "storage/token_dataset.h"

namespace radlads {

class TaskReporter {
 public:
  virtual ~TaskReporter() = default;
  // Progress at a step boundary. Returns true when the worker must stop (drain): checkpoint,
  // then return kStopped.
  virtual bool Heartbeat(const Progress& progress) = 0;
  // Commits a checkpoint (durable once this returns OK).
  virtual Status Commit(const CheckpointRecord& checkpoint) = 0;
  // Layer affinity (contract/coordinator_port.h CompleteAndContinue): completes the current
  // align task with its state kept in memory and returns the lease of the layer's next segment,
  // which becomes the reporter's task; nullopt when it cannot continue (then complete durably).
  virtual std::optional<LeaseGrant> CompleteAndContinue(const FinalRecord&) { return std::nullopt; }
};

struct GangContext;  // worker/gang.h

// Where the training tasks (align, distill, finetune) run: worker/device_training.h.
enum class TrainDevice { kCpu, kCuda };

struct TaskEnv {
  const Plan* plan = nullptr;
  const RunSettings* settings = nullptr;
  RunLayout layout;
  Qwen2Teacher* teacher = nullptr;  // loaded once per worker
  std::string teacher_dir;
  const TokenDataset* train = nullptr;
  const TokenDataset* heldout = nullptr;
  StudentConfig student;
  DType cache_dtype = DType::kF32;
  std::int64_t checkpoint_every_steps = 0;  // 0: not by steps
  double checkpoint_every_seconds = 600;    // 0: not by time
  std::int64_t run_started_unix_ms = 0;     // when the run was created (seconds.total)
  // The ranks running a gang task together (worker/gang.h); null: this process alone.
  GangContext* gang = nullptr;
  // Samples this process's anonymous memory while a task runs (RunTask sets it).
  const AnonPeakSampler* memory = nullptr;
  // The training device (`radlads-coord run --device`; radlads-worker ranks: cpu).
  TrainDevice device = TrainDevice::kCpu;
};

OptimizerSettings OptimizerSettingsFor(const RecipeOptimizer& o);

enum class TaskOutcome { kCompleted, kStopped };

struct TaskResult {
  TaskOutcome outcome = TaskOutcome::kCompleted;
  FinalRecord final;  // kCompleted only
};

Result<TaskResult> RunTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);

// The runners (task_*.cpp).
Result<TaskResult> RunTransferTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
Result<TaskResult> RunCacheTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
Result<TaskResult> RunAlignTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
Result<TaskResult> RunGangTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
Result<TaskResult> RunExportTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);
Result<TaskResult> RunEvalTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter);

// This process's peak resident set since the current task started, MiB (RunTask resets it);
// it includes mapped file pages (the teacher's weights).
double PeakRssMib();
// This process's peak resident anonymous memory since the current task started, MiB
// (base/anon_memory.h; 0 outside RunTask). RunTask reports it as the metric "peak_anon_mib",
// gang tasks the maximum over their ranks; the plan's memory estimate is for this figure.
double PeakAnonMib(const TaskEnv& env);

// The committed final record of dependency `dep_id` in the grant; NotFound naming the task.
Result<const CommittedCheckpoint*> DependencyRecord(const LeaseGrant& grant, const std::string& dep_id);

// Decides when a long task commits a checkpoint: every N optimizer steps and/or every T seconds.
class CheckpointClock {
 public:
  CheckpointClock(std::int64_t every_steps, double every_seconds)
      : every_steps_(every_steps), every_seconds_(every_seconds), last_(std::chrono::steady_clock::now()) {}
  bool Due(std::int64_t steps_since_start) const;
  void Reset() { last_ = std::chrono::steady_clock::now(); }

 private:
  std::int64_t every_steps_;
  double every_seconds_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace radlads
