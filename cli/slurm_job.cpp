#include "cli/slurm_job.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ostream>

#include "base/log.h"
#include "state/scheduler.h"

namespace radlads {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return std::string(s);
}

bool ParseField(std::string_view s, std::int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return std::from_chars(s.data(), s.data() + s.size(), *out).ec == std::errc();
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) return out;
    s.remove_prefix(p + 1);
  }
}

}  // namespace

std::optional<std::int64_t> ParseSlurmDuration(std::string_view text) {
  std::string_view t = text;
  std::int64_t days = 0;
  const bool has_days = t.find('-') != std::string_view::npos;
  if (has_days) {
    const auto dash = t.find('-');
    if (!ParseField(t.substr(0, dash), &days)) return std::nullopt;
    t.remove_prefix(dash + 1);
  }
  const std::vector<std::string_view> parts = Split(t, ':');
  if (parts.size() > 3) return std::nullopt;
  std::int64_t v[3] = {0, 0, 0};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!ParseField(parts[i], &v[i])) return std::nullopt;
  }
  std::int64_t h = 0, m = 0, s = 0;
  if (has_days) {  // D-HH, D-HH:MM, D-HH:MM:SS
    h = v[0];
    m = parts.size() > 1 ? v[1] : 0;
    s = parts.size() > 2 ? v[2] : 0;
  } else if (parts.size() == 1) {  // MM
    m = v[0];
  } else if (parts.size() == 2) {  // MM:SS
    m = v[0];
    s = v[1];
  } else {  // HH:MM:SS
    h = v[0];
    m = v[1];
    s = v[2];
  }
  if ((parts.size() > 1 || has_days) && (m >= 60 || s >= 60)) return std::nullopt;
  if (has_days && h >= 24) return std::nullopt;
  return ((days * 24 + h) * 60 + m) * 60 + s;
}

std::string FormatSlurmDuration(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  const std::int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
  char buf[48];
  if (d > 0) {
    std::snprintf(buf, sizeof(buf), "%lld-%02lld:%02lld:%02lld", static_cast<long long>(d), static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld", static_cast<long long>(h), static_cast<long long>(m),
                  static_cast<long long>(s));
  }
  return buf;
}

Result<std::string> RunAndCapture(const std::vector<std::string>& argv, int timeout_ms) {
  const std::string what = argv.empty() ? std::string("(nothing)") : argv.front();
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Status::Unavailable(what + ": pipe: " + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return Status::Unavailable(what + ": pipe: " + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) return Status::Unavailable(what + ": fork: " + std::strerror(errno));
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    const char msg[] = "cannot execute\n";
    (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    std::_Exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  std::string stdout_text, stderr_text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool out_open = true, err_open = true, timed_out = false;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? stdout_text : stderr_text).append(buf, static_cast<std::size_t>(r));
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return Status::Unavailable(what + ": no answer within " + std::to_string(timeout_ms) + " ms");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string first = Trim(std::string_view(stderr_text).substr(0, stderr_text.find('\n')));
    return Status::Unavailable(what + ": " +
                               (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : "killed") +
                               (first.empty() ? "" : ": " + first));
  }
  return stdout_text;
}

std::optional<JobStart> CurrentSlurmJob(TimeMs now) {
  const std::string id = Env("SLURM_JOB_ID");
  if (id.empty()) return std::nullopt;
  JobStart j;
  j.scheduler = "slurm";
  j.job_id = id;
  std::int64_t restarts = 0;
  if (ParseField(Env("SLURM_RESTART_COUNT"), &restarts)) j.restart = static_cast<int>(restarts);
  j.nodes = Env("SLURM_JOB_NODELIST");
  if (auto left = RunAndCapture({"squeue", "-h", "-j", id, "-o", "%L"}, 3000); left.ok()) {
    if (auto s = ParseSlurmDuration(Trim(*left)); s.has_value()) j.end_ms = now + *s * 1000;
  }
  return j;
}

SlurmJobView QuerySlurmJob(const std::string& job_id, int timeout_ms) {
  SlurmJobView v;
  Result<std::string> q = RunAndCapture({"squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%L|%N|%r"}, timeout_ms);
  const std::string q_line = q.ok() ? Trim(std::string_view(*q).substr(0, q->find('\n'))) : "";
  if (!q_line.empty()) {
    const std::vector<std::string_view> f = Split(q_line, '|');
    v.source = "squeue";
    v.state = f.size() > 0 ? std::string(f[0]) : "";
    v.time_left = f.size() > 1 && v.state == "RUNNING" ? std::string(f[1]) : "";
    if (f.size() > 2 && !f[2].empty()) v.nodes = std::string(f[2]);
    if (v.nodes.empty() && f.size() > 3 && f[3] != "None") v.nodes = "(" + std::string(f[3]) + ")";
    return v;
  }
  // squeue forgets finished jobs after MinJobAge; the accounting store remembers them.
  Result<std::string> a = RunAndCapture({"sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,NodeList"}, timeout_ms);
  if (a.ok() && !Trim(*a).empty()) {
    const std::string line = Trim(std::string_view(*a).substr(0, a->find('\n')));
    const std::vector<std::string_view> f = Split(line, '|');
    v.source = "sacct";
    v.state = std::string(f[0].substr(0, f[0].find(' ')));  // "CANCELLED by 0" -> CANCELLED
    if (f.size() > 1) v.nodes = std::string(f[1]);
    return v;
  }
  v.error = q.ok() ? "squeue does not know job " + job_id : q.status().message();
  if (!a.ok()) v.error += "; " + a.status().message();
  return v;
}

JobStartDecision DecideJobStart(const RunState& s, const JobStart& job, int max_restarts_without_progress) {
  JobStartDecision d;
  const RunStatus& st = s.status();
  if (!st.cancelled.empty() && !job.job_id.empty() && st.cancelled_job == job.job_id) {
    d.outcome = JobStartOutcome::kCancelled;
    d.why = "the run was cancelled while job " + job.job_id + " ran (" + st.cancelled +
            "); this start of the same job does not resume it";
    return d;
  }
  if (job.restart == 0 || max_restarts_without_progress <= 0) return d;
  const std::int64_t now = s.CommitCount();
  int idle = 0;
  for (auto it = st.jobs.rbegin(); it != st.jobs.rend(); ++it) {
    if (it->job_id != job.job_id || it->progress != now) break;
    ++idle;
  }
  if (idle >= max_restarts_without_progress) {
    d.outcome = JobStartOutcome::kNoProgress;
    d.why = "job " + job.job_id + " made no progress in its last " + std::to_string(idle) +
            " starts (nothing committed since commit " + std::to_string(now) + "; the limit is " +
            std::to_string(max_restarts_without_progress) + ", slurm.max_restarts_without_progress)";
    if (!st.reason.empty()) d.why += "; the last drain: " + st.reason;
  }
  return d;
}

int BeginSlurmJobStart(Scheduler& sched, int max_restarts_without_progress, std::ostream& err) {
  std::optional<JobStart> job = CurrentSlurmJob(SystemClock::Default()->NowMs());
  if (!job.has_value()) return -1;
  const RunState s = sched.store()->Snapshot();
  job->progress = s.CommitCount();
  const JobStartDecision d = DecideJobStart(s, *job, max_restarts_without_progress);
  if (d.outcome == JobStartOutcome::kCancelled) job->refused = "cancelled";
  if (d.outcome == JobStartOutcome::kNoProgress) job->refused = d.why;
  if (Status r = sched.RecordJobStart(*job); !r.ok()) {
    err << "error: " << r.message() << "\n";
    return ExitCodeFor(r);
  }
  log::Info("slurm job " + job->job_id + " start " + std::to_string(job->restart + 1) + " on " + job->nodes +
            " (commits so far: " + std::to_string(job->progress) + ")");
  switch (d.outcome) {
    case JobStartOutcome::kResume: return -1;
    case JobStartOutcome::kCancelled:
      err << "cancelled: " << d.why << "; submit or run the same command again to resume\n";
      return kExitCancelled;
    case JobStartOutcome::kNoProgress:
      err << "error: " << d.why << "; not requeueing. Fix the cause (the run's logs, `radlads-coord status`), "
          << "then submit the same command again: the run resumes from its last commit\n";
      return kExitFailure;
  }
  return -1;
}

}  // namespace radlads
