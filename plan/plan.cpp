#include "plan/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/checksum.h"
#include "plan/plan_report.h"
#include "plan/plan_tasks.h"
#include "storage/window_sampler.h"

namespace radlads {
namespace {

// Segments when the whole cache fits: enough for cache production to overlap alignment and
// for a failed task to lose at most ~1/8 of step 1.
constexpr std::int64_t kMinSegments = 8;
// RAM per node assumed for a CPU cluster when the host's memory is unknown.
constexpr double kDefaultCpuMemoryGib = 16.0;
// Node counts SuggestLayouts tries beyond the cluster's own.
constexpr std::int64_t kMaxNodeMultiple = 64;
constexpr std::int64_t kMaxSuggestWorkers = 4096;

std::string StepLabel(RecipeStepKind kind) {
  switch (kind) {
    case RecipeStepKind::kAlign: return "step 1 (align)";
    case RecipeStepKind::kDistill: return "step 2 (distill)";
    case RecipeStepKind::kFinetune: return "step 3 (finetune)";
  }
  return "step";
}

std::string StepKey(RecipeStepKind kind) {
  return "steps." + std::string(RecipeStepKindName(kind));
}

std::string LayoutText(const ClusterParallel& l) {
  return "tp " + std::to_string(l.tp) + " x pp " + std::to_string(l.pp) + " x dp " +
         std::to_string(l.dp);
}

std::vector<std::int64_t> DivisorsDescending(std::int64_t n) {
  std::vector<std::int64_t> d;
  for (std::int64_t i = 1; i * i <= n; ++i) {
    if (n % i == 0) {
      d.push_back(i);
      if (i != n / i) d.push_back(n / i);
    }
  }
  std::sort(d.rbegin(), d.rend());
  return d;
}

// The most significant terms of a breakdown, for messages.
std::string TopTerms(const MemoryBreakdown& b, std::size_t n) {
  std::vector<const MemoryTerm*> t;
  for (const MemoryTerm& m : b.terms) t.push_back(&m);
  std::stable_sort(t.begin(), t.end(),
                   [](const MemoryTerm* a, const MemoryTerm* c) { return a->bytes > c->bytes; });
  std::string out;
  for (std::size_t i = 0; i < t.size() && i < n; ++i) {
    if (i) out += ", ";
    out += t[i]->name + " " + FormatGiB(t[i]->bytes);
  }
  return out;
}

std::string ShortfallText(const MemoryBreakdown& b, const std::string& device) {
  return b.what + " (" + b.detail + ") needs " + FormatGiB(b.total_bytes) + " per worker but " +
         device + " has " + FormatGiB(b.capacity_bytes) + ", " + FormatGiB(b.usable_bytes) +
         " usable with the margin: short by " + FormatGiB(b.total_bytes - b.usable_bytes) +
         " (largest terms: " + TopTerms(b, 4) + ")";
}

// Everything the layout search and the checks share.
struct Context {
  const PlanInputs& in;
  const PlanOptions& opt;
  ModelSizes sizes;
  WorkerMemory worker;
  std::string device;  // "NVIDIA H100 SXM5 80GB" or "a CPU worker"
};

struct GangChoice {
  bool ok = false;
  std::int64_t micro_batch = 0;
  std::int64_t grad_accum = 0;
  MemoryBreakdown memory;  // the chosen one, or the smallest attempt when nothing fits
  StepEstimate estimate;
  std::string error;       // a micro-batch that cannot divide the per-replica batch
};

// Picks the micro-batch of a gang step on `layout`. Candidates: the recipe's micro_batch only
// (allow_smaller false and the recipe sets one), else the divisors of batch/dp (at most the
// recipe's value when set). Among those that fit, the largest whose grad accumulation is at
// least 4*pp (pipeline bubble <= 25%; any when pp = 1), else the smallest that fits.
GangChoice ChooseGang(const Context& ctx, const RecipeStep& step, const Cluster& cluster,
                      const ClusterParallel& layout, bool allow_smaller) {
  GangChoice g;
  const std::int64_t per_replica = step.batch / layout.dp;
  std::vector<std::int64_t> mbs;
  if (step.micro_batch > 0 && !allow_smaller) {
    if (per_replica % step.micro_batch != 0) {
      g.error = StepKey(step.kind) + ".micro_batch " + std::to_string(step.micro_batch) +
                " does not divide batch / dp = " + std::to_string(step.batch) + " / " +
                std::to_string(layout.dp) + " = " + std::to_string(per_replica);
      return g;
    }
    mbs.push_back(step.micro_batch);
  } else {
    for (std::int64_t d : DivisorsDescending(per_replica)) {
      if (step.micro_batch == 0 || d <= step.micro_batch) mbs.push_back(d);
    }
  }
  GangQuery q;
  q.tp = layout.tp;
  q.pp = layout.pp;
  q.dp = layout.dp;
  for (const StageRange& r : BalancedStages(static_cast<int>(ctx.sizes.layers),
                                            static_cast<int>(layout.pp))) {
    q.layers_per_stage.push_back(r.layers());
  }
  q.seq_len = step.seq_len;
  q.loss_chunk_tokens = step.loss.kl_chunk_tokens;
  q.with_teacher = step.kind == RecipeStepKind::kDistill;
  const std::int64_t want_accum = layout.pp == 1 ? 1 : 4 * layout.pp;
  std::optional<GangChoice> smallest_fit;
  for (std::int64_t mb : mbs) {
    q.micro_batch = mb;
    q.grad_accum = per_replica / mb;
    MemoryBreakdown mem = GangMemory(ctx.sizes, q, ctx.worker, ctx.opt.memory);
    if (!mem.fits()) {
      g.memory = std::move(mem);
      g.micro_batch = mb;
      g.grad_accum = q.grad_accum;
      continue;
    }
    GangChoice c;
    c.ok = true;
    c.micro_batch = mb;
    c.grad_accum = q.grad_accum;
    c.memory = std::move(mem);
    c.estimate = EstimateGangStep(ctx.sizes, step, layout, q.grad_accum, cluster, ctx.opt.cost);
    if (q.grad_accum >= want_accum) return c;
    smallest_fit = std::move(c);  // descending order: the last one kept is the smallest
  }
  if (smallest_fit) return *smallest_fit;
  return g;
}

// The enabled gang steps of a recipe (distill always; finetune when enabled).
std::vector<const RecipeStep*> GangSteps(const Recipe& r) {
  std::vector<const RecipeStep*> s = {&r.steps.distill};
  if (r.steps.finetune.enabled) s.push_back(&r.steps.finetune);
  return s;
}

// Layouts of `cluster`'s workers that pass CheckLayout and fit steps 2-3, best first.
std::vector<LayoutCandidate> FittingLayouts(const Context& ctx, const Cluster& cluster) {
  std::vector<LayoutCandidate> out;
  const std::int64_t wpn = cluster.WorkersPerNode();
  const std::int64_t workers = cluster.WorkerCount();
  for (std::int64_t tp : DivisorsDescending(wpn)) {
    for (std::int64_t pp = 1; pp <= std::min<std::int64_t>(ctx.sizes.layers, workers / tp); ++pp) {
      if ((workers / tp) % pp != 0) continue;
      ClusterParallel layout{tp, pp, workers / (tp * pp)};
      if (!CheckLayout(ctx.in.teacher, ctx.in.recipe, cluster, layout).ok()) continue;
      LayoutCandidate c;
      c.nodes = cluster.nodes;
      c.layout = layout;
      bool ok = true;
      for (const RecipeStep* step : GangSteps(ctx.in.recipe)) {
        GangChoice g = ChooseGang(ctx, *step, cluster, layout, /*allow_smaller=*/true);
        if (!g.ok) {
          ok = false;
          break;
        }
        (step->kind == RecipeStepKind::kDistill ? c.distill_micro_batch : c.finetune_micro_batch) =
            g.micro_batch;
        c.peak_bytes = std::max(c.peak_bytes, g.memory.total_bytes);
        c.usable_bytes = g.memory.usable_bytes;
        c.gang_seconds += g.estimate.seconds;
      }
      if (ok) out.push_back(c);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const LayoutCandidate& a, const LayoutCandidate& b) {
    if (a.gang_seconds != b.gang_seconds) return a.gang_seconds < b.gang_seconds;
    if (a.layout.pp != b.layout.pp) return a.layout.pp < b.layout.pp;
    return a.layout.tp < b.layout.tp;
  });
  return out;
}

WorkerMemory ResolveWorkerMemory(const Cluster& c, const PlanInputs& in, const PlanOptions& o,
                                 std::string* device, std::vector<std::string>* notes) {
  WorkerMemory w;
  if (c.HasGpus() && c.gpu.has_value()) {
    w.gpu = true;
    w.capacity_bytes = c.gpu->memory_gib * kGiB;
    *device = c.gpu->name;
    return w;
  }
  w.gpu = false;
  double node_gib = kDefaultCpuMemoryGib;
  if (o.cpu_memory_gib.has_value()) {
    node_gib = *o.cpu_memory_gib;
  } else if (in.host_memory_gib.has_value()) {
    node_gib = *in.host_memory_gib;
    if (notes) notes->push_back("CPU memory: " + FormatGiB(node_gib * kGiB) +
                                " per node (this host's), shared by " +
                                std::to_string(c.WorkersPerNode()) + " workers");
  } else if (notes) {
    notes->push_back("CPU memory: unknown; assuming " + FormatGiB(node_gib * kGiB) + " per node");
  }
  // Round down to whole MiB so the figure (and the plan) is stable.
  const double per_worker = node_gib * kGiB / static_cast<double>(c.WorkersPerNode());
  w.capacity_bytes = std::floor(per_worker / (1024.0 * 1024.0)) * 1024.0 * 1024.0;
  *device = "a CPU worker (1/" + std::to_string(c.WorkersPerNode()) + " of the node's RAM)";
  return w;
}

std::string FormatCandidates(const std::vector<LayoutCandidate>& c, int max) {
  std::string out;
  for (int i = 0; i < static_cast<int>(c.size()) && i < max; ++i) {
    out += "\n  " + std::to_string(i + 1) + ". " + c[static_cast<std::size_t>(i)].Describe();
  }
  return out;
}

// The tail of a layout error: what fits, and how to ask for it.
std::string SuggestionText(const Context& ctx) {
  std::vector<LayoutCandidate> c = SuggestLayouts(ctx.in, ctx.opt);
  const Cluster& cl = ctx.in.cluster;
  const std::string unit = cl.HasGpus() ? " GPUs" : " workers";
  if (c.empty()) {
    return ". No layout fits even " + std::to_string(cl.nodes * kMaxNodeMultiple) + " nodes of " +
           std::to_string(cl.WorkersPerNode()) + unit +
           ": use workers with more memory or a smaller recipe (micro_batch, seq_len)";
  }
  std::string head;
  if (c.front().nodes == cl.nodes) {
    head = ". Layouts of the " + std::to_string(cl.WorkerCount()) + unit + " that fit:";
  } else {
    head = ". No TP x PP x DP layout of the " + std::to_string(cl.WorkerCount()) + unit +
           " fits; the smallest allocation that does is " + std::to_string(c.front().nodes) +
           " nodes x " + std::to_string(cl.WorkersPerNode()) + unit + ":";
  }
  return head + FormatCandidates(c, ctx.opt.max_candidates) +
         "\nSet `nodes`/`parallel` in the cluster file " + ctx.in.cluster_name +
         ", or pass --tp/--pp/--dp" + (c.front().nodes == cl.nodes ? " (or --auto-layout)" : "") +
         "; a smaller micro-batch goes in the recipe's steps.<step>.micro_batch";
}

// Checks the data against one step; fills samples / unique windows.
Status CheckStepData(const PlanInputs& in, const PlanOptions& opt, const RecipeStep& step,
                     StepPlan* sp, std::vector<std::string>* warnings) {
  const PlanData& d = in.data;
  const std::string name = d.path.empty() ? "the dataset" : "dataset " + d.path;
  const std::string what = name + " (" + FormatCount(static_cast<std::int64_t>(d.tokens)) + " tokens)";
  const auto window = static_cast<std::uint64_t>(step.seq_len) + 1;
  sp->samples = step.tokens / step.seq_len;
  if (d.tokens < window) {
    return Status::InvalidArgument(what + " is too small for " + StepLabel(step.kind) +
                                   ": one window is seq_len + 1 = " + FormatCount(step.seq_len + 1) +
                                   " tokens");
  }
  if (in.recipe.data.sampler == SamplingMode::kMagicPrime) {
    Result<std::uint64_t> p = ComputeMagicPrime(d.tokens, static_cast<std::uint64_t>(step.seq_len));
    if (!p.ok()) {
      return Status::InvalidArgument(what + " is too small for the magic-prime sampler of " +
                                     StepLabel(step.kind) + " at seq_len " +
                                     std::to_string(step.seq_len) + ": " + p.status().message());
    }
    sp->magic_prime = *p;
    sp->unique_windows = *p;
  } else {
    sp->unique_windows = (d.tokens - 1) / static_cast<std::uint64_t>(step.seq_len);
  }
  const auto samples = static_cast<std::uint64_t>(sp->samples);
  if (samples > sp->unique_windows) {
    const double repeats = static_cast<double>(samples) / static_cast<double>(sp->unique_windows);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.2f", repeats);
    const std::string msg =
        what + " is too small for " + StepLabel(step.kind) + ": its budget of " +
        FormatCount(step.tokens) + " tokens needs " + FormatCount(sp->samples) + " windows of " +
        FormatCount(step.seq_len + 1) + " tokens, but the " +
        std::string(SamplingModeName(in.recipe.data.sampler)) + " sampler has " +
        FormatCount(static_cast<std::int64_t>(sp->unique_windows)) +
        " distinct windows at seq_len " + std::to_string(step.seq_len) +
        ", so each would be seen " + buf + " times on average";
    if (!opt.allow_data_repeats) {
      const std::int64_t need = (sp->samples + 1) * step.seq_len + 1;
      return Status::InvalidArgument(
          msg + ". Use a dataset of at least ~" + FormatCount(need + need / 100) +
          " tokens, lower " + StepKey(step.kind) + ".tokens, or allow repeats (--allow-data-repeats)");
    }
    warnings->push_back(msg + " (allowed by --allow-data-repeats)");
  }
  return Status::Ok();
}

// The step-1 segment size (docs/planner.md, "Segments and the cache window").
Status PlanSegments(const Context& ctx, const RecipeStep& align, std::int64_t pp, CachePlan* cp,
                    std::vector<std::string>* warnings, std::vector<std::string>* notes) {
  const Cluster& cl = ctx.in.cluster;
  const std::int64_t total_steps = align.OptimizerSteps();
  const std::int64_t tokens_per_step = align.TokensPerStep();
  cp->bytes_per_token = CacheBytesPerToken(ctx.sizes, pp, ctx.worker.gpu ? 2 : 4);
  cp->step_bytes = cp->bytes_per_token * tokens_per_step;
  cp->budget_bytes = static_cast<std::int64_t>(cl.cache_disk_budget_gib * kGiB);
  cp->total_bytes = cp->step_bytes * total_steps;
  const std::int64_t fit = cp->budget_bytes / cp->step_bytes;
  if (fit < 1) {
    return Status::InvalidArgument(
        "the step-1 activation cache needs " + FormatGiB(static_cast<double>(cp->step_bytes)) +
        " per optimizer step (" + FormatCount(tokens_per_step) + " tokens x " +
        FormatCount(cp->bytes_per_token) + " B/token) and a segment is at least one step, but " +
        ctx.in.cluster_name + " has cache_disk_budget_gib " + FormatGiB(cl.cache_disk_budget_gib * kGiB) +
        ": raise it to at least " + FormatGiB(static_cast<double>(cp->step_bytes)) + " (" +
        FormatGiB(2.0 * static_cast<double>(cp->step_bytes)) +
        " lets production and alignment overlap), or lower steps.align.batch");
  }
  cp->kept = cp->budget_bytes >= cp->total_bytes;
  const std::int64_t workers = cl.WorkerCount();
  std::int64_t g = 0;
  if (ctx.opt.segment_steps > 0) {
    g = std::min(ctx.opt.segment_steps, total_steps);
    if (g > fit) {
      return Status::InvalidArgument(
          "--segment-steps " + std::to_string(ctx.opt.segment_steps) + " needs " +
          FormatGiB(static_cast<double>(g * cp->step_bytes)) + " of cache per segment, but " +
          ctx.in.cluster_name + "'s cache_disk_budget_gib holds " + std::to_string(fit) +
          " optimizer steps: use at most " + std::to_string(fit) + " or raise the budget");
    }
    cp->rule = "--segment-steps " + std::to_string(ctx.opt.segment_steps);
  } else if (cp->kept) {
    const std::int64_t target = std::min(total_steps, std::max(kMinSegments, workers + 1));
    g = (total_steps + target - 1) / target;
    cp->rule = "cache kept: " + std::to_string(target) +
               " segments (at least 8, and one per worker + 1)";
  } else {
    // Streamed: as large as possible while every worker can be producing a stage of some
    // segment while one segment of each stage is being aligned: W >= ceil(workers / pp) + 1
    // segments per stage; else a window of 2 (production overlaps alignment); else 1.
    const std::int64_t w_target = (workers + pp - 1) / pp + 1;
    g = fit / w_target;
    cp->rule = "window of ceil(workers / pp) + 1 = " + std::to_string(w_target) + " segments";
    if (g == 0) {
      g = std::max<std::int64_t>(fit / 2, 1);
      cp->rule = fit >= 2 ? "window of 2 (the budget is too small for ceil(workers / pp) + 1)"
                          : "window of 1 (the budget holds one optimizer step)";
    }
    const std::int64_t cap = (total_steps + kMinSegments - 1) / kMinSegments;
    if (g > cap) {
      g = cap;
      cp->rule += ", capped at 1/8 of step 1";
    }
  }
  const std::int64_t segments = (total_steps + g - 1) / g;
  const std::int64_t base = total_steps / segments, extra = total_steps % segments;
  std::int64_t step = 0;
  for (std::int64_t s = 0; s < segments; ++s) {
    Segment seg;
    seg.index = static_cast<int>(s);
    seg.steps = base + (s < extra ? 1 : 0);
    seg.sample_begin = step * align.batch;
    seg.sample_end = (step + seg.steps) * align.batch;
    seg.tokens = seg.steps * tokens_per_step;
    seg.cache_bytes = seg.steps * cp->step_bytes;
    step += seg.steps;
    cp->segments.push_back(seg);
  }
  cp->max_segment_steps = base + (extra ? 1 : 0);
  cp->min_segment_steps = base;
  cp->window = cp->kept ? segments
                        : std::min(segments, cp->budget_bytes / (cp->max_segment_steps * cp->step_bytes));
  if (cp->kept) {
    notes->push_back("step-1 cache kept: all " + FormatGiB(static_cast<double>(cp->total_bytes)) +
                     " fit the " + FormatGiB(static_cast<double>(cp->budget_bytes)) +
                     " budget (re-runs and sweeps reuse it)");
  } else if (cp->window == 1) {
    warnings->push_back("the step-1 cache budget holds one segment at a time: cache production "
                        "and alignment cannot overlap; a budget of " +
                        FormatGiB(2.0 * static_cast<double>(cp->max_segment_steps * cp->step_bytes)) +
                        " allows a window of 2");
  }
  // An align task reads its layer's pairs (2 x 2D bf16 per token) and loads + commits the
  // mixer's fp32 master and Adam state (12 B/param each way).
  const double read = static_cast<double>(cp->max_segment_steps * tokens_per_step) * 4.0 *
                      static_cast<double>(ctx.sizes.hidden);
  const double state = 24.0 * static_cast<double>(ctx.sizes.mixer);
  if (state > read) {
    warnings->push_back(
        "step-1 segments are small next to the mixer state: each align task reads " +
        FormatGiB(read) + " of cache, a layer's mixer and optimizer state is " + FormatGiB(state) +
        " to load and commit; workers keep it in memory across a layer's consecutive segments "
        "and commit at the checkpoint interval, but each chain that breaks (the next segment not "
        "cached yet, a worker lost) pays it; a larger cache_disk_budget_gib gives larger segments");
  }
  return Status::Ok();
}

// Step 1's micro-batch and the cache/align task memory (worst stage).
Status PlanStep1Memory(const Context& ctx, const RecipeStep& align,
                       const std::vector<StageRange>& stages, StepPlan* sp,
                       std::vector<MemoryBreakdown>* out) {
  std::vector<std::int64_t> mbs;
  if (align.micro_batch > 0) {
    mbs.push_back(align.micro_batch);
  } else {
    mbs = DivisorsDescending(align.batch);
  }
  const int pp = static_cast<int>(stages.size());
  MemoryBreakdown cache_worst, align_mem;
  for (std::int64_t mb : mbs) {
    cache_worst = MemoryBreakdown{};
    bool fits = true;
    for (const StageRange& r : stages) {
      MemoryBreakdown m = CacheTaskMemory(ctx.sizes, r.layers(), r.stage, pp, mb, align.seq_len,
                                          ctx.worker, ctx.opt.memory);
      if (m.total_bytes > cache_worst.total_bytes) cache_worst = std::move(m);
    }
    align_mem = AlignTaskMemory(ctx.sizes, mb, align.seq_len, ctx.worker, ctx.opt.memory);
    fits = cache_worst.fits() && align_mem.fits();
    if (fits) {
      sp->micro_batch = mb;
      sp->grad_accum = align.batch / mb;
      out->push_back(std::move(cache_worst));
      out->push_back(std::move(align_mem));
      return Status::Ok();
    }
  }
  const MemoryBreakdown& bad = cache_worst.fits() ? align_mem : cache_worst;
  return Status::InvalidArgument(
      StepLabel(RecipeStepKind::kAlign) + " does not fit one worker: " +
      ShortfallText(bad, ctx.device) +
      (align.micro_batch > 0 ? "; try a smaller steps.align.micro_batch" : "") +
      "; step-1 tasks run one per worker, so only workers with more memory help");
}

}  // namespace

const char* LayoutSourceName(LayoutSource s) {
  switch (s) {
    case LayoutSource::kCluster: return "cluster";
    case LayoutSource::kOverride: return "override";
    case LayoutSource::kAuto: return "auto";
  }
  return "?";
}

const StepPlan* Plan::Step(RecipeStepKind kind) const {
  for (const StepPlan& s : steps) {
    if (s.kind == kind) return &s;
  }
  return nullptr;
}

std::map<TaskType, int> Plan::TaskCounts() const {
  std::map<TaskType, int> c;
  for (const TaskSpec& t : tasks) ++c[t.type];
  return c;
}

const StageRange& Plan::StageOfLayer(int layer) const {
  for (const StageRange& r : stages) {
    if (layer >= r.first_layer && layer < r.last_layer) return r;
  }
  return stages.back();
}

std::string LayoutCandidate::Describe() const {
  std::string s = LayoutText(layout);
  if (distill_micro_batch > 0) s += ", distill micro-batch " + std::to_string(distill_micro_batch);
  if (finetune_micro_batch > 0) s += ", finetune micro-batch " + std::to_string(finetune_micro_batch);
  s += ": " + FormatGiB(peak_bytes) + " of " + FormatGiB(usable_bytes) +
       " usable per worker, steps 2-3 ~" + FormatDuration(gang_seconds);
  return s;
}

StudentConfig StudentConfigFromRecipe(const Recipe& recipe, const Qwen2Config& teacher) {
  const StudentSettings& st = recipe.student;
  StudentConfig c = StudentConfig::Defaults(st.architecture, teacher);
  c.use_rope = st.use_rope;
  c.use_tokenshift = st.use_tokenshift;
  c.gate_rank_type = static_cast<int>(st.gate_rank_type);
  c.balance_state = st.balance_state;
  c.groupnorm_att = st.groupnorm_att;
  const LoraRanks r = ResolveLoraRanks(st, teacher.hidden_size);
  c.lora_rank_decay = r.decay;
  c.lora_rank_gate = r.gate;
  c.lora_rank_tokenshift = r.tokenshift;
  c.lora_rank_iclr = r.iclr;
  c.lora_rank_value_residual_mix = r.value_residual_mix;
  return c;
}

std::vector<StageRange> BalancedStages(int layers, int pp) {
  std::vector<StageRange> out;
  const int base = layers / pp, extra = layers % pp;
  int first = 0;
  for (int p = 0; p < pp; ++p) {
    const int n = base + (p < extra ? 1 : 0);
    out.push_back({p, first, first + n});
    first += n;
  }
  return out;
}

Status CheckLayout(const Qwen2Config& t, const Recipe& recipe, const Cluster& cluster,
                   const ClusterParallel& l) {
  const std::string lay = LayoutText(l);
  if (l.tp < 1 || l.pp < 1 || l.dp < 1) {
    return Status::InvalidArgument("layout " + lay + ": every degree must be at least 1");
  }
  if (l.tp * l.pp * l.dp != cluster.WorkerCount()) {
    return Status::InvalidArgument("layout " + lay + ": tp x pp x dp = " +
                                   std::to_string(l.tp * l.pp * l.dp) + " must equal the " +
                                   std::to_string(cluster.WorkerCount()) + " workers of " +
                                   cluster.name);
  }
  if (t.num_key_value_heads % l.tp != 0 && l.tp > t.num_key_value_heads &&
      l.tp % t.num_key_value_heads == 0 && t.num_attention_heads % l.tp == 0) {
    return Status::InvalidArgument(
        "layout " + lay + ": tp " + std::to_string(l.tp) + " is more than the teacher's " +
        std::to_string(t.num_key_value_heads) + " KV heads; it would need each KV head replicated "
        "on " + std::to_string(l.tp / t.num_key_value_heads) +
        " TP ranks, which radlads does not support: use tp <= " +
        std::to_string(t.num_key_value_heads) + " (a divisor of the KV heads)");
  }
  if (t.num_attention_heads % l.tp != 0) {
    return Status::InvalidArgument("layout " + lay + ": tp " + std::to_string(l.tp) +
                                   " does not divide num_attention_heads " +
                                   std::to_string(t.num_attention_heads) +
                                   " (each TP rank holds whole heads)");
  }
  if (t.num_key_value_heads % l.tp != 0) {
    return Status::InvalidArgument("layout " + lay + ": tp " + std::to_string(l.tp) +
                                   " does not divide num_key_value_heads " +
                                   std::to_string(t.num_key_value_heads) +
                                   " (KV heads are split, not replicated, over TP ranks)");
  }
  if (t.intermediate_size % l.tp != 0) {
    return Status::InvalidArgument("layout " + lay + ": tp " + std::to_string(l.tp) +
                                   " does not divide intermediate_size " +
                                   std::to_string(t.intermediate_size));
  }
  if (t.vocab_size % l.tp != 0) {
    return Status::InvalidArgument("layout " + lay + ": tp " + std::to_string(l.tp) +
                                   " does not divide vocab_size " + std::to_string(t.vocab_size) +
                                   " (the embedding and LM head are split by rows)");
  }
  if (l.tp > 1 && StudentConfigFromRecipe(recipe, t).attention_output_bias) {
    return Status::InvalidArgument("layout " + lay + ": tp " + std::to_string(l.tp) +
                                   " with the recipe's attention_output_bias: an o_proj bias after the "
                                   "row-parallel o_proj cannot be split; use tp 1");
  }
  if (l.pp > 1 && t.tie_word_embeddings) {
    return Status::InvalidArgument("layout " + lay + ": pp " + std::to_string(l.pp) +
                                   " with tied embeddings: the first and last stages would share the "
                                   "embedding; use pp 1 (RADLADS students are untied)");
  }
  if (l.pp > t.num_hidden_layers) {
    return Status::InvalidArgument("layout " + lay + ": pp " + std::to_string(l.pp) +
                                   " is more than the " + std::to_string(t.num_hidden_layers) +
                                   " layers (every stage needs at least one)");
  }
  for (const RecipeStep* s : GangSteps(recipe)) {
    if (s->batch % l.dp != 0) {
      return Status::InvalidArgument("layout " + lay + ": dp " + std::to_string(l.dp) +
                                     " does not divide " + StepKey(s->kind) + ".batch " +
                                     std::to_string(s->batch));
    }
  }
  return Status::Ok();
}

std::vector<LayoutCandidate> SuggestLayouts(const PlanInputs& in, const PlanOptions& opt) {
  Context ctx{in, opt, {}, {}, {}};
  ctx.sizes = ComputeModelSizes(in.teacher, StudentConfigFromRecipe(in.recipe, in.teacher));
  ctx.worker = ResolveWorkerMemory(in.cluster, in, opt, &ctx.device, nullptr);
  Cluster c = in.cluster;
  for (std::int64_t n = in.cluster.nodes;
       n <= in.cluster.nodes * kMaxNodeMultiple && n * c.WorkersPerNode() <= kMaxSuggestWorkers;
       ++n) {
    c.nodes = n;
    std::vector<LayoutCandidate> found = FittingLayouts(ctx, c);
    if (!found.empty()) return found;
  }
  return {};
}

Result<Plan> BuildPlan(const PlanInputs& in, const PlanOptions& opt) {
  Plan plan;
  plan.recipe = in.recipe;
  plan.recipe_name = in.recipe_name;
  plan.teacher = in.teacher;
  plan.model_name = in.model_name;
  plan.cluster = in.cluster;
  plan.cluster_name = in.cluster_name;
  plan.data = in.data;
  plan.host_memory_gib = in.host_memory_gib;
  plan.warnings = in.warnings;
  for (const PlanInputFile& f : in.files) {
    PlanInputFile copy = f;
    copy.content.clear();
    plan.files.push_back(std::move(copy));
    plan.file_checksums.push_back(FormatChecksum(Checksum64(f.content)));
  }
  RADLADS_RETURN_IF_ERROR(ValidateQwen2Config(in.teacher, in.model_name));
  plan.student = StudentConfigFromRecipe(in.recipe, in.teacher);
  RADLADS_RETURN_IF_ERROR(ValidateStudentConfig(plan.student, in.recipe_name));

  Context ctx{in, opt, ComputeModelSizes(in.teacher, plan.student), {}, {}};
  ctx.worker = ResolveWorkerMemory(in.cluster, in, opt, &ctx.device, &plan.notes);
  plan.sizes = ctx.sizes;
  plan.worker = ctx.worker;
  const Recipe& r = in.recipe;
  const Cluster& cl = in.cluster;

  if (in.teacher.tie_word_embeddings) {
    plan.warnings.push_back("the teacher ties its embeddings and LM head; RADLADS distilled untied "
                            "models only (docs/spec.md §6.10)");
  }
  if (!r.steps.align.enabled || !r.steps.distill.enabled) {
    return Status::InvalidArgument(in.recipe_name + ": the protocol needs steps.align and "
                                   "steps.distill enabled (only steps.finetune is optional)");
  }
  if (in.data.tokens == 0) {
    return Status::InvalidArgument("no dataset: pass --data PREFIX (or --data-tokens N to plan "
                                   "from a token count)");
  }

  // Steps: whole optimizer steps (the recipe reader guarantees it; re-checked) and data.
  for (const RecipeStep* step : r.EnabledSteps()) {
    const std::string key = StepKey(step->kind);
    if (step->seq_len <= 0 || step->batch <= 0 || step->tokens <= 0 ||
        step->tokens % step->TokensPerStep() != 0) {
      return Status::InvalidArgument(
          in.recipe_name + ": " + key + ".tokens " + FormatCount(step->tokens) +
          " is not a positive whole number of optimizer steps of seq_len x batch = " +
          FormatCount(step->TokensPerStep()) + " tokens");
    }
    if (step->micro_batch > 0 && step->batch % step->micro_batch != 0) {
      return Status::InvalidArgument(in.recipe_name + ": " + key + ".micro_batch " +
                                     std::to_string(step->micro_batch) + " does not divide batch " +
                                     std::to_string(step->batch));
    }
    if (step->kind != RecipeStepKind::kFinetune &&
        step->seq_len > in.teacher.max_position_embeddings) {
      plan.warnings.push_back(key + ".seq_len " + std::to_string(step->seq_len) +
                              " is longer than the teacher's max_position_embeddings " +
                              std::to_string(in.teacher.max_position_embeddings));
    }
    StepPlan sp;
    sp.kind = step->kind;
    sp.tokens = step->tokens;
    sp.seq_len = step->seq_len;
    sp.batch = step->batch;
    sp.optimizer_steps = step->OptimizerSteps();
    RADLADS_RETURN_IF_ERROR(CheckStepData(in, opt, *step, &sp, &plan.warnings));
    plan.steps.push_back(sp);
  }
  if (!r.steps.finetune.enabled) plan.notes.push_back("step 3 (finetune) is disabled in the recipe");

  // The gang layout: requested, checked, fitted.
  ClusterParallel want = cl.parallel;
  plan.layout_source = LayoutSource::kCluster;
  if (opt.layout.has_value()) {
    want = *opt.layout;
    if (want.dp == 0 && want.tp > 0 && want.pp > 0) {
      if (cl.WorkerCount() % (want.tp * want.pp) != 0) {
        return Status::InvalidArgument(
            "the requested layout: tp " + std::to_string(want.tp) + " x pp " +
            std::to_string(want.pp) + " does not divide the " + std::to_string(cl.WorkerCount()) +
            " workers of " + in.cluster_name + SuggestionText(ctx));
      }
      want.dp = cl.WorkerCount() / (want.tp * want.pp);
    }
    plan.layout_source = LayoutSource::kOverride;
  }
  const std::string origin = plan.layout_source == LayoutSource::kCluster
                                 ? "the parallel layout of " + in.cluster_name
                                 : "the requested layout";
  // --auto-layout: the best layout of this cluster's workers, with its micro-batches.
  auto take_auto = [&](const std::string& why) -> Status {
    std::vector<LayoutCandidate> c = FittingLayouts(ctx, cl);
    if (c.empty() || c.front().nodes != cl.nodes) {
      return Status::InvalidArgument(why + SuggestionText(ctx));
    }
    plan.warnings.push_back(why + "; --auto-layout chose " + c.front().Describe());
    want = c.front().layout;
    plan.recipe.steps.distill.micro_batch = c.front().distill_micro_batch;
    if (c.front().finetune_micro_batch > 0) {
      plan.recipe.steps.finetune.micro_batch = c.front().finetune_micro_batch;
    }
    plan.layout_source = LayoutSource::kAuto;
    return Status::Ok();
  };
  if (Status st = CheckLayout(in.teacher, r, cl, want); !st.ok()) {
    const std::string why = origin + " does not suit " + in.model_name + ": " + st.message();
    if (!opt.auto_layout) return Status::InvalidArgument(why + SuggestionText(ctx));
    RADLADS_RETURN_IF_ERROR(take_auto(why));
  }
  // Steps 2-3 on the layout, with the micro-batches of (the plan's copy of) the recipe.
  std::vector<GangChoice> gangs;
  auto fit_gangs = [&]() -> std::string {
    gangs.clear();
    for (const RecipeStep* step : GangSteps(plan.recipe)) {
      GangChoice g = ChooseGang(ctx, *step, cl, want, /*allow_smaller=*/false);
      if (!g.ok) {
        return StepLabel(step->kind) + " on " + LayoutText(want) + " does not fit: " +
               (g.error.empty() ? ShortfallText(g.memory, ctx.device) : g.error);
      }
      gangs.push_back(std::move(g));
    }
    return "";
  };
  if (std::string failure = fit_gangs(); !failure.empty()) {
    if (!opt.auto_layout || plan.layout_source == LayoutSource::kAuto) {
      return Status::InvalidArgument(failure + SuggestionText(ctx));
    }
    RADLADS_RETURN_IF_ERROR(take_auto(failure));
    if (std::string again = fit_gangs(); !again.empty()) {
      return Status::Internal("the layout --auto-layout chose does not fit: " + again);
    }
  }
  plan.layout = want;
  plan.cluster.parallel = want;
  plan.stages = BalancedStages(static_cast<int>(ctx.sizes.layers), static_cast<int>(want.pp));
  if (cl.WorkersPerNode() % want.tp != 0) {
    plan.warnings.push_back("tp " + std::to_string(want.tp) + " spans nodes (" +
                            std::to_string(cl.WorkersPerNode()) +
                            " workers per node): tensor-parallel traffic crosses the network");
  }
  for (GangChoice& g : gangs) {
    for (StepPlan& sp : plan.steps) {
      if (sp.kind == g.estimate.kind) {
        sp.micro_batch = g.micro_batch;
        sp.grad_accum = g.grad_accum;
        sp.workers = want.tp * want.pp * want.dp;
      }
    }
  }

  // Step 1: micro-batch, memory, segments.
  StepPlan* align = nullptr;
  for (StepPlan& sp : plan.steps) {
    if (sp.kind == RecipeStepKind::kAlign) align = &sp;
  }
  RADLADS_RETURN_IF_ERROR(PlanStep1Memory(ctx, r.steps.align, plan.stages, align, &plan.memory));
  for (GangChoice& g : gangs) plan.memory.push_back(g.memory);
  RADLADS_RETURN_IF_ERROR(
      PlanSegments(ctx, r.steps.align, want.pp, &plan.cache, &plan.warnings, &plan.notes));

  // Estimates.
  Step1Shape shape;
  shape.segments = static_cast<std::int64_t>(plan.cache.segments.size());
  shape.window = plan.cache.window;
  shape.cache_kept = plan.cache.kept;
  shape.max_segment_tokens = plan.cache.max_segment_steps * r.steps.align.TokensPerStep();
  for (const StageRange& s : plan.stages) shape.layers_per_stage.push_back(s.layers());
  shape.cache_bytes_per_token = plan.cache.bytes_per_token;
  shape.state_io_bytes = static_cast<double>(shape.segments) * static_cast<double>(ctx.sizes.layers) *
                         24.0 * static_cast<double>(ctx.sizes.mixer);
  std::vector<StepEstimate> est = {EstimateAlignStep(ctx.sizes, r.steps.align, shape, cl, opt.cost)};
  for (GangChoice& g : gangs) est.push_back(g.estimate);
  plan.options = opt;
  plan.cost = opt.cost;
  plan.estimate = SumEstimates(std::move(est), cl);
  const StepEstimate& e1 = plan.estimate.steps.front();
  if (e1.io_seconds > e1.compute_seconds) {
    plan.warnings.push_back("step 1 is bound by cache I/O: " + FormatGiB(e1.io_bytes) + " at " +
                            FormatCount(static_cast<std::int64_t>(opt.cost.storage_gbps_per_node)) +
                            " GB/s per node takes " + FormatDuration(e1.io_seconds) +
                            ", compute " + FormatDuration(e1.compute_seconds));
  }

  plan.tasks = BuildPlanTasks(plan);
  if (Status st = ValidatePlanGraph(plan); !st.ok()) return st;
  return plan;
}

}  // namespace radlads
