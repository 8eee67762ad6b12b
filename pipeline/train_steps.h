// One training step of each RADLADS protocol step (docs/spec.md §2), on the CPU backend.
//
// Step 1, attention alignment (§2.1): per layer, the student mixer reads the teacher's mixer
//   input (RMSNorm_1 output on the teacher's residual stream) and is trained so its output
//   matches the teacher attention output: loss = mean over tokens of ||o_T - o_S||_2 / sqrt(D).
//   Layers are independent (docs/design.md §3 align(l, s)); only the mixer trains. RAD-RWKV7's
//   v_first for layers >= 1 is an input: layer 0's value computed with layer 0's step-0 v_proj
//   (the teacher's) on the teacher stream (ValueFirstFromTeacher), so per-layer tasks need no
//   other layer's live weights. The paper's single-process code lets later layers' gradients
//   flow into layer 0's v_proj through v_first; per-layer tasks cannot, and step 2 trains the
//   whole model anyway (docs/conversion.md).
// Step 2, knowledge distillation (docs/spec.md §2.2): the whole student trains on KL(teacher || student) at
//   T = 1, token-mean, with the teacher frozen and co-resident; logits are never materialised
//   beyond [chunk, vocab].
// Step 3, fine-tuning (docs/spec.md §2.4): next-token cross-entropy on the student alone.
// Each trainer accumulates gradients over micro-batches (grad_scale = 1 / micro-batches) and then
// applies one optimizer step with the caller's learning rates (configs/lr_schedule.h).
#pragma once

#include <cstdint>

#include "kernels/ops/head_loss.h"
#include "kernels/ops/head_loss_parallel.h"
#include "kernels/ops/rope.h"
#include "pipeline/decoder.h"
#include "pipeline/lm_batch.h"
#include "pipeline/mixer.h"
#include "pipeline/optimizer.h"
#include "pipeline/param_set.h"
#include "storage/student_config.h"

namespace radlads {

// RAD-RWKV7's v_first for step 1: layer 0's value projection (weights wv [KV*N, C], bias bv
// [KV*N] or undefined) of layer 0's mixer input x0 [B,T,C], expanded to H heads: [B,T,H*N].
Tensor ValueFirstFromTeacher(const StudentConfig& cfg, const Tensor& wv, const Tensor& bv, const Tensor& x0);

struct AlignStepStats {
  double loss = 0.0;  // mean over tokens of ||o_T - o_S|| / sqrt(D) (this micro-batch)
  std::int64_t tokens = 0;
};

class AlignTrainer {
 public:
  // `params` holds this layer's mixer (trainable); `mixer` is built over it.
  AlignTrainer(const StudentConfig& cfg, int layer, ParamSet& params, Mixer& mixer,
               const OptimizerSettings& opt);

  // Forward + loss + backward on one micro-batch: mixer_in and target [B,T,C]; v_first [B,T,A]
  // for RAD-RWKV7 layers >= 1 (else undefined). Accumulates grad_scale * d(loss).
  AlignStepStats Accumulate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first,
                            float grad_scale);
  // Loss only (evaluation).
  double Evaluate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first);
  OptimizerStepResult Step(double lr_mixer) { return optimizer_.Step(lr_mixer, lr_mixer); }
  AdamWOptimizer& optimizer() { return optimizer_; }

 private:
  double Run(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first, bool backward,
             float grad_scale);
  const ops::RopeTable& Rope(std::int64_t needed);

  StudentConfig cfg_;
  int layer_;
  Mixer& mixer_;
  AdamWOptimizer optimizer_;
  ops::RopeTable rope_;
};

struct DistillStepStats {
  double kl = 0.0;          // mean KL(teacher || student) per token, nats
  double top1 = 0.0;        // fraction of positions whose argmax agrees
  double student_ce = 0.0;  // student next-token CE (nats/token), for monitoring
  std::int64_t tokens = 0;
};

struct FinetuneStepStats {
  double ce = 0.0;  // nats/token
  std::int64_t tokens = 0;
};

// The LM head and loss of steps 2 and 3 on final hidden states [.., C] (the student's, and the
// teacher's for KL), with the token-mean scaling of the spec: KL over all N positions, CE over
// the positions with a target. Accumulates grad_scale * d(mean loss) into grads (dx the whole
// gradient; dw this rank's head rows). With `vocab` (a group of more than one rank) the heads
// are this rank's vocabulary rows and the loss is vocabulary-parallel
// (kernels/ops/head_loss_parallel.h); otherwise the fused whole-vocabulary loss.
DistillStepStats DistillHeadLoss(const Tensor& student_hidden, const Tensor& w_student, const Tensor& teacher_hidden,
                                 const Tensor& w_teacher, const Tensor& targets, float grad_scale, std::int64_t chunk,
                                 const VocabShard* vocab, const HeadGrads& grads);
FinetuneStepStats FinetuneHeadLoss(const Tensor& hidden, const Tensor& w, const Tensor& targets, float grad_scale,
                                   std::int64_t chunk, const VocabShard* vocab, const HeadGrads& grads);

class DistillTrainer {
 public:
  // Every student parameter must be trainable (SetTrainable before building `student`).
  DistillTrainer(DecoderModel& student, ParamSet& student_params, DecoderModel& teacher,
                 const OptimizerSettings& opt, std::int64_t kl_chunk);
  DistillStepStats Accumulate(const LmBatch& batch, float grad_scale);
  DistillStepStats Evaluate(const LmBatch& batch);
  OptimizerStepResult Step(double lr_main, double lr_mixer) { return optimizer_.Step(lr_main, lr_mixer); }
  AdamWOptimizer& optimizer() { return optimizer_; }

 private:
  DistillStepStats Run(const LmBatch& batch, bool backward, float grad_scale);
  DecoderModel& student_;
  DecoderModel& teacher_;
  AdamWOptimizer optimizer_;
  std::int64_t chunk_;
};

class FinetuneTrainer {
 public:
  FinetuneTrainer(DecoderModel& model, ParamSet& params, const OptimizerSettings& opt, std::int64_t chunk);
  FinetuneStepStats Accumulate(const LmBatch& batch, float grad_scale);
  OptimizerStepResult Step(double lr_main, double lr_mixer) { return optimizer_.Step(lr_main, lr_mixer); }
  AdamWOptimizer& optimizer() { return optimizer_; }

 private:
  DecoderModel& model_;
  AdamWOptimizer optimizer_;
  std::int64_t chunk_;
};

}  // namespace radlads
