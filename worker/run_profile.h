// The run's phase profile (docs/design.md §7.1): seconds per phase (setup, each task type,
// scheduling) and, inside each phase, per op family (base/profile.h), so that a slow run can be
// located without perf.
//
// Every process of a run (the `run` command with its in-process worker, each radlads-worker
// rank) keeps a ProcessProfile and saves it to RUN/profile/<process>-<id>-<pid>-<start ms>.json
// after each task, atomically; a killed process loses at most its current task's share. At the
// end of a completed run, MergeRunProfiles sums every file of every invocation into
// RUN/output/profile.json and the summary prints its top lines.
//
// Contract:
// - Charge(phase) charges the wall time and the op-family counters since the previous Charge
//   (or since construction) to `phase`; the process's phases therefore add up to its wall time.
// - A family's seconds are exclusive (base/profile.h); a phase's "other" is its seconds minus its
//   families (elementwise ops, norms, LoRA, embedding, ...), never negative in a valid file.
// - ParseProcessProfile refuses what this code never writes (unknown phase or family, negative or
//   non-finite seconds, families adding up to more than their phase) with the file and field.
//   MergeRunProfiles skips such files and names each one in `skipped`: a profile is a report and
//   never fails the run.
// Thread-safety: a ProcessProfile belongs to one thread (the worker loop's).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/profile.h"
#include "base/status.h"

namespace radlads {

// Phases, in the order a run goes through them: "setup", the task types ("transfer", "cache",
// "align", "distill", "finetune", "export", "eval"), and "scheduling" (the worker loop outside
// tasks: lease, complete, waits).
const std::vector<std::string>& ProfilePhases();

struct PhaseTotals {
  std::int64_t tasks = 0;
  double seconds = 0;
  std::array<double, profile::kFamilies> family_seconds{};
  double OtherSeconds() const;  // seconds minus the families
  PhaseTotals& operator+=(const PhaseTotals& o);
};

struct ProcessProfileData {
  std::string process;  // "run" (the coordinator process of `radlads-coord run`) or "worker"
  std::string id;       // the worker id
  double wall_seconds = 0;
  std::map<std::string, PhaseTotals> phases;
};

class ProcessProfile {
 public:
  // `path`: where Save writes (absolute). Starts the clock.
  ProcessProfile(std::string process, std::string id, std::string path);

  void Charge(std::string_view phase, std::int64_t tasks = 0);
  // The profile so far, wall time up to now (not charged time: the last Charge may lag).
  ProcessProfileData Data() const;
  Status Save() const;
  const std::string& path() const { return path_; }

  // RUN/profile/<process>-<id>-<pid>-<unix ms>.json (relative to the run directory).
  static std::string FileName(std::string_view process, std::string_view id);

 private:
  ProcessProfileData data_;
  std::string path_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point mark_;
  profile::Counters mark_counters_;
};

std::string ProcessProfileJson(const ProcessProfileData& p);
Result<ProcessProfileData> ParseProcessProfile(std::string_view text, std::string_view source);

struct RunProfile {
  double wall_seconds = 0;  // the `run` invocations' wall time, summed
  int processes = 0;        // files merged
  std::map<std::string, PhaseTotals> phases;  // summed over processes
  std::vector<std::string> skipped;           // "file: why" for each file not merged
};

// Reads RUN/profile/*.json (none: an empty profile). IOError only when the folder cannot be listed.
Result<RunProfile> MergeRunProfiles(const std::string& run_dir);
// RUN/output/profile.json: phases by seconds, largest first, each with its families and "other".
std::string RunProfileJson(const RunProfile& r);
// The summary's lines: wall time, then the `n` largest phases with their three largest families.
std::vector<std::string> RunProfileTopLines(const RunProfile& r, int n);

}  // namespace radlads
