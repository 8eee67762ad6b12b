// Step 1 consumer align(l, s): train layer l's mixer on segment s's cached teacher pairs, and,
// with layer affinity, the layer's following segments on the same state in memory (committing
// at the cluster's checkpoint interval, docs/design.md §5), on the run's training device
// (worker/device_training.h).
#include <algorithm>
#include <chrono>
#include <optional>

#include "base/checksum.h"
#include "configs/lr_schedule.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "storage/activation_cache.h"
#include "worker/checkpoint_io.h"
#include "worker/device_training.h"
#include "worker/task_env.h"

namespace radlads {

OptimizerSettings OptimizerSettingsFor(const RecipeOptimizer& o) {
  OptimizerSettings s;
  s.beta1 = o.beta1;
  s.beta2 = o.beta2;
  s.eps = o.eps;
  s.weight_decay = o.weight_decay;
  s.grad_clip = o.grad_clip;
  s.bias_correction = o.bias_correction;
  return s;
}

Result<TaskResult> RunAlignTask(TaskEnv& env, const LeaseGrant& first_grant, TaskReporter& reporter) {
  LeaseGrant grant = first_grant;  // the segment being trained; later ones when the chain goes on
  const int l = grant.task.layer;
  const StepPlan* sp = env.plan->Step(RecipeStepKind::kAlign);
  const RecipeStep& rs = env.plan->recipe.steps.align;
  const std::int64_t T = sp->seq_len, C = env.student.base.hidden_size;
  const std::int64_t batch = sp->batch, mb = sp->micro_batch, accum = sp->grad_accum;

  ParamSet params;
  DeclareStudentMixerParams(env.student, l, params);
  params.SetTrainable([](const std::string&) { return true; });
  FileRecord src;
  if (grant.resume_from) {
    src = grant.resume_from->record.files.at(0);
  } else {
    const int s = grant.task.segment;
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep,
                             DependencyRecord(grant, s == 0 ? TransferTaskId(l) : AlignTaskId(l, s - 1)));
    if (dep->record.files.empty()) {
      return Status::FailedPrecondition(grant.task.id + ": the state after " + dep->task +
                                        " was held in another worker's memory and has no file");
    }
    src = dep->record.files.at(0);
  }
  RADLADS_ASSIGN_OR_RETURN(TrainingState st, LoadTrainingCheckpoint(env.layout.dir, src, params, true));
  std::int64_t done = 0;
  if (grant.resume_from) {
    done = st.optimizer_step - grant.task.sample_begin / batch;  // segments are whole optimizer steps
    if (done < 0 || done > grant.task.optimizer_steps) {
      return Status::Corruption(env.layout.Abs(src.path) + ": optimizer_step " + std::to_string(st.optimizer_step) +
                                " does not belong to " + grant.task.id);
    }
  }

  // The mixer's trainer on the run's device (worker/device_training.h), over `params`.
  RADLADS_ASSIGN_OR_RETURN(std::unique_ptr<AlignDeviceTrainer> trainer,
                           MakeAlignDeviceTrainer(env.device, env.student, l, params,
                                                  OptimizerSettingsFor(env.plan->recipe.optimizer), st.optimizer_step));
  const bool need_vfirst = env.student.arch == StudentArch::kRwkv7 && l > 0;
  const std::int64_t A = env.student.base.q_dim();
  Tensor in = Tensor::Empty({mb, T, C}), out = Tensor::Empty({mb, T, C});
  Tensor vf = need_vfirst ? Tensor::Empty({mb, T, A}) : Tensor();
  // Layer affinity: at the end of a segment the state stays in memory and the layer's next
  // segment continues from it (TaskReporter::CompleteAndContinue) unless a checkpoint is due by
  // the cluster's interval, counted over the whole chain since its last durable commit.
  CheckpointClock ckpt(env.checkpoint_every_steps, env.checkpoint_every_seconds);
  std::int64_t steps_since_durable = 0;
  for (;;) {
    const TaskSpec& t = grant.task;
    const int s = t.segment;
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* cache_dep, DependencyRecord(grant, CacheTaskId(s, t.stage)));
    const FileRecord& cf = cache_dep->record.files.at(0);
    RADLADS_ASSIGN_OR_RETURN(std::uint64_t csum, ParseChecksum(cf.checksum));
    RADLADS_ASSIGN_OR_RETURN(auto cache, ActivationCacheReader::Open(env.layout.Abs(cf.path), std::nullopt, csum));
    auto t0 = std::chrono::steady_clock::now();
    const std::int64_t start_done = done;
    auto save = [&](std::int64_t global_step) -> Result<FileRecord> {
      trainer->SyncToHost();
      TrainingState now;
      now.optimizer_step = global_step;
      now.tokens = done * batch * T;
      now.sample_cursor = t.sample_begin + done * batch;
      return SaveTrainingCheckpoint(env.layout.dir, RunLayout::AlignFile(l, s, global_step), params, now);
    };
    while (done < t.optimizer_steps) {
      double loss = 0;
      for (std::int64_t j = 0; j < accum; ++j) {
        const std::int64_t first = done * batch + j * mb;
        RADLADS_RETURN_IF_ERROR(cache->ReadLayer(l, first, in, out));
        if (need_vfirst) RADLADS_RETURN_IF_ERROR(cache->ReadValueFirst(first, vf));
        loss += trainer->Accumulate(in, out, vf, 1.0f / static_cast<float>(accum)).loss / static_cast<double>(accum);
      }
      const std::int64_t global = trainer->optimizer_step();
      StepLearningRates lr = LearningRate(rs, global, global * rs.TokensPerStep());
      OptimizerStepResult r = trainer->Step(lr.mixer);
      if (!r.applied) {
        return Status::Internal(t.id + ": non-finite gradient norm at step " + std::to_string(global) +
                                " (loss " + std::to_string(loss) + ")");
      }
      ++done;
      ++steps_since_durable;
      Progress p;
      p.step = trainer->optimizer_step();
      p.tokens = done * batch * T;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      p.throughput = secs > 0 ? static_cast<double>((done - start_done) * batch * T) / secs : 0;
      p.losses.push_back({"l2", loss});
      p.losses.push_back({"lr", lr.mixer});
      const bool stop = reporter.Heartbeat(p);
      if (done < t.optimizer_steps && (stop || ckpt.Due(steps_since_durable))) {
        RADLADS_ASSIGN_OR_RETURN(FileRecord f, save(p.step));
        RADLADS_RETURN_IF_ERROR(reporter.Commit(CheckpointRecord{p.step, p.tokens, {f}}));
        ckpt.Reset();
        steps_since_durable = 0;
        if (stop) return TaskResult{TaskOutcome::kStopped, {}};
      }
    }
    TaskResult r;
    r.final.checkpoint = CheckpointRecord{trainer->optimizer_step(), t.tokens, {}};
    r.final.metrics.push_back({"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
    if (!ckpt.Due(steps_since_durable)) {
      if (std::optional<LeaseGrant> next = reporter.CompleteAndContinue(r.final)) {
        grant = std::move(*next);
        done = 0;
        continue;
      }
    }
    RADLADS_ASSIGN_OR_RETURN(FileRecord f, save(trainer->optimizer_step()));
    r.final.checkpoint.files = {f};
    return r;
  }
}

}  // namespace radlads
