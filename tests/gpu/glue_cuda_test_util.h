// Helpers for the CUDA glue tests: device buffers, bf16 rounding of inputs (so that the GPU and
// the CPU reference see the same values), random vectors from fixed seeds, and the dtype's
// named tolerance.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/tensor.h"
#include "tests/kernels/ops_test_util.h"

namespace radlads::gluetest {

using bf16 = __nv_bfloat16;
using Vec = std::vector<float>;
using testing::Rng;
using testing::Tol;

// fp32 entry points: libm ulps apart (expf/tanhf vs the CPU's polynomials) and fp64 sums in
// another order.
inline constexpr Tol kF32Tol = {2e-6, 1e-5, 2e-6};
// bf16 entry points: inputs are the same bf16 values on both sides; the GPU rounds its outputs
// (and, in fused chains, an intermediate or two) to bf16: 2^-9 relative each.
inline constexpr Tol kBf16Tol = {2e-3, 1.2e-2, 5e-3};

template <typename T>
constexpr Tol TolFor() {
  return std::is_same_v<T, float> ? kF32Tol : kBf16Tol;
}
template <typename T>
constexpr const char* DtypeName() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

// N(mean, scale^2) values.
Vec Random(std::int64_t n, Rng& rng, float scale = 1.0f, float mean = 0.0f);
// Uniform in [lo, hi).
Vec Uniform(std::int64_t n, Rng& rng, float lo, float hi);
// Round every value to bf16 (nearest even) and back.
Vec RoundBf16(const Vec& v);
// The values a T-typed device buffer holds for `v` (identity for float).
template <typename T>
Vec Prep(const Vec& v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return RoundBf16(v);
  }
}

template <typename T>
class Dev {
 public:
  Dev() = default;
  explicit Dev(std::int64_t n);
  explicit Dev(const Vec& host);  // uploads (rounded to bf16 for T = bf16)
  ~Dev();
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }

  T* get() const { return p_; }
  std::int64_t size() const { return n_; }
  Vec Get() const;  // synchronises the device, downloads as float
  void Set(const Vec& host);

 private:
  T* p_ = nullptr;
  std::int64_t n_ = 0;
};

// Raw device bytes (workspaces, tables).
class DevBytes {
 public:
  explicit DevBytes(std::size_t bytes);
  ~DevBytes();
  DevBytes(const DevBytes&) = delete;
  DevBytes& operator=(const DevBytes&) = delete;
  template <typename P>
  P* as() const {
    return static_cast<P*>(p_);
  }
  void Upload(const void* src, std::size_t bytes);
  void Download(void* dst, std::size_t bytes) const;

 private:
  void* p_ = nullptr;
};

// CPU tensor views for the reference ops.
Tensor Cpu(const Vec& v, Shape shape);
Vec Host(const Tensor& t);
std::vector<double> D(const Vec& v);

// AllClose with a message naming the quantity and the dtype.
template <typename T>
::testing::AssertionResult Close(const Vec& got, const Vec& ref) {
  return testing::AllClose(D(got), D(ref), TolFor<T>());
}

void Sync();

}  // namespace radlads::gluetest
