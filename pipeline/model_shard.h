// Model shards for tensor and pipeline parallelism (docs/design.md §5): which parameters a rank
// of a gang holds, and with which shape.
//
// Tensor parallelism over `tp` ranks splits whole heads, MLP columns and vocabulary rows:
//   - the local configuration (TpSliceConfig) has num_attention_heads, num_key_value_heads,
//     intermediate_size and vocab_size divided by tp, and head_dim explicit; hidden_size is
//     unchanged. A model built on it declares every parameter in its local shape.
//   - a local shape differs from the full one in at most one dimension, by the factor tp; the
//     rank holds the contiguous block `tp_rank` of that dimension (q/k/v rows = its heads,
//     o_proj/down_proj columns, gate/up rows, embedding and head rows = its vocabulary block,
//     per-head vectors). Equal shapes are replicated (norms, LoRA input factors, token-shift
//     mixes).
//   - gradients: a sliced parameter's gradient is this rank's block; a replicated parameter
//     inside the mixer (name containing ".self_attn.") feeds every head, so each rank holds a
//     partial gradient that the tp group sums (TpPartialGradient); the decoder's norms see the
//     summed activations and get the complete gradient on every rank.
//   What TP cannot split, the planner refuses (plan/plan.h CheckLayout): a bias added after the
//   row-parallel o_proj (attention_output_bias), heads or KV heads or intermediate or vocabulary
//   sizes that tp does not divide.
// Pipeline parallelism: stage `pp_rank` holds the layers [first_layer, last_layer) (the caller
// takes them from the plan: plan/plan.h BalancedStages), the embedding on the first stage, the final norm and the untied
// LM head on the last (a tied head would put the embedding on two stages: refused by the
// planner).
// Thread-safety: plain functions and values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "pipeline/model_io.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads {

struct ModelShard {
  int tp = 1, tp_rank = 0;
  int pp = 1, pp_rank = 0;
  int first_layer = 0, last_layer = 0;  // this stage's layers [first, last)
  bool first_stage() const { return pp_rank == 0; }
  bool last_stage() const { return pp_rank == pp - 1; }
  bool whole() const { return tp == 1 && pp == 1; }
};

// The local configuration of one of `tp` ranks (see above). InvalidArgument, naming the field,
// when tp does not divide it.
Result<Qwen2Config> TpSliceConfig(const Qwen2Config& full, int tp);
Result<StudentConfig> TpSliceStudent(const StudentConfig& full, int tp);

// The layer of a "model.layers.{l}." name; -1 for the embedding, final norm and head.
int LayerOfParam(const std::string& name);
// Whether stage `s` holds the parameter `name`.
bool StageHolds(const ModelShard& s, const std::string& name);
// The specs of `all` that stage `s` holds, in order.
std::vector<ParamSpec> StageSpecs(const std::vector<ParamSpec>& all, const ModelShard& s);

// The dimension along which `local` is a 1/tp block of `full`; -1 when the shapes are equal
// (replicated). InvalidArgument when they differ otherwise.
Result<int> TpSplitDim(const Shape& full, const Shape& local, int tp);
// Block `tp_rank` of `full` with shape `local`, in full's dtype (a copy; `full` itself when
// replicated).
Tensor TpSlice(const Tensor& full, const Shape& local, int tp, int tp_rank);
// The same into `dst` (allocated with `local` when undefined).
void TpSliceInto(const Tensor& full, const Shape& local, int tp, int tp_rank, Tensor& dst);
// The inverse: `pieces` (tp_rank order, each of the local shape) joined along `dim` into `full`.
void TpJoin(const std::vector<Tensor>& pieces, int dim, Tensor& full);

// Fills every parameter of `local` (declared in its local shapes) from `full` (the whole model
// in full shapes): values, and Adam moments where `full` has them. Parameters absent from
// `full` are an error naming them. A frozen view in `full` (read-only, or BF16/F16: a mapped
// teacher, pipeline/frozen_weights.h) becomes the local value in its own dtype (the view itself
// when replicated) instead of being copied into the declared F32 tensor.
Status SliceParams(const ParamSet& full, ParamSet& local, int tp, int tp_rank);

// True when `name` is replicated over the tp group but receives a partial gradient on each rank
// (see above): the caller sums its gradient over the group before the optimizer step.
bool TpPartialGradient(const std::string& name, const Shape& full, const Shape& local);

// The full shapes of a model's parameters by name (to compare with the local shapes).
std::map<std::string, Shape, std::less<>> ShapesByName(const std::vector<ParamSpec>& specs);

}  // namespace radlads
