#include "tests/kernels/ops_test_util.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace radlads::testing {

Tensor RandomTensor(const Shape& shape, Rng& rng, float scale) {
  Tensor t = Tensor::Empty(shape);
  std::normal_distribution<float> nd(0.0f, scale);
  float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = nd(rng);
  return t;
}

Tensor RandomIds(const Shape& shape, std::int32_t vocab, Rng& rng) {
  Tensor t = Tensor::Empty(shape, DType::kI32);
  std::uniform_int_distribution<std::int32_t> ud(0, vocab - 1);
  auto* p = t.data<std::int32_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = ud(rng);
  return t;
}

std::vector<double> ToF64(const Tensor& t) {
  const float* p = t.f32();
  return std::vector<double>(p, p + t.numel());
}

Tensor FromF64(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::Empty(shape);
  EXPECT_EQ(static_cast<std::size_t>(t.numel()), v.size());
  for (std::size_t i = 0; i < v.size(); ++i) t.f32()[i] = static_cast<float>(v[i]);
  return t;
}

::testing::AssertionResult AllClose(const std::vector<double>& got,
                                    const std::vector<double>& ref, Tol tol) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs ref " << ref.size();
  std::ostringstream bad;
  std::size_t n_bad = 0;
  double err2 = 0, ref2 = 0, max_err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(got[i] - ref[i]);
    err2 += e * e;
    ref2 += ref[i] * ref[i];
    if (!(e <= max_err)) max_err = e;  // NaN-sticky
    if (!(e <= tol.atol + tol.rtol * std::fabs(ref[i]))) {
      if (n_bad < 8) bad << "\n  [" << i << "] got " << got[i] << " ref " << ref[i];
      ++n_bad;
    }
  }
  const double rms = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  if (n_bad == 0 && rms <= tol.rms) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << n_bad << " of " << got.size() << " elements outside atol " << tol.atol << " + rtol "
         << tol.rtol << "*|ref| (max err " << max_err << "), relative RMS " << rms
         << " (limit " << tol.rms << ")" << bad.str();
}

::testing::AssertionResult AllClose(const Tensor& got, const std::vector<double>& ref, Tol tol) {
  return AllClose(ToF64(got), ref, tol);
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) s += a[i] * b[i];
  return s;
}

std::vector<double> NumericGrad(std::vector<double>* param, const std::function<double()>& loss,
                                double eps) {
  std::vector<double> grad(param->size());
  for (std::size_t i = 0; i < param->size(); ++i) {
    const double p = (*param)[i];
    const double h = eps * std::max(1.0, std::fabs(p));
    (*param)[i] = p + h;
    const double up = loss();
    (*param)[i] = p - h;
    const double down = loss();
    (*param)[i] = p;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

void ExpectAccumulates(const std::vector<Tensor*>& grads, const std::function<void()>& backward) {
  for (Tensor* g : grads) g->SetZero();
  backward();
  std::vector<std::vector<double>> once;
  for (Tensor* g : grads) once.push_back(ToF64(*g));
  backward();
  for (std::size_t k = 0; k < grads.size(); ++k) {
    std::vector<double> twice = once[k];
    double scale = 0;
    for (double& v : twice) {
      v *= 2;
      scale = std::max(scale, std::fabs(v));
    }
    // Second calls may round partial sums differently (e.g. GEMM with beta = 1): allow fp32
    // noise relative to the largest gradient; a non-accumulating op would be off by 100%.
    EXPECT_TRUE(AllClose(*grads[k], twice, Tol{1e-6 * scale, 1e-6, 1e-6})) << "gradient #" << k;
  }
}

}  // namespace radlads::testing
