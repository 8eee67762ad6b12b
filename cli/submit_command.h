// `radlads-coord submit CONFIG --run RUN [--cluster C] [--nodes N] [--partition P] [--time T]
//  [--account A] [--dry-run] [-- extra sbatch arguments]`: a conversion as a Slurm job
// (README "Running on a Slurm cluster").
//
// 1. Validates and plans exactly as `run` does (cli/run_setup.h) and writes RUN/; whatever does
//    not fit or is invalid exits 2 before anything is queued. --nodes N other than the cluster
//    layout's writes RUN/slurm/cluster.yaml: the layout with `nodes: N` and dp scaled to the
//    new worker count (tp and pp kept; refused when tp * pp does not divide it).
// 2. Renders RUN/slurm/job.sbatch from the job template (slurm/radlads-job.sbatch.in, built into
//    this binary; --template FILE for a site's own): nodes, one task per GPU or CPU worker,
//    --requeue, --signal=B:USR1@LEAD with LEAD = SignalLeadSeconds(EstimateDrain(plan),
//    slurm.signal_lead_seconds) (plan/drain_estimate.h), partition, account and time from the
//    flags or the layout's `slurm:` section, and the coordinator's command line. A LEAD that
//    does not fit in the time limit is refused (exit 2).
// 3. Without --dry-run, submits it: `sbatch --parsable [extra arguments] RUN/slurm/job.sbatch`,
//    and prints the job id. With --dry-run, prints the script instead.
// Paths with whitespace or shell metacharacters are refused (exit 2): they go into #SBATCH lines.
// The flags are parsed with CLI11 in cli/radlads_coord_main.cpp; this file keeps CLI11 out.
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace radlads {

struct SubmitArgs {
  std::string config;
  std::string run_dir;
  std::string cluster;                  // --cluster NAME|PATH (default: the run config's)
  int nodes = 0;                        // --nodes N (0: the layout's)
  std::string partition, time, account; // --partition, --time, --account (default: the layout's slurm:)
  std::string job_name;                 // --job-name (default: radlads-<run dir name>)
  bool dry_run = false;                 // --dry-run
  std::vector<std::string> sbatch_args; // after --
  std::string template_path;            // --template FILE ("" : the built-in template)
  std::string sbatch = "sbatch";
  std::string coord_binary;             // the radlads-coord the job runs (default: this executable)
  std::optional<double> host_memory_gib;  // tests
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

int RunSubmitCommand(const SubmitArgs& args);

// The built-in job template (slurm/radlads-job.sbatch.in).
const char* BuiltinJobTemplate();
// Replaces every {{NAME}} of `tmpl` by values[NAME]. InvalidArgument naming a placeholder that
// has no value, or a value that is not used.
Result<std::string> RenderTemplate(const std::string& tmpl, const std::map<std::string, std::string>& values);

}  // namespace radlads
