#include "worker/eval_report.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "kernels/ops/head_loss.h"
#include "pipeline/lm_batch.h"
#include "storage/window_sampler.h"

namespace radlads {

HeldoutBatchSums EvaluateHeldoutBatch(DecoderModel& teacher, const std::vector<DecoderModel*>& students,
                                      const LmBatch& batch) {
  HeldoutBatchSums out;
  Tensor th = teacher.Forward(batch.inputs, {});
  const CeResult tc = FusedCrossEntropy(th, teacher.head_weight(), batch.targets, HeadGrads{});
  out.teacher_ce = tc.loss_sum;
  out.count = tc.count;
  for (DecoderModel* student : students) {
    Tensor sh = student->Forward(batch.inputs, {});
    const KlResult r = FusedKl(sh, student->head_weight(), th, teacher.head_weight(), &batch.targets, HeadGrads{});
    out.students.push_back({r.ce_sum, r.kl_sum, r.top1_agree});
  }
  return out;
}

std::int64_t EvalSeqLen(const RunEvalSettings& eval, const Plan& plan) {
  return eval.seq_len > 0 ? eval.seq_len : plan.Step(RecipeStepKind::kDistill)->seq_len;
}

Result<std::int64_t> EvalWindows(std::uint64_t heldout_tokens, std::int64_t seq_len, std::int64_t max_tokens) {
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler,
                           WindowSampler::Create(heldout_tokens, {SamplingMode::kSequential,
                                                                  static_cast<std::uint64_t>(seq_len), 0}));
  std::int64_t windows = static_cast<std::int64_t>(sampler.slot_count());
  if (max_tokens > 0) windows = std::min(windows, std::max<std::int64_t>(1, max_tokens / seq_len));
  return windows;
}

Result<HeldoutComparison> CompareOnHeldout(DecoderModel& teacher, const std::vector<DecoderModel*>& students,
                                           const TokenDataset& heldout, std::int64_t seq_len,
                                           std::int64_t batch, std::int64_t max_tokens,
                                           const std::function<void(std::int64_t, std::int64_t)>& progress,
                                           const std::vector<std::uint32_t>* token_bytes) {
  RADLADS_ASSIGN_OR_RETURN(WindowSampler sampler,
                           WindowSampler::Create(heldout.size(), {SamplingMode::kSequential,
                                                                  static_cast<std::uint64_t>(seq_len), 0}));
  RADLADS_ASSIGN_OR_RETURN(const std::int64_t windows, EvalWindows(heldout.size(), seq_len, max_tokens));
  double teacher_ce = 0;
  std::vector<HeldoutBatchSums::Student> sums(students.size());
  std::int64_t count = 0;
  double target_bytes = 0;
  for (std::int64_t w = 0; w < windows; w += batch) {
    const std::int64_t b = std::min(batch, windows - w);
    RADLADS_ASSIGN_OR_RETURN(LmBatch lb, ReadLmBatch(heldout, sampler, static_cast<std::uint64_t>(w), b));
    if (token_bytes != nullptr) {
      const std::int32_t* t = lb.targets.data<std::int32_t>();
      for (std::int64_t i = 0; i < lb.targets.numel(); ++i) {
        if (t[i] >= 0 && static_cast<std::size_t>(t[i]) < token_bytes->size()) target_bytes += (*token_bytes)[static_cast<std::size_t>(t[i])];
      }
    }
    const HeldoutBatchSums bs = EvaluateHeldoutBatch(teacher, students, lb);
    teacher_ce += bs.teacher_ce;
    count += bs.count;
    for (std::size_t i = 0; i < students.size(); ++i) {
      sums[i].ce += bs.students[i].ce;
      sums[i].kl += bs.students[i].kl;
      sums[i].agree += bs.students[i].agree;
    }
    if (progress) progress((w + b) * seq_len, windows * seq_len);
  }
  if (count == 0) return Status::InvalidArgument(heldout.path() + ": too short to evaluate at seq_len " + std::to_string(seq_len));
  HeldoutComparison out;
  out.tokens = count;
  const double n = static_cast<double>(count);
  if (token_bytes != nullptr && target_bytes > 0) out.bytes_per_token = target_bytes / n;
  out.teacher.ce = teacher_ce / n;
  for (std::size_t i = 0; i < students.size(); ++i) {
    out.students.push_back({sums[i].ce / n, sums[i].kl / n, static_cast<double>(sums[i].agree) / n});
  }
  return out;
}

namespace {

nlohmann::ordered_json Metrics(const HeldoutMetrics& m, bool teacher, double bytes_per_token) {
  nlohmann::ordered_json j;
  j["ce"] = m.ce;
  j["bits_per_byte"] = m.ce / std::log(2.0) / bytes_per_token;
  if (!teacher) {
    j["kl"] = m.kl;
    j["top1"] = m.top1;
  }
  return j;
}

}  // namespace

std::string EvalReportJson(const EvalReport& r) {
  nlohmann::ordered_json j;
  const double bpt = r.heldout_bytes_per_token;
  j["teacher"] = Metrics(r.teacher, true, bpt);
  j["student"] = Metrics(r.student, false, bpt);
  j["after_step0"] = Metrics(r.after_step0, false, bpt);
  j["after_step1"] = Metrics(r.after_step1, false, bpt);
  j["tokens"] = {{"teacher_pretraining", r.tokens_teacher_pretraining}, {"conversion", r.tokens_conversion},
                 {"heldout_evaluated", r.heldout_tokens}};
  if (bpt != 1.0) j["tokens"]["heldout_bytes_per_token"] = bpt;
  j["seconds"] = {{"total", r.seconds_total}, {"eval", r.seconds_eval}};
  j["eval_seq_len"] = r.seq_len;
  j["samples"] = {{"prompt", r.prompt}, {"teacher", r.teacher_continuation}, {"student", r.student_continuation}};
  // A greedy continuation decoded from BPE tokens can stop inside a multi-byte character (and a
  // random or young model emits any byte sequence): such bytes become U+FFFD here, as in
  // storage/unicode_text.h's policy, rather than failing the whole evaluation.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Result<EvalReport> ParseEvalReport(std::string_view json, std::string_view source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json.begin(), json.end());
    EvalReport r;
    auto m = [&](const char* k, HeldoutMetrics* out) {
      out->ce = j.at(k).at("ce").get<double>();
      if (j.at(k).contains("kl")) out->kl = j.at(k).at("kl").get<double>();
      if (j.at(k).contains("top1")) out->top1 = j.at(k).at("top1").get<double>();
    };
    m("teacher", &r.teacher);
    m("student", &r.student);
    m("after_step0", &r.after_step0);
    m("after_step1", &r.after_step1);
    r.tokens_teacher_pretraining = j.at("tokens").at("teacher_pretraining").get<std::int64_t>();
    r.tokens_conversion = j.at("tokens").at("conversion").get<std::int64_t>();
    r.heldout_tokens = j.at("tokens").at("heldout_evaluated").get<std::int64_t>();
    r.heldout_bytes_per_token = j.at("tokens").value("heldout_bytes_per_token", 1.0);
    r.seconds_total = j.at("seconds").at("total").get<double>();
    r.seconds_eval = j.at("seconds").at("eval").get<double>();
    r.seq_len = j.at("eval_seq_len").get<std::int64_t>();
    r.prompt = j.at("samples").at("prompt").get<std::string>();
    r.teacher_continuation = j.at("samples").at("teacher").get<std::string>();
    r.student_continuation = j.at("samples").at("student").get<std::string>();
    return r;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string(source) + ": not a radlads eval report (" + e.what() + ")");
  }
}

std::int64_t TeacherPretrainingTokens(const std::string& teacher_dir) {
  auto text = ReadFileToString(JoinPath(teacher_dir, "training.json"));
  if (!text.ok()) return -1;
  try {
    auto j = nlohmann::json::parse(*text);
    if (j.contains("tokens_seen") && j["tokens_seen"].is_number_integer()) return j["tokens_seen"].get<std::int64_t>();
  } catch (const std::exception&) {
  }
  return -1;
}

}  // namespace radlads
