// `radlads-coord serve RUN/`: the coordinator process of a run (docs/design.md §4). It
//   1. creates RUN/secret if missing (mode 0600) and loads it (rpc/secret.h);
//   2. opens RUN/state read-write (StateStore::Open refuses a second writer: then it reports
//      that another coordinator holds the run and exits 1);
//   3. if the state holds no run yet, creates it from RUN/plan.json (written by
//      `radlads-coord plan --run RUN/`) with lease_ttl_ms, retry_limit and cache_window from the
//      arguments; on an existing run those three are fixed and the arguments are ignored;
//   4. inside a Slurm job, records the start (cli/slurm_job.h; with the default
//      slurm.max_restarts_without_progress of 3) and may refuse it: exit 4 for a requeue of a
//      cancelled job, 1 for a job restarting without progress;
//      then calls Scheduler::Resume (leases of a previous incarnation end without counting a failure);
//   5. listens (rpc/server.h) and writes the bound address to RUN/coordinator.addr
//      atomically, so workers and `status` find it;
//   6. serves until the server exits; removes RUN/coordinator.addr (if it is still ours) and
//      closes the store after every transition is durable.
// Exit codes: 0 the run completed; 1 runtime failure (state store error, a failed run, another
// coordinator holds the state); 2 invalid input; 3 (kExitRequeue) drained after SIGUSR1/SIGTERM
// (or a Drain request): the sbatch script requeues the job; 4 (kExitCancelled) after a Cancel
// request. A second signal during the drain
// exits with 3 at once. SIGTERM/SIGUSR1 are held pending from the start of the command until the
// server's handlers are installed, so a signal during startup drains rather than kills.
//
// The flags are parsed with CLI11 in cli/radlads_coord_main.cpp; this file keeps CLI11 out.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "rpc/protocol.h"

namespace radlads {

struct ServeArgs {
  std::string run_dir;                      // RUN/
  std::string listen = "127.0.0.1:0";       // --listen ADDR:PORT (port 0: ephemeral)
  std::int64_t lease_ttl_ms = 300'000;      // --lease-ttl-ms   (only when creating the run)
  int retry_limit = 3;                      // --retry-limit    (only when creating the run)
  int cache_window = 0;                     // --cache-window   (only when creating the run)
  std::int64_t expiry_period_ms = 1'000;    // --expiry-period-ms: how often leases expire
  int keep_last = 2;                        // --keep-last: checkpoints kept per chain
                                            // (cli/checkpoint_janitor.h; the layout's default)
  std::int64_t idle_timeout_ms = 300'000;   // --idle-timeout-ms: close connections idle this long
  std::int64_t frame_timeout_ms = 10'000;   // --frame-timeout-ms: handshake/frame/write deadline
  std::uint32_t max_frame_bytes = protocol::kDefaultMaxFrame;  // --max-frame-bytes
  std::int64_t exit_after_run_over_ms = 30'000;  // serve this long after completion/failure
  std::string metrics_listen;               // --metrics ADDR:PORT: Prometheus /metrics ("": off)
  std::ostream* err = nullptr;              // default std::cerr
};

// Runs the command; returns the process exit code (see above). Errors go to `err` as
// "radlads-coord serve: <Code>: <message>"; progress goes to the log.
int RunServeCommand(const ServeArgs& args);

}  // namespace radlads
