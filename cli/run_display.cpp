#include "cli/run_display.h"

#include <cmath>
#include <cstdio>

#include "plan/gpu_memory.h"

namespace radlads {
namespace {

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

double Get(const std::vector<NamedValue>& v, const char* name, double def = NAN) {
  for (const NamedValue& n : v)
    if (n.name == name) return n.value;
  return def;
}

}  // namespace

std::string RunDisplay::PhaseKey(TaskType t) {
  switch (t) {
    case TaskType::kTransfer: return "0 transfer";
    case TaskType::kCache:
    case TaskType::kAlign: return "1 align";  // one bar: cache segments and layer training interleave
    case TaskType::kDistill: return "2 distill";
    case TaskType::kFinetune: return "3 finetune";
    case TaskType::kExport: return "4 export";
    case TaskType::kEval: return "5 eval";
  }
  return "?";
}

std::uint64_t RunDisplay::TaskSize(const TaskSpec& t) const {
  switch (t.type) {
    case TaskType::kCache: {
      const StepPlan* sp = plan_.Step(RecipeStepKind::kAlign);
      return static_cast<std::uint64_t>((t.sample_end - t.sample_begin) * (sp ? sp->seq_len : 0));
    }
    case TaskType::kAlign:
    case TaskType::kDistill:
    case TaskType::kFinetune: return static_cast<std::uint64_t>(t.tokens);
    default: return 1;
  }
}

RunDisplay::RunDisplay(const Plan& plan, const RunState& state, std::uint64_t eval_tokens,
                       std::ostream* out)
    : plan_(plan), out_(out) {
  for (const TaskSpec& t : plan.tasks) {
    Phase& ph = phases_[PhaseKey(t.type)];
    static const std::map<TaskType, std::string> kLabels = {
        {TaskType::kTransfer, "step 0 transfer"}, {TaskType::kCache, "step 1 align"},
        {TaskType::kAlign, "step 1 align"},       {TaskType::kDistill, "step 2 distill"},
        {TaskType::kFinetune, "step 3 finetune"}, {TaskType::kExport, "export"},
        {TaskType::kEval, "eval"}};
    ph.label = kLabels.at(t.type);
    ph.unit = (t.type == TaskType::kAlign || t.type == TaskType::kCache || t.type == TaskType::kDistill ||
               t.type == TaskType::kFinetune)
                  ? "tok"
                  : "tasks";
    if (t.type == TaskType::kEval) ph.unit = "tok";
    ph.total += t.type == TaskType::kEval ? eval_tokens : TaskSize(t);
    if (const TaskRecord* rec = state.FindTask(t.id); rec != nullptr && rec->state == TaskState::kDone) {
      ph.done += TaskSize(t);
    }
  }
}

void RunDisplay::OnStart(const TaskSpec& task) {
  const std::string key = PhaseKey(task.type);
  if (key == current_ && bar_) return;
  Finish();
  current_ = key;
  Phase& ph = phases_[key];
  bar_ = out_ != nullptr ? std::make_unique<ProgressBar>(ph.label, ph.total, ph.unit, *out_)
                        : std::make_unique<ProgressBar>(ph.label, ph.total, ph.unit);
  bar_->SetBase(ph.done);
  phase_start_ = std::chrono::steady_clock::now();
}

void RunDisplay::OnProgress(const TaskSpec& task, const Progress& p) {
  Phase& ph = phases_[PhaseKey(task.type)];
  std::uint64_t within = 0;
  std::string suffix;
  switch (task.type) {
    case TaskType::kCache:
      within = static_cast<std::uint64_t>(Get(p.losses, "cache_tokens", 0));
      suffix = "segment " + std::to_string(task.segment);
      break;
    case TaskType::kAlign: {
      within = static_cast<std::uint64_t>(p.tokens);
      align_loss_[task.layer] = Get(p.losses, "l2");
      suffix = "layer " + std::to_string(task.layer) + " seg " + std::to_string(task.segment) + "  L2 " +
               Fmt("%.4f", Get(p.losses, "l2"));
      break;
    }
    case TaskType::kDistill:
      within = static_cast<std::uint64_t>(p.tokens);
      suffix = "KL " + Fmt("%.4f", Get(p.losses, "kl")) + "  top1 " + Fmt("%.3f", Get(p.losses, "top1"));
      break;
    case TaskType::kFinetune:
      within = static_cast<std::uint64_t>(p.tokens);
      suffix = "CE " + Fmt("%.4f", Get(p.losses, "ce"));
      break;
    case TaskType::kEval:
      within = static_cast<std::uint64_t>(Get(p.losses, "eval_tokens", 0));
      suffix = "teacher and 3 students on the held-out text";
      break;
    default: break;
  }
  ph.last_suffix = suffix;
  if (bar_) bar_->Update(ph.done + within, suffix);
}

void RunDisplay::OnComplete(const TaskSpec& task, const FinalRecord& final) {
  Phase& ph = phases_[PhaseKey(task.type)];
  ph.done = task.type == TaskType::kEval ? ph.total : ph.done + TaskSize(task);
  ph.last_metrics = final.metrics;
  const double rss = Get(final.metrics, "peak_rss_mib", 0.0);
  if (rss > ph.peak_rss_mib) ph.peak_rss_mib = rss;
  const double anon = Get(final.metrics, "peak_anon_mib", 0.0);
  if (anon > ph.peak_anon_mib) ph.peak_anon_mib = anon;
  const double gpu = Get(final.metrics, "peak_gpu_mib", 0.0);
  if (gpu > ph.peak_gpu_mib) ph.peak_gpu_mib = gpu;
  if (bar_) bar_->Update(ph.done, ph.last_suffix);
}

void RunDisplay::Finish() {
  if (!bar_) return;
  Phase& ph = phases_[current_];
  ph.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - phase_start_).count();
  bar_->Finish(ph.last_suffix);
  bar_.reset();
  current_.clear();
}

std::string RunDisplay::Summary(const EvalReport& r, const RunSettings& settings, const RunLayout& layout,
                                const std::string& command_line, const std::vector<std::string>& profile_lines) const {
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  auto dur = [](double s) { return ProgressBar::HumanDuration(s); };
  line("");
  line("RADLADS conversion: " + settings.name + " (" + std::string(StudentArchName(plan_.student.arch)) + " student of " +
       plan_.model_name + ")");
  line("run directory: " + layout.dir + "    command: " + command_line);
  line("");
  line("phase              tokens               time (this process)");
  for (const auto& [key, ph] : phases_) {
    char b[160];
    std::string tokens = "-";
    if (ph.unit == "tok" && ph.label != "eval") tokens = ProgressBar::HumanCount(static_cast<double>(ph.total));
    if (ph.label == "step 1 align") {  // every layer trains on the same tokens
      const StepPlan* sp = plan_.Step(RecipeStepKind::kAlign);
      tokens = ProgressBar::HumanCount(static_cast<double>(sp ? sp->tokens : 0)) + " x " +
               std::to_string(plan_.teacher.num_hidden_layers) + " layers";
    }
    std::snprintf(b, sizeof(b), "%-18s %-20s %s", ph.label.c_str(), tokens.c_str(), dur(ph.seconds).c_str());
    line(b);
  }
  // Memory per worker process: the measured peak of each phase's tasks, anonymous memory (what
  // the plan estimates: docs/planner.md §4) and the whole resident set (mapped teacher and data
  // pages too), beside the plan's estimate for that kind of task.
  std::string mem;
  for (const auto& [key, ph] : phases_) {
    if (ph.peak_rss_mib <= 0) continue;
    double planned = 0;
    for (const MemoryBreakdown& m : plan_.memory) {
      const std::string kind = m.what.substr(0, m.what.find(' '));  // cache, align, distill, finetune
      const bool step1 = ph.label == "step 1 align" && (kind == "cache" || kind == "align");
      if (step1 || ph.label == "step 2 " + kind || ph.label == "step 3 " + kind) {
        planned = std::max(planned, m.total_bytes / (1024.0 * 1024.0));
      }
    }
    mem += std::string(mem.empty() ? "" : ", ") + ph.label + " " + Fmt("%.0f", ph.peak_anon_mib) + " / " +
           Fmt("%.0f", ph.peak_rss_mib) + (planned > 0 ? " (plan " + Fmt("%.0f", planned) + ")" : "");
  }
  if (!mem.empty()) line("peak memory of a worker process, MiB, anonymous / resident incl. mapped files: " + mem);
  // --device cuda: each training phase's device peak (the trainers' allocations) beside the
  // one-GPU estimate of that step (plan/gpu_memory.h).
  std::string gpu;
  const std::vector<MemoryBreakdown> one_gpu = OneGpuPlanMemory(plan_);
  for (const auto& [key, ph] : phases_) {
    if (ph.peak_gpu_mib <= 0) continue;
    double planned = 0;
    for (const MemoryBreakdown& m : one_gpu) {
      const std::string kind = m.what.substr(0, m.what.find(' '));  // align, distill, finetune
      if (ph.label == "step 1 " + kind || ph.label == "step 2 " + kind || ph.label == "step 3 " + kind) {
        planned = m.total_bytes / (1024.0 * 1024.0);
      }
    }
    gpu += std::string(gpu.empty() ? "" : ", ") + ph.label + " " + Fmt("%.1f", ph.peak_gpu_mib) +
           (planned > 0 ? " (plan " + Fmt("%.1f", planned) + ")" : "");
  }
  if (!gpu.empty()) line("peak GPU memory of the trainers, MiB: " + gpu);
  for (const std::string& p : profile_lines) line(p);
  if (!align_loss_.empty()) {
    std::string s = "step-1 L2 at the end, per layer:";
    for (const auto& [l, v] : align_loss_) s += " L" + std::to_string(l) + " " + Fmt("%.4f", v);
    line(s);
  }
  line("");
  line("held-out evaluation (" + std::to_string(r.heldout_tokens) + " tokens, windows of " + std::to_string(r.seq_len) + "):");
  line("model              CE nats/tok   bits/byte   KL(teacher||model)   top-1 agreement");
  auto row = [&](const char* name, const HeldoutMetrics& m, bool teacher) {
    char b[160];
    if (teacher) {
      std::snprintf(b, sizeof(b), "%-18s %11.4f   %9.3f   %18s   %15s", name, m.ce, m.ce / std::log(2.0) / r.heldout_bytes_per_token, "-", "-");
    } else {
      std::snprintf(b, sizeof(b), "%-18s %11.4f   %9.3f   %18.4f   %15.3f", name, m.ce, m.ce / std::log(2.0) / r.heldout_bytes_per_token, m.kl, m.top1);
    }
    line(b);
  };
  row("teacher", r.teacher, true);
  row("after step 0", r.after_step0, false);
  row("after step 1", r.after_step1, false);
  row("student (final)", r.student, false);
  line("");
  const double ce_ratio = r.student.ce / r.teacher.ce;
  const double tok_ratio = r.tokens_teacher_pretraining > 0
                               ? static_cast<double>(r.tokens_conversion) / static_cast<double>(r.tokens_teacher_pretraining)
                               : NAN;
  auto verdict = [](bool ok) { return ok ? std::string("met") : std::string("MISSED"); };
  line("targets:");
  line("  student CE <= 1.10 x teacher CE:        " + Fmt("%.3f", ce_ratio) + " x   " + verdict(ce_ratio <= 1.10));
  line("  top-1 agreement >= 0.80:                " + Fmt("%.3f", r.student.top1) + "     " + verdict(r.student.top1 >= 0.80));
  if (r.tokens_teacher_pretraining > 0) {
    line("  conversion tokens <= 10% of pretraining: " + ProgressBar::HumanCount(static_cast<double>(r.tokens_conversion)) +
         " / " + ProgressBar::HumanCount(static_cast<double>(r.tokens_teacher_pretraining)) + " = " +
         Fmt("%.1f", 100 * tok_ratio) + "%   " + verdict(tok_ratio <= 0.10));
  } else {  // a downloaded or `radlads-model init` teacher: no training.json beside it
    line("  conversion tokens <= 10% of pretraining: " + ProgressBar::HumanCount(static_cast<double>(r.tokens_conversion)) +
         " / unknown (no training.json beside the teacher)");
  }
  line("  whole run <= 15 minutes:                " + dur(r.seconds_total) + "   " + verdict(r.seconds_total <= 900));
  line("  KL: after step 0 " + Fmt("%.4f", r.after_step0.kl) + " -> after step 1 " + Fmt("%.4f", r.after_step1.kl) +
       " -> final " + Fmt("%.4f", r.student.kl));
  line("");
  line("greedy continuation of \"" + r.prompt + "\":");
  line("  teacher: " + r.teacher_continuation);
  line("  student: " + r.student_continuation);
  line("");
  line("exported student: " + layout.Abs(RunLayout::OutputModelDir()) + "   report: " + layout.Abs(RunLayout::EvalFile()));
  return out;
}

}  // namespace radlads
