#include "plan/cost_model.h"

#include <algorithm>
#include <utility>

namespace radlads {

double StepUtilisation::For(RecipeStepKind kind) const {
  switch (kind) {
    case RecipeStepKind::kAlign: return align;
    case RecipeStepKind::kDistill: return distill;
    case RecipeStepKind::kFinetune: return finetune;
  }
  return distill;
}

double RecurrenceTrainFlopsPerHead(const ModelSizes& s) {
  const double n = static_cast<double>(s.head_dim);
  const double c = static_cast<double>(s.recurrence_chunk);
  if (s.arch == StudentArch::kRwkv6) {
    // GLA chunked: forward 4N^2 + 4CN; forward + backward with recompute 14N^2 + 12CN.
    return 14.0 * n * n + 12.0 * c * n;
  }
  // DPLR chunked: forward 8N^2 + 18CN; forward + backward with full recompute ~3.5x forward.
  return 3.5 * (8.0 * n * n + 18.0 * c * n);
}

double TeacherLayerForwardFlops(const ModelSizes& s, std::int64_t seq_len) {
  const double matmul = static_cast<double>(s.teacher_attention_matmul + s.mlp);
  // Causal attention: QK^T and AV over (T+1)/2 keys on average, 2 FLOPs per MAC: 2*A*T.
  const double attention = 2.0 * static_cast<double>(s.q_dim) * static_cast<double>(seq_len);
  return 2.0 * matmul + attention;
}

double MixerTrainFlops(const ModelSizes& s) {
  return 6.0 * static_cast<double>(s.mixer_matmul) +
         static_cast<double>(s.heads) * RecurrenceTrainFlopsPerHead(s);
}

namespace {

// Student forward + backward per token: every layer (mixer + MLP) and the LM head.
double StudentTrainFlops(const ModelSizes& s) {
  const double per_layer = MixerTrainFlops(s) + 6.0 * static_cast<double>(s.mlp);
  const double head = 6.0 * static_cast<double>(s.hidden) * static_cast<double>(s.vocab);
  return static_cast<double>(s.layers) * per_layer + head;
}

double Hours(double seconds) { return seconds / 3600.0; }

}  // namespace

FlopsPerToken AlignFlopsPerToken(const ModelSizes& s, std::int64_t seq_len) {
  FlopsPerToken f;
  f.teacher = static_cast<double>(s.layers) * TeacherLayerForwardFlops(s, seq_len);
  f.student = static_cast<double>(s.layers) * MixerTrainFlops(s);
  return f;
}

FlopsPerToken DistillFlopsPerToken(const ModelSizes& s, std::int64_t seq_len) {
  FlopsPerToken f;
  f.teacher = static_cast<double>(s.layers) * TeacherLayerForwardFlops(s, seq_len) +
              2.0 * static_cast<double>(s.hidden) * static_cast<double>(s.vocab);
  f.student = StudentTrainFlops(s);
  return f;
}

FlopsPerToken FinetuneFlopsPerToken(const ModelSizes& s, std::int64_t /*seq_len*/) {
  // The recurrence's chunked cost per token does not grow with T; there is no attention.
  FlopsPerToken f;
  f.student = StudentTrainFlops(s);
  return f;
}

double WorkerPeakFlops(const Cluster& c, const CostModelOptions& o) {
  if (c.HasGpus() && c.gpu.has_value()) return c.gpu->peak_tflops_bf16 * 1e12;
  return o.cpu_worker_peak_tflops * 1e12;
}

StepEstimate EstimateAlignStep(const ModelSizes& s, const RecipeStep& step, const Step1Shape& shape,
                               const Cluster& c, const CostModelOptions& o) {
  StepEstimate e;
  e.kind = RecipeStepKind::kAlign;
  e.tokens = step.tokens;
  e.flops_per_token = AlignFlopsPerToken(s, step.seq_len);
  e.flops = e.flops_per_token.total() * static_cast<double>(step.tokens);
  e.utilisation = o.mfu.align;
  e.workers = c.WorkerCount();
  const double rate = WorkerPeakFlops(c, o) * e.utilisation;
  const double n = static_cast<double>(e.workers);
  const double cache_flops = e.flops_per_token.teacher * static_cast<double>(step.tokens);
  const double align_flops = e.flops_per_token.student * static_cast<double>(step.tokens);

  // Concurrency: align(l, s) chains per layer -> at most L at once. A segment's cache tasks
  // chain over its stages -> one task per segment in production; per stage at most W - 1
  // segments are in production while one is being aligned (all S when the cache is kept).
  const std::int64_t pp = static_cast<std::int64_t>(shape.layers_per_stage.size());
  const double in_production = static_cast<double>(
      shape.cache_kept ? shape.segments
                       : std::min(shape.segments, pp * std::max<std::int64_t>(1, shape.window - 1)));
  const double cache_conc = std::min(n, in_production);
  const double align_conc = std::min(n, static_cast<double>(s.layers));
  const bool overlap = shape.segments >= 2 && (shape.cache_kept || shape.window >= 2);
  const double all = (cache_flops + align_flops) / (n * rate);
  const double cache_t = cache_flops / (cache_conc * rate);
  const double align_t = align_flops / (align_conc * rate);
  if (overlap) {
    e.compute_seconds = std::max({all, cache_t, align_t});
    if (e.compute_seconds == all) {
      e.bound = "compute on all workers";
    } else if (e.compute_seconds == cache_t) {
      e.bound = "cache production (resident window)";
    } else {
      e.bound = "alignment (one task per layer at a time)";
    }
  } else {
    e.compute_seconds = std::max(all, cache_t + align_t);
    e.bound = "cache then alignment (no overlap: window of 1)";
  }
  e.io_bytes = 2.0 * static_cast<double>(step.tokens) * static_cast<double>(shape.cache_bytes_per_token) +
               shape.state_io_bytes;
  if (o.storage_gbps_per_node > 0.0) {
    e.io_seconds = e.io_bytes / (o.storage_gbps_per_node * 1e9 * static_cast<double>(c.nodes));
  }
  e.seconds = e.compute_seconds;
  if (e.io_seconds > e.seconds) {
    e.seconds = e.io_seconds;
    e.bound = "cache I/O";
  }
  std::int64_t max_stage = 0;
  for (std::int64_t l : shape.layers_per_stage) max_stage = std::max(max_stage, l);
  const double seg = static_cast<double>(shape.max_segment_tokens);
  e.align_task_seconds = seg * MixerTrainFlops(s) / rate;
  e.cache_task_seconds =
      seg * static_cast<double>(max_stage) * TeacherLayerForwardFlops(s, step.seq_len) / rate;
  e.optimizer_step_seconds =
      step.OptimizerSteps() > 0 ? e.seconds / static_cast<double>(step.OptimizerSteps()) : 0.0;
  return e;
}

StepEstimate EstimateGangStep(const ModelSizes& s, const RecipeStep& step,
                              const ClusterParallel& layout, std::int64_t grad_accum,
                              const Cluster& c, const CostModelOptions& o) {
  StepEstimate e;
  e.kind = step.kind;
  e.tokens = step.tokens;
  e.flops_per_token = step.kind == RecipeStepKind::kFinetune
                          ? FinetuneFlopsPerToken(s, step.seq_len)
                          : DistillFlopsPerToken(s, step.seq_len);
  e.flops = e.flops_per_token.total() * static_cast<double>(step.tokens);
  e.utilisation = o.mfu.For(step.kind);
  e.workers = layout.tp * layout.pp * layout.dp;
  const double m = static_cast<double>(std::max<std::int64_t>(1, grad_accum));
  e.bubble = (m + static_cast<double>(layout.pp) - 1.0) / m;
  e.compute_seconds = e.flops / (static_cast<double>(e.workers) * WorkerPeakFlops(c, o) *
                                 e.utilisation) * e.bubble;
  e.seconds = e.compute_seconds;
  e.bound = layout.pp > 1 ? "compute (with pipeline bubble)" : "compute";
  e.optimizer_step_seconds =
      step.OptimizerSteps() > 0 ? e.seconds / static_cast<double>(step.OptimizerSteps()) : 0.0;
  return e;
}

RunEstimate SumEstimates(std::vector<StepEstimate> steps, const Cluster& c) {
  RunEstimate r;
  r.steps = std::move(steps);
  for (const StepEstimate& e : r.steps) r.seconds += e.seconds;
  r.worker_hours = Hours(r.seconds) * static_cast<double>(c.WorkerCount());
  if (c.cost_per_gpu_hour_usd.has_value() && c.HasGpus()) {
    r.cost_usd = r.worker_hours * *c.cost_per_gpu_hour_usd;
  }
  return r;
}

}  // namespace radlads
