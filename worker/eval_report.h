// Evaluation of a conversion on held-out text: cross-entropy of the teacher and of students,
// KL(teacher || student) and top-1 agreement, over consecutive windows of the held-out data;
// and the eval.json report (keys documented in docs/conversion.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "configs/run_settings.h"
#include "pipeline/decoder.h"
#include "pipeline/lm_batch.h"
#include "plan/plan.h"
#include "storage/token_dataset.h"

namespace radlads {

struct HeldoutMetrics {
  double ce = 0.0;    // nats per token
  double kl = 0.0;    // KL(teacher || student), nats per token (0 for the teacher)
  double top1 = 0.0;  // fraction of positions whose argmax agrees with the teacher's
};

struct HeldoutComparison {
  HeldoutMetrics teacher;
  std::vector<HeldoutMetrics> students;
  std::int64_t tokens = 0;  // positions evaluated
  double bytes_per_token = 1.0;  // text bytes of the evaluated targets per position
};

// The sums of one batch of windows: the teacher's CE over the positions with a target, and per
// student its CE, KL(teacher || student) and top-1 agreements. The teacher runs once; every
// student reads its hidden states. (What CompareOnHeldout adds up; bench_lm_step times it.)
struct HeldoutBatchSums {
  double teacher_ce = 0.0;
  std::int64_t count = 0;  // positions with a target
  struct Student {
    double ce = 0.0, kl = 0.0;
    std::int64_t agree = 0;
  };
  std::vector<Student> students;
};
HeldoutBatchSums EvaluateHeldoutBatch(DecoderModel& teacher, const std::vector<DecoderModel*>& students,
                                      const LmBatch& batch);

// Runs the teacher once per batch and every student on the same windows of seq_len + 1 tokens
// (each window predicts seq_len tokens), at most max_tokens positions (0 = all).
// `token_bytes[id]`, when given, is the number of text bytes token `id` stands for (storage/
// text_tokenizer.h TokenByteLengths); bytes_per_token is then measured on the evaluated targets
// (ids outside it count 0), else it is 1 (byte tokens).
Result<HeldoutComparison> CompareOnHeldout(DecoderModel& teacher, const std::vector<DecoderModel*>& students,
                                           const TokenDataset& heldout, std::int64_t seq_len,
                                           std::int64_t batch, std::int64_t max_tokens,
                                           const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                                           const std::vector<std::uint32_t>* token_bytes = nullptr);

// The held-out tokens the evaluation covers: whole windows of the evaluation's sequence length
// (eval.seq_len, else the plan's step-2 length) over `heldout_tokens`, at most max_tokens (> 0),
// at least one window. What CompareOnHeldout evaluates and what the progress bar counts to.
std::int64_t EvalSeqLen(const RunEvalSettings& eval, const Plan& plan);
Result<std::int64_t> EvalWindows(std::uint64_t heldout_tokens, std::int64_t seq_len, std::int64_t max_tokens);

struct EvalReport {
  HeldoutMetrics teacher, student, after_step0, after_step1;
  std::int64_t heldout_tokens = 0;
  // Text bytes per evaluated position (1 for byte tokens; about 4 for Qwen2.5 on English): what
  // turns nats per token into bits per byte. Older reports without the key read as 1.
  double heldout_bytes_per_token = 1.0;
  std::int64_t seq_len = 0;
  std::int64_t tokens_teacher_pretraining = -1;  // -1: unknown (no training.json with the teacher)
  std::int64_t tokens_conversion = 0;
  double seconds_total = 0.0;
  double seconds_eval = 0.0;
  std::string prompt, teacher_continuation, student_continuation;
};

// The report as JSON (eval.json). Invalid UTF-8 in the samples (a continuation cut inside a
// character) is written as U+FFFD; everything else round-trips through ParseEvalReport.
std::string EvalReportJson(const EvalReport& r);
Result<EvalReport> ParseEvalReport(std::string_view json, std::string_view source);

// tokens_seen from DIR/training.json (written by `radlads-model pretrain`), or -1.
std::int64_t TeacherPretrainingTokens(const std::string& teacher_dir);

}  // namespace radlads
