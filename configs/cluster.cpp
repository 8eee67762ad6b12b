#include "configs/cluster.h"

#include "configs/config_files.h"
#include "configs/named_config.h"

namespace radlads {
namespace {

using config::ConfigNode;
using config::FieldDoc;
using config::FieldInfo;
using config::IntRange;
using config::MapView;
using config::RealRange;
using config::Schema;
using config::ValueContext;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr IntRange kRanks{1, 1 << 20};
constexpr IntRange kNonNegative{0};
constexpr RealRange kPositiveReal{0.0, kInf, true};
constexpr RealRange kNonNegativeReal{0.0, kInf};

FieldInfo Req(std::string doc, std::string source) {
  return FieldInfo{true, "", std::move(doc), std::move(source)};
}
FieldInfo Opt(std::string def, std::string doc, std::string source) {
  return FieldInfo{false, std::move(def), std::move(doc), std::move(source)};
}

bool AllDigits(std::string_view s, std::size_t min_len, std::size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Slurm --time: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS", or "UNLIMITED".
bool ValidSlurmTime(std::string_view t) {
  if (t == "UNLIMITED" || t == "unlimited" || t == "infinite") return true;
  std::string_view rest = t;
  bool has_days = false;
  if (std::size_t dash = t.find('-'); dash != std::string_view::npos) {
    if (!AllDigits(t.substr(0, dash), 1, 4)) return false;
    rest = t.substr(dash + 1);
    has_days = true;
  }
  std::vector<std::string_view> parts;
  while (true) {
    std::size_t colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest = rest.substr(colon + 1);
  }
  if (parts.size() > 3) return false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool first_unbounded = i == 0 && !has_days && parts.size() < 3;
    if (!AllDigits(parts[i], 1, first_unbounded ? 6 : 2)) return false;
  }
  return true;
}

Status ReadTimeLimit(const ConfigNode& n, const ValueContext& at, ClusterSlurm* s) {
  std::string t;
  RADLADS_RETURN_IF_ERROR(config::ReadStringValue(n, at, &t));
  if (!ValidSlurmTime(t)) {
    return at.Expected("a Slurm time (\"HH:MM:SS\", \"D-HH:MM:SS\", \"MM\" or \"UNLIMITED\")", n);
  }
  s->time_limit = std::move(t);
  return Status::Ok();
}

Status CheckCluster(Cluster* c, const MapView& m) {
  if (c->HasGpus()) {
    if (!m.Has("gpu")) {
      return m.Error("", "missing required key `gpu` (needed when gpus_per_node > 0)");
    }
    if (m.Has("cpu_workers")) {
      return m.Error("cpu_workers",
                     "applies only when gpus_per_node is 0 (one worker per GPU "
                     "otherwise); remove the key");
    }
  } else {
    if (m.Has("gpu")) {
      return m.Error("gpu", "gpus_per_node is 0; remove the gpu block or set gpus_per_node");
    }
    if (c->cpu_workers < 1) {
      return m.Error("cpu_workers",
                     "a CPU-only cluster needs cpu_workers >= 1 (worker "
                     "processes per node)");
    }
    if (m.Has("cost_per_gpu_hour_usd")) {
      return m.Error("cost_per_gpu_hour_usd", "applies only when gpus_per_node > 0");
    }
  }
  const std::int64_t workers = c->WorkerCount();
  ClusterParallel& p = c->parallel;
  if (!m.Has("parallel.dp")) {
    if (workers % (p.tp * p.pp) != 0) {
      const std::string msg = "tp·pp = " + std::to_string(p.tp * p.pp) + " does not divide the " +
                              std::to_string(workers) + " workers";
      return m.Error(m.Has("parallel") ? "parallel" : "", msg);
    }
    p.dp = workers / (p.tp * p.pp);
  }
  if (p.tp * p.pp * p.dp != workers) {
    return m.Error("parallel", "tp·pp·dp = " + std::to_string(p.tp) + "·" + std::to_string(p.pp) +
                                   "·" + std::to_string(p.dp) + " = " +
                                   std::to_string(p.tp * p.pp * p.dp) + " must equal the " +
                                   std::to_string(workers) + " workers (nodes · " +
                                   (c->HasGpus() ? "gpus_per_node" : "cpu_workers") + ")");
  }
  if (c->checkpoint.every_steps == 0 && c->checkpoint.every_minutes == 0) {
    return m.Error("checkpoint", "every_steps and every_minutes are both 0; set at least one");
  }
  return Status::Ok();
}

Schema<Cluster> BuildClusterSchema() {
  Schema<ClusterGpu> gpu;
  gpu.String("name", &ClusterGpu::name, Req("GPU model, for reports.", "vendor datasheet"));
  gpu.Real("memory_gib", &ClusterGpu::memory_gib, kPositiveReal,
           Req("Device memory per GPU in GiB.", "vendor datasheet"));
  gpu.Real("peak_tflops_bf16", &ClusterGpu::peak_tflops_bf16, kPositiveReal,
           Req("Dense bf16 peak per GPU in TFLOP/s (no sparsity), for the time model.",
               "vendor datasheet"));

  Schema<ClusterParallel> par;
  par.Int("tp", &ClusterParallel::tp, kRanks, Opt("1", "Tensor-parallel ranks.", "docs/design.md §3"));
  par.Int("pp", &ClusterParallel::pp, kRanks, Opt("1", "Pipeline stages.", "docs/design.md §3"));
  par.Int("dp", &ClusterParallel::dp, kRanks,
          Opt("workers / (tp·pp)", "Data-parallel replicas; tp·pp·dp = workers.", "docs/design.md §3"));

  Schema<ClusterCheckpoint> ckpt;
  ckpt.Int(
      "every_steps", &ClusterCheckpoint::every_steps, kNonNegative,
      Opt("0", "Checkpoint gang tasks every N optimizer steps; 0: not by steps.", "docs/design.md §3"));
  ckpt.Int("every_minutes", &ClusterCheckpoint::every_minutes, kNonNegative,
           Opt("30", "Checkpoint at least every N minutes; 0: not by time.", "docs/design.md §3"));
  ckpt.Int("keep_last", &ClusterCheckpoint::keep_last, IntRange{1, 1000},
           Opt("2", "Checkpoints kept per task chain (the newest and fallbacks); older ones are deleted once "
                    "newer commits are durable. Each step's final result is always kept.",
               "docs/design.md §6"));

  Schema<ClusterInterconnect> net;
  net.Real("intra_node_gbps", &ClusterInterconnect::intra_node_gbps, kNonNegativeReal,
           Opt("0 (unknown)", "GPU-to-GPU bandwidth inside a node, GB/s per GPU.", "datasheet"));
  net.Real("inter_node_gbps", &ClusterInterconnect::inter_node_gbps, kNonNegativeReal,
           Opt("0 (unknown)", "Network bandwidth between nodes, GB/s per GPU.", "datasheet"));

  Schema<ClusterSlurm> slurm;
  slurm.String("partition", &ClusterSlurm::partition, Req("sbatch --partition.", "-"));
  slurm.String("account", &ClusterSlurm::account,
               Opt("\"\" (user default)", "sbatch --account.", "-"));
  slurm.Custom("time_limit", "string", "Slurm time syntax",
               Req("sbatch --time, e.g. \"24:00:00\" or \"2-00:00:00\".", "-"), ReadTimeLimit);
  slurm.Bool("requeue", &ClusterSlurm::requeue,
             Opt("true", "sbatch --requeue: a preempted or timed-out job resumes.", "docs/design.md §1"));
  slurm.Int(
      "signal_lead_seconds", &ClusterSlurm::signal_lead_seconds, IntRange{10, 3600},
      Opt("300", "sbatch --signal=B:USR1@N: drain warning before the time limit; the floor of the lead "
                 "`submit` derives from the plan's drain estimate.", "README \"Running on a Slurm cluster\""));
  slurm.Int("max_restarts_without_progress", &ClusterSlurm::max_restarts_without_progress, IntRange{1, 1000},
            Opt("3", "A job that restarts this many times in a row without committing anything fails instead "
                     "of requeueing again.", "README \"Running on a Slurm cluster\""));

  Schema<Cluster> s;
  s.String("description", &Cluster::description,
           Opt("\"\"", "One line describing the cluster, shown by `plan`.", "-"));
  s.Int("nodes", &Cluster::nodes, IntRange{1, 100000},
        Req("Nodes in the allocation.", "docs/design.md §3"));
  s.Int("gpus_per_node", &Cluster::gpus_per_node, IntRange{0, 64},
        Req("GPUs per node; 0 for a CPU-only (local) cluster.", "docs/design.md §5"));
  s.Int("cpu_workers", &Cluster::cpu_workers, IntRange{1, 1024},
        Opt("0; required when gpus_per_node is 0",
            "Worker processes per node on a CPU-only "
            "cluster.",
            "docs/design.md §1, §5"));
  s.OptionalStruct<ClusterGpu>("gpu", &Cluster::gpu, gpu,
                               Opt("required when gpus_per_node > 0", "The GPU model.", "-"));
  s.Struct<ClusterParallel>(
      "parallel", &Cluster::parallel, par,
      Opt("tp 1, pp 1, dp = workers", "Layout of gang tasks (steps 2 and 3).", "docs/design.md §3"));
  s.Real(
      "cache_disk_budget_gib", &Cluster::cache_disk_budget_gib, kPositiveReal,
      Req("Disk the step-1 activation cache may use, GiB; bounds resident segments.", "docs/design.md §3"));
  s.Struct<ClusterCheckpoint>(
      "checkpoint", &Cluster::checkpoint, ckpt,
      Opt("every 30 minutes", "Checkpoint interval of gang tasks.", "docs/design.md §3"));
  s.Real(
      "cost_per_gpu_hour_usd",
      [](Cluster& c) -> double& { return c.cost_per_gpu_hour_usd.emplace(); }, kNonNegativeReal,
      Opt("none (no cost estimate)", "Price of one GPU-hour, for the cost estimate.", "docs/spec.md §5"));
  s.OptionalStruct<ClusterInterconnect>("interconnect", &Cluster::interconnect, net,
                                        Opt("none", "Bandwidths for the cost model.", "-"));
  s.OptionalStruct<ClusterSlurm>(
      "slurm", &Cluster::slurm, slurm,
      Opt("none (local run)", "Slurm submission settings.", "docs/design.md §1"));
  s.Check(CheckCluster);
  return s;
}

const Schema<Cluster>& ClusterSchema() {
  static const Schema<Cluster> schema = BuildClusterSchema();
  return schema;
}

}  // namespace

Result<Cluster> ParseClusterYaml(std::string_view text, std::string_view source) {
  return ParseNamedConfig(text, source, ClusterSchema());
}

Result<Cluster> LoadCluster(std::string_view name_or_path) {
  return LoadNamedConfig(ConfigKind::kCluster, name_or_path, ClusterSchema());
}

std::vector<config::FieldDoc> ClusterFieldDocs() { return ClusterSchema().Docs(); }

}  // namespace radlads
