// The task DAG of a plan (docs/design.md §3, docs/planner.md): building it once the layout,
// the steps and the step-1 segments are decided, checking its structure, and estimating each
// task's time. Pure functions over a Plan.
#pragma once

#include <vector>

#include "contract/task.h"
#include "plan/plan.h"

namespace radlads {

// transfer(l) per layer; per segment, cache(s, p) per stage and align(l, s) per layer; then
// distill, finetune (when enabled), export and eval. Topological order; ids of contract/task.h.
std::vector<TaskSpec> BuildPlanTasks(const Plan& plan);

}  // namespace radlads
