// What `radlads-coord status` shows (docs/design.md §1 item 3): a StatusReport built from a run's
// state, and its three renderings: the terminal table, the JSON document (schema 1, written down
// in docs/status.md) and the Prometheus text exposition (metric names in docs/status.md).
//
//   RunState --BuildStatusReport--> StatusReport --StatusTable-----> terminal
//                                        |       --StatusReportToJson / StatusJson --> --json, RPC
//                                        |       --PrometheusText--> GET /metrics
//                                        '<--StatusReportFromJson-- JSON from a live server
//
// Everything here is a pure function of its arguments: no clock (the caller passes `now`), no
// I/O, no globals. The report holds every figure the table needs, so a status fetched as JSON
// from a live coordinator renders exactly like one built from the state on disk.
//
// Figures and where they come from (RunState, state/run_state.h):
// - tokens used / budget per step: the TokenLedger (credited by commits only). Step 1 (align)
//   is counted per layer: its budget is B1 (every layer's budget) and "used" is the minimum over
//   layers, as the ledger defines it; `work_*` add the layer-token totals (sum over layers).
// - in flight: tokens a leased task reported in its last heartbeat beyond its committed cursor
//   (not credited; lost if the attempt dies before its next commit).
// - throughput: per leased task, (heartbeat cursor - cursor at grant) / (heartbeat time - grant
//   time), from the state's timestamps; the worker's own reported rate when the timestamps give
//   nothing yet. A step's rate is the sum over its leased tasks (for align: layer-tokens/s).
// - ETA of a step: remaining work / rate, absent when nothing of the step is running.
// - latest losses: the most recent heartbeat's losses (or final metrics) of the step's tasks;
//   for align, per layer.
// - heartbeat age: now - the worker's last_seen_ms (its last heartbeat, lease or registration).
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "contract/task.h"
#include "state/events.h"
#include "state/run_state.h"

namespace radlads {

// The "schema" number of the JSON document (docs/status.md). Bump when a key changes meaning or
// disappears; adding keys does not bump it.
inline constexpr int kStatusSchemaVersion = 1;

struct StatusTaskCounts {
  int total = 0, blocked = 0, ready = 0, leased = 0, done = 0, failed = 0;
};

struct StatusRun {
  std::string id;
  std::string phase;   // RunPhaseName: "empty", "running", "draining", "drained", "completed", "failed"
  std::string reason;  // failure or drain reason
  TimeMs created_ms = 0;
  TimeMs phase_since_ms = 0;
  std::int64_t incarnation = 0;  // coordinator restarts (RunResumed events)
  std::uint64_t last_seq = 0;    // events so far
  TimeMs lease_ttl_ms = 0;
  int retry_limit = 0;
  int cache_window = 0;
  std::string cancelled;      // the user's cancel (RunCancelled), "" when not cancelled
  std::string cancelled_job;
};

// The batch job (Slurm) the run last started in, from the state (JobStarted), and what Slurm
// says about it now (filled by `radlads-coord status`, which asks squeue / sacct).
struct StatusSlurm {
  std::string job_id;          // "" : the run never started inside a Slurm job
  int restart = 0;             // SLURM_RESTART_COUNT of the last start
  std::int64_t starts = 0;     // starts recorded (every job)
  std::string nodes;           // node list of the last start
  TimeMs end_ms = 0;           // its time limit's end (0: unknown)
  std::string refused;         // why the last start did not resume the run
  // Live, from Slurm (not in the state):
  std::string state;           // squeue/sacct state ("" unknown)
  std::string time_left;
  std::string live_nodes;
  std::string source;          // "squeue", "sacct"
  std::string error;           // why Slurm could not say
};

// One protocol step (one task type), in protocol order.
struct StatusStep {
  std::string name;   // TaskTypeName: "transfer", "cache", "align", "distill", ...
  std::string label;  // "step 0 transfer", "step 1 cache", "step 1 align", "step 2 distill",
                      // "step 3 finetune", "export", "eval"
  std::string state;  // "pending" (nothing started), "running", "done", "failed"
  StatusTaskCounts tasks;
  bool has_tokens = false;          // the step consumes training tokens
  std::int64_t tokens_budget = 0;   // align: per layer (B1); else the type's budget
  std::int64_t tokens_used = 0;     // credited; align: minimum over layers
  std::int64_t work_budget = 0;     // align: layer-tokens (layers x B1); else = tokens_budget
  std::int64_t work_done = 0;       // credited layer-tokens (align) or tokens
  std::int64_t work_in_flight = 0;  // reported by heartbeats beyond the committed cursors
  std::int64_t work_redone = 0;     // given back by checkpoint fallbacks and trained again
  double fraction = 0.0;            // work_done / work_budget, or done / total tasks
  double tokens_per_s = 0.0;        // current rate in work units (align: layer-tokens/s)
  std::optional<double> eta_s;      // remaining work / rate; absent when not running
  std::vector<NamedValue> losses;   // the latest reported by any of its tasks
  TimeMs losses_at_ms = 0;
};

// Step 1, one layer.
struct StatusLayer {
  int layer = 0;
  std::int64_t tokens_budget = 0;
  std::int64_t tokens_credited = 0;
  std::int64_t tokens_in_flight = 0;
  int segments_done = 0, segments_total = 0;
  std::string state;  // "waiting", "training" (an align task leased), "done", "failed"
  std::string task;   // the leased align task, if any
  int failures = 0;   // failed attempts of the layer's current (or last) task
  std::vector<NamedValue> losses;
  TimeMs losses_at_ms = 0;
};

struct StatusWorker {
  std::string id, host;
  std::int64_t pid = 0;
  int group_size = 1;
  int rank = -1;                  // rank in its worker job (-1: not in one)
  std::string gang;               // the gang it belongs to ("": none)
  std::string device;             // "cpu", "cuda:0", ...
  std::int64_t memory_bytes = 0;  // the memory it registered
  double tokens_per_s = 0.0;      // its current task's throughput (last heartbeat), 0 when idle
  std::string state;  // "idle", "busy", "lost"
  std::string task;   // the leased task when busy
  std::uint64_t lease = 0;
  TimeMs last_seen_ms = 0;
  double since_seen_s = 0.0;  // now - last_seen_ms
  std::int64_t leases = 0, tasks_completed = 0;
  std::string lost_reason;
};

struct StatusWorkers {
  int total = 0, idle = 0, busy = 0, lost = 0;
  double max_busy_since_seen_s = 0.0;  // the oldest heartbeat among busy workers
  std::vector<StatusWorker> list;      // every worker, ordered by id
};

struct StatusLease {
  std::uint64_t id = 0;
  std::string task, worker;
  int attempt = 0;
  TimeMs granted_ms = 0, deadline_ms = 0, last_heartbeat_ms = 0;
  std::int64_t heartbeats = 0;
  double deadline_in_s = 0.0;  // negative: overdue, the next expiry pass ends it
};

// A task that failed at least once (or for good).
struct StatusFailure {
  std::string task;
  std::string state;  // TaskStateName
  int failures = 0;   // failed attempts so far
  int attempt = 0;    // the current or last attempt
  int max_attempts = 0;  // retry_limit + 1
  std::string last_error;
  TimeMs changed_ms = 0;
};

// A commit found unreadable and discarded (checkpoint fallback, CheckpointDiscarded).
struct StatusFallback {
  std::string task;
  std::int64_t step = 0;           // the discarded commit's step
  std::int64_t tokens_redone = 0;  // the interval trained again
  std::string reason;
  TimeMs at_ms = 0;
};

struct StatusDrain {
  bool active = false;  // draining or drained
  std::string phase;
  std::string reason;
  TimeMs since_ms = 0;
  int leases_outstanding = 0;
};

struct StatusCacheStage {
  int stage = 0;
  int window = 0;  // W (0: unlimited)
  int slots_used = 0;
  int segments = 0;
  int pending = 0, producing = 0, resident = 0, evictable = 0, evicted = 0;
};

// The run directory's disk use (filled by `radlads-coord status`, which walks RUN/; not in the
// state): checkpoints (bounded by checkpoint.keep_last, cli/checkpoint_janitor.h) and the
// step-1 activation cache (bounded by the cache window).
struct StatusDisk {
  std::int64_t checkpoint_bytes = -1;  // -1: not measured
  std::int64_t checkpoint_files = 0;
  std::int64_t cache_bytes = -1;
};

struct StatusReport {
  int schema = kStatusSchemaVersion;
  TimeMs now_ms = 0;
  StatusRun run;
  StatusTaskCounts tasks;
  std::vector<StatusStep> steps;     // only the types the plan has, protocol order
  std::vector<StatusLayer> layers;   // step 1, by layer (empty without align tasks)
  int align_segments = 0;            // step-1 segments per layer
  StatusWorkers workers;
  std::vector<StatusLease> leases;   // outstanding, by id
  std::vector<StatusFailure> failures;  // failed, still retrying, then done; most failures first
  std::vector<StatusFallback> fallbacks;  // every discarded commit, the newest first
  StatusDrain drain;
  std::vector<StatusCacheStage> cache;  // per stage (empty without cache tasks)
  RunMetrics metrics;
  StatusSlurm slurm;
  StatusDisk disk;
};

// Builds the report at time `now` (ages and ETAs are relative to it).
StatusReport BuildStatusReport(const RunState& state, TimeMs now);

// The JSON document (schema 1), compact, one line with a final newline. This is what the
// coordinator's GetStatus RPC returns and what `status --json` prints.
std::string StatusJson(const RunState& state, TimeMs now);
std::string StatusReportToJson(const StatusReport& report, bool pretty = false);
// Parses a document written by StatusReportToJson (of this schema). Corruption naming `source`
// and the key when it is not one.
Result<StatusReport> StatusReportFromJson(std::string_view text, std::string_view source);

// The human table, `width` columns wide (>= 60), ANSI colours when `color`. Ends with a newline.
std::string StatusTable(const StatusReport& report, int width, bool color);

// The Prometheus text exposition format 0.0.4 (one HELP and TYPE per family, then its samples).
std::string PrometheusText(const StatusReport& report);

// For the server's own counters (e.g. radlads_rpc_protocol_errors_total): appends one family in
// the same format. `type` is "counter" or "gauge"; each sample is {label pairs, value}.
struct PromSample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0.0;
};
void AppendPrometheusFamily(std::string* out, std::string_view name, std::string_view type,
                            std::string_view help, const std::vector<PromSample>& samples);

// Small formatters shared with the status command ("1:02:03", "3.2 s", "45 s ago").
std::string FormatAge(double seconds);
std::string FormatUtc(TimeMs ms);  // "2023-11-14 22:13:20 UTC"

}  // namespace radlads
