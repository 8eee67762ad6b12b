#include "cli/run_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <ostream>
#include <thread>
#include <vector>

#include "base/host_info.h"
#include "base/file.h"
#include "base/log.h"
#include "contract/run_layout.h"
#include "rpc/client.h"
#include "rpc/secret.h"
#include "rpc/server.h"
#include "cli/served_run.h"

namespace radlads {
namespace {

std::string DefaultWorkerBinary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "radlads-worker";
  return (self.parent_path() / "radlads-worker").string();
}

// Starts `argv` in a process group of its own with stdout and stderr to `log_path`.
Result<pid_t> Launch(const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t pid = ::fork();
  if (pid < 0) return Status::IOError("fork: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::setpgid(0, 0);
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    ::setenv("OMP_WAIT_POLICY", "passive", 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::_Exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so it holds before any signal is sent
  return pid;
}

// RUN/logs/worker-job.pid: "<host> <process group>" of the worker job this coordinator started.
std::string JobPidFile(const std::string& logs) { return JoinPath(logs, "worker-job.pid"); }

// A worker job left behind by a coordinator of this run that died (SIGKILL, a crash): its ranks
// would register under the same ids as the new job's ranks and end each other's leases. This
// coordinator holds the run's state store, so that job has no coordinator of its own any more:
// it is ended (SIGTERM, then SIGKILL after 3 s). Only a job on this host whose leader's command
// line names the run directory is touched (a recycled pid is left alone).
void EndOrphanedWorkerJob(const std::string& logs, const std::string& run_dir) {
  Result<std::string> text = ReadFileToString(JobPidFile(logs));
  if (!text.ok()) return;
  const std::size_t sp = text->find(' ');
  if (sp == std::string::npos || text->substr(0, sp) != HostName()) return;
  const pid_t pgid = static_cast<pid_t>(std::atoll(text->c_str() + sp + 1));
  if (pgid <= 1 || ::kill(-pgid, 0) != 0) return;
  Result<std::string> cmdline = ReadFileToString("/proc/" + std::to_string(pgid) + "/cmdline");
  if (!cmdline.ok() || cmdline->find(run_dir) == std::string::npos) return;
  log::Warn("run: ending the worker job of a previous coordinator of this run (process group " +
            std::to_string(pgid) + "), so that its ranks do not compete with the new job's");
  ::kill(-pgid, SIGTERM);
  for (int i = 0; i < 30 && ::kill(-pgid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (::kill(-pgid, 0) == 0) ::kill(-pgid, SIGKILL);
}

// Feeds the display from the durable state: starts, progress and completions as they appear.
class StateFeed {
 public:
  StateFeed(const Plan& plan, RunDisplay& display) : plan_(plan), display_(display) {}
  void Poll(const RunState& s) {
    for (const TaskSpec& spec : plan_.tasks) {
      const TaskRecord* t = s.FindTask(spec.id);
      if (t == nullptr) continue;
      Seen& seen = seen_[spec.id];
      if (!seen.started && (t->state == TaskState::kLeased || t->state == TaskState::kDone) && t->attempt > 0) {
        seen.started = true;
        display_.OnStart(spec);
      }
      if (t->state == TaskState::kLeased && t->progress_at_ms != seen.progress_at) {
        seen.progress_at = t->progress_at_ms;
        display_.OnProgress(spec, t->progress);
      }
      if (t->state == TaskState::kDone && !seen.done) {
        seen.done = true;
        if (!seen.started) {
          seen.started = true;
          display_.OnStart(spec);
        }
        FinalRecord f;
        f.metrics = t->final_metrics;
        display_.OnComplete(spec, f);
      }
    }
  }

 private:
  struct Seen {
    bool started = false, done = false;
    TimeMs progress_at = 0;
  };
  const Plan& plan_;
  RunDisplay& display_;
  std::map<std::string, Seen> seen_;
};

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

Result<std::vector<std::string>> WorkerJobCommand(const WorkerJobOptions& options, const std::string& worker,
                                                  const std::string& run_dir) {
  const int n = std::max(1, options.workers);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.launcher == "mpirun") {
    const int threads = options.threads_per_rank > 0 ? options.threads_per_rank : std::max(1, cores / n);
    return std::vector<std::string>{options.mpirun, "-np", std::to_string(n), "--oversubscribe", "--bind-to", "none",
                                    worker, run_dir, "--threads", std::to_string(threads)};
  }
  if (options.launcher == "srun") {
    const int per_node = options.workers_per_node > 0 ? options.workers_per_node : n;
    int threads = options.threads_per_rank;
    if (threads <= 0) {
      const char* cpt = std::getenv("SLURM_CPUS_PER_TASK");
      threads = cpt != nullptr ? std::atoi(cpt) : 0;
    }
    if (threads <= 0) threads = std::max(1, cores / per_node);
    return std::vector<std::string>{"srun", "--mpi=pmix", "--kill-on-bad-exit=1", "--ntasks", std::to_string(n),
                                    "--ntasks-per-node", std::to_string(per_node), worker, run_dir, "--threads",
                                    std::to_string(threads)};
  }
  return Status::InvalidArgument("--launcher '" + options.launcher + "': expected mpirun or srun");
}

int RunWithWorkerJob(RunSetup& run, const std::string& run_dir, StateStore& store, Scheduler& sched,
                     RunDisplay& display, const WorkerJobOptions& options, const std::atomic<int>& stop,
                     std::ostream& err) {
  auto fail = [&](const Status& st) {
    err << "error: " << st.message() << "\n";
    return ExitCodeFor(st);
  };
  const std::string worker = options.worker_binary.empty() ? DefaultWorkerBinary() : options.worker_binary;
  Result<std::vector<std::string>> command = WorkerJobCommand(options, worker, run_dir);
  if (!command.ok()) return fail(command.status());
  const std::vector<std::string>& argv = *command;
  ServerOptions so;
  so.listen = options.listen;
  so.expiry_period_ms = 500;
  so.exit_after_run_over_ms = 10'000;  // long enough for every worker to hear the run is over
  so.handle_signals = true;            // SIGTERM/SIGUSR1 drain
  Result<std::unique_ptr<ServedRun>> served = ServedRun::Start(run_dir, sched, so);
  if (!served.ok()) return fail(served.status());
  Server& server = (*served)->server();

  const RunLayout layout{run_dir};
  const std::string logs = layout.Abs("logs");
  (void)CreateDirectories(logs);
  const int n = std::max(1, options.workers);
  StateFeed feed(run.plan(), display);
  int restarts = 0;
  std::string last_exit;
  std::string last_log;
  int code = kExitFailure;
  pid_t job = -1;
  if (options.launcher == "mpirun") EndOrphanedWorkerJob(logs, run_dir);
  auto start_job = [&]() -> Status {
    last_log = JoinPath(logs, "worker-job-" + std::to_string(restarts) + ".log");
    RADLADS_ASSIGN_OR_RETURN(job, Launch(argv, last_log));
    if (options.launcher == "mpirun") {
      (void)AtomicWriteFile(JobPidFile(logs), HostName() + " " + std::to_string(job) + "\n");
    }
    log::Info("run: started " + std::to_string(n) + " worker ranks (" + argv.front() + ", " + argv.back() +
              " threads each); their log: " + last_log);
    return Status::Ok();
  };
  if (Status s = start_job(); !s.ok()) {
    (void)(*served)->Stop(kExitFailure);
    return fail(s);
  }
  bool gave_up = false;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    feed.Poll(store.Snapshot());
    if (stop.load() != 0) server.RequestDrain("signal " + std::to_string(stop.load()));
    if (job > 0) {
      int status = 0;
      if (::waitpid(job, &status, WNOHANG) == job) {
        job = -1;
        last_exit = DescribeExit(status);
        const RunPhase phase = store.Snapshot().phase();
        const bool run_has_work = phase == RunPhase::kRunning;
        if ((phase == RunPhase::kCompleted || phase == RunPhase::kFailed) && !(*served)->done()) {
          // Every worker heard that the run is over and left: no need to keep answering.
          server.Shutdown(phase == RunPhase::kCompleted ? 0 : kExitFailure);
        } else if (run_has_work && !(*served)->done()) {
          if (restarts >= options.max_restarts) {
            gave_up = true;
            server.Shutdown(kExitFailure);
          } else {
            ++restarts;
            log::Warn("run: the worker job ended (" + last_exit + ", log " + last_log +
                      ") while the run has work; starting it again (" + std::to_string(restarts) + " of " +
                      std::to_string(options.max_restarts) + ")");
            if (Status s = start_job(); !s.ok()) {
              gave_up = true;
              server.Shutdown(kExitFailure);
            }
          }
        }
      }
    }
    if ((*served)->done()) {
      // The workers learn that the run is over (or draining) from their next lease; give them
      // a moment to exit, then end the job.
      for (int i = 0; job > 0 && i < 150; ++i) {
        int status = 0;
        if (::waitpid(job, &status, WNOHANG) == job) {
          job = -1;
          last_exit = DescribeExit(status);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (job > 0) {
        ::kill(-job, SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(2));
        ::kill(-job, SIGKILL);
        int status = 0;
        ::waitpid(job, &status, 0);
        job = -1;
      }
      break;
    }
  }
  code = (*served)->Stop(kExitFailure);
  feed.Poll(store.Snapshot());
  if (gave_up) {
    err << "error: the worker job ended " << (options.max_restarts + 1) << " times while the run had work (last: "
        << last_exit << "; its log: " << last_log << "); the state is durable: run the same command again "
        << "to resume\n";
    return kExitFailure;
  }
  return code;
}

}  // namespace radlads
