#include "cli/control_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "base/host_info.h"
#include "base/file.h"
#include "base/status.h"
#include "cli/slurm_job.h"
#include "rpc/client.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "contract/run_layout.h"

namespace radlads {
namespace {

std::string Who() {
  const std::string host = HostName();
  const char* user = std::getenv("USER");
  return std::string(user != nullptr ? user : "uid " + std::to_string(::getuid())) + "@" + host;
}

Result<std::unique_ptr<Client>> ConnectLive(const std::string& run_dir, const std::string& name) {
  ClientOptions o;
  o.run_dir = run_dir;
  o.name = name;
  o.connect_timeout_ms = 3'000;
  o.call_timeout_ms = 30'000;
  o.max_attempts = 2;
  return Client::Connect(o);
}

// Waits until RUN/coordinator.addr no longer holds `addr` (the coordinator exited).
bool WaitForExit(const std::string& run_dir, const std::string& addr, double wait_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(wait_s * 1000));
  for (;;) {
    Result<std::string> now = ReadCoordinatorAddress(run_dir);
    if (!now.ok() || *now != addr) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// The batch job last recorded in the state ("" none).
std::string LastJob(const RunState& s) { return s.status().jobs.empty() ? "" : s.status().jobs.back().job_id; }

// Ends the run's Slurm job if Slurm still has it queued or starting (a running job's script ends
// it itself when the coordinator exits 4).
void EndQueuedJob(const std::string& job, std::ostream& out) {
  if (job.empty()) return;
  const SlurmJobView v = QuerySlurmJob(job);
  if (v.state == "PENDING" || v.state == "REQUEUED" || v.state == "CONFIGURING" || v.state == "REQUEUE_HOLD" ||
      v.state == "REQUEUE_FED") {
    if (auto r = RunAndCapture({"scancel", job}, 10'000); r.ok()) {
      out << "ended Slurm job " << job << " (it was " << v.state << ")\n";
    } else {
      out << "note: could not end Slurm job " << job << ": " << r.status().message() << "\n";
    }
  }
}

}  // namespace

int RunDrainCommand(const ControlArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  Result<std::string> addr = ReadCoordinatorAddress(args.run_dir);
  Result<std::unique_ptr<Client>> client =
      addr.ok() ? ConnectLive(args.run_dir, "drain") : Result<std::unique_ptr<Client>>(addr.status());
  if (!client.ok()) {
    err << "radlads-coord drain: no coordinator serves " << args.run_dir << " (" << client.status().message()
        << "): nothing is running to drain\n";
    return kExitFailure;
  }
  if (Status s = (*client)->Drain("radlads-coord drain by " + Who()); !s.ok()) {
    err << "radlads-coord drain: " << s.ToString() << "\n";
    return ExitCodeFor(s) == kExitInvalidInput ? kExitInvalidInput : kExitFailure;
  }
  client->reset();
  out << "drain requested: the running tasks checkpoint and release; waiting for the coordinator to exit\n"
      << std::flush;
  if (!WaitForExit(args.run_dir, *addr, args.wait_s)) {
    err << "radlads-coord drain: the coordinator is still draining after " << args.wait_s
        << " s (it goes on; `radlads-coord status " << args.run_dir << "` shows it)\n";
    return kExitFailure;
  }
  out << "drained: the coordinator exited; run the same command again (or let Slurm requeue the job) to resume\n";
  return kExitOk;
}

int RunCancelCommand(const ControlArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  const std::string reason = "radlads-coord cancel by " + Who();
  const RunLayout layout{args.run_dir};
  Result<RunState> disk = StateStore::ReadSnapshot(layout.Abs(RunLayout::StateDir()));
  if (!disk.ok()) {
    err << "radlads-coord cancel: " << disk.status().ToString() << "\n";
    return ExitCodeFor(disk.status());
  }
  if (disk->phase() == RunPhase::kCompleted || disk->phase() == RunPhase::kFailed || disk->phase() == RunPhase::kEmpty) {
    err << "radlads-coord cancel: the run in " << args.run_dir << " is " << RunPhaseName(disk->phase())
        << ": nothing to cancel\n";
    return kExitInvalidInput;
  }
  const std::string job = LastJob(*disk);
  // A live coordinator records the cancel itself (it is the state's only writer). One that is
  // starting holds the state without serving yet: try again for a while.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    Result<std::string> addr = ReadCoordinatorAddress(args.run_dir);
    if (addr.ok()) {
      Result<std::unique_ptr<Client>> client = ConnectLive(args.run_dir, "cancel");
      if (client.ok()) {
        Status s = (*client)->Cancel(reason, job);
        client->reset();
        if (!s.ok()) {
          err << "radlads-coord cancel: " << s.ToString() << "\n";
          return s.code() == Status::Code::kFailedPrecondition ? kExitInvalidInput : kExitFailure;
        }
        out << "cancel requested: the running tasks checkpoint and release; waiting for the coordinator to exit\n"
            << std::flush;
        if (!WaitForExit(args.run_dir, *addr, args.wait_s)) {
          err << "radlads-coord cancel: the coordinator is still draining after " << args.wait_s
              << " s (the cancel stands; it exits when the drain completes)\n";
          return kExitFailure;
        }
        EndQueuedJob(job, out);
        out << "cancelled: run the same command again to resume\n";
        return kExitOk;
      }
    }
    // Nobody answers: write the cancel ourselves, unless a coordinator holds the state.
    Result<std::unique_ptr<StateStore>> store = StateStore::Open(layout.Abs(RunLayout::StateDir()));
    if (store.ok()) {
      Scheduler sched(store->get(), SystemClock::Default());
      if (Status s = sched.Cancel(reason, job); !s.ok()) {
        err << "radlads-coord cancel: " << s.ToString() << "\n";
        return s.code() == Status::Code::kFailedPrecondition ? kExitInvalidInput : kExitFailure;
      }
      store->reset();
      EndQueuedJob(job, out);
      out << "cancelled (no coordinator was running): run the same command again to resume\n";
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      err << "radlads-coord cancel: RUN/state is held by a coordinator that does not answer (" << store.status().message()
          << "); try again, or stop its job\n";
      return kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace radlads
