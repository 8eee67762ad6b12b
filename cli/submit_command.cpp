#include "cli/submit_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <regex>
#include <sstream>

#include "base/file.h"
#include "cli/run_setup.h"
#include "cli/slurm_job.h"
#include "configs/cluster.h"
#include "configs/config_files.h"
#include "configs/run_settings.h"
#include "contract/run_layout.h"
#include "plan/drain_estimate.h"

namespace radlads {

extern const char kJobTemplateText[];

namespace {

// Characters a path may hold to go into #SBATCH lines and the script unquoted.
bool SafeForScript(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-' ||
           c == '+' || c == ',' || c == '=' || c == ':' || c == '@';
  });
}

std::string SelfExecutable() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("radlads-coord") : p.string();
}

std::string Absolute(const std::string& p) { return std::filesystem::absolute(p).lexically_normal().string(); }

// The cluster file the run config (or --cluster) names.
Result<std::string> ClusterFile(const SubmitArgs& a) {
  if (!a.cluster.empty()) {
    if (a.cluster.find('/') != std::string::npos || a.cluster.ends_with(".yaml")) {
      return ResolveConfigPath(ConfigKind::kCluster, Absolute(a.cluster));
    }
    return ResolveConfigPath(ConfigKind::kCluster, a.cluster);
  }
  RADLADS_ASSIGN_OR_RETURN(const RunSettings rs, LoadRunSettings(a.config));
  const std::string ref = rs.cluster.find('/') != std::string::npos ? rs.Resolve(rs.cluster) : rs.cluster;
  return ResolveConfigPath(ConfigKind::kCluster, ref);
}

// --nodes N: the layout's text with `nodes:` and `parallel.dp` rewritten, checked by the reader.
Result<std::string> ClusterWithNodes(const std::string& path, const Cluster& c, int nodes) {
  const std::int64_t workers = static_cast<std::int64_t>(nodes) * c.WorkersPerNode();
  const std::int64_t shard = c.parallel.tp * c.parallel.pp;
  if (workers % shard != 0) {
    return Status::InvalidArgument("--nodes " + std::to_string(nodes) + ": " + std::to_string(workers) +
                                   " workers, which tp " + std::to_string(c.parallel.tp) + " x pp " +
                                   std::to_string(c.parallel.pp) + " (" + path + ") does not divide");
  }
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const std::regex nodes_line(R"(^nodes:[ \t]*[0-9]+)", std::regex::multiline);
  const std::regex dp_line(R"(^([ \t]+)dp:[ \t]*[0-9]+)", std::regex::multiline);
  if (!std::regex_search(text, nodes_line)) {
    return Status::InvalidArgument(path + ": no top-level `nodes:` line to rewrite for --nodes");
  }
  text = std::regex_replace(text, nodes_line, "nodes: " + std::to_string(nodes));
  text = std::regex_replace(text, dp_line, "$1dp: " + std::to_string(workers / shard));
  text = "# Written by radlads-coord submit --nodes " + std::to_string(nodes) + " from " + path +
         ": nodes and parallel.dp changed.\n" + text;
  RADLADS_RETURN_IF_ERROR(ParseClusterYaml(text, path + " with --nodes " + std::to_string(nodes)).status());
  return text;
}

std::string Line(const std::string& directive, const std::string& comment) { return directive + "\n# " + comment; }

}  // namespace

const char* BuiltinJobTemplate() { return kJobTemplateText; }

Result<std::string> RenderTemplate(const std::string& tmpl, const std::map<std::string, std::string>& values) {
  std::string out;
  std::map<std::string, int> used;
  std::size_t i = 0;
  while (i < tmpl.size()) {
    const std::size_t open = tmpl.find("{{", i);
    if (open == std::string::npos) {
      out.append(tmpl, i);
      break;
    }
    const std::size_t close = tmpl.find("}}", open + 2);
    if (close == std::string::npos) return Status::InvalidArgument("job template: '{{' without '}}'");
    out.append(tmpl, i, open - i);
    const std::string name = tmpl.substr(open + 2, close - open - 2);
    auto it = values.find(name);
    if (it == values.end()) return Status::InvalidArgument("job template: no value for {{" + name + "}}");
    out += it->second;
    ++used[name];
    i = close + 2;
  }
  for (const auto& [name, v] : values) {
    if (used.count(name) == 0) return Status::InvalidArgument("job template: {{" + name + "}} is never used");
  }
  return out;
}

int RunSubmitCommand(const SubmitArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  auto fail = [&](const Status& st) {
    err << "radlads-coord submit: " << st.ToString() << "\n";
    return ExitCodeFor(st);
  };
  const std::string run_dir = Absolute(args.run_dir);
  const std::string config = Absolute(args.config);
  for (const auto& [what, p] : {std::pair<std::string, std::string>{"--run", run_dir}, {"CONFIG", config}}) {
    if (!SafeForScript(p)) {
      return fail(Status::InvalidArgument(what + " '" + p + "': the job script takes paths of letters, digits "
                                                 "and / . _ - + , = : @ only"));
    }
  }
  if (args.nodes < 0) return fail(Status::InvalidArgument("--nodes must be >= 1"));

  // ---- the cluster layout (and its --nodes variant) ----
  Result<std::string> cluster_path = ClusterFile(args);
  if (!cluster_path.ok()) return fail(cluster_path.status());
  Result<Cluster> cluster = LoadCluster(*cluster_path);
  if (!cluster.ok()) return fail(cluster.status());
  std::string cluster_arg = args.cluster.empty() ? "" : Absolute(*cluster_path);
  const RunLayout layout{run_dir};
  if (args.nodes > 0 && args.nodes != cluster->nodes) {
    Result<std::string> text = ClusterWithNodes(*cluster_path, *cluster, args.nodes);
    if (!text.ok()) return fail(text.status());
    (void)CreateDirectories(layout.Abs("slurm"));
    cluster_arg = layout.Abs("slurm/cluster.yaml");
    if (Status s = AtomicWriteFile(cluster_arg, *text); !s.ok()) return fail(s);
  }

  // ---- validate and plan exactly as the job's `run` will (exit 2 before anything is queued) ----
  Result<std::unique_ptr<RunSetup>> setup = PrepareRunAsCoordinator(config, run_dir, args.host_memory_gib, cluster_arg);
  if (!setup.ok()) return fail(setup.status());
  const Plan& plan = (*setup)->plan();
  for (const std::string& n : (*setup)->planned.notes) err << "note: " << n << "\n";
  const Cluster& c = plan.cluster;
  const std::int64_t workers = c.WorkerCount();
  for (const TaskSpec& t : plan.tasks) {
    if (t.workers > workers) {
      return fail(Status::InvalidArgument("the plan's gang needs " + std::to_string(t.workers) + " workers; " +
                                          std::to_string(c.nodes) + " nodes x " + std::to_string(c.WorkersPerNode()) +
                                          " have " + std::to_string(workers)));
    }
  }
  const ClusterSlurm slurm = c.slurm.value_or(ClusterSlurm{});
  const std::string partition = !args.partition.empty() ? args.partition : slurm.partition;
  const std::string account = !args.account.empty() ? args.account : slurm.account;
  const std::string time = !args.time.empty() ? args.time : slurm.time_limit;
  if (time.empty()) {
    return fail(Status::InvalidArgument("no time limit: pass --time or set slurm.time_limit in " + *cluster_path +
                                        " (the drain warning is timed against it)"));
  }
  const std::optional<std::int64_t> limit_s = ParseSlurmDuration(time);
  if (!limit_s.has_value() && time != "UNLIMITED" && time != "INFINITE") {
    return fail(Status::InvalidArgument("--time '" + time + "': expected a Slurm time (\"MM\", \"HH:MM:SS\", "
                                        "\"D-HH:MM:SS\") or UNLIMITED"));
  }
  const DrainEstimate drain = EstimateDrain(plan);
  const std::int64_t lead = SignalLeadSeconds(drain, slurm.signal_lead_seconds);
  if (limit_s.has_value() && lead >= *limit_s) {
    return fail(Status::InvalidArgument("the drain warning must come " + std::to_string(lead) +
                                        " s before the time limit (" + drain.Describe() + "), but the limit is " +
                                        time + ": ask for more time"));
  }
  for (const std::string& v : {partition, account, time}) {
    if (!v.empty() && !SafeForScript(v)) return fail(Status::InvalidArgument("'" + v + "': not a Slurm name or time"));
  }

  // ---- render ----
  std::string tmpl = BuiltinJobTemplate();
  if (!args.template_path.empty()) {
    Result<std::string> t = ReadFileToString(args.template_path);
    if (!t.ok()) return fail(t.status());
    tmpl = *t;
  }
  std::ostringstream submit_line;
  submit_line << "Submitted as: radlads-coord submit " << config << " --run " << run_dir;
  if (!cluster_arg.empty()) submit_line << " (cluster " << cluster_arg << ")";
  const std::string coord = args.coord_binary.empty() ? SelfExecutable() : Absolute(args.coord_binary);
  std::string extra = "# Extra sbatch arguments (command line, after --): ";
  if (args.sbatch_args.empty()) extra += "none";
  for (const std::string& a : args.sbatch_args) extra += a + " ";
  const std::map<std::string, std::string> values = {
      {"SUBMIT_COMMAND", submit_line.str()},
      {"NO_PROGRESS", std::to_string(slurm.max_restarts_without_progress)},
      {"GEOMETRY", std::to_string(c.nodes) + " nodes x " + std::to_string(c.WorkersPerNode()) +
                       (c.HasGpus() ? " GPUs" : " CPU workers") + " = " + std::to_string(workers) +
                       " worker ranks; gang layout tp " + std::to_string(plan.layout.tp) + " x pp " +
                       std::to_string(plan.layout.pp) + " x dp " + std::to_string(plan.layout.dp)},
      {"JOB_NAME", args.job_name.empty() ? "radlads-" + BaseName(run_dir) : args.job_name},
      {"NODES", std::to_string(c.nodes)},
      {"CLUSTER", plan.cluster_name},
      {"TASKS_PER_NODE", std::to_string(c.WorkersPerNode())},
      {"TASK_UNIT", c.HasGpus() ? "GPU" : "CPU worker (cpu_workers)"},
      {"GPU_LINE", c.HasGpus() ? Line("#SBATCH --gpus-per-node=" + std::to_string(c.gpus_per_node),
                                      "GPUs per node (" + (c.gpu ? c.gpu->name : std::string("GPU")) + ").")
                               : "# No GPUs: a CPU cluster (gpus_per_node 0)."},
      {"PARTITION_LINE", partition.empty() ? "# No partition: the cluster's default."
                                           : Line("#SBATCH --partition=" + partition, "Partition to run in.")},
      {"ACCOUNT_LINE", account.empty() ? "# No account: the user's default."
                                       : Line("#SBATCH --account=" + account, "Account charged.")},
      {"TIME", time},
      {"LEAD", std::to_string(lead)},
      {"LEAD_DERIVATION", "max(slurm.signal_lead_seconds " + std::to_string(slurm.signal_lead_seconds) +
                              ", 2 x drain estimate + " + std::to_string(kDrainMarginSeconds) + " s); drain: " +
                              drain.Describe()},
      {"RUN_DIR", run_dir},
      {"EXTRA_LINES", extra},
      {"COORD", coord},
      {"CONFIG", config},
      {"CLUSTER_ARG", cluster_arg.empty() ? "" : " --cluster " + cluster_arg},
      {"WORKERS", std::to_string(workers)},
  };
  Result<std::string> script = RenderTemplate(tmpl, values);
  if (!script.ok()) return fail(script.status());
  const std::string script_path = layout.Abs("slurm/job.sbatch");
  (void)CreateDirectories(layout.Abs("slurm"));
  if (Status s = AtomicWriteFile(script_path, *script); !s.ok()) return fail(s);
  ::chmod(script_path.c_str(), 0755);

  if (args.dry_run) {
    out << *script;
    err << "not submitted (--dry-run); the job script is " << script_path << "\n";
    return kExitOk;
  }
  std::vector<std::string> argv = {args.sbatch, "--parsable"};
  argv.insert(argv.end(), args.sbatch_args.begin(), args.sbatch_args.end());
  argv.push_back(script_path);
  Result<std::string> job = RunAndCapture(argv, 60'000);
  if (!job.ok()) return fail(Status::Unavailable("sbatch failed: " + job.status().message()));
  std::string id = *job;
  id = id.substr(0, id.find_first_of(";\n"));
  out << "submitted job " << id << " (" << script_path << "); watch it with: radlads-coord status " << run_dir
      << " --watch 10\n";
  return kExitOk;
}

}  // namespace radlads
