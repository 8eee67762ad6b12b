// The planner's time and cost model (docs/planner.md, "Cost model").
//
// Model FLOPs per token of each protocol step, from the shapes (ModelSizes):
//   step 1 (align):    teacher forward through every layer (the cache tasks) + every layer's
//                      student mixer forward + backward (the align tasks);
//   step 2 (distill):  teacher forward incl. its LM head + student forward + backward incl. its
//                      LM head;
//   step 3 (finetune): student forward + backward at the long context.
// A matmul of W elements costs 2W per token forward and 4W backward; causal attention costs
// 2*A*T per token per layer forward; the chunked recurrences use docs/kernels.md §4. Recompute under
// activation checkpointing is not counted (MFU convention: model FLOPs).
//
// Time = FLOPs / (workers * peak * utilisation), with one utilisation (MFU) per step type, times
// the pipeline bubble for gang steps, and for step 1 bounded by how many tasks can run at once
// (L layer chains; cache production limited by the resident window). Cost = worker-hours *
// cost_per_gpu_hour_usd when the cluster gives a price.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "configs/cluster.h"
#include "configs/recipe.h"
#include "plan/memory_model.h"

namespace radlads {

// Model-FLOPs utilisation (fraction of the dense bf16 datasheet peak) per step type. Justified
// and compared with the paper in docs/planner.md; the same values for every model size.
struct StepUtilisation {
  double align = 0.08;
  double distill = 0.15;
  double finetune = 0.15;

  double For(RecipeStepKind kind) const;
};

struct CostModelOptions {
  StepUtilisation mfu;
  // Peak of one CPU worker process (fp32, its threads), for CPU-only clusters; a documented
  // rough figure: the tiny default's estimates are only indicative.
  double cpu_worker_peak_tflops = 0.05;
  // Sustained read+write bandwidth of the step-1 cache storage per node, GB/s; 0 = unknown (the
  // cluster files do not say): the I/O volume is reported but not turned into time.
  double storage_gbps_per_node = 0.0;
};

// FLOPs per token split into the teacher's and the student's share.
struct FlopsPerToken {
  double teacher = 0.0;
  double student = 0.0;
  double total() const { return teacher + student; }
};

// One teacher layer's forward per token at sequence length T (matmuls + causal attention).
double TeacherLayerForwardFlops(const ModelSizes& s, std::int64_t seq_len);
// One student mixer's forward + backward per token (matmuls + chunked recurrence).
double MixerTrainFlops(const ModelSizes& s);
// Recurrence forward + backward per token per head (docs/kernels.md §4, chunked forms).
double RecurrenceTrainFlopsPerHead(const ModelSizes& s);

FlopsPerToken AlignFlopsPerToken(const ModelSizes& s, std::int64_t seq_len);
FlopsPerToken DistillFlopsPerToken(const ModelSizes& s, std::int64_t seq_len);
FlopsPerToken FinetuneFlopsPerToken(const ModelSizes& s, std::int64_t seq_len);

// Peak FLOP/s of one worker: the GPU's dense bf16 peak, or cpu_worker_peak_tflops.
double WorkerPeakFlops(const Cluster& c, const CostModelOptions& o);

struct StepEstimate {
  RecipeStepKind kind = RecipeStepKind::kAlign;
  std::int64_t tokens = 0;
  FlopsPerToken flops_per_token;
  double flops = 0.0;
  double utilisation = 0.0;
  std::int64_t workers = 0;
  double bubble = 1.0;           // gang steps: (m + pp - 1) / m
  double compute_seconds = 0.0;
  double io_bytes = 0.0;         // step 1: cache written + read back + align-task state I/O
  double io_seconds = 0.0;       // 0 when the storage bandwidth is unknown
  double seconds = 0.0;          // max(compute, io)
  std::string bound;             // what limits the step
  // Step 1: the longest align task and cache task; gang steps: one optimizer step.
  double align_task_seconds = 0.0;
  double cache_task_seconds = 0.0;
  double optimizer_step_seconds = 0.0;
};

// What step 1's time depends on besides the FLOPs.
struct Step1Shape {
  std::int64_t segments = 1;
  std::int64_t window = 1;      // resident segments W
  bool cache_kept = false;      // W >= segments
  std::int64_t max_segment_tokens = 0;
  std::vector<std::int64_t> layers_per_stage;  // cache stages
  std::int64_t cache_bytes_per_token = 0;
  // Optimizer state the align tasks load and commit: tasks x 24 B x mixer parameters.
  double state_io_bytes = 0.0;
};

StepEstimate EstimateAlignStep(const ModelSizes& s, const RecipeStep& step, const Step1Shape& shape,
                               const Cluster& c, const CostModelOptions& o);

// Step 2 (with teacher) or step 3 on a TP x PP x DP gang with `grad_accum` micro-batches per
// optimizer step per DP replica.
StepEstimate EstimateGangStep(const ModelSizes& s, const RecipeStep& step,
                              const ClusterParallel& layout, std::int64_t grad_accum,
                              const Cluster& c, const CostModelOptions& o);

struct RunEstimate {
  std::vector<StepEstimate> steps;
  double seconds = 0.0;
  double worker_hours = 0.0;            // seconds * workers / 3600 (the allocation is held)
  std::optional<double> cost_usd;       // when the cluster has cost_per_gpu_hour_usd
};

RunEstimate SumEstimates(std::vector<StepEstimate> steps, const Cluster& c);

}  // namespace radlads
