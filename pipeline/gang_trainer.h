// GangTrainer: one replica's share of a step-2 (distill) or step-3 (finetune) optimizer step,
// on a model split over tensor-parallel ranks and pipeline stages (docs/design.md §5).
//
// Schedule: GPipe with recomputation. Within one optimizer step over M micro-batches:
//   forward phase:  every stage runs micro-batches 0..M-1 in order, receiving the previous
//                   stage's output (hidden states, RAD-RWKV7's v_first, the teacher's hidden
//                   states) and sending its own; a stage other than the last keeps only its
//                   input (no activations). The last stage computes the loss of each
//                   micro-batch as it arrives and runs its backward at once.
//   backward phase: the gradients of the stage inputs flow from the last stage to the first,
//                   micro-batches 0..M-1 in order; each earlier stage recomputes its forward
//                   from the kept input, then runs its backward.
//   Why GPipe and not 1F1B: the stages are CPU processes that each keep one forward's
//   activations (DecoderModel holds one in flight), so 1F1B's memory advantage, bounding
//   in-flight activations by the stage count, is had here by recomputation, at one extra
//   forward per stage (the last stage none); the bubble, (pp - 1) / (M + pp - 1) of the step,
//   is the same for both, and the planner asks for M >= 4 pp (plan/plan.cpp). The gradient
//   accumulation order is fixed (micro-batch order), so a rerun is bit-identical.
// Tensor parallelism (pipeline/model_shard.h): the decoder sums over the tp group where the
// math requires it; the LM head and its loss are vocabulary-parallel
// (kernels/ops/head_loss_parallel.h), so no rank holds full-vocabulary logits; after the
// micro-batches the partial gradients of replicated mixer parameters are summed over tp.
// The optimizer's global gradient norm is taken over the whole model: sliced gradients from
// every rank of the model-parallel group, replicated ones once.
// A whole model (tp = pp = 1) runs DistillTrainer / FinetuneTrainer unchanged.
//
// Every rank of the model-parallel group calls AccumulateStep with the same micro-batches (all
// read their own copy: the first stage needs the ids, the last the targets); the statistics
// returned are the same on every rank. Data parallelism is the caller's (sum the gradients over
// the dp group between AccumulateStep and Step).
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/collectives.h"
#include "pipeline/decoder.h"
#include "pipeline/lm_batch.h"
#include "pipeline/optimizer.h"
#include "pipeline/param_set.h"
#include "pipeline/train_steps.h"

namespace radlads {

struct ModelParallelGroups {
  Communicator* tp = nullptr;  // this stage's tensor-parallel ranks (null: tp 1)
  Communicator* pp = nullptr;  // the stages, rank = stage (null: pp 1)
  Communicator* mp = nullptr;  // tp x pp of this replica (null when both are 1)
  std::int64_t full_vocab = 0; // the full vocabulary (vocabulary-parallel loss)
};

class GangTrainer {
 public:
  // `student` and `teacher` (null: finetune) are this rank's shards, built on the same groups;
  // `params` holds the student shard's parameters, all trainable; `full_shapes` the whole
  // model's shapes by name (to tell sliced from replicated parameters).
  GangTrainer(DecoderModel& student, ParamSet& params, DecoderModel* teacher, const OptimizerSettings& opt,
              std::int64_t loss_chunk, const ModelParallelGroups& groups,
              const std::map<std::string, Shape, std::less<>>& full_shapes);
  ~GangTrainer();

  // Forward and backward of this replica's micro-batches of one optimizer step; accumulates
  // grad_scale * d(mean loss of each micro-batch). Returns the statistics averaged over the
  // micro-batches (kl/top1 zero for finetune; ce the student's cross-entropy).
  DistillStepStats AccumulateStep(const std::vector<LmBatch>& micro_batches, float grad_scale);
  AdamWOptimizer& optimizer() { return *optimizer_; }

 private:
  DistillStepStats LastStageLoss(const LmBatch& b, const Tensor& student_hidden, const Tensor& teacher_hidden,
                                 float grad_scale, Tensor& dhidden);
  bool Whole() const { return groups_.tp == nullptr && groups_.pp == nullptr; }

  DecoderModel& student_;
  ParamSet& params_;
  DecoderModel* teacher_;
  std::int64_t chunk_;
  ModelParallelGroups groups_;
  std::vector<Param*> tp_partial_;   // replicated, partial gradient: summed over tp
  std::vector<Param*> replicated_;   // every replicated trainable parameter
  std::vector<Param*> sliced_;
  bool carries_v_first_ = false;     // RAD-RWKV7: v_first travels between stages
  std::unique_ptr<DistillTrainer> kd_;   // whole model
  std::unique_ptr<FinetuneTrainer> ft_;  // whole model
  std::unique_ptr<AdamWOptimizer> own_optimizer_;
  AdamWOptimizer* optimizer_ = nullptr;
};

}  // namespace radlads
