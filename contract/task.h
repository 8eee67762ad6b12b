// The task model of a conversion run (docs/design.md §3): what the planner produces, what the state
// store persists and what the scheduler leases. Plain values; no behaviour beyond naming.
//
// A run is a DAG of tasks:
//   transfer(l)     step 0, one per layer: build student layer l from the teacher.
//   cache(s, p)     step 1 producer, per token segment s and pipeline stage p: teacher forward
//                   over segment s through stage p's layers; writes the HDF5 activation cache.
//                   Depends on cache(s, p-1) (the previous stage's output hidden states).
//   align(l, s)     step 1 consumer, per layer and segment: train mixer l on segment s.
//                   Depends on cache(s, stage(l)), align(l, s-1) and transfer(l).
//   distill         step 2, one gang task over TP x PP x DP workers (depends on every
//                   align(l, last segment)).
//   finetune        step 3 (optional), a gang task like distill (depends on distill).
//   export          assemble the student as a Hugging Face directory.
//   eval            held-out loss, KL to the teacher, top-1 agreement (depends on export).
// Task ids are stable, human-readable strings that sort in DAG-friendly order and are used as
// keys in RUN/state: "transfer/L003", "cache/S00012/P01", "align/L003/S00012", "distill",
// "finetune", "export", "eval".
//
// Tokens: a step's budget is exact. Step-1 segments partition the step's global sample range;
// a segment s of step 1 covers samples [sample_begin, sample_end) (each sample is seq_len tokens
// plus the one-token shift), so token accounting is a pure function of the plan.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "contract/fields.h"

namespace radlads {

enum class TaskType : std::uint8_t { kTransfer, kCache, kAlign, kDistill, kFinetune, kExport, kEval };

// "transfer", "cache", "align", "distill", "finetune", "export", "eval".
std::string_view TaskTypeName(TaskType t);
bool ParseTaskType(std::string_view name, TaskType* out);

inline constexpr std::uint32_t TaskTypeBit(TaskType t) {
  return std::uint32_t{1} << static_cast<unsigned>(t);
}
inline constexpr std::uint32_t kAllTaskTypes = (std::uint32_t{1} << 7) - 1;

struct TaskSpec {
  std::string id;
  TaskType type = TaskType::kTransfer;
  int layer = -1;      // transfer, align
  int segment = -1;    // cache, align
  int stage = -1;      // cache: pipeline stage; align: the stage holding the layer
  int first_layer = -1, last_layer = -1;  // cache: layers [first, last) of the stage
  std::vector<std::string> deps;
  // Exact token budget of this task (0 for tasks that consume no training tokens) and, for
  // step-1 tasks, the global sample range it covers.
  std::int64_t tokens = 0;
  std::int64_t sample_begin = 0, sample_end = 0;
  // Optimizer steps this task performs (align: steps of its segment; distill/finetune: all).
  std::int64_t optimizer_steps = 0;
  int workers = 1;  // gang size (distill/finetune: tp*pp*dp)
  bool operator==(const TaskSpec&) const = default;
};

template <class V>
void VisitFields(V& v, TaskSpec& t) {
  v.Str("id", t.id, kMaxIdBytes);
  v.Enum("type", t.type);
  v.Int("layer", t.layer);
  v.Int("segment", t.segment);
  v.Int("stage", t.stage);
  v.Int("first_layer", t.first_layer);
  v.Int("last_layer", t.last_layer);
  v.Strs("deps", t.deps, kMaxListItems, kMaxIdBytes);
  v.Int("tokens", t.tokens);
  v.Int("sample_begin", t.sample_begin);
  v.Int("sample_end", t.sample_end);
  v.Int("optimizer_steps", t.optimizer_steps);
  v.Int("workers", t.workers);
}

template <>
struct EnumTraits<TaskType> {
  static constexpr std::uint8_t kMax = static_cast<std::uint8_t>(TaskType::kEval);
  static std::string_view Name(TaskType t) { return TaskTypeName(t); }
  static bool Parse(std::string_view name, TaskType* out) { return ParseTaskType(name, out); }
};

// Id builders (zero-padded so lexicographic order is numeric order).
std::string TransferTaskId(int layer);
std::string CacheTaskId(int segment, int stage);
std::string AlignTaskId(int layer, int segment);

}  // namespace radlads
