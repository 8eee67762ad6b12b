// eval.json (worker/eval_report.h): every field round-trips through ParseEvalReport, and a
// sample that is not valid UTF-8 (a BPE continuation cut inside a character) is written with
// U+FFFD instead of failing the evaluation.
#include "worker/eval_report.h"

#include <gtest/gtest.h>

#include "storage/window_sampler.h"

namespace radlads {
namespace {

EvalReport Sample() {
  EvalReport r;
  r.teacher = {2.5, 0.0, 1.0};
  r.student = {2.75, 0.25, 0.8125};
  r.heldout_tokens = 100;
  r.heldout_bytes_per_token = 4.25;
  r.seq_len = 64;
  r.tokens_teacher_pretraining = 12345;
  r.tokens_conversion = 6789;
  r.seconds_total = 12.5;
  r.seconds_eval = 2.5;
  r.prompt = "It is a truth";
  r.teacher_continuation = " universally acknowledged";
  r.student_continuation = " universally";
  return r;
}

TEST(EvalReport, RoundTrips) {
  const EvalReport r = Sample();
  auto back = ParseEvalReport(EvalReportJson(r), "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->student.ce, r.student.ce);
  EXPECT_EQ(back->student.kl, r.student.kl);
  EXPECT_EQ(back->heldout_bytes_per_token, r.heldout_bytes_per_token);
  EXPECT_EQ(back->tokens_teacher_pretraining, r.tokens_teacher_pretraining);
  EXPECT_EQ(back->prompt, r.prompt);
  EXPECT_EQ(back->teacher_continuation, r.teacher_continuation);
  EXPECT_EQ(back->student_continuation, r.student_continuation);
}

TEST(EvalReport, InvalidUtf8InSamplesBecomesReplacementCharacter) {
  EvalReport r = Sample();
  r.teacher_continuation = std::string(" caf\xC3", 5);  // "café" cut inside the é
  r.student_continuation = std::string("\xFF\xFE ok", 5);
  std::string json;
  ASSERT_NO_THROW(json = EvalReportJson(r));
  auto back = ParseEvalReport(json, "test");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->teacher_continuation, " caf\xEF\xBF\xBD");
  EXPECT_EQ(back->student_continuation.substr(back->student_continuation.size() - 3), " ok");
  EXPECT_NE(back->student_continuation.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(back->prompt, r.prompt);
}

// The windows the evaluation covers (and the progress bar counts): all of them without a cap,
// max_tokens / seq_len with one (at least one window), an error when no window fits.
TEST(EvalReport, EvalWindowsFollowTheCap) {
  constexpr std::uint64_t kHeldout = 10000;
  constexpr std::int64_t kSeq = 64;
  auto all = WindowSampler::Create(kHeldout, {SamplingMode::kSequential, kSeq, 0});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  const auto slots = static_cast<std::int64_t>(all->slot_count());
  EXPECT_GT(slots, 100);
  EXPECT_EQ(EvalWindows(kHeldout, kSeq, 0).value(), slots);
  EXPECT_EQ(EvalWindows(kHeldout, kSeq, 1024).value(), 16);
  EXPECT_EQ(EvalWindows(kHeldout, kSeq, 1000).value(), 15);
  EXPECT_EQ(EvalWindows(kHeldout, kSeq, 10).value(), 1);
  EXPECT_EQ(EvalWindows(kHeldout, kSeq, 1 << 30).value(), slots);
  EXPECT_FALSE(EvalWindows(10, kSeq, 0).ok());
}

}  // namespace
}  // namespace radlads
