// radlads-worker RUN: one worker per rank of an MPI job (mpirun, or srun --mpi=pmix). Every
// rank reads RUN/coordinator.addr and RUN/secret, registers, and runs leased tasks until the
// run is over or drained (worker/executor.h, worker/worker_job.h). `radlads-coord run
// --workers N` starts `mpirun -np N radlads-worker RUN` itself; on a cluster the job script does.
//
// Exit codes: 0 the run is over; 3 it is draining (this rank stopped for a requeue); 1 a
// failure (the coordinator could not be reached, a task failed for good); 2 bad input (RUN/ not
// prepared by `radlads-coord run`, a plan that differs from this build's, too few ranks for the
// plan's gangs).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "base/host_info.h"
#include "base/log.h"
#include "base/status.h"
#include "cli/cli_util.h"
#include "cli/run_setup.h"
#include "kernels/cpu/parallel.h"
#include "rpc/client.h"
#include "worker/executor.h"
#include "worker/mpi_communicator.h"
#include "worker/worker_job.h"

namespace {

std::atomic<int> g_stop{0};
void OnSignal(int sig) { g_stop.store(sig); }

}  // namespace

int main(int argc, char** argv) {
  using namespace radlads;
  MpiSession mpi(&argc, &argv);
  CLI::App app{"radlads-worker: one conversion worker per MPI rank, serving the run in RUN/ "
               "(prepared and coordinated by `radlads-coord run`)"};
  std::string run_dir;
  int threads = 0;
  std::string log_level = "info";
  app.add_option("run", run_dir, "Run directory (RUN/coordinator.addr, RUN/secret, RUN/plan.json)")->required();
  app.add_option("--threads", threads, "Compute threads per rank (default: the cores of this node / the ranks on it)");
  app.add_option("--log-level", log_level, "debug, info, warn, error, off")->capture_default_str();
  if (int rc = cli::ParseOrExitCode(app, argc, argv); rc >= 0) return rc;
  log::SetLevel(log_level);
  const int rank = mpi.world_rank();
  auto fail = [&](const Status& st) {
    std::cerr << "radlads-worker rank " << rank << ": " << st.ToString() << "\n";
    return ExitCodeFor(st);
  };
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGUSR1, OnSignal);
  std::signal(SIGINT, OnSignal);
  if (threads <= 0) {
    const unsigned hc = std::max(1u, std::thread::hardware_concurrency());
    threads = std::max(1, static_cast<int>(hc) / mpi.world_size());
  }
  cpu::SetNumThreads(threads);
  // This rank's share of RUN/output/profile.json (worker/run_profile.h).
  ProcessProfile profile("worker", "rank-" + std::to_string(rank),
                         RunLayout{run_dir}.Abs(ProcessProfile::FileName("worker", "rank-" + std::to_string(rank))));

  Result<std::unique_ptr<RunSetup>> setup = OpenRunAsWorker(run_dir);
  if (!setup.ok()) return fail(setup.status());
  RunSetup& run = **setup;
  const Plan& plan = run.plan();

  std::unique_ptr<MpiCommunicator> world = MpiCommunicator::World();
  WorkerJobRank me;
  me.rank = rank;
  me.world_size = mpi.world_size();
  me.host = HostName();
  me.memory_bytes = static_cast<std::int64_t>(plan.worker.capacity_bytes);
  me.gang = GangLayout{static_cast<int>(plan.layout.tp), static_cast<int>(plan.layout.pp),
                       static_cast<int>(plan.layout.dp)};
  bool has_gang_task = false;
  for (const TaskSpec& t : plan.tasks) has_gang_task |= t.workers > 1;
  if (!has_gang_task) me.gang = GangLayout{};
  if (me.gang.size() > me.world_size) {
    return fail(Status::InvalidArgument("the plan's distill/finetune gang is tp " + std::to_string(me.gang.tp) +
                                        " x pp " + std::to_string(me.gang.pp) + " x dp " +
                                        std::to_string(me.gang.dp) + " = " + std::to_string(me.gang.size()) +
                                        " ranks; this job has " + std::to_string(me.world_size)));
  }
  // Ranks [0, gang size) form the gang; the others do single tasks only.
  std::unique_ptr<Communicator> gang_comm = world->Split(rank < me.gang.size() ? 0 : 1, rank);
  std::unique_ptr<GangContext> gang;
  if (me.gang.size() > 1 && rank < me.gang.size()) {
    Result<std::unique_ptr<GangContext>> g = GangContext::Create(gang_comm.get(), me.gang);
    if (!g.ok()) return fail(g.status());
    gang = std::move(g).value();
  }

  std::vector<WorkerIdentity> ids = WorkerJobIdentities(me);
  for (WorkerIdentity& id : ids) id.info.pid = ::getpid();
  ClientOptions co;
  co.run_dir = run_dir;
  co.name = ids[0].info.id;
  co.max_attempts = 60;  // a requeued or restarting coordinator may take a while to listen again
  co.retry_backoff_ms = 250;
  Result<std::unique_ptr<Client>> client = Client::Connect(co);
  if (!client.ok()) return fail(client.status());

  TaskEnv env = run.Env(run_dir);
  WorkerJobHooks hooks(*world, gang.get(), g_stop);
  hooks.set_env(&env);
  hooks.set_port(client->get());
  hooks.set_profile(&profile);
  ExecutorOptions eo;
  eo.identities = ids;
  eo.signal_drains_run = false;  // a signal to this job stops its workers, not the run
  eo.profile = &profile;
  log::Info("rank " + std::to_string(rank) + " of " + std::to_string(me.world_size) + " on " + me.host + ": " +
            std::to_string(threads) + " threads" + (gang ? ", gang rank (tp " + std::to_string(gang->tp_rank) +
                                                            ", pp " + std::to_string(gang->pp_rank) + ", dp " +
                                                            std::to_string(gang->dp_rank) + ")"
                                                      : ""));
  profile.Charge("setup");
  Result<ExecutorExit> exit = RunWorkerLoop(**client, env, eo, hooks);
  if (!exit.ok()) return fail(exit.status());
  (*client)->Close();
  return *exit == ExecutorExit::kDrained ? kExitRequeue : kExitOk;
}
