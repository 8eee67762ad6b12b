// `radlads-coord run CONFIG --run DIR`: the whole RADLADS protocol in one process on this
// machine — the coordinator's planner, durable state and scheduler, and an in-process worker
// that runs every task (step 0 transfer, step 1 cache + align through the HDF5 activation cache,
// step 2 distillation, optional step 3, export, eval).
//
// Contract:
// - Every input is validated before anything is written (config, recipe, cluster, teacher
//   directory and weights, data files, token budgets against the data): bad input exits 2 with
//   the file, field and expectation, and DIR is left as it was.
// - The run is durable and resumable: re-running the same command on the same DIR continues from
//   the last committed task or checkpoint. A different config for an existing DIR, a DIR of
//   another format, and a host whose memory the plan no longer fits are refused before any
//   work (cli/run_directory.h).
// - SIGINT/SIGTERM/SIGUSR1 drain: the running task checkpoints at its next step boundary, the
//   state records the drain, and the process exits 3; re-run to resume. The coordinator serves
//   the run (cli/served_run.h, on --listen) in either mode, so `radlads-coord status`, `drain`
//   (exit 3 as above) and `cancel` (exit 4, kExitCancelled: no requeue) reach it.
// - Inside a Slurm job every start is recorded and may be refused (cli/slurm_job.h): a requeue
//   of a cancelled job exits 4, a job restarting without progress exits 1.
// - Long phases show a progress bar with tokens/s and ETA; the run ends with a summary table
//   (also written to DIR/output/summary.txt) and DIR/output/eval.json.
// - --device cuda trains steps 1-3 on one GPU in this process (worker/device_training.h). It is
//   refused before any work (exit 2, DIR untouched) when no usable CUDA device is found, with
//   --workers N > 1 or a cluster of several workers, and when the plan has a gang of more than
//   one rank. The first start records the device in DIR/device; a later start without --device
//   uses it, one with another --device is refused (exit 2): the devices agree to bf16
//   tolerance, not bit for bit, so a run stays on one. The summary prints each training phase's
//   measured device peak beside the one-GPU estimate (plan/gpu_memory.h).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace radlads {

struct RunCommandArgs {
  std::string config;        // run settings YAML (configs/tiny-rwkv7.yaml)
  std::string run_dir;       // DIR
  std::string command_line;  // recorded in DIR/output/summary.txt
  std::ostream* out = nullptr;  // the summary (default std::cout); progress bars too when set
  std::ostream* err = nullptr;  // errors and notes (default std::cerr)
  std::optional<double> host_memory_gib;  // this host's RAM (tests; default: base/host_info.h)
  // --workers N: run the tasks in a job of N radlads-worker ranks (cli/run_workers.h); 0: the
  // cluster's worker count (one: in this process).
  int workers = 0;
  std::string cluster;          // --cluster NAME|PATH: replaces the run config's cluster
  std::int64_t lease_ttl_ms = 0;  // --lease-ttl-ms (new runs; 0: 30 min in process, 60 s with workers)
  int max_worker_restarts = 3;  // --max-worker-restarts
  std::string launcher = "mpirun";  // --launcher mpirun|srun (cli/run_workers.h)
  int workers_per_node = 0;         // srun: ranks per node (0: the cluster's)
  std::string listen = "127.0.0.1:0";  // --listen: the coordinator's address (other nodes must reach it)
  // --device cpu|cuda: where steps 1-3 train (worker/device_training.h). "": the device RUN/device
  // recorded (a resumed run), else cpu.
  std::string device;
};

// Returns the process exit code (0, 1, 2, kExitRequeue after a drain, kExitCancelled).
int RunRunCommand(const RunCommandArgs& args);

}  // namespace radlads
