// A terminal progress bar for long phases (pretraining, cache writes, alignment, KD).
//
//   align   [##########>.........]  52%  1.05M/2.00M tok  41.2k tok/s  ETA 0:23  loss 0.1234
//
// On a terminal the line is redrawn in place (at most 10 times a second); when stderr is not a
// terminal (CI logs, Slurm output files) one plain line is printed every `log_every_s` seconds
// and at the end, so logs stay readable. Rates are averaged over the whole phase.
// Not thread-safe: one owner updates it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <string>

namespace radlads {

class ProgressBar {
 public:
  // `unit` is the short name of what is counted ("tok", "B", "steps").
  ProgressBar(std::string label, std::uint64_t total, std::string unit, std::FILE* out = stderr,
              double log_every_s = 10.0);
  // Writes plain lines (as for a file that is not a terminal) to `out`, which must outlive it.
  ProgressBar(std::string label, std::uint64_t total, std::string unit, std::ostream& out,
              double log_every_s = 10.0);
  ~ProgressBar();  // Finish() if not yet finished

  // Sets the absolute count done and an optional free-form suffix ("loss 0.1234").
  void Update(std::uint64_t done, const std::string& suffix = "");
  // Work already done before this bar started (a resumed phase): shown in the count and the
  // percentage, excluded from the rate and the ETA.
  void SetBase(std::uint64_t done) { base_ = done; done_ = done; }
  // Prints the final line with the total time. Idempotent.
  void Finish(const std::string& suffix = "");

  double ElapsedSeconds() const;

  // Formatting helpers, exposed for tests and summaries.
  static std::string HumanCount(double v);      // 1234567 -> "1.23M"
  static std::string HumanDuration(double s);   // 83 -> "1:23", 3700 -> "1:01:40"
  std::string Render(std::uint64_t done, const std::string& suffix, int width) const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  std::uint64_t total_;
  std::string unit_;
  void Write(const std::string& text);
  std::FILE* out_ = nullptr;
  std::ostream* stream_ = nullptr;  // instead of out_
  double log_every_s_;
  bool tty_;
  bool finished_ = false;
  std::uint64_t done_ = 0;
  std::uint64_t base_ = 0;
  std::string suffix_;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

}  // namespace radlads
