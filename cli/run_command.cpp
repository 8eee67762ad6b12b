#include "cli/run_command.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

#include "base/file.h"
#include "base/gzip.h"
#include "base/host_info.h"
#include "base/log.h"
#include "base/progress.h"
#include "cli/plan_command.h"
#include "cli/run_directory.h"
#include "cli/run_display.h"
#include "configs/run_settings.h"
#include "kernels/cpu/parallel.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "storage/binidx.h"
#include "storage/byte_tokenizer.h"
#include "worker/eval_report.h"
#include "worker/task_env.h"

namespace radlads {
namespace {

std::atomic<int> g_stop_signal{0};

void OnSignal(int sig) { g_stop_signal.store(sig); }

bool IsText(const std::string& path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
  return ends(".txt") || ends(".txt.gz") || ends(".md");
}

// A data source: either text files (tokenized into RUN/data/<name>) or an existing token dataset.
struct DataSource {
  std::vector<std::vector<std::uint32_t>> docs;  // text: the tokenized documents
  std::string dataset;                           // token dataset path (no tokenization)
  std::uint64_t tokens = 0;
};

Result<DataSource> PrepareData(const RunSettings& s, const std::vector<std::string>& paths, const char* key) {
  DataSource d;
  bool any_text = false, any_tokens = false;
  for (const std::string& p : paths) (IsText(p) ? any_text : any_tokens) = true;
  if (any_text && any_tokens) {
    return Status::InvalidArgument(s.base_dir + "/" + s.name + ".yaml: data." + key +
                                   ": mixes text files and token datasets; give one kind");
  }
  if (any_tokens) {
    if (paths.size() != 1) {
      return Status::InvalidArgument(s.name + ": data." + std::string(key) + ": give exactly one token dataset");
    }
    d.dataset = s.Resolve(paths[0]);
    RADLADS_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::Open(d.dataset));
    d.tokens = ds.size();
    return d;
  }
  for (const std::string& p : paths) {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipFile(s.Resolve(p)));
    if (text.empty()) return Status::InvalidArgument(s.Resolve(p) + ": empty text file (data." + key + ")");
    d.docs.push_back(EncodeBytes(text));
    d.tokens += d.docs.back().size() + 1;  // + end-of-text
  }
  return d;
}

Status WriteData(const DataSource& d, const std::string& prefix) {
  if (!d.dataset.empty() || PathExists(prefix + ".idx")) return Status::Ok();
  BinidxWriterOptions o;
  o.vocab_size = kByteVocabSize;
  o.eos_id = kByteEndOfText;
  RADLADS_ASSIGN_OR_RETURN(BinidxWriter w, BinidxWriter::Create(prefix, o));
  for (const auto& doc : d.docs) RADLADS_RETURN_IF_ERROR(w.AppendDocument(doc));
  return w.Finish();
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class LocalReporter : public TaskReporter {
 public:
  LocalReporter(Scheduler& sched, LeaseId lease, RunDisplay& display, const TaskSpec& task)
      : sched_(sched), lease_(lease), display_(display), task_(task) {}
  bool Heartbeat(const Progress& p) override {
    display_.OnProgress(task_, p);
    auto r = sched_.Heartbeat(lease_, p);
    if (!r.ok()) {
      log::Warn(task_.id + ": heartbeat failed: " + r.status().ToString());
      return true;
    }
    if (g_stop_signal.load() != 0 && !drain_requested_) {
      drain_requested_ = true;
      (void)sched_.Drain("signal " + std::to_string(g_stop_signal.load()));
      return true;
    }
    return r->stop || drain_requested_;
  }
  Status Commit(const CheckpointRecord& c) override {
    auto r = sched_.CommitCheckpoint(lease_, c);
    return r.ok() ? Status::Ok() : r.status();
  }

 private:
  Scheduler& sched_;
  LeaseId lease_;
  RunDisplay& display_;
  const TaskSpec& task_;
  bool drain_requested_ = false;
};

}  // namespace

int RunRunCommand(const RunCommandArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  auto fail = [&](const Status& st) {
    err << "error: " << st.message() << "\n";
    return ExitCodeFor(st);
  };
  // Catch the drain signals from the start: a signal during setup stops before the first task.
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGUSR1, OnSignal);
  // ---- Validate every input before writing anything. ----
  Result<RunSettings> settings_r = LoadRunSettings(args.config);
  if (!settings_r.ok()) return fail(settings_r.status());
  const RunSettings& settings = *settings_r;
  const std::string teacher_dir = settings.Resolve(settings.teacher);
  log::Info("loading teacher " + teacher_dir);
  Result<Qwen2Teacher> teacher = LoadQwen2Teacher(teacher_dir);
  if (!teacher.ok()) return fail(teacher.status().WithContext("teacher"));
  Result<DataSource> train_src = PrepareData(settings, settings.data.train, "train");
  if (!train_src.ok()) return fail(train_src.status());
  Result<DataSource> heldout_src = PrepareData(settings, settings.data.heldout, "heldout");
  if (!heldout_src.ok()) return fail(heldout_src.status());
  const RunLayout layout{args.run_dir};
  const std::string train_path = train_src->dataset.empty() ? layout.Abs(RunLayout::TrainPrefix()) : train_src->dataset;
  const std::string heldout_path =
      heldout_src->dataset.empty() ? layout.Abs(RunLayout::HeldoutPrefix()) : heldout_src->dataset;

  PlanCommandArgs pa;
  pa.recipe = settings.recipe.find('/') != std::string::npos ? settings.Resolve(settings.recipe) : settings.recipe;
  pa.cluster = settings.cluster.find('/') != std::string::npos ? settings.Resolve(settings.cluster) : settings.cluster;
  pa.model_dir = teacher_dir;
  pa.data_tokens = static_cast<std::int64_t>(train_src->tokens);
  Result<PlanInputs> inputs = LoadPlanInputs(pa);
  if (!inputs.ok()) return fail(inputs.status());
  inputs->data.path = train_path;
  inputs->data.format = "binidx";
  Result<RunDirectoryPlan> planned =
      PlanRunDirectory(*inputs, PlanOptionsFromArgs(pa), layout.dir,
                       args.host_memory_gib ? args.host_memory_gib : HostMemoryGib());
  if (!planned.ok()) return fail(planned.status());
  for (const std::string& n : planned->notes) err << "note: " << n << "\n";
  const Plan* plan = &planned->plan;
  const StudentConfig student = StudentConfigFromRecipe(plan->recipe, plan->teacher);

  // ---- Write the run directory (idempotent for the same plan). ----
  Status st = CreateDirectories(layout.Abs(RunLayout::DataDir()));
  if (st.ok()) st = WriteData(*train_src, layout.Abs(RunLayout::TrainPrefix()));
  if (st.ok()) st = WriteData(*heldout_src, layout.Abs(RunLayout::HeldoutPrefix()));
  if (st.ok()) st = WriteRunDirectory(*plan, *inputs, layout.dir);
  if (!st.ok()) return fail(st);
  const std::string started = layout.Abs(RunLayout::StartedAtFile());
  if (!PathExists(started)) (void)AtomicWriteFile(started, std::to_string(NowUnixMs()) + "\n");
  std::int64_t started_ms = NowUnixMs();
  if (auto t = ReadFileToString(started); t.ok()) started_ms = std::atoll(t->c_str());

  Result<TokenDataset> train = TokenDataset::Open(train_path);
  if (!train.ok()) return fail(train.status());
  Result<TokenDataset> heldout = TokenDataset::Open(heldout_path);
  if (!heldout.ok()) return fail(heldout.status());
  if (Status v = heldout->CheckVocabulary(static_cast<std::uint64_t>(plan->teacher.vocab_size)); !v.ok()) return fail(v);

  // ---- Durable state and the scheduler. ----
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(layout.Abs(RunLayout::StateDir()));
  if (!store.ok()) return fail(store.status());
  SystemClock clock;
  Scheduler sched(store->get(), &clock);
  RunConfig rc;
  rc.run_id = BaseName(layout.dir);
  rc.lease_ttl_ms = 30 * 60 * 1000;
  rc.cache_window = static_cast<int>(plan->cache.window);
  if (Status c = sched.CreateRun(rc, plan->tasks); !c.ok()) return fail(c);
  if (Status r = sched.Resume("radlads-coord run"); !r.ok()) return fail(r);
  WorkerInfo wi;
  wi.id = "local";
  wi.pid = ::getpid();
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  wi.host = host;
  if (Status r = sched.RegisterWorker(wi); !r.ok()) return fail(r);

  TaskEnv env;
  env.plan = &*plan;
  env.settings = &settings;
  env.layout = layout;
  env.teacher = &*teacher;
  env.teacher_dir = teacher_dir;
  env.train = &*train;
  env.heldout = &*heldout;
  env.student = student;
  env.cache_dtype = settings.cache_dtype == "BF16" ? DType::kBF16 : DType::kF32;
  env.checkpoint_every_steps = plan->cluster.checkpoint.every_steps;
  env.checkpoint_every_seconds = static_cast<double>(plan->cluster.checkpoint.every_minutes) * 60.0;
  env.run_started_unix_ms = started_ms;
  env.final_record_of = [&](const std::string& id) -> Result<CommittedCheckpoint> {
    return (*store)->Read([&](const RunState& s) -> Result<CommittedCheckpoint> {
      int i = s.TaskIndex(id);
      if (i < 0 || s.Checkpoints(i).empty() || !s.Checkpoints(i).back().final) {
        return Status::NotFound("task " + id + " has no committed final record");
      }
      return s.Checkpoints(i).back();
    });
  };

  RunDisplay display(*plan, (*store)->Snapshot(), heldout->size(), args.out);
  log::Info("run " + layout.dir + ": " + std::to_string(plan->tasks.size()) + " tasks, " +
            std::string(StudentArchName(student.arch)) + " student, " + std::to_string(cpu::NumThreads()) + " threads");
  for (;;) {
    if (g_stop_signal.load() != 0) (void)sched.Drain("signal " + std::to_string(g_stop_signal.load()));
    (void)sched.ExpireLeases();
    Result<LeaseReply> reply = sched.Lease(wi.id);
    if (!reply.ok()) return fail(reply.status());
    if (reply->outcome == LeaseOutcome::kRunOver) break;
    if (reply->outcome == LeaseOutcome::kDraining) {
      display.Finish();
      err << "drained: every committed task and checkpoint is durable in " << layout.dir
          << "; run the same command again to resume\n";
      return kExitRequeue;
    }
    if (reply->outcome == LeaseOutcome::kNoWork) {
      return fail(Status::Internal("no task is ready and none is running (state " + layout.Abs(RunLayout::StateDir()) + ")"));
    }
    const LeaseGrant& grant = *reply->grant;
    display.OnStart(grant.task);
    LocalReporter reporter(sched, grant.lease, display, grant.task);
    Result<TaskResult> result = RunTask(env, grant, reporter);
    if (!result.ok()) {
      display.Finish();
      (void)sched.Fail(grant.lease, result.status().ToString(), /*retryable=*/false);
      return fail(result.status().WithContext("task " + grant.task.id));
    }
    if (result->outcome == TaskOutcome::kStopped) {
      (void)sched.Release(grant.lease, "drain");
      continue;  // the next Lease answers kDraining
    }
    Result<CommitReply> done = sched.Complete(grant.lease, result->final);
    if (!done.ok()) return fail(done.status().WithContext("completing " + grant.task.id));
    display.OnComplete(grant.task, result->final);
  }
  display.Finish();
  const RunState final_state = (*store)->Snapshot();
  if (final_state.status().phase == RunPhase::kFailed) {
    return fail(Status::Internal("run failed: " + final_state.status().reason));
  }
  auto eval_text = ReadFileToString(layout.Abs(RunLayout::EvalFile()));
  if (!eval_text.ok()) return fail(eval_text.status());
  Result<EvalReport> report = ParseEvalReport(*eval_text, layout.Abs(RunLayout::EvalFile()));
  if (!report.ok()) return fail(report.status());
  std::string summary = display.Summary(*report, settings, layout, args.command_line);
  out << summary << std::flush;
  (void)AtomicWriteFile(layout.Abs(RunLayout::SummaryFile()), summary);
  return kExitOk;
}

}  // namespace radlads
