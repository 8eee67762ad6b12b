// The plan summary: a human table for the terminal and the JSON document written to
// RUN/plan.json (schema "radlads.plan" version 1, documented in docs/planner.md), plus the
// small number formatters the planner's messages share.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "coordinator/plan.h"
#include "coordinator/task.h"

namespace radlads {

inline constexpr const char* kPlanSchema = "radlads.plan";
inline constexpr int kPlanSchemaVersion = 1;

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
// naming `source` and the task when the document is not a radlads.plan v1 or a task is malformed.
Result<std::vector<TaskSpec>> ParsePlanTasks(std::string_view json_text, std::string_view source);

// The first place two plan documents differ, as "layout.tp: 8 (old) vs 4 (new)"; "" if equal.
std::string DescribePlanDifference(const nlohmann::json& old_plan, const nlohmann::json& new_plan);

}  // namespace radlads
