// Helpers shared by the planner tests: plan inputs from the shipped configs, and independent
// checks of a plan's DAG (not the planner's own ValidatePlanGraph).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "configs/cluster.h"
#include "configs/model_preset.h"
#include "configs/recipe.h"
#include "plan/plan.h"

namespace radlads::testing {

// The DCLM binidx of the paper (docs/spec.md §2.5).
inline constexpr std::uint64_t kDclmTokens = 1'500'087'317;

inline PlanInputs ShippedInputs(const std::string& recipe, const std::string& preset,
                                const std::string& cluster, std::uint64_t tokens = kDclmTokens) {
  PlanInputs in;
  Result<Recipe> r = LoadRecipe(recipe);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  in.recipe = *r;
  in.recipe_name = recipe;
  Result<ModelPreset> m = LoadModelPreset(preset);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  in.teacher = m->config;
  in.model_name = preset;
  Result<Cluster> c = LoadCluster(cluster);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  in.cluster = *c;
  in.cluster_name = cluster;
  in.data.path = "dclm";
  in.data.tokens = tokens;
  return in;
}

inline PlanOptions QuietOptions() {
  PlanOptions o;
  o.cpu_memory_gib = 16.0;  // deterministic on any machine
  return o;
}

inline PlanOptions WithLayout(std::int64_t tp, std::int64_t pp, std::int64_t dp) {
  PlanOptions o = QuietOptions();
  o.layout = ClusterParallel{tp, pp, dp};
  return o;
}

// Checks the DAG rules of docs/design.md §3 on a plan, from scratch.
inline void ExpectWellFormedDag(const Plan& p) {
  const int L = static_cast<int>(p.teacher.num_hidden_layers);
  const int S = static_cast<int>(p.cache.segments.size());
  const int pp = static_cast<int>(p.layout.pp);
  const bool ft = p.recipe.steps.finetune.enabled;

  // Counts exactly as the rules say.
  std::map<TaskType, int> c = p.TaskCounts();
  EXPECT_EQ(c[TaskType::kTransfer], L);
  EXPECT_EQ(c[TaskType::kCache], S * pp);
  EXPECT_EQ(c[TaskType::kAlign], S * L);
  EXPECT_EQ(c[TaskType::kDistill], 1);
  EXPECT_EQ(c[TaskType::kFinetune], ft ? 1 : 0);
  EXPECT_EQ(c[TaskType::kExport], 1);
  EXPECT_EQ(c[TaskType::kEval], 1);
  EXPECT_EQ(static_cast<int>(p.tasks.size()), L + S * pp + S * L + 3 + (ft ? 1 : 0));

  // Stages: contiguous, covering every layer once, sizes differ by at most one.
  ASSERT_EQ(static_cast<int>(p.stages.size()), pp);
  std::vector<int> stage_of(static_cast<std::size_t>(L), -1);
  int lo = L, hi = 0;
  for (const StageRange& r : p.stages) {
    for (int l = r.first_layer; l < r.last_layer; ++l) {
      ASSERT_EQ(stage_of[static_cast<std::size_t>(l)], -1) << "layer " << l << " in two stages";
      stage_of[static_cast<std::size_t>(l)] = r.stage;
    }
    lo = std::min(lo, r.layers());
    hi = std::max(hi, r.layers());
  }
  for (int l = 0; l < L; ++l) EXPECT_GE(stage_of[static_cast<std::size_t>(l)], 0) << "layer " << l;
  EXPECT_LE(hi - lo, 1);

  // A topological order exists (Kahn), every dep names a task.
  std::unordered_map<std::string_view, std::size_t> index;
  index.reserve(p.tasks.size());
  for (std::size_t i = 0; i < p.tasks.size(); ++i) {
    ASSERT_TRUE(index.emplace(p.tasks[i].id, i).second) << p.tasks[i].id;
  }
  std::vector<int> indeg(p.tasks.size(), 0);
  std::vector<std::vector<std::size_t>> out(p.tasks.size());
  for (std::size_t i = 0; i < p.tasks.size(); ++i) {
    for (const std::string& d : p.tasks[i].deps) {
      auto it = index.find(d);
      ASSERT_TRUE(it != index.end()) << p.tasks[i].id << " depends on unknown " << d;
      ++indeg[i];
      out[it->second].push_back(i);
    }
  }
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < indeg.size(); ++i) {
    if (indeg[i] == 0) ready.push_back(i);
  }
  std::size_t seen = 0;
  while (!ready.empty()) {
    const std::size_t i = ready.back();
    ready.pop_back();
    ++seen;
    for (std::size_t nx : out[i]) {
      if (--indeg[nx] == 0) ready.push_back(nx);
    }
  }
  EXPECT_EQ(seen, p.tasks.size()) << "the task graph has a cycle";
  auto by_id = [&](const std::string& id) -> const TaskSpec& { return p.tasks[index.at(id)]; };

  // align(l, s): its cache and its predecessor; every (l, s) exactly once.
  std::vector<char> aligned(static_cast<std::size_t>(L) * S, 0);
  std::size_t n_aligned = 0;
  auto has = [](const TaskSpec& t, const std::string& d) {
    return std::find(t.deps.begin(), t.deps.end(), d) != t.deps.end();
  };
  std::vector<std::int64_t> layer_tokens(static_cast<std::size_t>(L), 0);
  for (const TaskSpec& t : p.tasks) {
    if (t.type == TaskType::kCache && t.stage > 0) {
      EXPECT_TRUE(has(t, CacheTaskId(t.segment, t.stage - 1))) << t.id;
    }
    if (t.type != TaskType::kAlign) continue;
    ASSERT_TRUE(t.layer >= 0 && t.layer < L && t.segment >= 0 && t.segment < S) << t.id;
    EXPECT_EQ(aligned[static_cast<std::size_t>(t.layer) * S + t.segment]++, 0) << t.id;
    ++n_aligned;
    EXPECT_TRUE(has(t, CacheTaskId(t.segment, stage_of[static_cast<std::size_t>(t.layer)]))) << t.id;
    if (t.segment > 0) {
      EXPECT_TRUE(has(t, AlignTaskId(t.layer, t.segment - 1))) << t.id;
    } else {
      EXPECT_TRUE(has(t, TransferTaskId(t.layer))) << t.id;
    }
    layer_tokens[static_cast<std::size_t>(t.layer)] += t.tokens;
  }
  EXPECT_EQ(n_aligned, static_cast<std::size_t>(L) * S);

  // Tokens: segments partition step 1's samples; every layer sees the budget exactly once.
  const RecipeStep& a = p.recipe.steps.align;
  std::int64_t next = 0, sum = 0;
  for (const Segment& s : p.cache.segments) {
    EXPECT_EQ(s.sample_begin, next);
    EXPECT_EQ(s.tokens, (s.sample_end - s.sample_begin) * a.seq_len);
    EXPECT_EQ(s.tokens % a.TokensPerStep(), 0) << "segment " << s.index << " not whole steps";
    next = s.sample_end;
    sum += s.tokens;
  }
  EXPECT_EQ(sum, a.tokens);
  for (int l = 0; l < L; ++l) EXPECT_EQ(layer_tokens[static_cast<std::size_t>(l)], a.tokens);
  const TaskSpec& distill = by_id("distill");
  EXPECT_EQ(distill.tokens, p.recipe.steps.distill.tokens);
  EXPECT_EQ(distill.workers, p.layout.tp * p.layout.pp * p.layout.dp);
  for (int l = 0; l < L; ++l) EXPECT_TRUE(has(distill, AlignTaskId(l, S - 1)));
  if (ft) {
    EXPECT_EQ(by_id("finetune").tokens, p.recipe.steps.finetune.tokens);
  }
  // Cache window.
  EXPECT_GE(p.cache.window, 1);
  EXPECT_LE(p.cache.window, S);
  EXPECT_LE(p.cache.window * p.cache.max_segment_steps * p.cache.step_bytes,
            p.cache.kept ? p.cache.total_bytes + p.cache.step_bytes * S : p.cache.budget_bytes);
}

}  // namespace radlads::testing
