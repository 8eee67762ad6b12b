// One closeness check for kernel tests whose errors scale with the reference's size (the
// recurrences, CPU and GPU): a relative-RMS bound over the whole tensor, and an element-wise
// bound atol * rms(ref) + rtol * |ref| for every element. Returns the observed worst values so a
// test can report them (e.g. RADLADS_GLA_REPORT=1) to calibrate its tolerances.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace radlads::testing {

struct RmsTol {
  double atol;  // times rms(ref)
  double rtol;
  double rms;   // relative RMS
};

struct RmsCloseStats {
  double rel_rms = 0;       // ||got - want|| / ||want||
  double max_over_rms = 0;  // max |got - want| / rms(want)
  double max_ratio = 0;     // max |got - want| / (atol * rms(want) + rtol * |want|)
};

// EXPECTs both bounds (messages start with `what`); sizes must match.
inline RmsCloseStats ExpectRmsClose(const std::vector<double>& got, const std::vector<double>& want,
                                    const RmsTol& tol, const std::string& what) {
  RmsCloseStats st;
  EXPECT_EQ(got.size(), want.size()) << what;
  if (got.size() != want.size() || want.empty()) return st;
  double ss_ref = 0.0, ss_err = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    ss_ref += want[i] * want[i];
    ss_err += (got[i] - want[i]) * (got[i] - want[i]);
  }
  const double rms_ref = std::sqrt(ss_ref / static_cast<double>(want.size()));
  st.rel_rms = ss_ref > 0 ? std::sqrt(ss_err / ss_ref) : std::sqrt(ss_err);
  double max_err = 0.0;
  std::size_t worst_i = 0, bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]);
    max_err = std::max(max_err, err);
    const double bound = tol.atol * rms_ref + tol.rtol * std::fabs(want[i]);
    const double ratio = bound > 0 ? err / bound : (err > 0 ? std::numeric_limits<double>::infinity() : 0.0);
    if (!(ratio <= 1.0)) ++bad;
    if (!(ratio <= st.max_ratio)) {
      st.max_ratio = ratio;
      worst_i = i;
    }
  }
  if (rms_ref > 0) st.max_over_rms = max_err / rms_ref;
  EXPECT_LE(st.rel_rms, tol.rms) << what << ": relative RMS error";
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements outside atol*rms+rtol*|ref|; worst at " << worst_i
                     << " got " << got[worst_i] << " want " << want[worst_i] << " (rms(ref) " << rms_ref << ")";
  return st;
}

// The worst errors seen per key ("form/tensor"), printed at the end of the test binary when the
// environment variable `env` is set and not "0": the numbers to calibrate tolerances from.
// Register once per binary: ::testing::AddGlobalTestEnvironment(new WorstErrorReport("...")).
class WorstErrorReport : public ::testing::Environment {
 public:
  explicit WorstErrorReport(const char* env) : env_(env) { instance() = this; }
  static void Record(const std::string& key, const RmsCloseStats& st) {
    if (instance() == nullptr) return;
    RmsCloseStats& w = instance()->worst_[key];
    w.rel_rms = std::max(w.rel_rms, st.rel_rms);
    w.max_over_rms = std::max(w.max_over_rms, st.max_over_rms);
    w.max_ratio = std::max(w.max_ratio, st.max_ratio);
  }
  void TearDown() override {
    const char* v = std::getenv(env_);
    if (v == nullptr || v[0] == '0') return;
    std::printf("worst errors: key  rel-RMS  max|err|/rms(ref)  max|err|/bound\n");
    for (const auto& [k, w] : worst_) {
      std::printf("  %-40s %.2e  %.2e  %.2f\n", k.c_str(), w.rel_rms, w.max_over_rms, w.max_ratio);
    }
  }

 private:
  static WorstErrorReport*& instance() {
    static WorstErrorReport* p = nullptr;
    return p;
  }
  const char* env_;
  std::map<std::string, RmsCloseStats> worst_;
};

}  // namespace radlads::testing
