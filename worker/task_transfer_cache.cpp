// Step 0 transfer(l) and the step-1 producer cache(s, p).
#include <algorithm>
#include <chrono>

#include "base/checksum.h"
#include "base/file.h"
#include "pipeline/frozen_weights.h"
#include "pipeline/lm_batch.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "storage/activation_cache.h"
#include "worker/checkpoint_io.h"
#include "worker/task_env.h"

namespace radlads {

Result<TaskResult> RunTransferTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& /*reporter*/) {
  const int layer = grant.task.layer;
  ParamSet params;
  TransferLayer(*env.teacher->params, env.student, layer, env.settings->seed, params);
  TrainingState st;
  RADLADS_ASSIGN_OR_RETURN(FileRecord file, SaveTrainingCheckpoint(env.layout.dir, RunLayout::TransferFile(layer),
                                                                   params, st));
  TaskResult r;
  r.final.checkpoint.step = 0;
  r.final.checkpoint.tokens_consumed = 0;
  r.final.checkpoint.files.push_back(file);
  return r;
}

namespace {

// Step-1 sampler over the training data (the same one every step-1 task uses).
Result<WindowSampler> AlignSampler(const TaskEnv& env) {
  const StepPlan* sp = env.plan->Step(RecipeStepKind::kAlign);
  if (sp == nullptr) return Status::FailedPrecondition("the plan has no step 1");
  WindowSamplerOptions o;
  o.mode = env.plan->recipe.data.sampler;
  o.ctx_len = static_cast<std::uint64_t>(sp->seq_len);
  o.magic_prime = sp->magic_prime;
  return WindowSampler::Create(env.train->size(), o);
}

}  // namespace

Result<TaskResult> RunCacheTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  const TaskSpec& t = grant.task;
  const StepPlan* sp = env.plan->Step(RecipeStepKind::kAlign);
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler, AlignSampler(env));
  const std::int64_t T = sp->seq_len, C = env.plan->teacher.hidden_size;
  const bool rwkv7 = env.student.arch == StudentArch::kRwkv7;
  ActivationCacheMeta meta;
  meta.segment = t.segment;
  meta.stage = t.stage;
  meta.first_layer = t.first_layer;
  meta.last_layer = t.last_layer;
  meta.samples = t.sample_end - t.sample_begin;
  meta.seq_len = T;
  meta.hidden = C;
  meta.sample_begin = t.sample_begin;
  meta.dtype = env.cache_dtype;
  meta.value_first_width = rwkv7 ? env.student.base.q_dim() : 0;

  std::unique_ptr<ActivationCacheReader> prev;
  if (t.stage > 0) {
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, CacheTaskId(t.segment, t.stage - 1)));
    const FileRecord& f = dep->record.files.at(0);
    RADLADS_ASSIGN_OR_RETURN(std::uint64_t sum, ParseChecksum(f.checksum));
    RADLADS_ASSIGN_OR_RETURN(prev, ActivationCacheReader::Open(env.layout.Abs(f.path), std::nullopt, sum));
  }
  const std::string rel = RunLayout::CacheFile(t.segment, t.stage);
  RADLADS_RETURN_IF_ERROR(CreateDirectories(DirName(env.layout.Abs(rel))));
  RADLADS_ASSIGN_OR_RETURN(auto writer, ActivationCacheWriter::Create(env.layout.Abs(rel), meta));

  DecoderModel& teacher = *env.teacher->model;
  const std::int64_t mb = std::max<std::int64_t>(1, sp->micro_batch);
  auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t first = 0; first < meta.samples; first += mb) {
    const std::int64_t n = std::min(mb, meta.samples - first);
    Tensor x, tokens;
    if (t.stage == 0) {
      RADLADS_ASSIGN_OR_RETURN(LmBatch b, ReadLmBatch(*env.train, sampler,
                                                      static_cast<std::uint64_t>(t.sample_begin + first), n));
      tokens = b.inputs;
      x = teacher.Embed(b.inputs);
    } else {
      x = Tensor::Empty({n, T, C});
      tokens = Tensor::Empty({n, T}, DType::kI32);
      RADLADS_RETURN_IF_ERROR(prev->ReadStageOutput(first, x, tokens));
    }
    Status hook_status;
    Tensor layer0_in;
    DecoderForwardOptions fo;
    fo.hook = [&](int layer, const Tensor& in, const Tensor& out, const Tensor&) {
      if (layer == 0) layer0_in = in;
      if (hook_status.ok()) hook_status = writer->WriteLayer(layer, first, in, out);
    };
    Tensor y = teacher.RunLayers(x, t.first_layer, t.last_layer, fo);
    RADLADS_RETURN_IF_ERROR(hook_status);
    RADLADS_RETURN_IF_ERROR(writer->WriteStageOutput(first, y, tokens));
    if (rwkv7) {
      Tensor vf;
      if (t.stage == 0) {
        const std::string p = LayerPrefix(0) + "self_attn.";
        // The teacher's weights may be bf16 views of its file (pipeline/frozen_weights.h).
        vf = ValueFirstFromTeacher(env.student, ResidentF32(env.teacher->params->Get(p + "v_proj.weight").value),
                                   ResidentF32(env.teacher->params->Get(p + "v_proj.bias").value), layer0_in);
      } else {
        vf = Tensor::Empty({n, T, meta.value_first_width});
        RADLADS_RETURN_IF_ERROR(prev->ReadValueFirst(first, vf));
      }
      RADLADS_RETURN_IF_ERROR(writer->WriteValueFirst(first, vf));
    }
    Progress p;
    p.step = first + n;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.throughput = secs > 0 ? static_cast<double>((first + n) * T) / secs : 0.0;
    p.losses.push_back({"cache_tokens", static_cast<double>((first + n) * T)});
    reporter.Heartbeat(p);  // a cache task is short and all-or-nothing: it finishes even on drain
  }
  RADLADS_ASSIGN_OR_RETURN(std::uint64_t sum, writer->Finish());
  FileRecord file;
  file.path = rel;
  RADLADS_ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(env.layout.Abs(rel)));
  file.bytes = static_cast<std::int64_t>(m.size());
  file.checksum = FormatChecksum(sum);
  TaskResult r;
  r.final.checkpoint.files.push_back(file);
  r.final.checkpoint.tokens_consumed = t.tokens;
  r.final.metrics.push_back({"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  return r;
}

}  // namespace radlads
