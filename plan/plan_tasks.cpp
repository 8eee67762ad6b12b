#include "plan/plan_tasks.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>

namespace radlads {
namespace {

Status Internal(const std::string& msg) { return Status::Internal("plan graph: " + msg); }

}  // namespace

std::vector<TaskSpec> BuildPlanTasks(const Plan& plan) {
  std::vector<TaskSpec> tasks;
  const int L = static_cast<int>(plan.sizes.layers);
  const int pp = static_cast<int>(plan.stages.size());
  const std::vector<Segment>& segs = plan.cache.segments;
  const int S = static_cast<int>(segs.size());
  tasks.reserve(static_cast<std::size_t>(L + S * (pp + L) + 4));

  for (int l = 0; l < L; ++l) {
    TaskSpec t;
    t.id = TransferTaskId(l);
    t.type = TaskType::kTransfer;
    t.layer = l;
    tasks.push_back(std::move(t));
  }
  for (int s = 0; s < S; ++s) {
    const Segment& seg = segs[static_cast<std::size_t>(s)];
    for (const StageRange& r : plan.stages) {
      TaskSpec t;
      t.id = CacheTaskId(s, r.stage);
      t.type = TaskType::kCache;
      t.segment = s;
      t.stage = r.stage;
      t.first_layer = r.first_layer;
      t.last_layer = r.last_layer;
      t.sample_begin = seg.sample_begin;
      t.sample_end = seg.sample_end;
      if (r.stage > 0) t.deps.push_back(CacheTaskId(s, r.stage - 1));
      // The resident window W is not a dependency: the scheduler leases a cache task only while
      // fewer than W segments of its stage hold a slot (RunConfig::cache_window).
      tasks.push_back(std::move(t));
    }
    for (const StageRange& r : plan.stages) {
      for (int l = r.first_layer; l < r.last_layer; ++l) {
        TaskSpec t;
        t.id = AlignTaskId(l, s);
        t.type = TaskType::kAlign;
        t.layer = l;
        t.segment = s;
        t.stage = r.stage;
        t.deps.push_back(CacheTaskId(s, r.stage));
        t.deps.push_back(s > 0 ? AlignTaskId(l, s - 1) : TransferTaskId(l));
        t.tokens = seg.tokens;
        t.sample_begin = seg.sample_begin;
        t.sample_end = seg.sample_end;
        t.optimizer_steps = seg.steps;
        tasks.push_back(std::move(t));
      }
    }
  }
  auto gang = [&](TaskType type, const StepPlan& sp, std::vector<std::string> deps) {
    TaskSpec t;
    t.id = std::string(TaskTypeName(type));
    t.type = type;
    t.deps = std::move(deps);
    t.tokens = sp.tokens;
    t.sample_begin = 0;
    t.sample_end = sp.samples;
    t.optimizer_steps = sp.optimizer_steps;
    t.workers = static_cast<int>(sp.workers);
    tasks.push_back(std::move(t));
  };
  std::vector<std::string> last_align;
  for (int l = 0; l < L; ++l) last_align.push_back(AlignTaskId(l, S - 1));
  gang(TaskType::kDistill, *plan.Step(RecipeStepKind::kDistill), std::move(last_align));
  std::string before_export = "distill";
  if (const StepPlan* ft = plan.Step(RecipeStepKind::kFinetune)) {
    gang(TaskType::kFinetune, *ft, {"distill"});
    before_export = "finetune";
  }
  TaskSpec ex;
  ex.id = "export";
  ex.type = TaskType::kExport;
  ex.deps = {before_export};
  tasks.push_back(std::move(ex));
  TaskSpec ev;
  ev.id = "eval";
  ev.type = TaskType::kEval;
  // The export, and every layer after step 0 and after step 1 (eval measures both).
  ev.deps = {"export"};
  for (int l = 0; l < L; ++l) ev.deps.push_back(TransferTaskId(l));
  for (int l = 0; l < L; ++l) ev.deps.push_back(AlignTaskId(l, S - 1));
  tasks.push_back(std::move(ev));
  return tasks;
}

Status ValidatePlanGraph(const Plan& plan) {
  const int L = static_cast<int>(plan.sizes.layers);
  // Stages: contiguous, covering, balanced.
  int next = 0, min_n = L, max_n = 0;
  for (std::size_t p = 0; p < plan.stages.size(); ++p) {
    const StageRange& r = plan.stages[p];
    if (r.stage != static_cast<int>(p) || r.first_layer != next || r.layers() < 1) {
      return Internal("stage " + std::to_string(p) + " does not start at layer " +
                      std::to_string(next) + " or is empty");
    }
    next = r.last_layer;
    min_n = std::min(min_n, r.layers());
    max_n = std::max(max_n, r.layers());
  }
  if (next != L) return Internal("stages cover " + std::to_string(next) + " of " + std::to_string(L) + " layers");
  if (max_n - min_n > 1) return Internal("stages unbalanced");

  // Segments partition step 1's samples.
  const StepPlan* a = plan.Step(RecipeStepKind::kAlign);
  if (a == nullptr) return Internal("no align step");
  std::int64_t sample = 0, steps = 0, tokens = 0;
  for (const Segment& s : plan.cache.segments) {
    if (s.sample_begin != sample || s.sample_end - s.sample_begin != s.steps * a->batch ||
        s.tokens != s.steps * a->batch * a->seq_len || s.steps < 1) {
      return Internal("segment " + std::to_string(s.index) + " breaks the partition");
    }
    sample = s.sample_end;
    steps += s.steps;
    tokens += s.tokens;
  }
  if (steps != a->optimizer_steps || tokens != a->tokens || sample != a->samples) {
    return Internal("segments sum to " + std::to_string(tokens) + " tokens, budget " +
                    std::to_string(a->tokens));
  }

  // Ids unique; deps exist and come first.
  std::unordered_map<std::string_view, std::size_t> pos;
  pos.reserve(plan.tasks.size());
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const TaskSpec& t = plan.tasks[i];
    for (const std::string& d : t.deps) {
      if (pos.find(d) == pos.end()) return Internal(t.id + " depends on " + d + ", not an earlier task");
    }
    if (!pos.emplace(t.id, i).second) return Internal("duplicate id " + t.id);
  }
  auto has_dep = [](const TaskSpec& t, const std::string& d) {
    return std::find(t.deps.begin(), t.deps.end(), d) != t.deps.end();
  };

  // Coverage: transfer once per layer; cache once per (s, p); align once per (l, s).
  const int S = static_cast<int>(plan.cache.segments.size());
  const int pp = static_cast<int>(plan.stages.size());
  std::vector<std::int64_t> layer_tokens(static_cast<std::size_t>(L), 0);
  std::vector<char> align_seen(static_cast<std::size_t>(L) * S, 0);
  std::vector<char> cache_seen(static_cast<std::size_t>(pp) * S, 0);
  std::vector<char> transfer_seen(static_cast<std::size_t>(L), 0);
  std::size_t n_align = 0, n_cache = 0, n_transfer = 0;
  std::map<TaskType, int> counts;
  for (const TaskSpec& t : plan.tasks) {
    ++counts[t.type];
    switch (t.type) {
      case TaskType::kTransfer:
        if (t.layer < 0 || t.layer >= L || transfer_seen[static_cast<std::size_t>(t.layer)]++) {
          return Internal("transfer " + t.id + " out of range or repeated");
        }
        ++n_transfer;
        break;
      case TaskType::kCache: {
        if (t.segment < 0 || t.segment >= S || t.stage < 0 || t.stage >= pp ||
            cache_seen[static_cast<std::size_t>(t.segment) * pp + t.stage]++) {
          return Internal("cache " + t.id + " out of range or repeated");
        }
        ++n_cache;
        const StageRange& r = plan.stages[static_cast<std::size_t>(t.stage)];
        if (t.first_layer != r.first_layer || t.last_layer != r.last_layer) {
          return Internal(t.id + " layer range differs from its stage");
        }
        if (t.stage > 0 && !has_dep(t, CacheTaskId(t.segment, t.stage - 1))) {
          return Internal(t.id + " lacks the previous stage");
        }
        break;
      }
      case TaskType::kAlign: {
        if (t.layer < 0 || t.layer >= L || t.segment < 0 || t.segment >= S ||
            align_seen[static_cast<std::size_t>(t.layer) * S + t.segment]++) {
          return Internal("align " + t.id + " out of range or repeated");
        }
        ++n_align;
        const Segment& seg = plan.cache.segments[static_cast<std::size_t>(t.segment)];
        const int stage = plan.StageOfLayer(t.layer).stage;
        if (t.stage != stage || !has_dep(t, CacheTaskId(t.segment, stage)) ||
            !has_dep(t, t.segment > 0 ? AlignTaskId(t.layer, t.segment - 1)
                                      : TransferTaskId(t.layer))) {
          return Internal(t.id + " lacks its cache or previous-segment dependency");
        }
        if (t.tokens != seg.tokens || t.sample_begin != seg.sample_begin ||
            t.sample_end != seg.sample_end || t.optimizer_steps != seg.steps) {
          return Internal(t.id + " token range differs from its segment");
        }
        layer_tokens[static_cast<std::size_t>(t.layer)] += t.tokens;
        break;
      }
      case TaskType::kDistill:
      case TaskType::kFinetune: {
        const StepPlan* sp = plan.Step(t.type == TaskType::kDistill ? RecipeStepKind::kDistill
                                                                     : RecipeStepKind::kFinetune);
        if (sp == nullptr || t.tokens != sp->tokens || t.sample_end - t.sample_begin != sp->samples ||
            t.optimizer_steps != sp->optimizer_steps) {
          return Internal(t.id + " budget differs from its step");
        }
        if (t.type == TaskType::kDistill) {
          for (int l = 0; l < L; ++l) {
            if (!has_dep(t, AlignTaskId(l, S - 1))) return Internal("distill lacks " + AlignTaskId(l, S - 1));
          }
        }
        break;
      }
      case TaskType::kExport:
      case TaskType::kEval:
        break;
    }
  }
  if (n_transfer != static_cast<std::size_t>(L)) return Internal("a layer has no transfer task");
  if (n_cache != static_cast<std::size_t>(S) * pp) return Internal("a (segment, stage) has no cache task");
  if (n_align != static_cast<std::size_t>(S) * L) return Internal("a (layer, segment) has no align task");
  for (int l = 0; l < L; ++l) {
    if (layer_tokens[static_cast<std::size_t>(l)] != a->tokens) {
      return Internal("layer " + std::to_string(l) + " aligns on " +
                      std::to_string(layer_tokens[static_cast<std::size_t>(l)]) + " tokens");
    }
  }
  const int gang_expected = 1 + (plan.Step(RecipeStepKind::kFinetune) ? 1 : 0);
  if (counts[TaskType::kDistill] + counts[TaskType::kFinetune] != gang_expected ||
      counts[TaskType::kExport] != 1 || counts[TaskType::kEval] != 1) {
    return Internal("gang/export/eval task counts");
  }
  return Status::Ok();
}

double EstimateTaskSeconds(const Plan& plan, const TaskSpec& t) {
  const double rate = WorkerPeakFlops(plan.cluster, plan.cost) * plan.cost.mfu.align;
  switch (t.type) {
    case TaskType::kCache: {
      const Segment& seg = plan.cache.segments[static_cast<std::size_t>(t.segment)];
      const StepPlan* a = plan.Step(RecipeStepKind::kAlign);
      return static_cast<double>(seg.tokens) * (t.last_layer - t.first_layer) *
             TeacherLayerForwardFlops(plan.sizes, a ? a->seq_len : 0) / rate;
    }
    case TaskType::kAlign:
      return static_cast<double>(t.tokens) * MixerTrainFlops(plan.sizes) / rate;
    case TaskType::kDistill:
    case TaskType::kFinetune: {
      const RecipeStepKind k =
          t.type == TaskType::kDistill ? RecipeStepKind::kDistill : RecipeStepKind::kFinetune;
      for (const StepEstimate& e : plan.estimate.steps) {
        if (e.kind == k) return e.seconds;
      }
      return 0.0;
    }
    default:
      return 0.0;
  }
}


}  // namespace radlads
