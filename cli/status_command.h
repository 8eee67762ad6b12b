// `radlads-coord status RUN/ [--json] [--watch SECONDS]` (docs/design.md §1 item 3, §4).
//
// Where the figures come from:
// 1. the live coordinator, if one answers (TryLiveStatus: its GetStatus RPC returns
//    StatusJson(), which is parsed back into a StatusReport and rendered here);
// 2. otherwise the state on disk, opened read-only (StateStore::ReadSnapshot: a RocksDB secondary
//    instance, safe while a coordinator holds RUN/state/ read-write), with the note
//    "(no coordinator is serving RUN; showing the last durable state)" on stderr (with --watch on
//    a terminal, under the table).
//
// 3. the Slurm side, when the run's state recorded a Slurm job: squeue (or sacct) for its state,
//    time left and nodes, added to the report (and to --json's "slurm" object).
//
// Output: the table (status/status_report.h StatusTable) sized to the terminal, coloured on
// a TTY unless NO_COLOR is set; --json prints the document of docs/status.md, one line.
// --watch N: on a terminal the screen is redrawn every N seconds; otherwise one snapshot is
// printed per interval (separated by a blank line; with --json one document per line). It stops
// when the run is over (completed or failed), after the snapshot that shows it, or on Ctrl-C.
//
// Errors name the path and map to exit codes by base/status.h ExitCodeFor: no such run directory
// or no state in it (NotFound) and a corrupt state (Corruption) are 2; I/O errors are 1.
//
// The flags are parsed with CLI11 in cli/radlads_coord_main.cpp; this file keeps CLI11 out.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "cli/slurm_job.h"
#include "status/status_report.h"

namespace radlads {

struct StatusArgs {
  std::string run_dir;      // RUN/
  bool json = false;        // --json
  double watch_s = 0.0;     // --watch SECONDS; 0: one snapshot
  int live_timeout_ms = 2000;  // how long to wait for a live coordinator's answer
  // Presentation: -1 = decide from the terminal (stdout a TTY, $NO_COLOR, $COLUMNS).
  int tty = -1;
  int color = -1;
  int width = 0;            // 0: the terminal's width, else $COLUMNS, else 100
  std::ostream* out = nullptr;  // default std::cout
  std::ostream* err = nullptr;  // default std::cerr
  // For tests: the clock for ages and ETAs (default: the system clock), the live fetcher (default
  // TryLiveStatus), and a bound on --watch iterations (0: unbounded).
  const Clock* clock = nullptr;
  std::function<Result<std::string>(const std::string& run_dir, int timeout_ms)> fetch_live;
  // Asks Slurm about the run's last job (default: cli/slurm_job.h QuerySlurmJob), when the
  // state recorded one: its state, time left and nodes join the report (live and offline).
  std::function<SlurmJobView(const std::string& job_id)> query_slurm;
  int max_frames = 0;
};

// Runs the command; returns the process exit code (0 ok, 1 runtime failure, 2 bad input).
// Errors go to `err` as "radlads-coord status: <Code>: <message>".
int RunStatusCommand(const StatusArgs& args);

// Asks the coordinator serving `run_dir` for its status document (StatusJson) through
// rpc/client.h FetchStatusJson: NotFound when RUN/coordinator.addr does not exist,
// Unavailable when nothing answers within `timeout_ms`. Any failure makes `status` read the state
// on disk; a failure other than those two is shown in the note.
Result<std::string> TryLiveStatus(const std::string& run_dir, int timeout_ms);

// The report of RUN/'s last durable state, read-only (RUN/state/ via StateStore::ReadSnapshot).
// NotFound naming the path when RUN/ or RUN/state/ does not exist or holds no run yet;
// Corruption naming the key when a value does not decode.
Result<StatusReport> ReadDiskStatus(const std::string& run_dir, TimeMs now);

}  // namespace radlads
