// Everything a process of a run needs before it can run tasks: the run config, the teacher,
// the token datasets, the plan and the task environment (worker/task_env.h). Two ways in:
//
// - The coordinator (`radlads-coord run CONFIG --run RUN/`): validates every input before it
//   writes anything, plans (cli/run_directory.h: the format check, the same-plan check, the
//   memory re-check on another host), tokenizes text inputs into RUN/data/ with the teacher's
//   tokenizer (storage/text_tokenizer.h TextTokenizer::ForRun), and writes RUN/
//   (format, inputs/ with a copy of the run config as inputs/run.yaml, plan.json last).
// - A worker (`radlads-worker RUN/`): writes nothing. It reads the run config copy named in
//   RUN/plan.json (relative paths resolve against the original config's directory), loads the
//   same inputs, re-plans with the planning host's memory recorded in plan.json, and requires
//   the result to equal RUN/plan.json, so coordinator and workers execute the same plan. Text
//   inputs are read from RUN/data/, where the coordinator tokenized them.
//
// Errors name the file, the field and what was expected; a worker started on a run directory
// that `run` did not prepare (no run config copy) is refused saying so.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "cli/run_directory.h"
#include "configs/run_settings.h"
#include "pipeline/model_io.h"
#include "plan/plan.h"
#include "storage/student_config.h"
#include "storage/token_dataset.h"
#include "worker/task_env.h"

namespace radlads {

struct RunSetup {
  RunSettings settings;
  std::string teacher_dir;
  std::optional<Qwen2Teacher> teacher;
  PlanInputs inputs;
  RunDirectoryPlan planned;
  StudentConfig student;
  std::optional<TokenDataset> train, heldout;
  std::int64_t started_unix_ms = 0;

  const Plan& plan() const { return planned.plan; }
  // The task environment over this setup (which must outlive it).
  TaskEnv Env(const std::string& run_dir);
};

// The coordinator's way in (see above). `host_memory_gib`: this host's RAM (nullopt: probe).
// `cluster`: a cluster name or path that replaces the run config's ("": keep it); workers take
// the cluster the plan recorded. `check_plan` (optional): the caller's own checks of the plan,
// run after planning and before anything is written; its error is returned as is.
Result<std::unique_ptr<RunSetup>> PrepareRunAsCoordinator(const std::string& config_path,
                                                          const std::string& run_dir,
                                                          std::optional<double> host_memory_gib,
                                                          const std::string& cluster = "",
                                                          const std::function<Status(const Plan&)>& check_plan = {});

// A worker's way in (see above).
Result<std::unique_ptr<RunSetup>> OpenRunAsWorker(const std::string& run_dir);

}  // namespace radlads
