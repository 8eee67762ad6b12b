// An in-process simulation of a whole run against the real Scheduler and StateStore (real
// RocksDB, real fsync unless told otherwise), with simulated workers and an injected FakeClock.
// It exists to prove, at the 72B / 1,024-worker scale, that the coordinator finishes every task
// and counts every token exactly once through worker deaths, duplicated and late messages and
// coordinator restarts, and to measure durable transitions per second and lease latency
// (bench/coord_sim_bench.cpp; a small configuration runs as a ctest).
//
// Simulated time advances in rounds of `round_ms`; in one round every live worker sends one
// message: Lease when idle (an idle worker that got no work asks again after 1, 2, 4, ...
// max_poll_backoff rounds), else Heartbeat, CommitCheckpoint every `checkpoint_every` working
// rounds, or Complete when its task's steps are done, plus the duplicate of a "lost" reply. A
// task of N optimizer steps (at least 1) and T tokens moves ceil(N / rounds_per_task) steps per
// working round; its cursor after step k is T*k/N, so the final cursor is exactly T. A retry
// resumes from the grant's resume_from (the last commit); the work after it is done again.
// Every round (every `tick_rounds` rounds in stream mode) the coordinator side runs:
//   - a pending coordinator restart: a crash (close at once) or, once a drain has finished, a
//     requeue; the store is closed, reopened (its state must equal the one before the close) and
//     Scheduler::Resume() is called; every worker process starts again and registers;
//   - random events: a busy worker dies silently (its lease expires after lease_ttl, or ends
//     when its replacement registers 1..revive_after_rounds later) or reports a retryable
//     failure; a dead process may send one late commit on its old lease (it must be refused);
//   - blocking operations from `blocking_threads` threads: RegisterWorker, Fail, Release, the
//     late commits, EvictSegment of evictable cache segments (the server deletes the files);
//   - ExpireLeases().
// Two drivers:
//   kRounds  lock-step: the coordinator side, then one asynchronous burst of every worker's
//            message (Scheduler::*Async), waiting for all acknowledgements before the next
//            round. Every decision comes from the seeded RNG on one thread and the blocking
//            operations of a round commute, so a seed gives the same run (the tests use this).
//   kStream  closed loop, as a server sees it: each worker sends its next message as soon as the
//            previous one is acknowledged (one round of simulated time later); simulated time
//            never runs more than max_lag_rounds ahead of the oldest message in flight, so a
//            worker with a slow reply is at most that late (well inside the lease ttl). Group
//            commit then always has every busy worker's message in flight. Evictions and
//            ExpireLeases run on a background thread beside the traffic, like a server's timer.
//            Not reproducible (replies arrive in wall-clock order); the benchmark uses this.
// Workers are "n<node>/r<rank>", 8 per node; when the plan has gang tasks (distill, finetune)
// one more worker, "n000/group", registers with group_size = the gang size as its leader.
//
// Checks at the end (any failure is an Internal status naming it): the run completed; every task
// is done with its committed cursor equal to its budget; the ledger is exact per step and, for
// step 1, per layer (credited == budget); the credits acknowledged to the simulated workers sum,
// per task, to its budget (nothing credited twice across retries and duplicates); the durable
// event log's credits (checkpoint_committed + task_completed) sum, per task, to its budget; the
// log replays to the final state; RunState::CheckInvariants() holds; every late commit from a
// dead process was refused and every duplicate acknowledged with 0 tokens.
// Thread-safety: RunSimulation is self-contained; run one at a time per directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "contract/task.h"
#include "state/events.h"
#include "state/run_state.h"

namespace radlads {

enum class SimMode { kRounds, kStream };

struct SimOptions {
  SimMode mode = SimMode::kRounds;
  std::string dir;              // RUN/state directory; must be empty or absent
  RunConfig run;                // lease ttl, retry limit, cache window
  std::vector<TaskSpec> tasks;  // the plan, in plan order
  int workers = 1024;           // single workers (group size 1)
  std::uint64_t seed = 1;

  TimeMs round_ms = 30'000;
  int rounds_per_task = 4;
  int checkpoint_every = 2;     // >= 2: the rounds in between heartbeat (commits do not renew)
  int max_poll_backoff = 8;     // rounds
  int tick_rounds = 1;          // kStream: the coordinator side runs every tick_rounds rounds
  int max_lag_rounds = 3;       // kStream: keep well below lease_ttl / round_ms

  double death_rate = 0.002;    // per busy worker per round
  double fail_rate = 0.0005;    // per busy worker per round: Fail(retryable)
  int revive_after_rounds = 12;
  double duplicate_rate = 0.02; // a commit or completion is sent twice
  double late_commit_rate = 0.5;  // a dead process sends one late commit on its old lease

  int restarts = 3;             // coordinator restarts, at random fractions of tasks done
  double graceful_fraction = 0.5;  // restarts that drain first (a Slurm requeue); others crash

  bool sync = true;             // fsync every write (false: NOT durable; for comparisons only)
  bool verify_replay_on_reopen = false;  // Open with Verify::kReplay at each restart
  int blocking_threads = 64;
  std::int64_t max_rounds = 200'000;

  // Called after every round (stream: every tick) with the state and the simulated time, under
  // the store's state mutex: it must not call into the store or the scheduler.
  std::function<void(const RunState&, TimeMs now, std::int64_t round)> on_round;
};

struct LatencyStats {
  std::size_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
};

struct SimResult {
  std::int64_t rounds = 0;
  TimeMs sim_ms = 0;  // simulated time
  double wall_s = 0;
  std::uint64_t transitions = 0;       // durable transitions, every incarnation
  double transitions_per_s = 0;        // over the whole wall time (restarts included)
  double restart_wall_s = 0;           // closing, reopening and resuming the store
  double steady_transitions_per_s = 0; // over the wall time outside restarts
  std::size_t max_in_flight = 0;       // asynchronous operations in flight at once
  double mean_in_flight = 0;           // in flight when a message is sent, averaged
  LatencyStats lease_all;              // Lease calls: request to durable reply
  LatencyStats lease_granted;          // those that granted a lease
  std::uint64_t events = 0;
  std::int64_t leases_granted = 0;
  int deaths = 0, reported_failures = 0, leases_expired = 0;
  int crash_restarts = 0, requeue_restarts = 0;
  int late_commits_refused = 0, duplicates_acked = 0;
  std::int64_t tokens_budget = 0;   // sum of every task's budget (align: layer-tokens)
  std::int64_t tokens_credited = 0; // acknowledged to workers
  std::int64_t tokens_redone = 0;   // consumed by attempts that died before committing them
  std::string final_state_dump_digest;  // hex digest of the final CanonicalDump
};

Result<SimResult> RunSimulation(const SimOptions& options);

// The end-of-run checks on a state alone: completed, every task done at its budget, the ledger
// exact per step and per layer, invariants. Internal naming the first violation.
Status CheckCompletedExactly(const RunState& state);

// Percentiles of a sample (microseconds); `v` is sorted in place.
LatencyStats Summarize(std::vector<double>& v);

// Human summary, several lines.
std::string FormatSimResult(const SimResult& r);

}  // namespace radlads
