// Steps 2 and 3 (distill, finetune): the whole student trains, on one worker group: this process
// alone, or a gang of ranks (worker/gang.h). Data parallel: each of the dp replicas takes its
// contiguous share of every optimizer step's samples; their gradients are summed over the dp
// group in a fixed order (kernels/collectives.h), so every replica applies the same update and
// a rerun of the same layout is bit-identical. Only dp replica 0 writes the checkpoint (the
// replicas hold identical state). The task's token cursor and optimizer step live in its
// checkpoints, so a resumed task continues at the exact sample, on any dp size.
#include <algorithm>
#include <chrono>

#include "configs/lr_schedule.h"
#include "pipeline/lm_batch.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "worker/checkpoint_io.h"
#include "worker/gang.h"
#include "worker/task_env.h"

namespace radlads {

Result<std::unique_ptr<ParamSet>> LoadStudentAfterStep1(const TaskEnv& env, const std::vector<FileRecord>& layer_files) {
  auto params = std::make_unique<ParamSet>();
  TransferDecoder(*env.teacher->params, env.student, *params);
  for (int l = 0; l < env.student.base.num_hidden_layers; ++l) {
    DeclareStudentMixerParams(env.student, l, *params);
  }
  for (const FileRecord& f : layer_files) {
    RADLADS_RETURN_IF_ERROR(LoadTrainingCheckpoint(env.layout.dir, f, *params, false).status());
  }
  // Step 2 starts a fresh optimizer: drop step 1's moments.
  for (Param* p : params->params()) p->adam_m = p->adam_v = Tensor();
  return params;
}

Result<TaskResult> RunGangTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  const TaskSpec& t = grant.task;
  const bool distill = t.type == TaskType::kDistill;
  const RecipeStepKind kind = distill ? RecipeStepKind::kDistill : RecipeStepKind::kFinetune;
  const StepPlan* sp = env.plan->Step(kind);
  const RecipeStep& rs = distill ? env.plan->recipe.steps.distill : env.plan->recipe.steps.finetune;
  const std::string name(TaskTypeName(t.type));

  std::unique_ptr<ParamSet> params;
  TrainingState st;
  if (grant.resume_from) {
    params = std::make_unique<ParamSet>();
    DeclareParams(StudentParamSpecs(env.student), *params);
    RADLADS_ASSIGN_OR_RETURN(st, LoadTrainingCheckpoint(env.layout.dir, grant.resume_from->record.files.at(0),
                                                       *params, true));
  } else if (distill) {
    std::vector<FileRecord> files;
    for (int l = 0; l < env.student.base.num_hidden_layers; ++l) {
      const int last = static_cast<int>(env.plan->cache.segments.size()) - 1;
      RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, AlignTaskId(l, last)));
      files.push_back(dep->record.files.at(0));
    }
    RADLADS_ASSIGN_OR_RETURN(params, LoadStudentAfterStep1(env, files));
  } else {
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, "distill"));
    params = std::make_unique<ParamSet>();
    DeclareParams(StudentParamSpecs(env.student), *params);
    RADLADS_RETURN_IF_ERROR(LoadTrainingCheckpoint(env.layout.dir, dep->record.files.at(0), *params, true).status());
    for (Param* p : params->params()) p->adam_m = p->adam_v = Tensor();
  }
  params->SetTrainable([](const std::string&) { return true; });
  StudentModel student = MakeStudentModel(env.student, std::move(params));
  ParamSet& ps = *student.params;

  WindowSamplerOptions so;
  so.mode = env.plan->recipe.data.sampler;
  so.ctx_len = static_cast<std::uint64_t>(sp->seq_len);
  so.magic_prime = sp->magic_prime;
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler, WindowSampler::Create(env.train->size(), so));
  const OptimizerSettings os = OptimizerSettingsFor(env.plan->recipe.optimizer);
  std::unique_ptr<DistillTrainer> kd;
  std::unique_ptr<FinetuneTrainer> ft;
  AdamWOptimizer* opt = nullptr;
  if (distill) {
    kd = std::make_unique<DistillTrainer>(*student.model, ps, *env.teacher->model, os, rs.loss.kl_chunk_tokens);
    opt = &kd->optimizer();
  } else {
    ft = std::make_unique<FinetuneTrainer>(*student.model, ps, os, 512);
    opt = &ft->optimizer();
  }
  opt->set_step(st.optimizer_step);

  const GangContext* gang = env.gang;
  const std::int64_t dp = gang != nullptr ? gang->layout.dp : 1;
  const std::int64_t dp_rank = gang != nullptr ? gang->dp_rank : 0;
  const std::int64_t T = sp->seq_len, batch = sp->batch;
  if (batch % dp != 0) {
    return Status::InvalidArgument(t.id + ": batch " + std::to_string(batch) + " does not divide over dp " +
                                   std::to_string(dp));
  }
  const std::int64_t per_replica = batch / dp;
  const std::int64_t mb = std::max<std::int64_t>(1, std::min(sp->micro_batch, per_replica));
  const std::int64_t accum = std::max<std::int64_t>(1, per_replica / mb);
  std::int64_t done = st.optimizer_step;
  const std::int64_t start_done = done;
  CheckpointClock ckpt(env.checkpoint_every_steps, env.checkpoint_every_seconds);
  auto t0 = std::chrono::steady_clock::now();
  // This rank's shard of the checkpoint (dp replica 0 writes it; the others hold the same state).
  auto save = [&](std::int64_t step) -> Result<std::vector<FileRecord>> {
    if (dp_rank != 0) return std::vector<FileRecord>{};
    TrainingState now;
    now.optimizer_step = step;
    now.tokens = step * batch * T;
    now.sample_cursor = step * batch;
    RADLADS_ASSIGN_OR_RETURN(FileRecord f, SaveTrainingCheckpoint(env.layout.dir, RunLayout::GangFile(name, step), ps, now));
    return std::vector<FileRecord>{f};
  };
  // Sums every gradient over the dp replicas (each scaled its share by 1 / (accum * dp)).
  std::vector<Param*> trainable;
  for (Param* p : ps.params()) {
    if (p->trainable) trainable.push_back(p);
  }
  auto reduce_grads = [&] {
    if (dp == 1) return;
    for (Param* p : trainable) gang->dp->AllReduceSum(p->grad.f32(), static_cast<std::size_t>(p->grad.numel()));
  };
  double kl = 0, top1 = 0, ce = 0;
  while (done < t.optimizer_steps) {
    kl = top1 = ce = 0;
    for (std::int64_t j = 0; j < accum; ++j) {
      const std::uint64_t g = static_cast<std::uint64_t>(done * batch + dp_rank * per_replica + j * mb);
      RADLADS_ASSIGN_OR_RETURN(LmBatch b, ReadLmBatch(*env.train, sampler, g, mb));
      const float scale = 1.0f / static_cast<float>(accum * dp);
      if (distill) {
        DistillStepStats s = kd->Accumulate(b, scale);
        kl += s.kl / static_cast<double>(accum);
        top1 += s.top1 / static_cast<double>(accum);
        ce += s.student_ce / static_cast<double>(accum);
      } else {
        ce += ft->Accumulate(b, scale).ce / static_cast<double>(accum);
      }
    }
    reduce_grads();
    if (dp > 1) {  // the step's losses: the mean over replicas
      double m[3] = {kl, top1, ce};
      gang->dp->AllReduceSum(m, 3);
      kl = m[0] / static_cast<double>(dp);
      top1 = m[1] / static_cast<double>(dp);
      ce = m[2] / static_cast<double>(dp);
    }
    StepLearningRates lr = LearningRate(rs, done, done * rs.TokensPerStep());
    OptimizerStepResult r = opt->Step(lr.main, lr.mixer);
    if (!r.applied) {
      return Status::Internal(t.id + ": non-finite gradient norm at step " + std::to_string(done));
    }
    ++done;
    Progress p;
    p.step = done;
    p.tokens = done * batch * T;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.throughput = secs > 0 ? static_cast<double>((done - start_done) * batch * T) / secs : 0;
    if (distill) {
      p.losses.push_back({"kl", kl});
      p.losses.push_back({"top1", top1});
    }
    p.losses.push_back({"ce", ce});
    p.losses.push_back({"grad_norm", r.grad_norm});
    const bool stop = reporter.Heartbeat(p);
    bool due = ckpt.Due(done - start_done);
    if (gang != nullptr) {  // a clock-based decision must be the same on every rank
      double d = due ? 1.0 : 0.0;
      gang->all->AllReduceMax(&d, 1);
      due = d > 0.0;
    }
    if (done < t.optimizer_steps && (stop || due)) {
      RADLADS_ASSIGN_OR_RETURN(std::vector<FileRecord> files, save(done));
      RADLADS_RETURN_IF_ERROR(reporter.Commit(CheckpointRecord{done, p.tokens, files}));
      ckpt.Reset();
      if (stop) return TaskResult{TaskOutcome::kStopped, {}};
    }
  }
  RADLADS_ASSIGN_OR_RETURN(std::vector<FileRecord> files, save(done));
  TaskResult res;
  res.final.checkpoint = CheckpointRecord{done, t.tokens, files};
  if (distill) res.final.metrics = {{"kl", kl}, {"top1", top1}, {"ce", ce}};
  else res.final.metrics = {{"ce", ce}};
  res.final.metrics.push_back({"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  return res;
}

}  // namespace radlads
