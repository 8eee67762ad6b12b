#include "pipeline/init.h"

#include <cmath>
#include <vector>

namespace radlads {

void InitUniform(Tensor& t, float lo, float hi, InitRng& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
}

void InitNormal(Tensor& t, float std, InitRng& rng) {
  std::normal_distribution<float> d(0.0f, std);
  float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
}

void InitOrthogonal(Tensor& t, double s, InitRng& rng) {
  RADLADS_CHECK(t.rank() >= 2) << "orthogonal init needs a matrix, got " << t.DebugString();
  const std::int64_t cols = t.dim(-1), rows = t.numel() / cols;
  // Orthonormalise the columns (rows >= cols) or the rows (rows < cols) of a Gaussian matrix
  // with modified Gram-Schmidt run twice (numerically orthogonal to ~1e-15 in fp64).
  const bool tall = rows >= cols;
  const std::int64_t n = tall ? rows : cols;   // vector length
  const std::int64_t k = tall ? cols : rows;   // number of vectors
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> q(static_cast<std::size_t>(n * k));
  for (double& x : q) x = nd(rng);
  auto vec = [&](std::int64_t j) { return q.data() + j * n; };
  for (std::int64_t j = 0; j < k; ++j) {
    for (int pass = 0; pass < 2; ++pass) {
      for (std::int64_t i = 0; i < j; ++i) {
        double dot = 0;
        for (std::int64_t e = 0; e < n; ++e) dot += vec(i)[e] * vec(j)[e];
        for (std::int64_t e = 0; e < n; ++e) vec(j)[e] -= dot * vec(i)[e];
      }
    }
    double norm = 0;
    for (std::int64_t e = 0; e < n; ++e) norm += vec(j)[e] * vec(j)[e];
    norm = std::sqrt(norm);
    RADLADS_CHECK(norm > 1e-12) << "degenerate Gaussian draw in orthogonal init";
    for (std::int64_t e = 0; e < n; ++e) vec(j)[e] /= norm;
  }
  const double gain = rows > cols ? s * std::sqrt(static_cast<double>(rows) / static_cast<double>(cols)) : s;
  float* p = t.f32();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      p[r * cols + c] = static_cast<float>(gain * (tall ? vec(c)[r] : vec(r)[c]));
}

}  // namespace radlads
