#include "cli/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "base/host_info.h"
#include "base/file.h"
#include "base/log.h"
#include "cli/slurm_job.h"
#include "configs/cluster.h"
#include "contract/run_layout.h"
#include "cli/checkpoint_janitor.h"
#include "plan/plan_report.h"
#include "rpc/client.h"
#include "rpc/secret.h"
#include "rpc/server.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "status/metrics_http.h"
#include "status/status_report.h"

namespace radlads {
namespace {

// What goes into RUN/coordinator.addr: the bound address, except that a wildcard bind
// (0.0.0.0, ::) is advertised under this host's name so workers on other nodes can reach it.
std::string AdvertisedAddress(const std::string& bound) {
  std::string port;
  if (bound.rfind("0.0.0.0:", 0) == 0) port = bound.substr(8);
  if (bound.rfind("[::]:", 0) == 0) port = bound.substr(5);
  if (port.empty()) return bound;
  const std::string host = HostName();
  if (host.empty()) return bound;
  return host + ":" + port;
}

Status CreateRunFromPlan(Scheduler& sched, const ServeArgs& args) {
  const RunLayout run{args.run_dir};
  const std::string plan_path = run.Abs(RunLayout::PlanFile());
  auto text = ReadFileToString(plan_path);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) {
      return Status::FailedPrecondition(
          run.Abs(RunLayout::StateDir()) + " holds no run and " + plan_path +
          " does not exist: plan the run first (`radlads-coord plan ... --run " + args.run_dir +
          "`)");
    }
    return text.status();
  }
  RADLADS_ASSIGN_OR_RETURN(std::vector<TaskSpec> tasks, ParsePlanTasks(*text, plan_path));
  RunConfig config;
  config.run_id = BaseName(args.run_dir);
  while (!config.run_id.empty() && config.run_id.back() == '/') config.run_id.pop_back();
  if (config.run_id.empty()) config.run_id = "run";
  config.lease_ttl_ms = args.lease_ttl_ms;
  config.retry_limit = args.retry_limit;
  config.cache_window = args.cache_window;
  RADLADS_RETURN_IF_ERROR(sched.CreateRun(config, tasks));
  log::Info("coordinator: created run '" + config.run_id + "' from " + plan_path + " (" +
            std::to_string(tasks.size()) + " tasks, lease ttl " +
            std::to_string(config.lease_ttl_ms) + " ms)");
  return Status::Ok();
}

// Holds SIGTERM/SIGUSR1 pending from the start of the command until the server's handlers are
// installed, so Slurm's warning during startup (opening a large state can take seconds) drains
// instead of killing the process. Threads started meanwhile (RocksDB's, the store's committer)
// keep them blocked, so the signals reach the server's thread.
// (radlads-coord's main() already holds them from its first instruction; Release unblocks them
// whatever the mask was before.)
class BlockDrainSignals {
 public:
  BlockDrainSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);
    active_ = pthread_sigmask(SIG_BLOCK, &set_, nullptr) == 0;
  }
  ~BlockDrainSignals() { Release(); }
  void Release() {
    if (active_) pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
    active_ = false;
  }

 private:
  sigset_t set_{};
  bool active_ = false;
};

int Serve(const ServeArgs& args, std::ostream& err) {
  BlockDrainSignals blocked;
  auto fail = [&err](const Status& s) {
    err << "radlads-coord serve: " << s.ToString() << "\n";
    return ExitCodeFor(s);
  };
  if (args.run_dir.empty() || !IsDirectory(args.run_dir)) {
    return fail(Status::InvalidArgument("run directory '" + args.run_dir + "' does not exist"));
  }
  if (args.lease_ttl_ms <= 0 || args.retry_limit < 0 || args.cache_window < 0 || args.keep_last < 1) {
    return fail(Status::InvalidArgument("--lease-ttl-ms and --keep-last must be > 0, --retry-limit and "
                                        "--cache-window >= 0"));
  }

  // A run directory of another format is refused before anything is written into it.
  if (Status f = CheckRunFormat(args.run_dir); !f.ok()) return fail(f);
  auto secret = EnsureRunSecret(args.run_dir);
  if (!secret.ok()) return fail(secret.status());

  const RunLayout run{args.run_dir};
  const std::string state_dir = run.Abs(RunLayout::StateDir());
  if (!PathExists(state_dir) && !PathExists(run.Abs(RunLayout::PlanFile()))) {
    return fail(Status::FailedPrecondition(
        args.run_dir + " has neither a state (state/) nor a plan (plan.json): plan the run first "
        "(`radlads-coord plan ... --run " + args.run_dir + "`)"));
  }
  auto opened = StateStore::Open(state_dir);
  if (!opened.ok()) {
    if (opened.status().code() == Status::Code::kUnavailable) {
      err << "radlads-coord serve: " << state_dir
          << " is held by another process (another `radlads-coord serve` or `run` on this run?): "
          << opened.status().message() << "\n";
      return kExitFailure;
    }
    return fail(opened.status().WithContext(state_dir));
  }
  std::unique_ptr<StateStore> store = std::move(opened).value();
  int code = kExitFailure;
  {
    Scheduler sched(store.get(), SystemClock::Default());
    const bool empty = store->Read([](const RunState& s) { return s.phase() == RunPhase::kEmpty; });
    if (empty) {
      if (Status s = CreateRunFromPlan(sched, args); !s.ok()) return fail(s);
    }
    // Inside a Slurm job: the start is recorded and may be refused (cli/slurm_job.h).
    const int no_progress_limit = ClusterSlurm{}.max_restarts_without_progress;
    if (int refused = BeginSlurmJobStart(sched, no_progress_limit, err); refused >= 0) return refused;
    if (Status s = sched.Resume("coordinator started on " + HostName() + ", pid " +
                                std::to_string(::getpid()));
        !s.ok()) {
      return fail(s);
    }

    ServerOptions o;
    o.listen = args.listen;
    o.expiry_period_ms = args.expiry_period_ms;
    o.idle_timeout_ms = args.idle_timeout_ms;
    o.frame_timeout_ms = args.frame_timeout_ms;
    o.max_frame = args.max_frame_bytes;
    o.exit_after_run_over_ms = args.exit_after_run_over_ms;
    o.handle_signals = true;
    auto server = Server::Start(o, &sched, SystemClock::Default(), *secret);
    if (!server.ok()) return fail(server.status());
    blocked.Release();  // the server's handlers are in place; a pending signal starts the drain

    // Prometheus text on a second port: the run's figures (docs/status.md) plus the server's own
    // connection and protocol-violation counters.
    std::unique_ptr<StandaloneMetricsServer> metrics;
    if (!args.metrics_listen.empty()) {
      Server* srv = server->get();
      StateStore* st = store.get();
      auto render = [srv, st]() {
        std::string text = PrometheusText(BuildStatusReport(st->Snapshot(), SystemClock::Default()->NowMs()));
        const ServerMetrics m = srv->metrics();
        std::vector<PromSample> v;
        for (std::size_t i = 0; i < m.violations.size(); ++i) {
          v.push_back({{{"reason", std::string(protocol::ViolationName(static_cast<protocol::Violation>(i)))}},
                       static_cast<double>(m.violations[i])});
        }
        AppendPrometheusFamily(&text, "radlads_rpc_protocol_errors_total", "counter",
                               "Connections closed for a protocol violation, by reason.", v);
        AppendPrometheusFamily(&text, "radlads_rpc_connections_open", "gauge", "Open worker connections.",
                               {{{}, static_cast<double>(m.connections_open)}});
        AppendPrometheusFamily(&text, "radlads_rpc_requests_total", "counter",
                               "Authenticated requests dispatched.", {{{}, static_cast<double>(m.requests)}});
        return text;
      };
      auto started = StandaloneMetricsServer::Start(args.metrics_listen, render);
      if (!started.ok()) return fail(started.status().WithContext("--metrics"));
      metrics = std::move(started).value();
      log::Info("coordinator: Prometheus metrics on http://" + metrics->address() + "/metrics");
    }

    const std::string addr_path = CoordinatorAddressPath(args.run_dir);
    const std::string advertised = AdvertisedAddress((*server)->address()) + "\n";
    if (Status s = AtomicWriteFile(addr_path, advertised, 0644); !s.ok()) return fail(s);
    const RunState snapshot = store->Snapshot();
    log::Info("coordinator: serving run '" + snapshot.config().run_id + "' (" +
              std::string(RunPhaseName(snapshot.phase())) + ", " +
              std::to_string(snapshot.tasks().size()) + " tasks) on " + (*server)->address() +
              "; SIGTERM/SIGUSR1 drains and exits with " + std::to_string(kExitRequeue));

    // Old checkpoints are deleted as newer commits become durable (bounded disk), and what no
    // commit names once the run has completed.
    CheckpointJanitor janitor(store.get(), args.run_dir, args.keep_last);
    code = (*server)->Run();
    janitor.Stop();

    // Leave the address only if a newer coordinator has not replaced it.
    if (auto now = ReadFileToString(addr_path); now.ok() && *now == advertised) {
      ::unlink(addr_path.c_str());
    }
  }
  // The store's destructor waits for every queued transition to be durable.
  if (Status h = store->health(); !h.ok()) {
    err << "radlads-coord serve: " << h.ToString() << "\n";
    code = kExitFailure;
  }
  store.reset();
  log::Info("coordinator: exiting with code " + std::to_string(code));
  return code;
}

}  // namespace

int RunServeCommand(const ServeArgs& args) {
  std::ostream& err = args.err != nullptr ? *args.err : std::cerr;
  return Serve(args, err);
}

}  // namespace radlads
