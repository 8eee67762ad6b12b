// The planner (docs/design.md §1 step 1, §3): from a recipe, a teacher config, a dataset size and a
// cluster layout, build the run's task DAG and check that it can run: every layer covered, the
// token budgets exact, the parallel layout valid for the model, every task within a worker's
// memory, the step-1 activation cache within the disk budget. The rules are in docs/planner.md.
//
// Contract:
// - BuildPlan is a pure function of its inputs (no file I/O): the same inputs give the same
//   Plan, field by field and task by task (RUN/plan.json relies on it for idempotence).
// - Errors are InvalidArgument and say what to change: the key or flag, the numbers, and for a
//   layout that is invalid or does not fit, the layouts that do (SuggestLayouts), searching the
//   cluster's workers first and then larger allocations of the same node type.
// - Tasks are in a topological order; ids are the ones of contract/task.h.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "configs/cluster.h"
#include "configs/recipe.h"
#include "contract/task.h"
#include "plan/cost_model.h"
#include "plan/memory_model.h"
#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads {

// The dataset: its token count, and where it is (empty for a what-if plan from a count).
struct PlanData {
  std::string path;
  std::string format;  // "binidx", "npy", ... or "" when only a count was given
  std::uint64_t tokens = 0;
};

// A file the run was planned from; RUN/inputs/<copy> holds `content`.
struct PlanInputFile {
  std::string role;     // "recipe", "cluster", "model_config", "model_preset"
  std::string source;   // where it was read ("" when generated)
  std::string copy;     // "inputs/recipe.yaml", ...
  std::string content;
};

struct PlanInputs {
  Recipe recipe;
  std::string recipe_name;
  Qwen2Config teacher;
  std::string model_name;    // preset name or the checkpoint directory
  Cluster cluster;
  std::string cluster_name;
  PlanData data;
  // RAM of the host that plans (GiB, MemTotal), probed by the command (base/host_info.h); the
  // per-node memory of a CPU cluster unless PlanOptions::cpu_memory_gib says otherwise. nullopt:
  // unknown (the planner assumes 16 GiB and says so). Recorded in plan.json as an input.
  std::optional<double> host_memory_gib;
  std::vector<PlanInputFile> files;     // may be empty (tests, what-if plans)
  std::vector<std::string> warnings;    // found while loading (carried into the plan)
};

struct PlanOptions {
  std::optional<ClusterParallel> layout;  // replaces cluster.parallel (dp 0: derived)
  bool auto_layout = false;    // take the best fitting layout when the requested one fails
  std::int64_t segment_steps = 0;  // step-1 optimizer steps per segment; 0: the rule
  bool allow_data_repeats = false; // a step may sample more windows than the data holds
  std::optional<double> cpu_memory_gib;  // RAM per node of a CPU cluster; default: the host's
  int max_candidates = 5;
  MemoryModelOptions memory;
  CostModelOptions cost;
};

enum class LayoutSource { kCluster, kOverride, kAuto };
// "cluster", "override", "auto".
const char* LayoutSourceName(LayoutSource s);

// Layers [first_layer, last_layer) of pipeline stage `stage`.
struct StageRange {
  int stage = 0;
  int first_layer = 0;
  int last_layer = 0;
  int layers() const { return last_layer - first_layer; }
};

// One enabled protocol step as planned.
struct StepPlan {
  RecipeStepKind kind = RecipeStepKind::kAlign;
  std::int64_t tokens = 0, seq_len = 0, batch = 0;
  std::int64_t micro_batch = 0;   // sequences per forward (align: per task; gang: per DP replica)
  std::int64_t grad_accum = 0;    // micro-batches per optimizer step (per task / per DP replica)
  std::int64_t optimizer_steps = 0;
  std::int64_t samples = 0;       // windows consumed: tokens / seq_len
  std::uint64_t unique_windows = 0;  // distinct windows the sampler can give at this seq_len
  std::uint64_t magic_prime = 0;     // 0 for the sequential sampler
  std::int64_t workers = 1;       // 1 for step-1 tasks; tp * pp * dp for gang steps
};

// A step-1 token segment: optimizer steps [first_step, first_step + steps), i.e. global
// samples [sample_begin, sample_end).
struct Segment {
  int index = 0;
  std::int64_t steps = 0;
  std::int64_t sample_begin = 0, sample_end = 0;
  std::int64_t tokens = 0;
  std::int64_t cache_bytes = 0;  // all stages
};

struct CachePlan {
  std::int64_t bytes_per_token = 0;   // CacheBytesPerToken
  std::int64_t step_bytes = 0;        // one optimizer step of tokens
  std::int64_t budget_bytes = 0;      // cache_disk_budget_gib
  std::int64_t total_bytes = 0;       // the whole step-1 cache
  std::int64_t window = 0;            // W: segments resident at once (= segments when kept)
  bool kept = false;                  // the budget holds the whole cache
  std::int64_t min_segment_steps = 0, max_segment_steps = 0;
  std::string rule;                   // how the segment size was chosen
  std::vector<Segment> segments;
};

struct Plan {
  // Resolved inputs.
  Recipe recipe;
  std::string recipe_name;
  Qwen2Config teacher;
  std::string model_name;
  StudentConfig student;
  Cluster cluster;  // parallel = the layout used
  std::string cluster_name;
  PlanData data;
  std::optional<double> host_memory_gib;  // as given in PlanInputs
  std::vector<PlanInputFile> files;  // content cleared; checksums below
  std::vector<std::string> file_checksums;  // parallel to files

  ModelSizes sizes;
  ClusterParallel layout;
  LayoutSource layout_source = LayoutSource::kCluster;
  std::vector<StageRange> stages;
  std::vector<StepPlan> steps;  // enabled steps, protocol order
  CachePlan cache;
  WorkerMemory worker;                 // one worker's memory
  std::vector<MemoryBreakdown> memory; // cache task, align task, distill rank, finetune rank
  PlanOptions options;                 // as given to BuildPlan
  CostModelOptions cost;               // = options.cost
  RunEstimate estimate;
  std::vector<TaskSpec> tasks;         // topological order
  std::vector<std::string> warnings;
  std::vector<std::string> notes;

  const StepPlan* Step(RecipeStepKind kind) const;
  std::map<TaskType, int> TaskCounts() const;
  const StageRange& StageOfLayer(int layer) const;
};

// A layout that fits, for error messages and --auto-layout.
struct LayoutCandidate {
  std::int64_t nodes = 1;
  ClusterParallel layout;
  std::int64_t distill_micro_batch = 0;   // 0: step disabled
  std::int64_t finetune_micro_batch = 0;
  double peak_bytes = 0.0;      // the largest gang rank of steps 2-3
  double usable_bytes = 0.0;
  double gang_seconds = 0.0;    // estimated steps 2 + 3
  // "tp 8 x pp 1 x dp 1, distill micro-batch 8: 168.1 of 172.8 GiB, steps 2-3 ~55.1 h"
  std::string Describe() const;
};

// The student a recipe builds from a teacher (flags and resolved LoRA ranks).
StudentConfig StudentConfigFromRecipe(const Recipe& recipe, const Qwen2Config& teacher);

// `pp` contiguous stages whose layer counts differ by at most one (the first layers % pp
// stages get one more). Precondition: 1 <= pp <= layers.
std::vector<StageRange> BalancedStages(int layers, int pp);

// Model-dependent checks of a TP x PP x DP layout: tp * pp * dp = workers, tp divides the
// attention heads, the KV heads (no KV-head replication), the MLP width and the vocabulary,
// pp <= layers, dp divides the gang steps' batches; no o_proj bias with tp > 1 (it would be
// added once per rank after the row-parallel o_proj) and no tied embeddings with pp > 1 (the
// embedding would live on two stages). InvalidArgument naming the rule.
Status CheckLayout(const Qwen2Config& teacher, const Recipe& recipe, const Cluster& cluster,
                   const ClusterParallel& layout);

// Layouts (and micro-batches) whose steps 2-3 fit, best first (estimated time, then fewer
// stages, then smaller tp): first over the cluster's own workers; when none fits there, over
// the smallest larger allocation of the same nodes that has one (`nodes` says how many).
std::vector<LayoutCandidate> SuggestLayouts(const PlanInputs& inputs, const PlanOptions& options);

// Builds and validates the plan. InvalidArgument for anything the user must change.
Result<Plan> BuildPlan(const PlanInputs& inputs, const PlanOptions& options = {});

// The structural invariants of a plan's DAG: unique ids, deps exist and come first (a
// topological order), every layer covered exactly once by the stages and by each segment's
// align tasks, align(l, s) depends on cache(s, stage(l)) and align(l, s-1) (transfer(l) for
// s = 0), segments partition step 1's samples, per-step token sums exact. Internal on failure.
Status ValidatePlanGraph(const Plan& plan);

// Estimated seconds of one task on its workers (0 for transfer, export, eval).
double EstimateTaskSeconds(const Plan& plan, const TaskSpec& task);

}  // namespace radlads
