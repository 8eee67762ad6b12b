#include "cli/status_command.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "base/file.h"
#include "contract/run_layout.h"
#include "rpc/client.h"
#include "state/state_store.h"

namespace radlads {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnSigint(int) { g_interrupted.store(true); }

// Installs the Ctrl-C handler for --watch and restores the previous one on destruction.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupted.store(false);
    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    installed_ = sigaction(SIGINT, &sa, &old_) == 0;
  }
  ~SigintGuard() {
    if (installed_) sigaction(SIGINT, &old_, nullptr);
  }

 private:
  struct sigaction old_ {};
  bool installed_ = false;
};

int TerminalWidth() {
  struct winsize ws {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int v = std::atoi(c);
    if (v > 0) return v;
  }
  return 100;
}

bool RunOver(const StatusReport& r) { return r.run.phase == "completed" || r.run.phase == "failed"; }

struct Frame {
  StatusReport report;
  std::string live_json;  // the coordinator's document, as sent (empty: read from disk)
};

}  // namespace

Result<std::string> TryLiveStatus(const std::string& run_dir, int timeout_ms) {
  return FetchStatusJson(run_dir, timeout_ms);
}

Result<StatusReport> ReadDiskStatus(const std::string& run_dir, TimeMs now) {
  if (!IsDirectory(run_dir)) {
    return Status::NotFound(run_dir + ": no such run directory");
  }
  const std::string state_dir = JoinPath(run_dir, RunLayout::StateDir());
  if (!IsDirectory(state_dir)) {
    return Status::NotFound(state_dir + ": no run state yet (the run was planned but no "
                            "coordinator has started on it)");
  }
  Result<RunState> s = StateStore::ReadSnapshot(state_dir);
  if (!s.ok()) {
    if (s.status().code() == Status::Code::kNotFound) {
      return Status::NotFound(state_dir + ": no run state yet (" + s.status().message() + ")");
    }
    return s.status().WithContext("reading " + state_dir);
  }
  if (s->phase() == RunPhase::kEmpty) {
    return Status::NotFound(state_dir + ": the state store holds no run yet");
  }
  return BuildStatusReport(*s, now);
}

int RunStatusCommand(const StatusArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  const Clock* clock = args.clock ? args.clock : SystemClock::Default();
  auto fetch = args.fetch_live ? args.fetch_live : TryLiveStatus;
  const bool default_out = args.out == nullptr || args.out == &std::cout;
  const bool tty = args.tty >= 0 ? args.tty == 1 : default_out && ::isatty(STDOUT_FILENO) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  const bool color = args.color >= 0 ? args.color == 1 : tty && (no_color == nullptr || !*no_color);
  const bool watch = args.watch_s > 0.0;
  auto fail = [&](const Status& s) {
    err << "radlads-coord status: " << s.ToString() << "\n";
    return ExitCodeFor(s);
  };
  if (args.run_dir.empty()) return fail(Status::InvalidArgument("a run directory is required"));
  if (!IsDirectory(args.run_dir)) {
    return fail(Status::NotFound(args.run_dir + ": no such run directory"));
  }

  std::unique_ptr<SigintGuard> sigint;
  if (watch) sigint = std::make_unique<SigintGuard>();
  bool noted = false;
  for (int frame_no = 0;; ++frame_no) {
    Frame f;
    Result<std::string> live = fetch(args.run_dir, args.live_timeout_ms);
    if (live.ok()) {
      Result<StatusReport> r = StatusReportFromJson(*live, "coordinator serving " + args.run_dir);
      if (!r.ok()) return fail(r.status());
      f.report = std::move(*r);
      f.live_json = std::move(*live);
    } else {
      Result<StatusReport> r = ReadDiskStatus(args.run_dir, clock->NowMs());
      if (!r.ok()) return fail(r.status());
      f.report = std::move(*r);
    }
    if (const RunLayout layout{args.run_dir}; IsDirectory(layout.Abs("checkpoints")) || IsDirectory(layout.Abs("cache"))) {
      // Disk use, measured here (the coordinator may be on another node of the same filesystem).
      auto walk = [](const std::string& dir, std::int64_t* files) {
        std::int64_t bytes = 0;
        std::error_code ec;
        for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
          if (it->is_regular_file(ec)) {
            bytes += static_cast<std::int64_t>(it->file_size(ec));
            if (files != nullptr) ++*files;
          }
        }
        return bytes;
      };
      f.report.disk.checkpoint_files = 0;
      f.report.disk.checkpoint_bytes = walk(layout.Abs("checkpoints"), &f.report.disk.checkpoint_files);
      f.report.disk.cache_bytes = walk(layout.Abs("cache"), nullptr);
      if (!f.live_json.empty()) f.live_json = StatusReportToJson(f.report);
    }
    if (!f.report.slurm.job_id.empty()) {
      const SlurmJobView v = args.query_slurm ? args.query_slurm(f.report.slurm.job_id)
                                              : QuerySlurmJob(f.report.slurm.job_id);
      f.report.slurm.state = v.state;
      f.report.slurm.time_left = v.time_left;
      f.report.slurm.live_nodes = v.nodes;
      f.report.slurm.source = v.source;
      f.report.slurm.error = v.error;
      if (!f.live_json.empty()) f.live_json = StatusReportToJson(f.report);
    }
    std::string note;
    if (f.live_json.empty()) {
      const Status::Code c = live.status().code();
      note = c == Status::Code::kNotFound || c == Status::Code::kUnavailable
                 ? "(no coordinator is serving " + args.run_dir + "; showing the last durable state)"
                 : "(the coordinator of " + args.run_dir + " did not answer: " +
                       live.status().ToString() + "; showing the last durable state)";
    }
    std::string text;
    if (args.json) {
      text = f.live_json.empty() ? StatusReportToJson(f.report) : f.live_json;
      if (text.empty() || text.back() != '\n') text += '\n';
      if (!note.empty() && !noted) {
        err << note << "\n";
        noted = !watch || !tty;
      }
    } else {
      const int width = args.width > 0 ? args.width : (tty ? TerminalWidth() : 100);
      text = StatusTable(f.report, width, color);
      if (!note.empty()) {
        if (watch && tty) {
          text += note + "\n";  // redrawn with the screen
        } else if (!noted) {
          err << note << "\n";
          noted = true;
        }
      }
    }
    if (watch && tty && !args.json) {
      out << "\033[H\033[2J" << text << "\n(every " << args.watch_s << " s; Ctrl-C to stop)\n";
    } else {
      if (watch && frame_no > 0 && !args.json) out << "\n";
      out << text;
    }
    out.flush();
    if (!watch || RunOver(f.report)) break;
    if (args.max_frames > 0 && frame_no + 1 >= args.max_frames) break;
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<long long>(args.watch_s * 1000.0));
    while (!g_interrupted.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (g_interrupted.load()) break;
  }
  return kExitOk;
}

}  // namespace radlads
