// The CUDA teacher attention (kernels/cuda/attention.h), flash and simple kernels, against the
// CPU op (kernels/ops/attention.h, itself proven against the fp64 reference) on bf16-rounded
// inputs, and the flash kernel against the simple one. Fixed seeds; label gpu (exits 77 without
// a device).
#include "kernels/cuda/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/memory.h"
#include "kernels/ops/attention.h"
#include "kernels/tensor.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using cuda::AttentionShape;
using i64 = std::int64_t;

// |got - ref| <= atol + rtol |ref| per element, and ||got - ref|| / ||ref|| <= rms.
struct Tol {
  double atol, rtol, rms;
};
// Simple kernel vs the CPU op: both fp32 on the same bf16 inputs; o is then rounded to bf16
// (8 significant bits: half an ulp is 2^-9 to 2^-8 = 3.9e-3 relative, about 1.6e-3 relative
// RMS). atol covers fp32 cancellation where o is near 0.
constexpr Tol kSimpleOutTol{3e-5, 4e-3, 3e-3};
// Flash vs the CPU op (and vs the simple kernel): besides the output rounding, P is rounded to
// bf16 for the P V product (<= 2^-8 relative per weight; the row sum stays fp32), bounded by
// 2^-8 * sum_j p_j |v_j| / l <= 2^-8 max|v| (1.8e-2 at |v| <= 4.5 if every rounding had the
// same sign) and typically sqrt(sum p^2 v^2)-sized, i.e. about the output rounding's RMS again.
constexpr Tol kFlashOutTol{1.5e-2, 1e-2, 5e-3};
// lse: fp32 on both sides; with |logits| up to ~400 (the large-magnitude inputs) the logits'
// own fp32 rounding (~|S| 2^-24 sqrt(D)) dominates, hence a relative term. A leaked or lost key
// changes lse by about 1/t, far above this.
constexpr Tol kLseTol{5e-5, 4e-6, 1e-6};

struct Case {
  i64 b, t, h, hkv, d;
};

std::string Name(const Case& c) {
  return "B=" + std::to_string(c.b) + " T=" + std::to_string(c.t) + " H=" + std::to_string(c.h) +
         " Hkv=" + std::to_string(c.hkv) + " D=" + std::to_string(c.d);
}

AttentionShape ShapeOf(const Case& c) { return {c.b, c.t, c.h, c.hkv, c.d}; }

// T = 1, 17, 130 (and 64, 128, 257 around the 64-row blocks); groups of 1, 2 and 7 (28 / 4 is
// Qwen2.5-7B's); D = 32, 64, 128.
const std::vector<Case>& FlashCases() {
  static const std::vector<Case> cases = {
      {2, 1, 4, 2, 32},    {1, 1, 7, 1, 128},  {1, 17, 3, 3, 64},   {3, 17, 28, 4, 128},
      {2, 130, 4, 2, 128}, {1, 130, 7, 1, 64}, {1, 130, 2, 2, 32},  {2, 130, 14, 2, 32},
      {1, 64, 2, 1, 64},   {1, 128, 2, 1, 32}, {1, 257, 4, 2, 128},
  };
  return cases;
}

// The simple kernel also takes other head sizes: D = 10 and D = 200 (two columns per thread).
std::vector<Case> SimpleCases() {
  std::vector<Case> cases = FlashCases();
  cases.push_back({2, 17, 4, 2, 10});
  cases.push_back({1, 130, 3, 1, 200});
  cases.push_back({1, 300, 2, 1, 64});  // more than two 128-key chunks
  return cases;
}

// Input families. kLarge: scale*q.k ~ N(0, 81^2) (|S| up to ~400). kRampUp / kRampDown: key j's
// magnitude grows (shrinks) with j, so each key block raises the running max far above the last
// (the old accumulator is rescaled by factors down to underflow) or adds only underflowing
// probabilities.
enum class Kind { kNormal, kLarge, kRampUp, kRampDown };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kNormal: return "normal";
    case Kind::kLarge: return "large";
    case Kind::kRampUp: return "ramp-up";
    case Kind::kRampDown: return "ramp-down";
  }
  return "?";
}

// Host data: bf16 bits and the same values as fp32.
struct HostArray {
  std::vector<std::uint16_t> bits;
  std::vector<float> values;
};

// Fills [B, T, heads, D] with N(0, stddev * mult(t)) values rounded to bf16.
HostArray RandomBf16(const Case& c, i64 heads, float stddev, Kind kind, testing::Rng& rng) {
  HostArray a;
  const std::size_t n = static_cast<std::size_t>(c.b * c.t * heads * c.d);
  a.bits.resize(n);
  a.values.resize(n);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::size_t i = 0;
  for (i64 b = 0; b < c.b; ++b) {
    for (i64 t = 0; t < c.t; ++t) {
      const float frac = c.t > 1 ? static_cast<float>(t) / static_cast<float>(c.t - 1) : 0.f;
      float mult = 1.f;
      if (kind == Kind::kRampUp) mult = 0.25f + 4.f * frac;
      if (kind == Kind::kRampDown) mult = 4.25f - 4.f * frac;
      for (i64 e = 0; e < heads * c.d; ++e, ++i) {
        a.bits[i] = F32ToBf16(nd(rng) * stddev * mult);
        a.values[i] = Bf16ToF32(a.bits[i]);
      }
    }
  }
  return a;
}

struct Problem {
  Case c;
  Kind kind;
  float scale;
  HostArray q, k, v;
  Problem(const Case& c_, Kind kind_, std::uint64_t seed) : c(c_), kind(kind_) {
    scale = 1.f / std::sqrt(static_cast<float>(c.d));
    testing::Rng rng(seed);
    const float qk = kind == Kind::kNormal ? 1.f : kind == Kind::kLarge ? 9.f : 3.f;
    q = RandomBf16(c, c.h, qk, Kind::kNormal, rng);  // only keys ramp
    k = RandomBf16(c, c.hkv, qk, kind, rng);
    v = RandomBf16(c, c.hkv, 1.f, Kind::kNormal, rng);
  }
  std::string Ctx() const { return Name(c) + " " + KindName(kind); }
};

struct Result {
  std::vector<float> o, lse;
};

Tensor FromValues(const std::vector<float>& x, Shape shape) {
  Tensor t = Tensor::Empty(std::move(shape));
  std::memcpy(t.f32(), x.data(), x.size() * sizeof(float));
  return t;
}

Result RunCpu(const Problem& p) {
  const Case& c = p.c;
  Tensor q = FromValues(p.q.values, {c.b, c.t, c.h, c.d});
  Tensor k = FromValues(p.k.values, {c.b, c.t, c.hkv, c.d});
  Tensor v = FromValues(p.v.values, {c.b, c.t, c.hkv, c.d});
  Tensor o = Tensor::Empty({c.b, c.t, c.h, c.d});
  Tensor lse = Tensor::Empty({c.b, c.h, c.t});
  AttentionForward(q, k, v, p.scale, o, &lse);
  return {std::vector<float>(o.f32(), o.f32() + o.numel()),
          std::vector<float>(lse.f32(), lse.f32() + lse.numel())};
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes), p_(cuda::DeviceAlloc(bytes)) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cuda::DeviceFree(p_); }
  template <typename T>
  T* as() { return static_cast<T*>(p_); }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_;
  void* p_;
};

enum class Impl { kSimple, kFlash };

class AttentionCudaTest : public ::testing::Test {
 protected:
  void SetUp() override { RADLADS_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  void TearDown() override { RADLADS_CUDA_CHECK(cudaStreamDestroy(stream_)); }

  // Runs one kernel on the problem; o and lse start as NaN (0xFF bytes), so every element the
  // kernel fails to write shows. `bits` receives o's raw bf16 when given.
  Result Run(const Problem& p, Impl impl, bool with_lse = true,
             std::vector<std::uint16_t>* bits = nullptr) {
    const Case& c = p.c;
    const std::size_t nq = p.q.bits.size(), nkv = p.k.bits.size();
    const std::size_t nlse = static_cast<std::size_t>(c.b * c.h * c.t);
    DeviceBuffer q(nq * 2), k(nkv * 2), v(nkv * 2), o(nq * 2), lse(nlse * 4);
    cuda::CopyHostToDevice(q.as<void>(), p.q.bits.data(), nq * 2);
    cuda::CopyHostToDevice(k.as<void>(), p.k.bits.data(), nkv * 2);
    cuda::CopyHostToDevice(v.as<void>(), p.v.bits.data(), nkv * 2);
    RADLADS_CUDA_CHECK(cudaMemset(o.as<void>(), 0xFF, o.bytes()));
    RADLADS_CUDA_CHECK(cudaMemset(lse.as<void>(), 0xFF, lse.bytes()));
    RADLADS_CUDA_CHECK(cudaDeviceSynchronize());
    auto fn = impl == Impl::kFlash ? cuda::AttentionForwardFlash : cuda::AttentionForwardSimple;
    fn(ShapeOf(c), q.as<__nv_bfloat16>(), k.as<__nv_bfloat16>(), v.as<__nv_bfloat16>(), p.scale,
       o.as<__nv_bfloat16>(), with_lse ? lse.as<float>() : nullptr, stream_);
    RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<std::uint16_t> o_bits(nq);
    Result r;
    r.lse.resize(nlse);
    cuda::CopyDeviceToHost(o_bits.data(), o.as<void>(), nq * 2);
    cuda::CopyDeviceToHost(r.lse.data(), lse.as<void>(), nlse * 4);
    r.o.resize(nq);
    for (std::size_t i = 0; i < nq; ++i) r.o[i] = Bf16ToF32(o_bits[i]);
    if (bits != nullptr) *bits = std::move(o_bits);
    return r;
  }

  cudaStream_t stream_ = nullptr;
};

void ExpectClose(const std::string& what, const std::vector<float>& got,
                 const std::vector<float>& ref, const Tol& tol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double max_ratio = 0, max_abs = 0, num = 0, den = 0;
  std::size_t worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    double ratio = diff / (tol.atol + tol.rtol * std::fabs(static_cast<double>(ref[i])));
    if (!std::isfinite(got[i])) ratio = INFINITY;
    if (ratio > max_ratio) {
      max_ratio = ratio;
      worst = i;
    }
    max_abs = std::max(max_abs, diff);
    num += diff * diff;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  const double rel_rms = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  EXPECT_LE(max_ratio, 1.0) << what << ": element " << worst << " got " << got[worst] << " want "
                            << ref[worst] << " (max |err| " << max_abs << ", atol " << tol.atol
                            << ", rtol " << tol.rtol << ")";
  EXPECT_LE(rel_rms, tol.rms) << what << ": relative RMS error";
}

constexpr Kind kAllKinds[] = {Kind::kNormal, Kind::kLarge, Kind::kRampUp, Kind::kRampDown};

TEST_F(AttentionCudaTest, SimpleMatchesCpu) {
  std::uint64_t seed = 1100;
  for (const Case& c : SimpleCases()) {
    for (Kind kind : {Kind::kNormal, Kind::kLarge}) {
      const Problem p(c, kind, ++seed);
      const Result ref = RunCpu(p);
      const Result got = Run(p, Impl::kSimple);
      ExpectClose("simple o " + p.Ctx(), got.o, ref.o, kSimpleOutTol);
      ExpectClose("simple lse " + p.Ctx(), got.lse, ref.lse, kLseTol);
    }
  }
}

TEST_F(AttentionCudaTest, FlashMatchesCpuAndSimple) {
  std::uint64_t seed = 1200;
  for (const Case& c : FlashCases()) {
    for (Kind kind : kAllKinds) {
      const Problem p(c, kind, ++seed);
      const Result ref = RunCpu(p);
      const Result got = Run(p, Impl::kFlash);
      ExpectClose("flash o " + p.Ctx(), got.o, ref.o, kFlashOutTol);
      ExpectClose("flash lse " + p.Ctx(), got.lse, ref.lse, kLseTol);
      const Result simple = Run(p, Impl::kSimple);
      ExpectClose("flash vs simple o " + p.Ctx(), got.o, simple.o, kFlashOutTol);
      ExpectClose("flash vs simple lse " + p.Ctx(), got.lse, simple.lse, kLseTol);
    }
  }
}

// No atomics: the same bits on every run, with or without lse; and lse == nullptr leaves the
// lse buffer untouched (still the NaN fill).
TEST_F(AttentionCudaTest, DeterministicAndLseOptional) {
  const Problem p({2, 130, 28, 4, 128}, Kind::kLarge, 1300);
  for (Impl impl : {Impl::kFlash, Impl::kSimple}) {
    std::vector<std::uint16_t> a, b, c;
    Run(p, impl, true, &a);
    Run(p, impl, true, &b);
    const Result no_lse = Run(p, impl, false, &c);
    EXPECT_EQ(a, b) << "run to run";
    EXPECT_EQ(a, c) << "with and without lse";
    for (float x : no_lse.lse) ASSERT_TRUE(std::isnan(x)) << "lse written although nullptr";
  }
}

// B == 0 or T == 0: nothing to do, nothing touched (null pointers are fine).
TEST_F(AttentionCudaTest, EmptyShapesAreNoOps) {
  cuda::AttentionForwardFlash({0, 5, 4, 2, 64}, nullptr, nullptr, nullptr, 0.125f, nullptr, nullptr,
                              stream_);
  cuda::AttentionForwardSimple({3, 0, 4, 2, 64}, nullptr, nullptr, nullptr, 0.125f, nullptr,
                               nullptr, stream_);
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace
}  // namespace radlads
