// A run directory's plan: writing it the first time, and checking it on every later start
// (`radlads-coord plan --run RUN/` and `radlads-coord run CONFIG --run RUN/`).
//
// RUN/ is written in this order, each file atomically (base/file.h): RUN/format, the input
// copies (RUN/inputs/recipe.yaml, RUN/inputs/cluster.yaml, RUN/inputs/config.json, for a
// preset also RUN/inputs/model.yaml), then RUN/plan.json last: its presence means RUN/ is
// complete. RUN/secret and RUN/state/ belong to the state store and the server.
//
// The plan is a pure function of its inputs (plan/plan.h). The planning host's memory is one of
// them: the command probes it (base/host_info.h) and the plan records it. On a later start:
// - RUN/'s format must be this build's (contract/run_layout.h CheckRunFormat);
// - the plan is rebuilt from the current inputs and the host memory recorded in RUN/plan.json,
//   and must equal the recorded plan: another recipe, teacher or dataset is refused with the
//   first difference (FailedPrecondition); another layout on workers is accepted (see
//   WriteRunDirectory);
// - when this host's memory differs from the recorded one, the fit is checked again for this
//   host: a plan that no longer fits is refused (InvalidArgument, exit 2) naming both hosts'
//   memory and the shortfall; one that fits goes on, with a note saying so.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "plan/plan.h"

namespace radlads {

struct RunDirectoryPlan {
  Plan plan;
  std::vector<std::string> notes;  // e.g. the memory re-check on a different host
};

// Builds the plan for RUN/ as described above. `host_memory_gib` is this host's (nullopt:
// unknown). Writes nothing.
Result<RunDirectoryPlan> PlanRunDirectory(PlanInputs inputs, const PlanOptions& options,
                                          const std::string& run_dir,
                                          std::optional<double> host_memory_gib);

// Writes RUN/ as described above (idempotent for the same plan). FailedPrecondition when
// RUN/plan.json holds another plan or RUN/ is of another format. A plan that differs only in
// its layout on workers (plan/plan_report.h DescribeProtocolDifference: another cluster or
// --cluster, e.g. tp x pp x dp) replaces the recorded one, with a note in `notes` saying so:
// the run resumes on the new layout from its checkpoints.
Status WriteRunDirectory(const Plan& plan, const PlanInputs& inputs, const std::string& run_dir,
                         std::vector<std::string>* notes = nullptr);

}  // namespace radlads
