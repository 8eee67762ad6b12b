// A coordinator's server over a run, on a thread of its own: the RPC endpoint of
// rpc/server.h for the run's workers and for `radlads-coord status`, `drain` and `cancel`.
// `run` starts one whether it runs its tasks in this process or with a worker job.
//
// Start: loads (creating if missing) RUN/secret, binds `options.listen`, writes the bound
// address to RUN/coordinator.addr atomically, and runs the server's loop on a new thread.
// Stop(code): shuts the server down (if its loop is still running), joins the thread, and removes
// RUN/coordinator.addr when it still holds this server's address. The destructor stops.
// Thread-safety: Start, Stop and the destructor from one thread; done() and server() from any.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/status.h"
#include "rpc/server.h"
#include "state/scheduler.h"

namespace radlads {

class ServedRun {
 public:
  static Result<std::unique_ptr<ServedRun>> Start(const std::string& run_dir, Scheduler& sched,
                                                  const ServerOptions& options);
  ~ServedRun();
  ServedRun(const ServedRun&) = delete;
  ServedRun& operator=(const ServedRun&) = delete;

  Server& server() { return *server_; }
  // The server's loop has returned (it exited on its own: a drain finished, the run is over).
  bool done() const { return done_.load(); }
  // See above; returns the server's exit code (`code` when it was still running).
  int Stop(int code);

 private:
  ServedRun() = default;
  std::unique_ptr<Server> server_;
  std::thread loop_;
  std::atomic<bool> done_{false};
  int code_ = 0;
  bool stopped_ = false;
  std::string addr_path_, advertised_;
};

}  // namespace radlads
