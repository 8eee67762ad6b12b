// Helpers for the loss / optimizer tests: random fp32 tensors, fp64 copies, and the two-part
// comparison of docs/kernels.md (element-wise |a-b| <= atol + rtol*|ref|, and the relative RMS
// error ||a-b|| / ||ref||), reporting the first few mismatches.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <sstream>
#include <vector>

#include "kernels/tensor.h"
#include "tests/testing/test_util.h"

namespace radlads::testing {

struct Tol {
  double atol;  // element-wise absolute
  double rtol;  // element-wise relative to |ref|
  double rms;   // bound on ||got - ref|| / ||ref||
};

inline Tensor RandomTensor(Rng& rng, Shape shape, float stddev = 1.0f) {
  Tensor t = Tensor::Empty(std::move(shape));
  std::normal_distribution<float> nd(0.0f, stddev);
  float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = nd(rng);
  return t;
}

inline std::vector<double> ToDouble(const Tensor& t) {
  const float* p = t.f32();
  return std::vector<double>(p, p + t.numel());
}

inline std::span<const float> Span(const Tensor& t) {
  return std::span<const float>(t.f32(), static_cast<std::size_t>(t.numel()));
}

inline ::testing::AssertionResult AllClose(std::span<const float> got, std::span<const double> ref,
                                           Tol tol, const char* what) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << ref.size();
  double err2 = 0.0, ref2 = 0.0, max_abs = 0.0, max_ratio = 0.0;
  int bad = 0;
  std::ostringstream os;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    if (!std::isfinite(g)) {
      if (bad++ < 5) os << "\n  [" << i << "] got " << g << " (non-finite), ref " << r;
      continue;
    }
    const double e = std::fabs(g - r);
    err2 += e * e;
    ref2 += r * r;
    max_abs = std::max(max_abs, e);
    max_ratio = std::max(max_ratio, e / (tol.atol + tol.rtol * std::fabs(r)));
    if (e > tol.atol + tol.rtol * std::fabs(r) && bad++ < 5)
      os << "\n  [" << i << "] got " << g << " ref " << r << " |err| " << e;
  }
  const double rms = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  if (bad > 0 || rms > tol.rms)
    return ::testing::AssertionFailure()
           << what << ": " << bad << " element(s) outside atol " << tol.atol << " + rtol "
           << tol.rtol << ", relative RMS " << rms << " (bound " << tol.rms << ")" << os.str();
  if (std::getenv("RADLADS_TEST_VERBOSE") != nullptr)  // to calibrate tolerances
    std::printf("  %-28s max|err| %.3g  max err/bound %.3f  rel RMS %.3g\n", what, max_abs,
                max_ratio, rms);
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult AllClose(const Tensor& got, const std::vector<double>& ref,
                                           Tol tol, const char* what) {
  return AllClose(Span(got), std::span<const double>(ref), tol, what);
}

// Relative closeness of two scalars: |a-b| <= atol + rtol*|ref|.
inline ::testing::AssertionResult ScalarClose(double got, double ref, double atol, double rtol,
                                              const char* what) {
  if (std::isfinite(got) && std::fabs(got - ref) <= atol + rtol * std::fabs(ref)) {
    if (std::getenv("RADLADS_TEST_VERBOSE") != nullptr)
      std::printf("  %-28s |err| %.3g  rel %.3g\n", what, std::fabs(got - ref),
                  std::fabs(got - ref) / std::max(std::fabs(ref), 1e-300));
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << what << ": got " << got << " ref " << ref << " |err| " << std::fabs(got - ref) << " > "
         << atol << " + " << rtol << "*|ref|";
}

}  // namespace radlads::testing
