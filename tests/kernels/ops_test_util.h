// Helpers for the CPU op tests: random inputs, fp32 <-> fp64 copies, the two-metric comparison
// of docs/kernels.md (element-wise atol + rtol*|ref|, and relative RMS), and central finite
// differences for checking the fp64 reference backwards.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/tensor.h"
#include "tests/testing/test_util.h"

namespace radlads::testing {

// A named tolerance: |got - ref| <= atol + rtol * |ref| element-wise, and
// ||got - ref|| / ||ref|| <= rms (or ||got - ref|| <= rms when ref is all zero).
struct Tol {
  double atol;
  double rtol;
  double rms;
};

// Finite differences of the fp64 references against their analytic backwards.
inline constexpr Tol kFdTol = {1e-7, 1e-6, 1e-7};
inline constexpr double kFdEps = 1e-6;

// F32 tensor of N(0, scale^2) values.
Tensor RandomTensor(const Shape& shape, Rng& rng, float scale = 1.0f);
// I32 tensor of uniform ids in [0, vocab).
Tensor RandomIds(const Shape& shape, std::int32_t vocab, Rng& rng);
// Copies of the values (F32 -> double exactly; double -> F32 rounded).
std::vector<double> ToF64(const Tensor& t);
Tensor FromF64(const std::vector<double>& v, const Shape& shape);

::testing::AssertionResult AllClose(const std::vector<double>& got,
                                    const std::vector<double>& ref, Tol tol);
::testing::AssertionResult AllClose(const Tensor& got, const std::vector<double>& ref, Tol tol);

double Dot(const std::vector<double>& a, const std::vector<double>& b);
// Central differences of loss() with respect to every element of *param, which loss() reads
// (perturbed in place by +-eps * max(1, |p|) and restored).
std::vector<double> NumericGrad(std::vector<double>* param, const std::function<double()>& loss,
                                double eps = kFdEps);

// The accumulate convention: zeroes *grads, runs backward() twice, and checks every gradient
// is twice the first call's (to fp32 rounding, relative to the largest gradient).
void ExpectAccumulates(const std::vector<Tensor*>& grads, const std::function<void()>& backward);

}  // namespace radlads::testing
