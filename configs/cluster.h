// Cluster layouts: configs/clusters/<name>.yaml describe the machines a run gets (nodes, GPUs or
// CPU workers per node, GPU memory and peak throughput), how gang tasks (step 2 `distill`, step 3
// `finetune`) are laid out over them (tensor x pipeline x data parallel), the disk budget of the
// step-1 activation cache, the checkpoint interval, and optional cost, interconnect and Slurm
// settings. The planner reads them (docs/design.md §3).
//
// Contract:
// - Strict reading as in configs/yaml_reader.h; every message is "<file>:<line>: <key>: ...".
// - Workers: one per GPU, or `cpu_workers` per node when gpus_per_node is 0. Gang tasks use all
//   of them: parallel.tp · parallel.pp · parallel.dp must equal WorkerCount() exactly (dp may be
//   left out and is then WorkerCount() / (tp · pp)). Per-layer step-1 tasks run one per worker.
// - Checks that need the model (TP dividing the head count, memory fit, PP dividing the layers)
//   belong to the planner, not here.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "configs/yaml_reader.h"

namespace radlads {

struct ClusterGpu {
  std::string name;
  double memory_gib = 0.0;        // usable device memory per GPU
  double peak_tflops_bf16 = 0.0;  // dense (no sparsity) bf16 peak per GPU
};

struct ClusterParallel {
  std::int64_t tp = 1;  // tensor parallel (within a node in practice)
  std::int64_t pp = 1;  // pipeline stages
  std::int64_t dp = 0;  // data-parallel replicas; resolved by the reader, never 0 afterwards
};

struct ClusterCheckpoint {
  std::int64_t every_steps = 0;     // 0: not by steps
  std::int64_t every_minutes = 30;  // 0: not by time
  std::int64_t keep_last = 2;       // checkpoints kept per chain (cli/checkpoint_janitor.h), >= 1
};

struct ClusterInterconnect {
  double intra_node_gbps = 0.0;  // GB/s per GPU, bidirectional, between GPUs of a node; 0: unknown
  double inter_node_gbps = 0.0;  // GB/s per GPU across nodes; 0: unknown or single node
};

struct ClusterSlurm {
  std::string partition;
  std::string account;     // "" = the user's default
  std::string time_limit;  // Slurm syntax: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM[:SS]"
  bool requeue = true;
  std::int64_t signal_lead_seconds = 300;  // at least this long: SIGUSR1 before the limit (drain);
                                           // `submit` raises it to the plan's drain estimate
  std::int64_t max_restarts_without_progress = 3;  // a job that restarts this many times in a row
                                                   // without a commit stops requeueing and fails
};

struct Cluster {
  std::string name;  // file stem
  std::string description;
  std::int64_t nodes = 1;
  std::int64_t gpus_per_node = 0;
  std::int64_t cpu_workers = 0;   // worker processes per node when gpus_per_node is 0
  std::optional<ClusterGpu> gpu;  // present exactly when gpus_per_node > 0
  ClusterParallel parallel;
  double cache_disk_budget_gib = 0.0;
  ClusterCheckpoint checkpoint;
  std::optional<double> cost_per_gpu_hour_usd;
  std::optional<ClusterInterconnect> interconnect;
  std::optional<ClusterSlurm> slurm;

  bool HasGpus() const { return gpus_per_node > 0; }
  std::int64_t WorkersPerNode() const { return HasGpus() ? gpus_per_node : cpu_workers; }
  std::int64_t WorkerCount() const { return nodes * WorkersPerNode(); }
};

// Parses cluster YAML text; `source` names the file in messages.
Result<Cluster> ParseClusterYaml(std::string_view text, std::string_view source);

// Loads a cluster layout by name ("8x-h100") or path (configs/config_files.h).
Result<Cluster> LoadCluster(std::string_view name_or_path);

// The cluster schema's reference rows (docs/configs.md).
std::vector<config::FieldDoc> ClusterFieldDocs();

}  // namespace radlads
