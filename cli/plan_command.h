// `radlads-coord plan RECIPE --model DIR --data PREFIX --cluster CLUSTER --run RUN/`
// (docs/design.md §1 step 1): resolve the inputs, build and validate the plan (plan/plan.h),
// print it (a table, or --json), and write the run directory (cli/run_directory.h: the same plan
// is a no-op, a different one is refused with the first difference, and a plan made on a host
// with other memory is re-checked for this one). RUN/secret and RUN/state/ belong to the state
// store, not to this command.
//
// The flags are parsed with CLI11 in cli/radlads_coord_main.cpp; this file keeps CLI11 out.
// Exit codes: base/status.h ExitCodeFor (0 ok, 2 invalid input, 1 other failures).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "base/status.h"
#include "plan/plan.h"

namespace radlads {

struct PlanCommandArgs {
  std::string recipe;             // RECIPE: a name in configs/recipes or a path
  std::string model_dir;          // --model DIR: the teacher checkpoint (its config.json)
  std::string model_preset;       // --preset NAME|PATH: plan from a preset (default: the
                                  //   recipe's `teacher` when --model is not given)
  std::string data;               // --data PREFIX|FILE: the tokenized corpus (opened read-only)
  std::int64_t data_tokens = 0;   // --data-tokens N: plan from a token count instead
  std::string cluster;            // --cluster NAME|PATH
  std::string run_dir;            // --run RUN/: "" prints the plan without writing
  bool json = false;              // --json: print the plan document instead of the table
  std::int64_t tp = 0, pp = 0, dp = 0;  // --tp/--pp/--dp: override the cluster's layout (0: keep)
  bool auto_layout = false;       // --auto-layout
  std::int64_t segment_steps = 0; // --segment-steps N
  bool allow_data_repeats = false;  // --allow-data-repeats
  bool check_vocab = true;        // --no-vocab-check turns off the full scan of the tokens
  double storage_gbps = 0.0;      // --storage-gbps: cache storage bandwidth per node, GB/s
  double cpu_memory_gib = 0.0;    // --cpu-memory-gib: RAM per node of a CPU cluster (0: the host's)
  std::optional<double> host_memory_gib;  // this host's RAM (tests; default: base/host_info.h)
  std::ostream* out = nullptr;    // default std::cout
  std::ostream* err = nullptr;    // default std::cerr
};

// Runs the command; returns the process exit code. Errors go to `err` as
// "radlads-coord plan: <Code>: <message>".
int RunPlanCommand(const PlanCommandArgs& args);

// Loads the recipe, the teacher config (checkpoint directory or preset), the cluster and the
// dataset's token count, keeping each file's bytes for RUN/inputs/.
Result<PlanInputs> LoadPlanInputs(const PlanCommandArgs& args);

PlanOptions PlanOptionsFromArgs(const PlanCommandArgs& args);


}  // namespace radlads
