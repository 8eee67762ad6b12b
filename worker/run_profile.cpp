#include "worker/run_profile.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "storage/json_fields.h"

namespace radlads {
namespace {

constexpr int kProfileFormat = 1;
constexpr const char* kProfileDir = "profile";

// Rounding slack when checking that families fit inside their phase: the JSON keeps
// microseconds, and sums of rounded values can exceed the rounded total by a little.
constexpr double kSumSlackSeconds = 1e-3;

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Micro(double s) { return std::round(s * 1e6) / 1e6; }

bool KnownPhase(std::string_view name) {
  const auto& all = ProfilePhases();
  return std::find(all.begin(), all.end(), name) != all.end();
}

nlohmann::json FamiliesJson(const PhaseTotals& p, bool with_other) {
  nlohmann::json f = nlohmann::json::object();
  for (int i = 0; i < profile::kFamilies; ++i) {
    f[std::string(profile::FamilyName(static_cast<profile::Family>(i)))] = Micro(p.family_seconds[i]);
  }
  if (with_other) f["other"] = Micro(p.OtherSeconds());
  return f;
}

Status NonNegative(double v, const std::string& source, const std::string& field) {
  if (!std::isfinite(v) || v < 0) {
    return Status::InvalidArgument(source + ": " + field + ": expected a finite number of seconds >= 0, got " +
                                   std::to_string(v));
  }
  return Status::Ok();
}

Result<PhaseTotals> ParsePhase(const nlohmann::json& obj, const std::string& source, const std::string& phase) {
  const std::string where = "phases." + phase;
  if (!obj.is_object()) return Status::InvalidArgument(source + ": " + where + ": expected an object");
  for (const char* key : {"tasks", "seconds"}) {
    if (!obj.contains(key)) return Status::InvalidArgument(source + ": " + where + "." + key + ": missing");
  }
  JsonFields f(obj, source + ": " + where);
  PhaseTotals t;
  RADLADS_RETURN_IF_ERROR(f.Int("tasks", &t.tasks));
  RADLADS_RETURN_IF_ERROR(f.Number("seconds", &t.seconds));
  if (t.tasks < 0) {
    return Status::InvalidArgument(source + ": " + where + ".tasks: expected >= 0, got " + std::to_string(t.tasks));
  }
  RADLADS_RETURN_IF_ERROR(NonNegative(t.seconds, source, where + ".seconds"));
  const auto fam = obj.find("families");
  if (fam == obj.end() || !fam->is_object()) {
    return Status::InvalidArgument(source + ": " + where + ".families: expected an object of seconds per op family");
  }
  double sum = 0;
  for (const auto& [name, value] : fam->items()) {
    int index = -1;
    for (int i = 0; i < profile::kFamilies; ++i) {
      if (profile::FamilyName(static_cast<profile::Family>(i)) == name) index = i;
    }
    if (index < 0) {
      return Status::InvalidArgument(source + ": " + where + ".families: unknown op family '" + name + "'");
    }
    if (!value.is_number()) {
      return Status::InvalidArgument(source + ": " + where + ".families." + name + ": expected a number");
    }
    t.family_seconds[index] = value.get<double>();
    RADLADS_RETURN_IF_ERROR(NonNegative(t.family_seconds[index], source, where + ".families." + name));
    sum += t.family_seconds[index];
  }
  if (sum > t.seconds + kSumSlackSeconds) {
    return Status::InvalidArgument(source + ": " + where + ".families: they add up to " + std::to_string(sum) +
                                   " s, more than the phase's " + std::to_string(t.seconds) + " s");
  }
  return t;
}

std::string Percent(double part, double whole) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.0f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return buf;
}

std::vector<std::pair<std::string, PhaseTotals>> BySeconds(const std::map<std::string, PhaseTotals>& phases) {
  std::vector<std::pair<std::string, PhaseTotals>> v(phases.begin(), phases.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  return v;
}

// A phase's families and "other", largest first.
std::vector<std::pair<std::string, double>> FamiliesBySeconds(const PhaseTotals& p) {
  std::vector<std::pair<std::string, double>> v;
  for (int i = 0; i < profile::kFamilies; ++i) {
    v.emplace_back(std::string(profile::FamilyName(static_cast<profile::Family>(i))), p.family_seconds[i]);
  }
  v.emplace_back("other", p.OtherSeconds());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return v;
}

}  // namespace

const std::vector<std::string>& ProfilePhases() {
  static const std::vector<std::string> kPhases = {"setup",    "transfer", "cache", "align",     "distill",
                                                   "finetune", "export",   "eval",  "scheduling"};
  return kPhases;
}

double PhaseTotals::OtherSeconds() const {
  double s = seconds;
  for (double f : family_seconds) s -= f;
  return std::max(0.0, s);
}

PhaseTotals& PhaseTotals::operator+=(const PhaseTotals& o) {
  tasks += o.tasks;
  seconds += o.seconds;
  for (int i = 0; i < profile::kFamilies; ++i) family_seconds[i] += o.family_seconds[i];
  return *this;
}

ProcessProfile::ProcessProfile(std::string process, std::string id, std::string path)
    : path_(std::move(path)),
      start_(std::chrono::steady_clock::now()),
      mark_(start_),
      mark_counters_(profile::Snapshot()) {
  data_.process = std::move(process);
  data_.id = std::move(id);
}

void ProcessProfile::Charge(std::string_view phase, std::int64_t tasks) {
  const auto now = std::chrono::steady_clock::now();
  const profile::Counters counters = profile::Snapshot();
  const profile::Counters delta = counters - mark_counters_;
  PhaseTotals& t = data_.phases[std::string(phase)];
  t.tasks += tasks;
  t.seconds += Seconds(now - mark_);
  for (int i = 0; i < profile::kFamilies; ++i) t.family_seconds[i] += static_cast<double>(delta.ns[i]) * 1e-9;
  mark_ = now;
  mark_counters_ = counters;
}

ProcessProfileData ProcessProfile::Data() const {
  ProcessProfileData d = data_;
  d.wall_seconds = Seconds(std::chrono::steady_clock::now() - start_);
  return d;
}

Status ProcessProfile::Save() const {
  RADLADS_RETURN_IF_ERROR(CreateDirectories(DirName(path_)));
  return AtomicWriteFile(path_, ProcessProfileJson(Data()));
}

std::string ProcessProfile::FileName(std::string_view process, std::string_view id) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::string safe_id;
  for (char c : id) safe_id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return std::string(kProfileDir) + "/" + std::string(process) + "-" + safe_id + "-" + std::to_string(getpid()) +
         "-" + std::to_string(ms) + ".json";
}

std::string ProcessProfileJson(const ProcessProfileData& p) {
  nlohmann::json j;
  j["format"] = kProfileFormat;
  j["process"] = p.process;
  j["id"] = p.id;
  j["wall_seconds"] = Micro(p.wall_seconds);
  nlohmann::json phases = nlohmann::json::object();
  for (const auto& [name, t] : p.phases) {
    phases[name] = {{"tasks", t.tasks}, {"seconds", Micro(t.seconds)}, {"families", FamiliesJson(t, false)}};
  }
  j["phases"] = std::move(phases);
  return j.dump(1) + "\n";
}

Result<ProcessProfileData> ParseProcessProfile(std::string_view text, std::string_view source_view) {
  const std::string source(source_view);
  RADLADS_ASSIGN_OR_RETURN(const nlohmann::json j, ParseJsonObject(text, source));
  for (const char* key : {"format", "process", "id", "wall_seconds"}) {
    if (!j.contains(key)) return Status::InvalidArgument(source + ": " + key + ": missing");
  }
  JsonFields f(j, source);
  std::int64_t format = 0;
  RADLADS_RETURN_IF_ERROR(f.Int("format", &format));
  if (format != kProfileFormat) {
    return Status::InvalidArgument(source + ": format: expected " + std::to_string(kProfileFormat) + ", got " +
                                   std::to_string(format));
  }
  ProcessProfileData p;
  RADLADS_RETURN_IF_ERROR(f.String("process", &p.process));
  if (p.process != "run" && p.process != "worker") {
    return Status::InvalidArgument(source + ": process: expected \"run\" or \"worker\", got \"" + p.process + "\"");
  }
  RADLADS_RETURN_IF_ERROR(f.String("id", &p.id));
  RADLADS_RETURN_IF_ERROR(f.Number("wall_seconds", &p.wall_seconds));
  RADLADS_RETURN_IF_ERROR(NonNegative(p.wall_seconds, source, "wall_seconds"));
  const auto phases = j.find("phases");
  if (phases == j.end() || !phases->is_object()) {
    return Status::InvalidArgument(source + ": phases: expected an object of phases");
  }
  double sum = 0;
  for (const auto& [name, value] : phases->items()) {
    if (!KnownPhase(name)) return Status::InvalidArgument(source + ": phases: unknown phase '" + name + "'");
    RADLADS_ASSIGN_OR_RETURN(PhaseTotals t, ParsePhase(value, source, name));
    sum += t.seconds;
    p.phases[name] = t;
  }
  if (sum > p.wall_seconds + kSumSlackSeconds) {
    return Status::InvalidArgument(source + ": phases: they add up to " + std::to_string(sum) +
                                   " s, more than wall_seconds " + std::to_string(p.wall_seconds));
  }
  return p;
}

Result<RunProfile> MergeRunProfiles(const std::string& run_dir) {
  RunProfile r;
  const std::string dir = JoinPath(run_dir, kProfileDir);
  if (!IsDirectory(dir)) return r;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) return Status::IOError(dir + ": cannot list the profile files");
  std::vector<std::string> names;
  while (dirent* e = readdir(d.get())) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.ends_with(".json")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = JoinPath(dir, name);
    Result<std::string> text = ReadFileToString(path);
    Result<ProcessProfileData> p =
        text.ok() ? ParseProcessProfile(*text, path) : Result<ProcessProfileData>(text.status());
    if (!p.ok()) {
      r.skipped.push_back(p.status().message());
      continue;
    }
    ++r.processes;
    if (p->process == "run") r.wall_seconds += p->wall_seconds;
    for (const auto& [phase, t] : p->phases) r.phases[phase] += t;
  }
  return r;
}

std::string RunProfileJson(const RunProfile& r) {
  nlohmann::json j;
  j["format"] = kProfileFormat;
  j["wall_seconds"] = Micro(r.wall_seconds);
  j["processes"] = r.processes;
  PhaseTotals total;
  nlohmann::json phases = nlohmann::json::array();
  for (const auto& [name, t] : BySeconds(r.phases)) {
    total += t;
    phases.push_back({{"phase", name}, {"tasks", t.tasks}, {"seconds", Micro(t.seconds)},
                      {"families", FamiliesJson(t, true)}});
  }
  j["phases"] = std::move(phases);
  j["families"] = FamiliesJson(total, true);
  j["worker_seconds"] = Micro(total.seconds);
  j["skipped"] = r.skipped;
  return j.dump(1) + "\n";
}

std::vector<std::string> RunProfileTopLines(const RunProfile& r, int n) {
  std::vector<std::string> lines;
  double worker_seconds = 0;
  for (const auto& [name, t] : r.phases) worker_seconds += t.seconds;
  char buf[256];
  std::snprintf(buf, sizeof buf, "profile: %.1f s wall, %.1f s in %d process%s (output/profile.json)", r.wall_seconds,
                worker_seconds, r.processes, r.processes == 1 ? "" : "es");
  lines.emplace_back(buf);
  int shown = 0;
  for (const auto& [name, t] : BySeconds(r.phases)) {
    if (shown++ == n) break;
    std::string line;
    std::snprintf(buf, sizeof buf, "  %-10s %8.1f s %4s ", name.c_str(), t.seconds,
                  Percent(t.seconds, worker_seconds).c_str());
    line = buf;
    int fams = 0;
    for (const auto& [fam, s] : FamiliesBySeconds(t)) {
      if (fams++ == 3 || s <= 0) break;
      line += " " + fam + " " + Percent(s, t.seconds);
    }
    lines.push_back(line);
  }
  return lines;
}

}  // namespace radlads
