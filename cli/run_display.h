// What `radlads-coord run` shows: one progress bar per protocol phase (tokens/s and ETA for the
// long ones, the latest losses as a suffix), and the end-of-run summary table.
// Not thread-safe: the run loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/progress.h"
#include "configs/run_settings.h"
#include "contract/run_layout.h"
#include "plan/plan.h"
#include "state/run_state.h"
#include "worker/eval_report.h"

namespace radlads {

class RunDisplay {
 public:
  // `state` gives the work already done by earlier incarnations of the run.
  // `eval_tokens` (the held-out tokens the eval task evaluates: worker/eval_report.h
  // EvalWindows) sizes the eval bar. Bars go to `out` (plain lines) or, when null, to stderr.
  RunDisplay(const Plan& plan, const RunState& state, std::uint64_t eval_tokens,
             std::ostream* out = nullptr);

  void OnStart(const TaskSpec& task);
  void OnProgress(const TaskSpec& task, const Progress& p);
  void OnComplete(const TaskSpec& task, const FinalRecord& final);
  void Finish();  // closes the current bar

  // `profile_lines`: the top of RUN/output/profile.json (worker/run_profile.h), printed after
  // the phase table.
  std::string Summary(const EvalReport& report, const RunSettings& settings, const RunLayout& layout,
                      const std::string& command_line, const std::vector<std::string>& profile_lines = {}) const;

 private:
  struct Phase {
    std::string label;
    std::string unit;
    std::uint64_t total = 0;
    std::uint64_t done = 0;      // completed tasks' contribution
    double seconds = 0.0;        // wall time spent in this process
    std::string last_suffix;
    std::vector<NamedValue> last_metrics;
    double peak_rss_mib = 0.0;   // the largest measured over the phase's tasks (0: none)
    double peak_anon_mib = 0.0;  // the same for anonymous memory (mapped files excluded)
    double peak_gpu_mib = 0.0;   // the training device's allocations (--device cuda; 0: none)
  };
  static std::string PhaseKey(TaskType t);  // sorts in protocol order
  std::uint64_t TaskSize(const TaskSpec& t) const;

  const Plan& plan_;
  std::ostream* out_;
  std::map<std::string, Phase> phases_;
  std::string current_;
  std::unique_ptr<ProgressBar> bar_;
  std::chrono::steady_clock::time_point phase_start_;
  std::map<int, double> align_loss_;  // layer -> last L2 loss
};

}  // namespace radlads
