// radlads-coord: plan a conversion, run it locally, serve it to workers, report its status,
// submit it to Slurm, drain or cancel it.
// Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage, 3 drained for requeue,
// 4 cancelled (no requeue).
#include <signal.h>

#include <cstdio>

#include "cli/cli_util.h"
#include "cli/checkpoints_command.h"
#include "cli/control_command.h"
#include "cli/submit_command.h"
#include "cli/plan_command.h"
#include "cli/run_command.h"
#include "cli/serve_command.h"
#include "cli/status_command.h"
#include "kernels/cpu/parallel.h"

namespace {

// The drain signals are held pending from the first instruction (the mask survives the re-exec
// below) until `run` or `serve` has its handlers, so a Slurm warning that arrives while the
// process starts drains it instead of killing it (slurm/radlads-job.sbatch.in waits for this).
// Every other command gets them back at once.
void SetDrainSignals(int how) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(how, &set, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace radlads;
  SetDrainSignals(SIG_BLOCK);
  cli::ReexecWithThreadingDefaults(argc, argv);
  CLI::App app{"radlads-coord: plan, run and watch a RADLADS conversion (Qwen2 -> RAD-RWKV6/7).\n"
               "Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage, "
               "3 drained (SIGUSR1/SIGTERM, `drain`) and ready to be requeued, 4 cancelled (`cancel`: not to be requeued)."};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for local compute (default: RADLADS_THREADS or all cores)")
      ->check(CLI::PositiveNumber);

  // plan ------------------------------------------------------------------------------------
  PlanCommandArgs plan;
  CLI::App* plan_cmd = app.add_subcommand(
      "plan", "Build and validate the task graph of a conversion and write the run directory");
  plan_cmd->add_option("recipe", plan.recipe, "Recipe name (configs/recipes/) or path")->required();
  plan_cmd->add_option("--model", plan.model_dir, "Teacher checkpoint directory (its config.json)");
  plan_cmd->add_option("--preset", plan.model_preset,
                       "Model preset instead of --model (default: the recipe's teacher)");
  plan_cmd->add_option("--data", plan.data, "Tokenized corpus: binidx prefix, .npy or .u32");
  plan_cmd->add_option("--data-tokens", plan.data_tokens, "Plan from a token count instead of --data");
  plan_cmd->add_option("--cluster", plan.cluster, "Cluster layout name (configs/clusters/) or path")
      ->required();
  plan_cmd->add_option("--run", plan.run_dir, "Run directory to write (default: print only)");
  plan_cmd->add_flag("--json", plan.json, "Print the plan as JSON (schema: docs/planner.md)");
  plan_cmd->add_option("--tp", plan.tp, "Override the cluster's tensor-parallel degree");
  plan_cmd->add_option("--pp", plan.pp, "Override the pipeline-parallel degree");
  plan_cmd->add_option("--dp", plan.dp, "Override the data-parallel degree");
  plan_cmd->add_flag("--auto-layout", plan.auto_layout,
                     "Pick the best layout that fits instead of the cluster's");
  plan_cmd->add_option("--segment-steps", plan.segment_steps, "Optimizer steps per step-1 segment");
  plan_cmd->add_flag("--allow-data-repeats", plan.allow_data_repeats,
                     "Allow a step to sample more windows than the data has");
  bool no_vocab_check = false;
  plan_cmd->add_flag("--no-vocab-check", no_vocab_check, "Skip the scan of every token id");
  plan_cmd->add_option("--storage-gbps", plan.storage_gbps, "Cache storage bandwidth per node, GB/s");
  plan_cmd->add_option("--cpu-memory-gib", plan.cpu_memory_gib, "RAM per node of a CPU cluster");

  // run -------------------------------------------------------------------------------------
  RunCommandArgs run;
  CLI::App* run_cmd = app.add_subcommand(
      "run", "Run the whole protocol: step 0 transfer, step 1 alignment through the HDF5 "
             "activation cache, step 2 distillation, optional step 3, export and eval; in this "
             "process, or with a job of radlads-worker ranks that this process coordinates "
             "(--workers, or a cluster of several workers). Re-running with the same --run "
             "resumes from the last committed task; SIGINT/SIGTERM/SIGUSR1 drains and exits 3");
  run_cmd->add_option("config", run.config, "Run config (e.g. configs/tiny-rwkv7.yaml)")->required();
  run_cmd->add_option("--run", run.run_dir, "Run directory")->required();
  run_cmd->add_option("--workers", run.workers,
                      "Worker ranks: with N > 1 this process serves the run and starts "
                      "`mpirun -np N radlads-worker RUN` (default: the cluster's worker count)");
  run_cmd->add_option("--cluster", run.cluster,
                      "Cluster layout name or path, replacing the run config's; on an existing run directory "
                      "it re-lays the run out (another dp, or tp where the heads divide) from its checkpoints");
  run_cmd->add_option("--lease-ttl-ms", run.lease_ttl_ms,
                      "Lease deadline after each heartbeat; a resumed run takes the new value "
                      "(default: 60 s with workers, 30 min in one process)");
  run_cmd->add_option("--max-worker-restarts", run.max_worker_restarts,
                      "Times the worker job is started again after it ends while the run has work")
      ->capture_default_str();
  run_cmd->add_option("--launcher", run.launcher,
                      "How the worker ranks start: mpirun (this machine) or srun (inside a Slurm allocation, "
                      "as `submit`'s job script does)")
      ->check(CLI::IsMember({"mpirun", "srun"}))
      ->capture_default_str();
  run_cmd->add_option("--workers-per-node", run.workers_per_node,
                      "srun: worker ranks per node (default: the cluster's GPUs or cpu_workers per node)");
  run_cmd->add_option("--listen", run.listen,
                      "ADDR:PORT the coordinator serves on (port 0: ephemeral; written to RUN/coordinator.addr); "
                      "workers on other nodes must reach it")
      ->capture_default_str();
  run_cmd->add_option("--device", run.device,
                      "Where the training steps run: cpu (default), or cuda: steps 1-3 (align, distill, finetune) on "
                      "this machine's one GPU, in this process (no worker ranks, no gang of more than one rank); "
                      "the transfer, the teacher's step-1 cache, export and eval stay on the CPU. Refused before any "
                      "work when no usable CUDA device is found. A run keeps the device it started with: resuming "
                      "without --device uses it, another --device is refused");

  // submit -----------------------------------------------------------------------------------
  SubmitArgs submit;
  CLI::App* submit_cmd = app.add_subcommand(
      "submit", "Plan a conversion as `run` would (refusing what does not fit, exit 2), write its Slurm job "
                "script RUN/slurm/job.sbatch (coordinator in the batch step, workers by srun --mpi=pmix, "
                "--requeue, a drain warning timed from the plan) and submit it with sbatch");
  submit_cmd->add_option("config", submit.config, "Run config (e.g. configs/tiny-rwkv7.yaml)")->required();
  submit_cmd->add_option("--run", submit.run_dir, "Run directory, on a filesystem every node shares")->required();
  submit_cmd->add_option("--cluster", submit.cluster, "Cluster layout name or path, replacing the run config's");
  submit_cmd->add_option("--nodes", submit.nodes, "Nodes (default: the layout's); dp scales with them")
      ->check(CLI::PositiveNumber);
  submit_cmd->add_option("--partition", submit.partition, "Partition (default: the layout's slurm.partition)");
  submit_cmd->add_option("--time", submit.time, "Time limit of one start (default: the layout's slurm.time_limit)");
  submit_cmd->add_option("--account", submit.account, "Account (default: the layout's slurm.account)");
  submit_cmd->add_option("--job-name", submit.job_name, "Job name (default: radlads-<run dir name>)");
  submit_cmd->add_option("--template", submit.template_path,
                         "Job template instead of the built-in slurm/radlads-job.sbatch.in");
  submit_cmd->add_flag("--dry-run", submit.dry_run, "Write and print the job script; do not submit");
  submit_cmd->add_option("sbatch_args", submit.sbatch_args, "Extra sbatch arguments, after --");
  submit_cmd->positionals_at_end(false);

  // drain / cancel ---------------------------------------------------------------------------
  ControlArgs drain;
  CLI::App* drain_cmd = app.add_subcommand(
      "drain", "Ask the live coordinator of RUN to drain: tasks checkpoint and release, it exits 3 (a Slurm "
               "job requeues); waits for it to exit");
  drain_cmd->add_option("run", drain.run_dir, "Run directory")->required();
  drain_cmd->add_option("--wait", drain.wait_s, "Seconds to wait for the coordinator to exit")->capture_default_str();
  ControlArgs cancel;
  CLI::App* cancel_cmd = app.add_subcommand(
      "cancel", "Cancel RUN: drain, record the cancel, end its Slurm job without a requeue (exit 4); the same "
                "run or submit command resumes it later");
  cancel_cmd->add_option("run", cancel.run_dir, "Run directory")->required();
  cancel_cmd->add_option("--wait", cancel.wait_s, "Seconds to wait for the coordinator to exit")->capture_default_str();

  // serve ------------------------------------------------------------------------------------
  ServeArgs serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Serve RUN/ to workers over TCP (HMAC-authenticated, docs/protocol.md); SIGUSR1 or "
               "SIGTERM drains and exits 3 for requeue");
  serve_cmd->add_option("run", serve.run_dir, "Run directory (written by `plan`)")->required();
  serve_cmd->add_option("--listen", serve.listen, "ADDR:PORT to listen on (port 0: ephemeral; the bound "
                                                  "address is written to RUN/coordinator.addr)")
      ->capture_default_str();
  serve_cmd->add_option("--lease-ttl-ms", serve.lease_ttl_ms, "Lease deadline after each heartbeat (new runs)")
      ->capture_default_str();
  serve_cmd->add_option("--retry-limit", serve.retry_limit, "Failed attempts before a task fails the run (new runs)")
      ->capture_default_str();
  serve_cmd->add_option("--cache-window", serve.cache_window, "Resident step-1 cache segments per stage (new runs; "
                                                              "0: the plan's)")
      ->capture_default_str();
  serve_cmd->add_option("--expiry-period-ms", serve.expiry_period_ms, "How often expired leases are reclaimed")
      ->capture_default_str();
  serve_cmd->add_option("--keep-last", serve.keep_last,
                        "Checkpoints kept per task chain; older ones are deleted once newer commits are durable")
      ->capture_default_str();
  serve_cmd->add_option("--idle-timeout-ms", serve.idle_timeout_ms, "Close connections idle this long")
      ->capture_default_str();
  serve_cmd->add_option("--frame-timeout-ms", serve.frame_timeout_ms, "Deadline for a handshake, a frame or a write")
      ->capture_default_str();
  serve_cmd->add_option("--max-frame-bytes", serve.max_frame_bytes, "Largest frame accepted after the handshake")
      ->capture_default_str();
  serve_cmd->add_option("--metrics", serve.metrics_listen,
                        "ADDR:PORT for a Prometheus text endpoint (GET /metrics); off by default");

  // status -----------------------------------------------------------------------------------
  StatusArgs status;
  CLI::App* status_cmd = app.add_subcommand(
      "status", "Show a run: steps with progress, per-layer step-1 progress, tokens against budget, "
                "losses, throughput, ETA, workers, failures, the Slurm job (squeue/sacct). Asks the live coordinator, or reads the "
                "last durable state when none serves");
  status_cmd->add_option("run", status.run_dir, "Run directory")->required();
  status_cmd->add_flag("--json", status.json, "Machine-readable output (schema: docs/status.md)");
  status_cmd->add_option("--watch", status.watch_s, "Redraw every SECONDS until the run ends");

  // checkpoints -------------------------------------------------------------------------------
  CheckpointsArgs checkpoints;
  CLI::App* checkpoints_cmd = app.add_subcommand(
      "checkpoints", "List RUN's checkpoints from its durable state: each commit with its role (resume, result, "
                     "older, discarded) and files, then files no commit names (never committed, temporary)");
  checkpoints_cmd->add_option("run", checkpoints.run_dir, "Run directory")->required();

  if (int rc = cli::ParseOrExitCode(app, argc, argv); rc >= 0) return rc;
  // `run` and `serve` unblock them once their handlers are in place.
  if (!run_cmd->parsed() && !serve_cmd->parsed()) SetDrainSignals(SIG_UNBLOCK);
  if (threads > 0) cpu::SetNumThreads(threads);
  if (plan_cmd->parsed()) {
    plan.check_vocab = !no_vocab_check;
    return RunPlanCommand(plan);
  }
  if (serve_cmd->parsed()) return RunServeCommand(serve);
  if (status_cmd->parsed()) return RunStatusCommand(status);
  if (checkpoints_cmd->parsed()) return RunCheckpointsCommand(checkpoints);
  if (submit_cmd->parsed()) return RunSubmitCommand(submit);
  if (drain_cmd->parsed()) return RunDrainCommand(drain);
  if (cancel_cmd->parsed()) return RunCancelCommand(cancel);
  if (run_cmd->parsed()) {
    run.command_line = cli::JoinArgv(argc, argv);
    return RunRunCommand(run);
  }
  return kExitInvalidInput;
}
