// `radlads-coord run CONFIG --run RUN/ --workers N` (or a cluster layout of more than one
// worker): this process is the coordinator (the scheduler, the durable state and the
// authenticated server of cli/serve_command.h), and it starts the workers itself, with one of
// two launchers (WorkerJobCommand), in a process group of its own (a Ctrl-C reaches the
// coordinator only: it drains, and the workers stop at their next step boundary when their
// heartbeats say so):
//   mpirun: mpirun -np N --oversubscribe --bind-to none radlads-worker RUN --threads T
//           (this machine; T = its cores / N, at least 1)
//   srun:   srun --mpi=pmix --kill-on-bad-exit=1 --ntasks N --ntasks-per-node W
//           radlads-worker RUN --threads T
//           (inside a Slurm allocation, from `submit`'s job script; T = SLURM_CPUS_PER_TASK,
//           else the cores of this node / W)
// Both share the restart policy below. The workers' output goes to
// RUN/logs/worker-job-<k>.log. With mpirun, the job's process group is recorded in
// RUN/logs/worker-job.pid, and a job still alive from a coordinator of this run that died
// (SIGKILL) is ended before the new one starts: its ranks would register under the same ids.
// (Under Slurm a requeue ends every step of the old job itself.)
//
// Progress is shown from the state (the same bars as the in-process run), and the run ends with
// the same summary, eval.json and export.
// - The run completes: the server tells the workers the run is over, they exit, exit 0.
// - SIGTERM/SIGINT/SIGUSR1: the coordinator drains (the server's handlers): leases end at the
//   workers' next checkpoint, then exit 3; the same command resumes.
// - The worker job exits while the run still has work (a rank crashed or was killed, the job was
//   torn down): its leases expire at the run's lease TTL and their tasks resume from their last
//   commits; the job is started again, at most `max_restarts` times, after which the command
//   exits 1 naming the last exit status and the log. The state stays resumable.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cli/run_display.h"
#include "cli/run_setup.h"
#include "state/scheduler.h"
#include "state/state_store.h"

namespace radlads {

struct WorkerJobOptions {
  std::string launcher = "mpirun";   // "mpirun" or "srun"
  int workers = 2;                   // ranks (N)
  int workers_per_node = 0;          // srun: W (0: N, one node)
  int threads_per_rank = 0;          // 0: cores / N, at least 1
  int max_restarts = 3;              // worker job restarts before the command gives up
  std::string worker_binary;         // default: radlads-worker beside this executable
  std::string mpirun = "mpirun";     // looked up in PATH (the srun launcher runs "srun")
  std::string listen = "127.0.0.1:0";  // where the coordinator listens (workers on other nodes
                                       // need a reachable address)
};

// The launcher's command line (see above) for `worker` on `run_dir`. InvalidArgument for an
// unknown launcher.
Result<std::vector<std::string>> WorkerJobCommand(const WorkerJobOptions& options, const std::string& worker,
                                                  const std::string& run_dir);

// Runs the job as described above; returns the command's exit code. `store` and `sched` hold
// the created (and resumed) run.
// `stop`: set by a signal the server does not handle itself (SIGINT); it starts the drain too.
int RunWithWorkerJob(RunSetup& run, const std::string& run_dir, StateStore& store, Scheduler& sched,
                     RunDisplay& display, const WorkerJobOptions& options, const std::atomic<int>& stop,
                     std::ostream& err);

}  // namespace radlads
