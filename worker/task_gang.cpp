// Steps 2 and 3 (distill, finetune): the whole student trains, on one worker group: this process
// alone, or a gang of ranks (worker/gang.h). Each rank builds its shard of the student (and of
// the teacher) for its tensor-parallel rank and pipeline stage (pipeline/model_shard.h) and
// trains it with GangTrainer (pipeline/gang_trainer.h: GPipe with recomputation, vocabulary-
// parallel loss). Each model-parallel rank of dp replica 0 writes its shard of every
// checkpoint; a checkpoint loads into any layout (worker/checkpoint_io.h). Data parallel: each of the dp replicas takes its
// contiguous share of every optimizer step's samples; their gradients are summed over the dp
// group in a fixed order (kernels/collectives.h), so every replica applies the same update and
// a rerun of the same layout is bit-identical. Only dp replica 0 writes the checkpoint (the
// replicas hold identical state). The task's token cursor and optimizer step live in its
// checkpoints, so a resumed task continues at the exact sample, on any dp size. With
// `run --device cuda` the whole model trains on one GPU instead (worker/device_training.h).
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "configs/lr_schedule.h"
#include "pipeline/gang_trainer.h"
#include "pipeline/lm_batch.h"
#include "pipeline/model_shard.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "worker/checkpoint_io.h"
#include "worker/device_training.h"
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

namespace {

DecoderShard DecoderShardOf(const ModelShard& s, std::int64_t local_vocab, Communicator* tp) {
  DecoderShard d;
  d.first_layer = s.first_layer;
  d.last_layer = s.last_layer;
  d.first_stage = s.first_stage();
  d.last_stage = s.last_stage();
  d.vocab_begin = static_cast<std::int64_t>(s.tp_rank) * local_vocab;
  d.tp = s.tp > 1 ? tp : nullptr;
  return d;
}

ModelShard ShardOfRank(const TaskEnv& env) {
  ModelShard s;
  s.last_layer = env.student.base.num_hidden_layers;
  if (env.gang == nullptr) return s;
  const GangContext& g = *env.gang;
  s.tp = g.layout.tp;
  s.tp_rank = g.tp_rank;
  s.pp = g.layout.pp;
  s.pp_rank = g.pp_rank;
  const StageRange r = BalancedStages(env.student.base.num_hidden_layers, s.pp).at(static_cast<std::size_t>(s.pp_rank));
  s.first_layer = r.first_layer;
  s.last_layer = r.last_layer;
  return s;
}

// The teacher's shard for this rank (frozen), sliced from the worker's whole teacher.
Result<Qwen2Teacher> TeacherShard(const TaskEnv& env, const ModelShard& ms, Communicator* tp) {
  const Qwen2Config& full = env.teacher->config;
  RADLADS_ASSIGN_OR_RETURN(Qwen2Config local, TpSliceConfig(full, ms.tp));
  auto params = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(Qwen2ParamSpecs(local), ms), *params);
  RADLADS_RETURN_IF_ERROR(SliceParams(*env.teacher->params, *params, ms.tp, ms.tp_rank));
  return MakeQwen2Teacher(local, std::move(params), DecoderShardOf(ms, local.vocab_size, tp));
}

}  // namespace

Result<TaskResult> RunGangTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  const TaskSpec& t = grant.task;
  const bool distill = t.type == TaskType::kDistill;
  const RecipeStepKind kind = distill ? RecipeStepKind::kDistill : RecipeStepKind::kFinetune;
  const StepPlan* sp = env.plan->Step(kind);
  const RecipeStep& rs = distill ? env.plan->recipe.steps.distill : env.plan->recipe.steps.finetune;
  const std::string name(TaskTypeName(t.type));
  const GangContext* gang = env.gang;

  // This rank's shard: its layers and its tp slice of them, in local shapes.
  const ModelShard ms = ShardOfRank(env);
  RADLADS_ASSIGN_OR_RETURN(const StudentConfig local, TpSliceStudent(env.student, ms.tp));
  const std::vector<ParamSpec> full_specs = StudentParamSpecs(env.student);
  const auto full_shapes = ShapesByName(full_specs);
  auto params = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(StudentParamSpecs(local), ms), *params);
  TrainingState st;
  if (grant.resume_from) {
    RADLADS_ASSIGN_OR_RETURN(st, LoadCheckpointShards(env.layout.dir, grant.resume_from->record.files, *params,
                                                      ms.tp, ms.tp_rank, full_shapes));
  } else if (distill) {
    std::vector<FileRecord> files;
    for (int l = 0; l < env.student.base.num_hidden_layers; ++l) {
      const int last = static_cast<int>(env.plan->cache.segments.size()) - 1;
      RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, AlignTaskId(l, last)));
      files.push_back(dep->record.files.at(0));
    }
    RADLADS_ASSIGN_OR_RETURN(std::unique_ptr<ParamSet> whole, LoadStudentAfterStep1(env, files));
    RADLADS_RETURN_IF_ERROR(SliceParams(*whole, *params, ms.tp, ms.tp_rank));
  } else {
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, "distill"));
    RADLADS_RETURN_IF_ERROR(
        LoadCheckpointShards(env.layout.dir, dep->record.files, *params, ms.tp, ms.tp_rank, full_shapes).status());
    for (Param* p : params->params()) p->adam_m = p->adam_v = Tensor();  // a fresh optimizer
  }
  params->SetTrainable([](const std::string&) { return true; });
  const std::int64_t chunk = distill ? rs.loss.kl_chunk_tokens : 512;
  const OptimizerSettings opt_settings = OptimizerSettingsFor(env.plan->recipe.optimizer);
  // The trainer on the run's device (worker/device_training.h): on cuda the whole model on one
  // GPU (the run refused larger gangs before any work), over `ps`; on the CPU this rank's shard.
  StudentModel student;
  Qwen2Teacher teacher_shard;
  std::unique_ptr<LmDeviceTrainer> trainer;
  if (env.device == TrainDevice::kCuda) {
    if (!ms.whole()) {
      return Status::InvalidArgument(t.id + ": --device cuda trains the whole model on one GPU; this task is a gang "
                                            "rank (tp " + std::to_string(ms.tp) + " x pp " + std::to_string(ms.pp) + ")");
    }
    student.params = std::move(params);
    RADLADS_ASSIGN_OR_RETURN(trainer, MakeCudaLmTrainer(local, *student.params, distill ? env.teacher : nullptr,
                                                        opt_settings, chunk, st.optimizer_step));
  } else {
    Communicator* tp_group = gang != nullptr ? gang->tp.get() : nullptr;
    student = MakeStudentModel(local, std::move(params), {}, DecoderShardOf(ms, local.base.vocab_size, tp_group));
    DecoderModel* teacher = nullptr;
    if (distill) {
      if (ms.whole()) {
        teacher = env.teacher->model.get();
      } else {
        RADLADS_ASSIGN_OR_RETURN(teacher_shard, TeacherShard(env, ms, tp_group));
        teacher = teacher_shard.model.get();
      }
    }
    ModelParallelGroups groups;
    if (!ms.whole()) {
      groups.tp = ms.tp > 1 ? tp_group : nullptr;
      groups.pp = ms.pp > 1 ? gang->pp.get() : nullptr;
      groups.mp = gang->mp.get();
      groups.full_vocab = env.student.base.vocab_size;
    }
    trainer = WrapGangTrainer(
        std::make_unique<GangTrainer>(*student.model, *student.params, teacher, opt_settings, chunk, groups, full_shapes),
        *student.params, st.optimizer_step);
  }
  ParamSet& ps = *student.params;

  WindowSamplerOptions so;
  so.mode = env.plan->recipe.data.sampler;
  so.ctx_len = static_cast<std::uint64_t>(sp->seq_len);
  so.magic_prime = sp->magic_prime;
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler, WindowSampler::Create(env.train->size(), so));
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
  // The gang's commit lists every model-parallel rank's shard (GangReporter).
  auto save = [&](std::int64_t step) -> Result<std::vector<FileRecord>> {
    if (dp_rank != 0) return std::vector<FileRecord>{};
    trainer->SyncToHost();
    TrainingState now;
    now.optimizer_step = step;
    now.tokens = step * batch * T;
    now.sample_cursor = step * batch;
    if (!ms.whole()) now.extra = ShardMetadata(ms.tp, ms.tp_rank, ms.pp, ms.pp_rank);
    const std::string rel = RunLayout::GangShardFile(name, step, ms.tp, ms.tp_rank, ms.pp, ms.pp_rank);
    RADLADS_ASSIGN_OR_RETURN(FileRecord f, SaveTrainingCheckpoint(env.layout.dir, rel, ps, now));
    return std::vector<FileRecord>{f};
  };
  // Sums every gradient over the dp replicas (each scaled its share by 1 / (accum * dp)).
  const std::vector<Param*> trainable = trainer->HostGradients();
  auto reduce_grads = [&] {
    if (dp == 1) return;
    for (Param* p : trainable) gang->dp->AllReduceSum(p->grad.f32(), static_cast<std::size_t>(p->grad.numel()));
  };
  double kl = 0, top1 = 0, ce = 0;
  while (done < t.optimizer_steps) {
    kl = top1 = ce = 0;
    std::vector<LmBatch> mbs;
    for (std::int64_t j = 0; j < accum; ++j) {
      const std::uint64_t g = static_cast<std::uint64_t>(done * batch + dp_rank * per_replica + j * mb);
      RADLADS_ASSIGN_OR_RETURN(LmBatch b, ReadLmBatch(*env.train, sampler, g, mb));
      mbs.push_back(std::move(b));
    }
    const DistillStepStats s = trainer->AccumulateStep(mbs, 1.0f / static_cast<float>(accum * dp));
    kl = s.kl;
    top1 = s.top1;
    ce = s.student_ce;
    reduce_grads();
    if (dp > 1) {  // the step's losses: the mean over replicas
      double m[3] = {kl, top1, ce};
      gang->dp->AllReduceSum(m, 3);
      kl = m[0] / static_cast<double>(dp);
      top1 = m[1] / static_cast<double>(dp);
      ce = m[2] / static_cast<double>(dp);
    }
    StepLearningRates lr = LearningRate(rs, done, done * rs.TokensPerStep());
    OptimizerStepResult r = trainer->Step(lr.main, lr.mixer);
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
  double mem[2] = {PeakRssMib(), PeakAnonMib(env)};  // the largest rank's
  if (gang != nullptr) gang->all->AllReduceMax(mem, 2);
  res.final.metrics.push_back({"peak_rss_mib", mem[0]});
  res.final.metrics.push_back({"peak_anon_mib", mem[1]});
  return res;
}

}  // namespace radlads
