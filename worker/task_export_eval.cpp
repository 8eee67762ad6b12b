// export: the student as a Hugging Face directory in the released rwkv6qwen2 / rwkv7qwen2
// layout, in the teacher's dtype (bf16 for a real Qwen2.5, F32 for the tiny teacher), sharded
// with an index when large. eval: held-out cross-entropy, KL(teacher || student) and top-1 agreement of the
// student after steps 0, 1 and the end, against the teacher, plus greedy continuations.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/gzip.h"
#include "kernels/ops/head_loss.h"
#include "pipeline/lm_batch.h"
#include "pipeline/pretrain.h"
#include "pipeline/student_model.h"
#include "storage/text_tokenizer.h"
#include "storage/model_weights.h"
#include "worker/checkpoint_io.h"
#include "worker/eval_report.h"
#include "worker/task_env.h"

namespace radlads {
namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json",
                                           "merges.txt", "special_tokens_map.json", "generation_config.json"};

// The dtype the student is released in: the teacher's. config.json's torch_dtype when it names a
// 16-bit type; otherwise (float32, or no key: transformers then reads float32) the dtype the
// teacher's embedding is stored in, when that is 16-bit; else F32.
DType TeacherDType(const Qwen2Config& cfg, const std::string& teacher_dir) {
  if (cfg.torch_dtype == "bfloat16") return DType::kBF16;
  if (cfg.torch_dtype == "float16") return DType::kF16;
  if (Result<ModelWeights> w = ModelWeights::Open(teacher_dir); w.ok()) {
    if (const ModelTensor* t = w->Find("model.embed_tokens.weight")) {
      if (t->info->dtype == DType::kBF16 || t->info->dtype == DType::kF16) return t->info->dtype;
    }
  }
  return DType::kF32;
}

// The exported weight files: model.safetensors, or the index and every shard it names.
Result<std::vector<std::string>> ExportedWeightFiles(const std::string& dir) {
  const std::string index = JoinPath(dir, "model.safetensors.index.json");
  if (!PathExists(index)) return std::vector<std::string>{"model.safetensors"};
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index));
  RADLADS_ASSIGN_OR_RETURN(ModelIndex parsed, ParseModelIndex(text, index));
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : parsed.weight_map) shards.insert(shard);
  std::vector<std::string> files(shards.begin(), shards.end());
  files.push_back("model.safetensors.index.json");
  return files;
}

Result<std::unique_ptr<ParamSet>> StudentFromFiles(const TaskEnv& env, const std::vector<FileRecord>& layer_files) {
  auto params = std::make_unique<ParamSet>();
  TransferDecoder(*env.teacher->params, env.student, *params);
  for (int l = 0; l < env.student.base.num_hidden_layers; ++l) DeclareStudentMixerParams(env.student, l, *params);
  for (const FileRecord& f : layer_files) {
    RADLADS_RETURN_IF_ERROR(LoadTrainingCheckpoint(env.layout.dir, f, *params, false).status());
  }
  return params;
}

// Every layer's state after step 0 or step 1: the final records of transfer(l) or of
// align(l, last segment), which are dependencies of eval (the grant carries them).
Result<std::vector<FileRecord>> FinalLayerFiles(const TaskEnv& env, const LeaseGrant& grant, bool after_step1) {
  std::vector<FileRecord> files;
  const int last = static_cast<int>(env.plan->cache.segments.size()) - 1;
  for (int l = 0; l < env.student.base.num_hidden_layers; ++l) {
    const std::string id = after_step1 ? AlignTaskId(l, last) : TransferTaskId(l);
    RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* c, DependencyRecord(grant, id));
    files.push_back(c->record.files.at(0));
  }
  return files;
}

// Greedy continuation of `ids`: n tokens chosen among ids below `vocab_used`, stopping early
// after one of `stop` (which is kept).
std::vector<std::uint32_t> Greedy(DecoderModel& model, std::vector<std::uint32_t> ids, std::int64_t n,
                                  std::int64_t vocab_used, const std::vector<std::uint32_t>& stop) {
  const std::size_t prompt = ids.size();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto T = static_cast<std::int64_t>(ids.size());
    Tensor in = Tensor::Empty({1, T}, DType::kI32);
    for (std::int64_t t = 0; t < T; ++t) in.data<std::int32_t>()[t] = static_cast<std::int32_t>(ids[static_cast<std::size_t>(t)]);
    Tensor hidden = model.Forward(in, {});
    Tensor last = hidden.View({T, -1}).Rows(T - 1, T);
    Tensor logits = model.Logits(last);
    const float* z = logits.f32();
    std::int64_t arg = std::max_element(z, z + vocab_used) - z;
    ids.push_back(static_cast<std::uint32_t>(arg));
    if (std::find(stop.begin(), stop.end(), ids.back()) != stop.end()) break;
  }
  return std::vector<std::uint32_t>(ids.begin() + static_cast<std::ptrdiff_t>(prompt), ids.end());
}

}  // namespace

Result<TaskResult> RunExportTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& /*reporter*/) {
  const std::string src_task = grant.task.deps.at(0);
  RADLADS_ASSIGN_OR_RETURN(const CommittedCheckpoint* dep, DependencyRecord(grant, src_task));
  ParamSet params;
  DeclareParams(StudentParamSpecs(env.student), params);
  // The whole model, from one file or from a gang's shards.
  RADLADS_RETURN_IF_ERROR(LoadCheckpointShards(env.layout.dir, dep->record.files, params, 1, 0, {}).status());
  const std::string rel = RunLayout::OutputModelDir();
  const std::string dir = env.layout.Abs(rel);
  RADLADS_RETURN_IF_ERROR(SaveStudent(env.student, params, dir, TeacherDType(env.teacher->config, env.teacher_dir)));
  // The tokenizer travels with the model (copied from the teacher, byte for byte; a teacher's
  // tokenizer.json.gz is written inflated, as transformers reads plain files only).
  for (const char* name : kTokenizerFiles) {
    std::string from = JoinPath(env.teacher_dir, name);
    if (!PathExists(from) && std::string_view(name) == "tokenizer.json") from += ".gz";
    if (!PathExists(from)) continue;
    RADLADS_ASSIGN_OR_RETURN(std::string bytes, ReadMaybeGzipFile(from));
    RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(dir, name), bytes));
  }
  TaskResult r;
  RADLADS_ASSIGN_OR_RETURN(std::vector<std::string> weight_files, ExportedWeightFiles(dir));
  weight_files.insert(weight_files.begin(), "config.json");
  for (const std::string& name : weight_files) {
    RADLADS_ASSIGN_OR_RETURN(FileRecord f, RecordFile(env.layout.dir, JoinPath(rel, name)));
    r.final.checkpoint.files.push_back(f);
  }
  r.final.checkpoint.step = dep->record.step;
  return r;
}

Result<TaskResult> RunEvalTask(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  auto t0 = std::chrono::steady_clock::now();
  // The three students: after step 0, after step 1, and the exported final one (loaded from
  // output/model exactly as a user would).
  RADLADS_ASSIGN_OR_RETURN(std::vector<FileRecord> step0_files, FinalLayerFiles(env, grant, false));
  RADLADS_ASSIGN_OR_RETURN(std::vector<FileRecord> step1_files, FinalLayerFiles(env, grant, true));
  RADLADS_ASSIGN_OR_RETURN(auto p0, StudentFromFiles(env, step0_files));
  RADLADS_ASSIGN_OR_RETURN(auto p1, StudentFromFiles(env, step1_files));
  StudentModel s0 = MakeStudentModel(env.student, std::move(p0));
  StudentModel s1 = MakeStudentModel(env.student, std::move(p1));
  RADLADS_ASSIGN_OR_RETURN(StudentModel fin, LoadStudent(env.layout.Abs(RunLayout::OutputModelDir())));

  // The run's tokenizer (the teacher's; byte tokens for the tiny default): bits per byte and the
  // greedy samples are in its terms.
  RADLADS_ASSIGN_OR_RETURN(TextTokenizer tokenizer, TextTokenizer::ForRun(env.settings->data.tokenizer, env.teacher_dir));
  const std::vector<std::uint32_t> token_bytes = tokenizer.TokenByteLengths();
  const RunEvalSettings& es = env.settings->eval;
  const std::int64_t T = EvalSeqLen(es, *env.plan);
  HeldoutComparison cmp;
  RADLADS_ASSIGN_OR_RETURN(cmp, CompareOnHeldout(*env.teacher->model, {s0.model.get(), s1.model.get(), fin.model.get()},
                                                 *env.heldout, T, es.batch, es.max_tokens,
                                                 [&](std::int64_t done, std::int64_t total) {
                                                   Progress p;
                                                   p.tokens = 0;
                                                   p.step = done;
                                                   p.losses.push_back({"eval_tokens", static_cast<double>(done)});
                                                   p.losses.push_back({"eval_total", static_cast<double>(total)});
                                                   reporter.Heartbeat(p);
                                                 },
                                                 tokenizer.is_bytes() ? nullptr : &token_bytes));
  EvalReport rep;
  rep.teacher = cmp.teacher;
  rep.after_step0 = cmp.students[0];
  rep.after_step1 = cmp.students[1];
  rep.student = cmp.students[2];
  rep.heldout_tokens = cmp.tokens;
  rep.heldout_bytes_per_token = cmp.bytes_per_token;
  rep.seq_len = T;
  rep.tokens_conversion = 0;
  for (const StepPlan& sp : env.plan->steps) rep.tokens_conversion += sp.tokens;
  rep.tokens_teacher_pretraining = TeacherPretrainingTokens(env.teacher_dir);
  // Greedy continuations of the fixed prompt: every id the tokenizer defines is a candidate,
  // padding rows are not.
  std::vector<std::uint32_t> prompt = tokenizer.Encode(es.prompt);
  const std::int64_t vocab_used = std::min<std::int64_t>(env.student.base.vocab_size, tokenizer.vocab_size());
  const std::vector<std::uint32_t> stop = tokenizer.stop_ids();
  rep.prompt = es.prompt;
  rep.teacher_continuation = tokenizer.Decode(Greedy(*env.teacher->model, prompt, es.generate_tokens, vocab_used, stop));
  rep.student_continuation = tokenizer.Decode(Greedy(*fin.model, prompt, es.generate_tokens, vocab_used, stop));
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  rep.seconds_total = env.run_started_unix_ms > 0 ? static_cast<double>(now_ms - env.run_started_unix_ms) / 1000.0 : 0.0;
  rep.seconds_eval = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(env.layout.Abs(RunLayout::EvalFile()), EvalReportJson(rep)));
  TaskResult r;
  RADLADS_ASSIGN_OR_RETURN(FileRecord f, RecordFile(env.layout.dir, RunLayout::EvalFile()));
  r.final.checkpoint.files.push_back(f);
  r.final.metrics = {{"teacher_ce", rep.teacher.ce}, {"student_ce", rep.student.ce},
                     {"student_kl", rep.student.kl}, {"student_top1", rep.student.top1},
                     {"seconds", rep.seconds_eval}};
  return r;
}

}  // namespace radlads
