#include "cli/run_command.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

#include "base/file.h"
#include "base/gzip.h"
#include "base/host_info.h"
#include "base/log.h"
#include "base/progress.h"
#include "cli/checkpoint_janitor.h"
#include "cli/plan_command.h"
#include "cli/run_directory.h"
#include "cli/run_display.h"
#include "cli/run_setup.h"
#include "cli/run_workers.h"
#include "cli/served_run.h"
#include "cli/slurm_job.h"
#include "configs/run_settings.h"
#include "kernels/cpu/parallel.h"
#include "plan/gpu_memory.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "storage/binidx.h"
#include "storage/byte_tokenizer.h"
#include "worker/device_training.h"
#include "worker/eval_report.h"
#include "worker/executor.h"
#include "worker/task_env.h"

namespace radlads {
namespace {

std::atomic<int> g_stop_signal{0};

void OnSignal(int sig) { g_stop_signal.store(sig); }

// The in-process worker's duties beside running tasks: expiring leases (no server does it
// here), turning a signal into a drain, and showing progress.
class InProcessHooks final : public ExecutorHooks {
 public:
  InProcessHooks(Scheduler& sched, RunDisplay& display, std::string state_dir)
      : sched_(sched), display_(display), state_dir_(std::move(state_dir)) {}
  void BeforeLease() override { (void)sched_.ExpireLeases(); }
  bool DrainRequested() override { return g_stop_signal.load() != 0; }
  void OnStart(const TaskSpec& t) override { display_.OnStart(t); }
  void OnProgress(const TaskSpec& t, const Progress& p) override { display_.OnProgress(t, p); }
  void OnComplete(const TaskSpec& t, const FinalRecord& f) override { display_.OnComplete(t, f); }
  // The only worker found nothing to do and holds nothing: the plan cannot finish.
  Result<bool> OnIdle() override {
    return Status::Internal("no task is ready and none is running (state " + state_dir_ + ")");
  }

 private:
  Scheduler& sched_;
  RunDisplay& display_;
  std::string state_dir_;
};

// The run's phase profile: this invocation's share saved, every process's file of every
// invocation merged into RUN/output/profile.json. Returns the summary's lines (none when the
// profile cannot be written: it is a report, and the run has succeeded).
std::vector<std::string> WriteRunProfile(const ProcessProfile& mine, const RunLayout& layout, std::ostream& err) {
  SaveProfile(mine);
  Result<RunProfile> merged = MergeRunProfiles(layout.dir);
  if (!merged.ok()) {
    err << "warning: no profile: " << merged.status().message() << "\n";
    return {};
  }
  for (const std::string& why : merged->skipped) err << "warning: profile file skipped: " << why << "\n";
  if (Status st = AtomicWriteFile(layout.Abs(RunLayout::ProfileFile()), RunProfileJson(*merged)); !st.ok()) {
    err << "warning: " << st.message() << "\n";
    return {};
  }
  return RunProfileTopLines(*merged, 4);
}

// The end of a completed run: the summary table, printed and kept in RUN/output/summary.txt.
int Summarize(const RunSetup& run, const RunLayout& layout, const RunDisplay& display, ProcessProfile& profile,
              const std::string& command_line, std::ostream& out, std::ostream& err) {
  auto text = ReadFileToString(layout.Abs(RunLayout::EvalFile()));
  Result<EvalReport> report = text.ok() ? ParseEvalReport(*text, layout.Abs(RunLayout::EvalFile()))
                                        : Result<EvalReport>(text.status());
  if (!report.ok()) {
    err << "error: " << report.status().message() << "\n";
    return ExitCodeFor(report.status());
  }
  profile.Charge("scheduling");
  const std::string summary =
      display.Summary(*report, run.settings, layout, command_line, WriteRunProfile(profile, layout, err));
  out << summary << std::flush;
  (void)AtomicWriteFile(layout.Abs(RunLayout::SummaryFile()), summary);
  return kExitOk;
}

constexpr const char* kResumeAfterFix =
    "the run's state is durable: fix the cause, then run the same command again; the failed tasks resume "
    "from their last commits and nothing committed is redone. Run directory: ";

// A run that failed for good (a task past its retries, or a non-retryable error): exit 1.
int RunFailedExit(const std::string& reason, const RunLayout& layout, std::ostream& err) {
  err << "error: run failed: " << reason << "\n" << kResumeAfterFix << layout.dir << "\n";
  return kExitFailure;
}

// A drained (exit 3) or cancelled (exit 4) run: what happened and how to go on.
int Stopped(int code, const RunLayout& layout, const RunState& s, std::ostream& err) {
  if (code == kExitCancelled) {
    err << "cancelled (" << s.status().cancelled << "): every committed task and checkpoint is durable in "
        << layout.dir << "; run the same command again to resume\n";
  } else {
    err << "drained: every committed task and checkpoint is durable in " << layout.dir
        << "; run the same command again to resume\n";
  }
  return code;
}

// --device, checked against the device the run started with (RUN/device; absent: cpu, or a new
// run). An explicit other device is refused: the CPU and CUDA trainers agree to bf16 tolerance,
// not bit for bit, so a run that switched would be neither's result.
Result<TrainDevice> ResolveDevice(const std::string& flag, const RunLayout& layout) {
  std::optional<TrainDevice> recorded;
  const std::string path = layout.Abs(RunLayout::DeviceFile());
  if (PathExists(path)) {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    Result<TrainDevice> d = ParseTrainDevice(text);
    if (!d.ok()) return Status::Corruption(path + ": \"" + text + "\" is not a device (cpu or cuda)");
    recorded = *d;
  } else if (PathExists(layout.Abs(RunLayout::StateDir()))) {
    recorded = TrainDevice::kCpu;  // a run started before RUN/device existed ran on the CPU
  }
  if (flag.empty()) return recorded.value_or(TrainDevice::kCpu);
  RADLADS_ASSIGN_OR_RETURN(TrainDevice d, ParseTrainDevice(flag));
  if (recorded && *recorded != d) {
    return Status::InvalidArgument(layout.dir + " was started with --device " + TrainDeviceName(*recorded) +
                                   "; resume it with --device " + TrainDeviceName(*recorded) +
                                   " (or without --device): a run does not switch devices, whose trainers agree "
                                   "only to bf16 tolerance; use a new run directory for --device " +
                                   TrainDeviceName(d));
  }
  return d;
}

Status RecordDevice(TrainDevice d, const RunLayout& layout) {
  const std::string path = layout.Abs(RunLayout::DeviceFile());
  const std::string text = std::string(TrainDeviceName(d)) + "\n";
  if (auto old = ReadFileToString(path); old.ok() && *old == text) return Status::Ok();
  return AtomicWriteFile(path, text);
}

std::string MibText(double bytes) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.0f MiB", bytes / (1024.0 * 1024.0));
  return b;
}

}  // namespace

int RunRunCommand(const RunCommandArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  auto fail = [&](const Status& st) {
    err << "error: " << st.message() << "\n";
    return ExitCodeFor(st);
  };
  // Catch the drain signals from the start: a signal during setup stops before the first task.
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGUSR1, OnSignal);
  {  // radlads-coord's main() holds them pending until now
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
  // This process's share of RUN/output/profile.json (worker/run_profile.h), from the start.
  const RunLayout layout{args.run_dir};
  ProcessProfile profile("run", "local", layout.Abs(ProcessProfile::FileName("run", "local")));
  // ---- The training device: --device, else the one the run started with (RUN/device). ----
  Result<TrainDevice> device = ResolveDevice(args.device, layout);
  if (!device.ok()) return fail(device.status());
  if (const std::string why = TrainDeviceUnavailableReason(*device); !why.empty()) {
    return fail(Status::InvalidArgument("--device " + std::string(TrainDeviceName(*device)) + " refused: " + why +
                                        " (nothing was written; run with --device cpu, or on a machine with a GPU)"));
  }
  // A cuda run is one process on one GPU: no worker ranks, no gang (checked before anything is written).
  auto check_plan = [&](const Plan& p) -> Status {
    if (*device == TrainDevice::kCpu) return Status::Ok();
    const std::int64_t n = args.workers > 0 ? args.workers : std::max<std::int64_t>(1, p.cluster.WorkerCount());
    if (n > 1) {
      return Status::InvalidArgument("--device cuda runs every task in this process on one GPU, but this run has " +
                                     std::to_string(n) + " workers (--workers, or the cluster's worker count): "
                                     "give --workers 1 or a one-worker cluster (--cluster local-process)");
    }
    return CheckPlanForDevice(p, *device);
  };
  // ---- Validate every input, plan, and write the run directory (cli/run_setup.h). ----
  Result<std::unique_ptr<RunSetup>> setup =
      PrepareRunAsCoordinator(args.config, args.run_dir, args.host_memory_gib, args.cluster, check_plan);
  if (!setup.ok()) return fail(setup.status());
  RunSetup& run = **setup;
  for (const std::string& n : run.planned.notes) err << "note: " << n << "\n";
  const Plan* plan = &run.plan();
  if (Status st = RecordDevice(*device, layout); !st.ok()) return fail(st);
  if (*device == TrainDevice::kCuda) {
    std::string est;
    for (const MemoryBreakdown& m : OneGpuPlanMemory(*plan)) {
      est += std::string(est.empty() ? "" : ", ") + m.what + " " + MibText(m.total_bytes);
    }
    err << "note: --device cuda: steps 1-3 train on " << TrainDeviceDescription(*device)
        << "; transfer, the step-1 cache, export and eval run on the CPU. Estimated device memory: " << est << "\n";
  }

  // ---- Durable state and the scheduler. ----
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(layout.Abs(RunLayout::StateDir()));
  if (!store.ok()) return fail(store.status());
  SystemClock clock;
  Scheduler sched(store->get(), &clock);
  // One process, or a job of worker ranks: --workers, else the cluster's worker count.
  const int workers = args.workers > 0 ? args.workers : static_cast<int>(std::max<std::int64_t>(1, plan->cluster.WorkerCount()));
  int gang = 1;
  for (const TaskSpec& t : plan->tasks) gang = std::max(gang, t.workers);
  if (gang > workers) {
    return fail(Status::InvalidArgument(
        "the plan's distill/finetune gang is tp " + std::to_string(plan->layout.tp) + " x pp " +
        std::to_string(plan->layout.pp) + " x dp " + std::to_string(plan->layout.dp) + " = " + std::to_string(gang) +
        " workers, but this run has " + std::to_string(workers) + " (--workers, or the cluster's cpu_workers x nodes)"));
  }
  RunConfig rc;
  rc.run_id = BaseName(layout.dir);
  rc.lease_ttl_ms = args.lease_ttl_ms > 0 ? args.lease_ttl_ms : (workers > 1 ? 60'000 : 30 * 60 * 1000);
  rc.cache_window = static_cast<int>(plan->cache.window);
  // An existing run resumes first (its old leases end), so that a new layout may resize its gangs.
  // Inside a Slurm job the start is recorded, and refused for a cancelled job's requeue or a
  // job that keeps restarting without progress (cli/slurm_job.h), before anything resumes.
  const int no_progress_limit = plan->cluster.slurm ? static_cast<int>(plan->cluster.slurm->max_restarts_without_progress)
                                                    : ClusterSlurm{}.max_restarts_without_progress;
  const bool existing = (*store)->Snapshot().phase() != RunPhase::kEmpty;
  if (existing) {
    if (int code = BeginSlurmJobStart(sched, no_progress_limit, err); code >= 0) return code;
    if (Status r = sched.Resume("radlads-coord run"); !r.ok()) return fail(r);
  }
  if (Status c = sched.CreateRun(rc, plan->tasks); !c.ok()) return fail(c);
  if (!existing) {
    if (int code = BeginSlurmJobStart(sched, no_progress_limit, err); code >= 0) return code;
    if (Status r = sched.Resume("radlads-coord run"); !r.ok()) return fail(r);
  }
  WorkerIdentity local;
  local.info.id = "local";
  local.info.pid = ::getpid();
  local.info.host = HostName();
  local.info.device = *device == TrainDevice::kCuda ? "cuda:0" : "cpu";
  local.info.memory_bytes = static_cast<std::int64_t>(plan->worker.capacity_bytes);

  TaskEnv env = run.Env(layout.dir);
  env.device = *device;

  // Old checkpoints are deleted as newer commits become durable (bounded disk).
  CheckpointJanitor janitor(store->get(), layout.dir, static_cast<int>(plan->cluster.checkpoint.keep_last));
  // The progress bar counts the held-out tokens the eval task will evaluate (eval.max_tokens).
  Result<std::int64_t> eval_windows =
      EvalWindows(run.heldout->size(), EvalSeqLen(run.settings.eval, *plan), run.settings.eval.max_tokens);
  if (!eval_windows.ok()) return fail(eval_windows.status());
  const auto eval_tokens = static_cast<std::uint64_t>(*eval_windows * EvalSeqLen(run.settings.eval, *plan));
  RunDisplay display(*plan, (*store)->Snapshot(), eval_tokens, args.out);
  log::Info("run " + layout.dir + ": " + std::to_string(plan->tasks.size()) + " tasks, " +
            std::string(StudentArchName(run.student.arch)) + " student, " + std::to_string(cpu::NumThreads()) + " threads");
  if (workers > 1) {
    WorkerJobOptions wo;
    wo.launcher = args.launcher;
    wo.workers = workers;
    wo.workers_per_node = args.workers_per_node > 0 ? args.workers_per_node
                                                    : static_cast<int>(std::max<std::int64_t>(1, plan->cluster.WorkersPerNode()));
    wo.max_restarts = args.max_worker_restarts;
    wo.listen = args.listen;
    profile.Charge("setup");
    const int code = RunWithWorkerJob(run, layout.dir, **store, sched, display, wo, g_stop_signal, err);
    profile.Charge("scheduling");  // the coordinator's share: serving the worker job
    SaveProfile(profile);
    janitor.Stop();
    display.Finish();
    if (code == kExitRequeue || code == kExitCancelled) return Stopped(code, layout, (*store)->Snapshot(), err);
    if ((*store)->Snapshot().phase() == RunPhase::kFailed) {
      return RunFailedExit((*store)->Snapshot().status().reason, layout, err);
    }
    if (code != kExitOk) return code;  // the job gave up (said why) or the store failed
    return Summarize(run, layout, display, profile, args.command_line, out, err);
  }
  // The run is served while it runs in this process too, for `status`, `drain` and `cancel`.
  ServerOptions so;
  so.listen = args.listen;
  so.handle_signals = false;          // this command's own handlers turn signals into a drain
  so.exit_after_run_over_ms = -1;     // it stops with the run
  Result<std::unique_ptr<ServedRun>> served = ServedRun::Start(layout.dir, sched, so);
  if (!served.ok()) return fail(served.status());
  InProcessHooks hooks(sched, display, layout.Abs(RunLayout::StateDir()));
  ExecutorOptions eo;
  eo.identities = {local};
  eo.stop_on_task_error = true;
  eo.profile = &profile;
  profile.Charge("setup");
  Result<ExecutorExit> exit = RunWorkerLoop(sched, env, eo, hooks);
  (void)(*served)->Stop(kExitOk);
  janitor.Stop();
  if (!exit.ok()) {
    display.Finish();
    const int code = fail(exit.status());
    if ((*store)->Snapshot().phase() == RunPhase::kFailed) err << kResumeAfterFix << layout.dir << "\n";
    return code;
  }
  if (*exit == ExecutorExit::kDrained) {
    display.Finish();
    const RunState s = (*store)->Snapshot();
    return Stopped(s.status().cancelled.empty() ? kExitRequeue : kExitCancelled, layout, s, err);
  }
  display.Finish();
  const RunState final_state = (*store)->Snapshot();
  if (final_state.status().phase == RunPhase::kFailed) return RunFailedExit(final_state.status().reason, layout, err);
  return Summarize(run, layout, display, profile, args.command_line, out, err);
}

}  // namespace radlads
