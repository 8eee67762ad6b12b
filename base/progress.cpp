#include "base/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ostream>

namespace radlads {
namespace {

int TerminalWidth(std::FILE* out) {
  struct winsize ws;
  if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
  return 100;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, std::uint64_t total, std::string unit, std::FILE* out,
                         double log_every_s)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      out_(out),
      log_every_s_(log_every_s),
      tty_(isatty(fileno(out)) != 0),
      start_(Clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

ProgressBar::ProgressBar(std::string label, std::uint64_t total, std::string unit, std::ostream& out,
                         double log_every_s)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      stream_(&out),
      log_every_s_(log_every_s),
      tty_(false),
      start_(Clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

ProgressBar::~ProgressBar() { Finish(suffix_); }

void ProgressBar::Write(const std::string& text) {
  if (stream_ != nullptr) {
    *stream_ << text << std::flush;
    return;
  }
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
}

double ProgressBar::ElapsedSeconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

std::string ProgressBar::HumanCount(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof(buf), "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof(buf), "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

std::string ProgressBar::HumanDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  auto total = static_cast<long long>(s + 0.5);
  long long h = total / 3600, m = (total / 60) % 60, sec = total % 60;
  char buf[32];
  if (h > 0) std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", h, m, sec);
  else std::snprintf(buf, sizeof(buf), "%lld:%02lld", m, sec);
  return buf;
}

std::string ProgressBar::Render(std::uint64_t done, const std::string& suffix, int width) const {
  double elapsed = ElapsedSeconds();
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 1.0;
  const std::uint64_t fresh = done > base_ ? done - base_ : 0;
  double rate = elapsed > 0 ? static_cast<double>(fresh) / elapsed : 0.0;
  double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : -1;
  char stats[160];
  std::snprintf(stats, sizeof(stats), " %3d%%  %s/%s %s  %s %s/s  ETA %s",
                static_cast<int>(frac * 100), HumanCount(static_cast<double>(done)).c_str(),
                HumanCount(static_cast<double>(total_)).c_str(), unit_.c_str(),
                HumanCount(rate).c_str(), unit_.c_str(), HumanDuration(eta).c_str());
  std::string tail = stats;
  if (!suffix.empty()) tail += "  " + suffix;
  std::string head = label_ + " ";
  int bar_w = std::clamp(width - static_cast<int>(head.size() + tail.size()) - 2, 10, 40);
  int filled = static_cast<int>(frac * bar_w);
  std::string bar = "[";
  for (int i = 0; i < bar_w; ++i) bar += i < filled ? '#' : (i == filled ? '>' : '.');
  bar += "]";
  return head + bar + tail;
}

void ProgressBar::Update(std::uint64_t done, const std::string& suffix) {
  if (finished_) return;
  done_ = done;
  suffix_ = suffix;
  auto now = Clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_) {
    if (since < 0.1) return;
    Write("\r" + Render(done, suffix, TerminalWidth(out_)) + "\033[K");
  } else {
    if (since < log_every_s_) return;
    Write(Render(done, suffix, 120) + "\n");
  }
  last_draw_ = now;
}

void ProgressBar::Finish(const std::string& suffix) {
  if (finished_) return;
  finished_ = true;
  std::string line = Render(done_, suffix.empty() ? suffix_ : suffix, tty_ ? TerminalWidth(out_) : 120);
  line += "  (" + HumanDuration(ElapsedSeconds()) + ")";
  Write(tty_ ? "\r" + line + "\033[K\n" : line + "\n");
}

}  // namespace radlads
