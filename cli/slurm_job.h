// The Slurm side of a run: the batch job a coordinator runs in (its environment), what Slurm
// says about a job now (squeue, then sacct), and the decision every start inside a job makes
// before it resumes the run (README "Running on a Slurm cluster").
//
// Contract:
// - Outside a Slurm job (no SLURM_JOB_ID) nothing here records anything: a local `run` or
//   `serve` is unchanged.
// - A start inside a job records one JobStarted (state/events.h) before Scheduler::Resume, with
//   the job id, SLURM_RESTART_COUNT, the node list, the end of the time limit (from squeue;
//   0 when unknown) and the run's commit count. Then:
//   * the run was cancelled while this same job ran (RunCancelled.job_id == this job): a requeue
//     raced the cancel; the start is refused ("cancelled") and the command exits
//     kExitCancelled, so the job ends without a requeue;
//   * the last `max_restarts_without_progress` starts of this job committed nothing (their
//     commit counts equal today's): the start is refused and the command exits 1 (the job
//     script does not requeue on 1), naming the job, the restarts and the last drain reason;
//   * otherwise the run resumes.
//   A new job (another id) or a run outside Slurm always resumes, and its RunResumed clears
//   the cancellation.
// - Querying Slurm never blocks a caller for more than its timeout; a missing squeue/sacct,
//   a disabled accounting store or a job Slurm has forgotten is reported in `error`, not fatal.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "state/events.h"
#include "state/run_state.h"

namespace radlads {

class Scheduler;

// Slurm durations: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS" -> seconds;
// nullopt for "UNLIMITED", "INFINITE", "NOT_SET", "INVALID" or anything malformed.
std::optional<std::int64_t> ParseSlurmDuration(std::string_view text);
// Seconds as Slurm's "[D-]HH:MM:SS".
std::string FormatSlurmDuration(std::int64_t seconds);

// Runs argv (no shell), waits at most timeout_ms, returns its stdout. Unavailable naming the
// command when it cannot start, times out (then it is killed) or exits non-zero (with its
// stderr's first line).
Result<std::string> RunAndCapture(const std::vector<std::string>& argv, int timeout_ms);

// This process's Slurm job, from its environment; nullopt outside one. end_ms is asked of
// squeue (time left + now), 0 when it cannot say.
std::optional<JobStart> CurrentSlurmJob(TimeMs now);

// What Slurm says about a job now.
struct SlurmJobView {
  std::string state;      // PENDING, RUNNING, COMPLETED, ...; "" when unknown
  std::string time_left;  // squeue %L ("1:02:03", "UNLIMITED"); "" when not running
  std::string nodes;      // node list, or the pending reason in parentheses
  std::string source;     // "squeue" or "sacct"
  std::string error;      // why nothing is known, when state is ""
};
SlurmJobView QuerySlurmJob(const std::string& job_id, int timeout_ms = 3000);

enum class JobStartOutcome { kResume, kCancelled, kNoProgress };
struct JobStartDecision {
  JobStartOutcome outcome = JobStartOutcome::kResume;
  std::string why;  // for the refused outcomes
};
// The decision for `job` starting on state `s` (see the contract). Pure.
JobStartDecision DecideJobStart(const RunState& s, const JobStart& job, int max_restarts_without_progress);

// The start sequence for a coordinator: when this process runs in a Slurm job, records the
// start and decides. Returns -1 to go on (Resume next), or the exit code to return now (the
// reason written to `err`). Errors of the store are returned as their exit code too.
int BeginSlurmJobStart(Scheduler& sched, int max_restarts_without_progress, std::ostream& err);

}  // namespace radlads
