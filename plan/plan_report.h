// The plan summary: a human table for the terminal and the JSON document written to
// RUN/plan.json (schema "radlads.plan" version 2, documented in docs/planner.md), plus the
// small number formatters the planner's messages share. Each task in plan.json is the task
// spec's JSON encoding (contract/json_codec.h) plus its estimated seconds.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "contract/task.h"
#include "plan/plan.h"

namespace radlads {

inline constexpr const char* kPlanSchema = "radlads.plan";
// 2: every task field is written (the task spec's derived JSON), and the planning host's memory
//    is an input (inputs.host_memory_gib). Version 1 documents are refused, naming both.
inline constexpr int kPlanSchemaVersion = 2;

// "1,234,567".
std::string FormatCount(std::int64_t v);
// "172.8 GiB" (one decimal; "0.35 GiB" below 1 GiB).
std::string FormatGiB(double bytes);
// "7.25 h", "42 min", "12 s".
std::string FormatDuration(double seconds);

// The human table (several lines, ends with a newline).
std::string FormatPlanTable(const Plan& plan);

// The whole plan, every task included.
nlohmann::json PlanToJson(const Plan& plan);
// PlanToJson serialised with a 2-space indent and a final newline (RUN/plan.json's bytes).
std::string PlanJsonText(const Plan& plan);

// The tasks of a plan.json document (for the state store and the scheduler). InvalidArgument
// naming `source` and the task when a task is malformed, or naming both versions when the
// document is another version of radlads.plan.
Result<std::vector<TaskSpec>> ParsePlanTasks(std::string_view json_text, std::string_view source);

// The planning host's memory recorded in a plan.json document (inputs.host_memory_gib; nullopt
// when it was unknown). Same errors as ParsePlanTasks.
Result<std::optional<double>> ParsePlannedHostMemory(std::string_view json_text, std::string_view source);

// The first place two plan documents differ, as "layout.tp: 8 (old) vs 4 (new)"; "" if equal.
std::string DescribePlanDifference(const nlohmann::json& old_plan, const nlohmann::json& new_plan);
// The same, ignoring how the plan is laid out on workers: the cluster and run-config inputs,
// the layout, memory, estimates, notes and warnings, the steps' micro-batches, gradient
// accumulation and worker counts, the tasks' gang sizes and time estimates. "" when the two
// plans are the same conversion (the same task graph, data and budgets) on other workers: a
// run may resume on such a plan (docs/design.md §5).
std::string DescribeProtocolDifference(const nlohmann::json& old_plan, const nlohmann::json& new_plan);

}  // namespace radlads
