#include "cli/run_directory.h"

#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "contract/run_layout.h"
#include "plan/plan_report.h"

namespace radlads {
namespace {

std::string Gib(std::optional<double> g) {
  if (!g) return "an unknown amount of";
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f GiB of", *g);
  return b;
}

}  // namespace

Result<RunDirectoryPlan> PlanRunDirectory(PlanInputs inputs, const PlanOptions& options,
                                          const std::string& run_dir,
                                          std::optional<double> host_memory_gib) {
  RunDirectoryPlan out;
  const RunLayout run{run_dir};
  const std::string plan_path = run.Abs(RunLayout::PlanFile());
  if (run_dir.empty() || !PathExists(plan_path)) {
    inputs.host_memory_gib = host_memory_gib;
    RADLADS_ASSIGN_OR_RETURN(out.plan, BuildPlan(inputs, options));
    return out;
  }
  RADLADS_RETURN_IF_ERROR(CheckRunFormat(run_dir));
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(plan_path));
  RADLADS_ASSIGN_OR_RETURN(std::optional<double> planned, ParsePlannedHostMemory(text, plan_path));
  inputs.host_memory_gib = planned;
  RADLADS_ASSIGN_OR_RETURN(out.plan, BuildPlan(inputs, options));
  if (planned != host_memory_gib) {
    PlanInputs here = inputs;
    here.host_memory_gib = host_memory_gib;
    Result<Plan> check = BuildPlan(here, options);
    if (!check.ok()) {
      return Status::InvalidArgument(run_dir + " was planned on a host with " + Gib(planned) +
                                     " memory; this host has " + Gib(host_memory_gib) +
                                     " memory and the plan does not fit it: " +
                                     check.status().message());
    }
    out.notes.push_back(run_dir + " was planned on a host with " + Gib(planned) +
                        " memory; this host has " + Gib(host_memory_gib) +
                        " memory and the plan still fits");
  }
  return out;
}

Status WriteRunDirectory(const Plan& plan, const PlanInputs& inputs, const std::string& run_dir,
                         std::vector<std::string>* notes) {
  const RunLayout run{run_dir};
  RADLADS_RETURN_IF_ERROR(CheckRunFormat(run_dir));
  const std::string plan_path = run.Abs(RunLayout::PlanFile());
  const std::string text = PlanJsonText(plan);
  if (PathExists(plan_path)) {
    RADLADS_ASSIGN_OR_RETURN(std::string old_text, ReadFileToString(plan_path));
    nlohmann::json old_json = nlohmann::json::parse(old_text, nullptr, /*allow_exceptions=*/false);
    if (old_json.is_discarded()) {
      return Status::FailedPrecondition(plan_path + " exists but is not valid JSON; move it away "
                                        "or use another run directory");
    }
    const nlohmann::json new_json = nlohmann::json::parse(text);
    const std::string diff = DescribePlanDifference(old_json, new_json);
    if (!diff.empty() && DescribeProtocolDifference(old_json, new_json).empty()) {
      auto layout_of = [](const nlohmann::json& j) {
        const nlohmann::json& l = j.value("layout", nlohmann::json::object());
        return "tp " + std::to_string(l.value("tp", 0)) + " x pp " + std::to_string(l.value("pp", 0)) + " x dp " +
               std::to_string(l.value("dp", 0)) + " on cluster " + j["inputs"].value("cluster", std::string("?"));
      };
      if (notes != nullptr) {
        notes->push_back(run_dir + " was planned for " + layout_of(old_json) + "; it continues as " +
                         layout_of(new_json) + " (the same conversion; checkpoints load into any layout)");
      }
    } else if (!diff.empty()) {
      return Status::FailedPrecondition(plan_path + " holds a different plan (" + diff +
                                        "); use a new run directory, or remove " + run_dir +
                                        " to re-plan from scratch");
    }
  }
  RADLADS_RETURN_IF_ERROR(CreateDirectories(run.Abs(RunLayout::InputsDir())));
  RADLADS_RETURN_IF_ERROR(FsyncDirectory(run_dir));
  RADLADS_RETURN_IF_ERROR(FsyncDirectory(DirName(run_dir)));
  RADLADS_RETURN_IF_ERROR(WriteRunFormat(run_dir));
  for (const PlanInputFile& f : inputs.files) {
    const std::string path = run.Abs(f.copy);
    Result<std::string> existing = ReadFileToString(path);
    if (existing.ok() && *existing == f.content) continue;
    RADLADS_RETURN_IF_ERROR(AtomicWriteFile(path, f.content));
  }
  // plan.json last: its presence means RUN/ is complete.
  Result<std::string> existing = ReadFileToString(plan_path);
  if (existing.ok() && *existing == text) return Status::Ok();
  return AtomicWriteFile(plan_path, text);
}

}  // namespace radlads
