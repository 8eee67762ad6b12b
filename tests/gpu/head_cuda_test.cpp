// The CUDA LM-head pieces against the CPU backend: the cuBLASLt GEMM and its reference kernel
// against kernels/gemm.h on bf16-rounded inputs; the fused head + KL / CE (kernels/cuda/head_loss.h)
// against kernels/ops/head_loss.h for vocabularies that are not a multiple of the chunk, several
// row and vocabulary chunkings, with and without gradients, teacher head or teacher logits; the
// step-1 alignment loss against kernels/ops/align_loss.h. The CPU side gets exactly the values
// the GPU sees (bf16 inputs widened to fp32), so the differences are the GPU's own rounding.
// Runs only where a GPU is present (the gpu main exits 77 otherwise).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/align_loss.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/head_loss.h"
#include "kernels/gemm.h"
#include "kernels/ops/align_loss.h"
#include "kernels/ops/head_loss.h"
#include "kernels/tensor.h"
#include "tests/testing/test_util.h"

namespace radlads::cuda {
namespace {

using radlads::testing::Rng;

// ---- named tolerances ---------------------------------------------------------------------
// GEMM, fp32 output: bf16 x bf16 products are exact in fp32 on both sides; only the order of the
// fp32 sums differs. |err| <= abs + rel * (sum_k |a||b| |alpha| + |beta c|) per element.
constexpr double kGemmF32TolRel = 2e-5;
constexpr double kGemmF32TolAbs = 1e-6;
// bf16 output: plus one bf16 rounding of the result (half an ulp is 2^-9 relative; allow 2^-8).
constexpr double kGemmBf16TolRel = 1.0 / 256;
// Head loss sums: fp32 logits that differ only in the GEMM's summation order, softmax in fp32,
// sums in double on both sides.
constexpr double kHeadSumTolRel = 2e-5;
constexpr double kHeadSumTolAbs = 1e-5;
// Head gradients: dz is rounded to bf16 before the backward GEMMs (2^-9 relative per element),
// so dx and dW carry ~1e-3 relative RMS error. Element bound: abs part relative to the RMS of
// the reference (sums of random-signed terms can be small), plus a relative part.
constexpr double kHeadGradTolRmsScaledAbs = 2e-2;
constexpr double kHeadGradTolRel = 1e-2;
constexpr double kHeadGradTolRelRms = 4e-3;
// The same call with and without gradients: the same logits and KL code; allow last-bit noise.
constexpr double kForwardOnlyTolRel = 1e-9;
// Alignment loss: double accumulation on both sides, only the order differs.
constexpr double kAlignLossTolRel = 1e-12;
constexpr double kAlignRowDistTolRel = 1e-6;  // fp32 row distances (one rounding of a double)
constexpr double kAlignGradTolAbs = 1e-7;
constexpr double kAlignGradTolRel = 1e-6;

// ---- device buffers and bf16 data ---------------------------------------------------------

template <typename T>
class DevBuf {
 public:
  explicit DevBuf(std::size_t n) : n_(n) {
    if (n_ > 0) RADLADS_CUDA_CHECK(cudaMalloc(&p_, n_ * sizeof(T)));
  }
  explicit DevBuf(const std::vector<T>& h) : DevBuf(h.size()) { Upload(h); }
  ~DevBuf() {
    if (p_ != nullptr) cudaFree(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return p_; }
  void Upload(const std::vector<T>& h) {
    ASSERT_EQ(h.size(), n_);
    if (n_ > 0) RADLADS_CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> h(n_);
    RADLADS_CUDA_CHECK(cudaDeviceSynchronize());
    if (n_ > 0) RADLADS_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// bf16 data: the bits for the device and the same values widened to fp32 for the CPU.
struct Bf16Data {
  std::vector<std::uint16_t> bits;
  std::vector<float> vals;
};

Bf16Data ToBf16(const std::vector<float>& x) {
  Bf16Data d;
  d.bits.resize(x.size());
  d.vals.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    d.bits[i] = F32ToBf16(x[i]);
    d.vals[i] = Bf16ToF32(d.bits[i]);
  }
  return d;
}

std::vector<float> Normal(Rng& rng, std::size_t n, float stddev) {
  std::normal_distribution<float> nd(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

Bf16Data RandomBf16(Rng& rng, std::size_t n, float stddev) { return ToBf16(Normal(rng, n, stddev)); }

const __nv_bfloat16* Bf(const DevBuf<std::uint16_t>& b) {
  return reinterpret_cast<const __nv_bfloat16*>(b.get());
}

Tensor CpuTensor(const std::vector<float>& v, Shape shape) { return Tensor::FromVector(v, shape); }

// got vs ref, both as increments over `init` (so the += contract is checked and the prefill does
// not hide the gradient's error): |err| <= abs_scale * rms(ref) + rel * |ref|, rel RMS <= rms_tol.
::testing::AssertionResult GradClose(const std::vector<float>& got, const float* ref,
                                     const std::vector<float>& init, double abs_scale, double rel,
                                     double rms_tol, const std::string& what) {
  const std::size_t n = got.size();
  double ref2 = 0.0, err2 = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = static_cast<double>(ref[i]) - init[i];
    ref2 += r * r;
  }
  const double ref_rms = std::sqrt(ref2 / std::max<std::size_t>(n, 1));
  int bad = 0;
  std::string first;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = static_cast<double>(ref[i]) - init[i];
    const double g = static_cast<double>(got[i]) - init[i];
    const double e = std::fabs(g - r);
    err2 += e * e;
    if (!(e <= abs_scale * ref_rms + rel * std::fabs(r)) && bad++ < 5)
      first += "\n  [" + std::to_string(i) + "] got " + std::to_string(g) + " ref " +
               std::to_string(r);
  }
  const double rms = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  if (bad > 0 || !(rms <= rms_tol) || !(ref2 > 0))
    return ::testing::AssertionFailure() << what << ": " << bad << " element(s) out of bounds, "
                                         << "relative RMS " << rms << " (bound " << rms_tol
                                         << "), reference RMS " << ref_rms << first;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SumClose(double got, double ref, const std::string& what) {
  if (std::fabs(got - ref) <= kHeadSumTolAbs + kHeadSumTolRel * std::fabs(ref))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": got " << got << " ref " << ref;
}

// ---- GEMM ---------------------------------------------------------------------------------

// One GEMM case on the GPU (cuBLASLt or the reference kernel) against kernels/gemm.h.
template <typename TC>
void CheckGemm(Rng& rng, const GemmDims& d, float alpha, float beta, bool reference) {
  SCOPED_TRACE("ta " + std::to_string(d.trans_a) + " tb " + std::to_string(d.trans_b) + " m " +
               std::to_string(d.m) + " n " + std::to_string(d.n) + " k " + std::to_string(d.k) +
               " beta " + std::to_string(beta) + (reference ? " reference" : " cuBLASLt") +
               (sizeof(TC) == 4 ? " f32 out" : " bf16 out") + " batch " +
               std::to_string(d.batch));
  const std::int64_t a_rows = d.trans_a ? d.k : d.m, b_rows = d.trans_b ? d.n : d.k;
  const std::int64_t sa = d.batch > 1 ? d.stride_a : a_rows * d.lda;
  const std::int64_t sb = d.batch > 1 ? d.stride_b : b_rows * d.ldb;
  const std::int64_t sc = d.batch > 1 ? d.stride_c : d.m * d.ldc;
  const Bf16Data a = RandomBf16(rng, static_cast<std::size_t>(sa * d.batch), 1.0f);
  const Bf16Data b = RandomBf16(rng, static_cast<std::size_t>(sb * d.batch), 1.0f);
  std::vector<float> c0 = Normal(rng, static_cast<std::size_t>(sc * d.batch), 1.0f);
  if constexpr (sizeof(TC) == 2) c0 = ToBf16(c0).vals;  // C is read as bf16
  // CPU: C = alpha AB + beta C, and the magnitude sum |alpha| |A||B| + |beta C|.
  std::vector<float> want = c0, mag(c0.size(), 0.0f);
  std::vector<float> abs_a(a.vals.size()), abs_b(b.vals.size());
  for (std::size_t i = 0; i < abs_a.size(); ++i) abs_a[i] = std::fabs(a.vals[i]);
  for (std::size_t i = 0; i < abs_b.size(); ++i) abs_b[i] = std::fabs(b.vals[i]);
  for (std::int64_t z = 0; z < d.batch; ++z) {
    Gemm(d.trans_a, d.trans_b, d.m, d.n, d.k, alpha, a.vals.data() + z * sa, d.lda,
         b.vals.data() + z * sb, d.ldb, beta, want.data() + z * sc, d.ldc);
    Gemm(d.trans_a, d.trans_b, d.m, d.n, d.k, std::fabs(alpha), abs_a.data() + z * sa, d.lda,
         abs_b.data() + z * sb, d.ldb, 0.0f, mag.data() + z * sc, d.ldc);
  }
  // GPU. With beta = 0, C starts as NaN: it must not be read. Host copies of bf16 C are bits.
  using HostC = std::conditional_t<sizeof(TC) == 4, float, std::uint16_t>;
  DevBuf<std::uint16_t> da(a.bits), db(b.bits);
  std::vector<HostC> c_init(c0.size());
  for (std::size_t i = 0; i < c0.size(); ++i) {
    const float v = beta == 0.0f ? NAN : c0[i];
    if constexpr (sizeof(TC) == 4)
      c_init[i] = v;
    else
      c_init[i] = F32ToBf16(v);
  }
  DevBuf<HostC> dc(c_init);
  TC* c_dev = reinterpret_cast<TC*>(dc.get());
  if (reference)
    GemmBf16Reference(d, alpha, Bf(da), Bf(db), beta, c_dev, nullptr);
  else
    GemmBf16(d, alpha, Bf(da), Bf(db), beta, c_dev, nullptr);
  const std::vector<HostC> got_raw = dc.Download();
  int bad = 0;
  for (std::int64_t z = 0; z < d.batch; ++z) {
    for (std::int64_t i = 0; i < d.m; ++i) {
      for (std::int64_t j = 0; j < d.n; ++j) {
        const std::size_t idx = static_cast<std::size_t>(z * sc + i * d.ldc + j);
        float got;
        if constexpr (sizeof(TC) == 4)
          got = got_raw[idx];
        else
          got = Bf16ToF32(got_raw[idx]);
        const double ref = want[idx];
        double tol = kGemmF32TolAbs +
                     kGemmF32TolRel * (mag[idx] + std::fabs(static_cast<double>(beta) * c0[idx]));
        if constexpr (sizeof(TC) == 2) tol += kGemmBf16TolRel * std::fabs(ref);
        if (!(std::fabs(got - ref) <= tol) && bad++ < 5)
          ADD_FAILURE() << "[" << z << "][" << i << "][" << j << "] got " << got << " ref " << ref
                        << " tol " << tol;
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

struct Mnk {
  std::int64_t m, n, k;
};
constexpr Mnk kGemmShapes[] = {{1, 1, 1}, {7, 5, 3}, {37, 53, 29}, {64, 96, 128}, {130, 257, 96}};

GemmDims Dims(bool ta, bool tb, const Mnk& s, std::int64_t pad) {
  return GemmDims{ta, tb, s.m, s.n, s.k, (ta ? s.m : s.k) + pad, (tb ? s.k : s.n) + pad,
                  s.n + pad};
}

TEST(CudaGemm, MatchesCpuGemmForEveryTransposeOddShapesAndBeta) {
  Rng rng(101);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Mnk& s : kGemmShapes)
        for (std::int64_t pad : {0, 3})
          for (float beta : {0.0f, 1.0f}) {
            const float alpha = beta == 0.0f ? 1.0f : 0.5f;
            CheckGemm<float>(rng, Dims(ta, tb, s, pad), alpha, beta, false);
            CheckGemm<__nv_bfloat16>(rng, Dims(ta, tb, s, pad), alpha, beta, false);
          }
}

TEST(CudaGemm, ReferenceKernelMatchesCpuGemm) {
  Rng rng(102);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Mnk& s : kGemmShapes)
        for (float beta : {0.0f, 1.0f}) {
          CheckGemm<float>(rng, Dims(ta, tb, s, 1), 1.0f, beta, true);
          CheckGemm<__nv_bfloat16>(rng, Dims(ta, tb, s, 0), 1.0f, beta, true);
        }
}

TEST(CudaGemm, StridedBatchedMatchesPerMatrixCpuGemm) {
  Rng rng(103);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool reference : {false, true}) {
        GemmDims d = Dims(ta, tb, Mnk{33, 40, 24}, 0);
        d.batch = 3;
        d.stride_a = (ta ? d.k : d.m) * d.lda + 8;  // gaps between the matrices
        d.stride_b = (tb ? d.n : d.k) * d.ldb;
        d.stride_c = d.m * d.ldc + 16;
        CheckGemm<float>(rng, d, 1.0f, 1.0f, reference);
        CheckGemm<__nv_bfloat16>(rng, d, 1.0f, 0.0f, reference);
      }
}

TEST(CudaGemm, AlignedShapesUseCublasLtAndRepeatBitForBit) {
  Rng rng(104);
  const std::int64_t before = GemmFallbackCount();
  const Bf16Data a = RandomBf16(rng, 256 * 128, 1.0f), b = RandomBf16(rng, 128 * 192, 1.0f);
  DevBuf<std::uint16_t> da(a.bits), db(b.bits);
  DevBuf<float> c1(256 * 192), c2(256 * 192);
  GemmBf16(false, false, 256, 192, 128, 1.0f, Bf(da), 128, Bf(db), 192, 0.0f, c1.get(), 192,
           nullptr);
  GemmBf16(false, false, 256, 192, 128, 1.0f, Bf(da), 128, Bf(db), 192, 0.0f, c2.get(), 192,
           nullptr);
  EXPECT_EQ(c1.Download(), c2.Download());
  EXPECT_EQ(GemmFallbackCount(), before) << "cuBLASLt found no algorithm for an aligned shape";
  // K = 0: C = beta C (the fallback kernel).
  DevBuf<float> c3(std::vector<float>(6, 2.0f));
  GemmBf16(false, false, 2, 3, 0, 1.0f, Bf(da), 1, Bf(db), 3, 0.5f, c3.get(), 3, nullptr);
  EXPECT_EQ(c3.Download(), std::vector<float>(6, 1.0f));
}

// ---- fused head + KL / CE -----------------------------------------------------------------

struct HeadData {
  std::int64_t n, v, c_s, c_t;
  Bf16Data x_s, w_s, x_t, w_t;
  std::vector<std::int32_t> targets;
};

// Student and teacher heads that agree on part of the rows: the teacher's x starts with the
// student's, and its head with the student's plus noise, so top-1 agreement is neither 0 nor N.
// Targets: random ids, every 5th row ignored (-1), every 4th the student's argmax on the CPU.
HeadData MakeHead(std::uint64_t seed, std::int64_t n, std::int64_t v, std::int64_t c_s,
                  std::int64_t c_t) {
  Rng rng(seed);
  HeadData h{n, v, c_s, c_t, {}, {}, {}, {}, {}};
  const float ws = 2.5f / std::sqrt(static_cast<float>(c_s));  // logits with std ~2.5
  h.x_s = RandomBf16(rng, static_cast<std::size_t>(n * c_s), 1.0f);
  h.w_s = RandomBf16(rng, static_cast<std::size_t>(v * c_s), ws);
  std::vector<float> xt(static_cast<std::size_t>(n * c_t)), wt(static_cast<std::size_t>(v * c_t));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < c_t; ++j)
      xt[i * c_t + j] = j < c_s ? h.x_s.vals[i * c_s + j] : nd(rng);
  for (std::int64_t r = 0; r < v; ++r)
    for (std::int64_t j = 0; j < c_t; ++j)
      wt[r * c_t + j] = (j < c_s ? h.w_s.vals[r * c_s + j] : 0.0f) + 0.4f * ws * nd(rng);
  h.x_t = ToBf16(xt);
  h.w_t = ToBf16(wt);
  std::vector<float> z(static_cast<std::size_t>(n * v));
  Gemm(false, true, n, v, c_s, 1.0f, h.x_s.vals.data(), c_s, h.w_s.vals.data(), c_s, 0.0f,
       z.data(), v);
  std::uniform_int_distribution<std::int32_t> ud(0, static_cast<std::int32_t>(v - 1));
  h.targets.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = z.data() + i * v;
    h.targets[i] = i % 5 == 2 ? -1
                   : i % 4 == 1
                       ? static_cast<std::int32_t>(std::max_element(row, row + v) - row)
                       : ud(rng);
  }
  return h;
}

struct HeadRun {
  std::vector<float> dx, dw;
  HeadKlSums kl{};
  HeadCeSums ce{};
};

enum class Mode { kKl, kKlTeacherLogits, kCe };

// One GPU call; gradients (when `grad`) are accumulated onto dx_init / dw_init.
HeadRun RunGpu(const HeadData& h, Mode mode, const std::vector<float>& z_t, bool use_targets,
               bool grad, const HeadLossCudaOptions& opt, const std::vector<float>& dx_init,
               const std::vector<float>& dw_init) {
  DevBuf<std::uint16_t> xs(h.x_s.bits), ws(h.w_s.bits), xt(h.x_t.bits), wt(h.w_t.bits);
  DevBuf<std::int32_t> tg(h.targets);
  DevBuf<float> zt(z_t), dx(dx_init), dw(dw_init);
  DevBuf<HeadKlSums> kl(1);
  DevBuf<HeadCeSums> ce(1);
  const HeadLossKind kind = mode == Mode::kKl                ? HeadLossKind::kKl
                            : mode == Mode::kKlTeacherLogits ? HeadLossKind::kKlTeacherLogits
                                                             : HeadLossKind::kCrossEntropy;
  const std::size_t bytes =
      HeadLossWorkspaceBytes(kind, h.n, h.v, h.c_s, h.c_t, grad, opt.chunks);
  DevBuf<unsigned char> work(bytes);
  // NaN-filled workspace: every value read must have been written by the call.
  if (bytes > 0) RADLADS_CUDA_CHECK(cudaMemset(work.get(), 0xff, bytes));
  const HeadGradsCuda g{grad ? dx.get() : nullptr, grad ? dw.get() : nullptr};
  const std::int32_t* t = use_targets ? tg.get() : nullptr;
  if (mode == Mode::kKl)
    HeadKl(Bf(xs), Bf(ws), h.c_s, Bf(xt), Bf(wt), h.c_t, h.n, h.v, t, g, opt, work.get(), bytes,
           kl.get(), nullptr);
  else if (mode == Mode::kKlTeacherLogits)
    HeadKlTeacherLogits(Bf(xs), Bf(ws), h.c_s, zt.get(), h.n, h.v, t, g, opt, work.get(), bytes,
                        kl.get(), nullptr);
  else
    HeadCrossEntropy(Bf(xs), Bf(ws), h.c_s, h.n, h.v, tg.get(), g, opt, work.get(), bytes,
                     ce.get(), nullptr);
  HeadRun r;
  r.dx = dx.Download();
  r.dw = dw.Download();
  r.kl = kl.Download()[0];
  r.ce = ce.Download()[0];
  return r;
}

// The CPU op on the same values, gradients accumulated onto the same prefill.
struct CpuRun {
  Tensor dx, dw;
  KlResult kl;
  CeResult ce;
};

CpuRun RunCpu(const HeadData& h, Mode mode, const std::vector<float>& z_t, bool use_targets,
              const HeadLossCudaOptions& opt, const std::vector<float>& dx_init,
              const std::vector<float>& dw_init) {
  CpuRun r;
  r.dx = CpuTensor(dx_init, {h.n, h.c_s});
  r.dw = CpuTensor(dw_init, {h.v, h.c_s});
  const Tensor xs = CpuTensor(h.x_s.vals, {h.n, h.c_s}), ws = CpuTensor(h.w_s.vals, {h.v, h.c_s});
  Tensor tg = Tensor::Empty({h.n}, DType::kI32);
  std::copy(h.targets.begin(), h.targets.end(), tg.data<std::int32_t>());
  HeadLossOptions o;
  o.chunk = 16;  // the CPU's own row chunking; any value gives the same sums to fp32 accuracy
  o.grad_scale = opt.grad_scale;
  o.ce_grad_scale = opt.ce_grad_scale;
  const HeadGrads g{&r.dx, &r.dw};
  if (mode == Mode::kKl) {
    const Tensor xt = CpuTensor(h.x_t.vals, {h.n, h.c_t}), wt = CpuTensor(h.w_t.vals, {h.v, h.c_t});
    r.kl = FusedKl(xs, ws, xt, wt, use_targets ? &tg : nullptr, g, o);
  } else if (mode == Mode::kKlTeacherLogits) {
    r.kl = FusedKlTeacherLogits(xs, ws, CpuTensor(z_t, {h.n, h.v}), use_targets ? &tg : nullptr,
                                g, o);
  } else {
    r.ce = FusedCrossEntropy(xs, ws, tg, g, o);
  }
  return r;
}

void ExpectKlSumsMatch(const HeadKlSums& got, const KlResult& ref) {
  EXPECT_TRUE(SumClose(got.kl_sum, ref.kl_sum, "kl_sum"));
  EXPECT_TRUE(SumClose(got.ce_sum, ref.ce_sum, "ce_sum"));
  EXPECT_EQ(got.top1_agree, ref.top1_agree);
  EXPECT_EQ(got.ce_count, ref.ce_count);
  EXPECT_EQ(got.invalid_targets, 0);
}

void ExpectCeSumsMatch(const HeadCeSums& got, const CeResult& ref) {
  EXPECT_TRUE(SumClose(got.loss_sum, ref.loss_sum, "loss_sum"));
  EXPECT_EQ(got.count, ref.count);
  EXPECT_EQ(got.correct, ref.correct);
  EXPECT_EQ(got.invalid_targets, 0);
}

void ExpectGradsMatch(const HeadRun& got, const CpuRun& ref, const std::vector<float>& dx_init,
                      const std::vector<float>& dw_init) {
  EXPECT_TRUE(GradClose(got.dx, ref.dx.f32(), dx_init, kHeadGradTolRmsScaledAbs, kHeadGradTolRel,
                        kHeadGradTolRelRms, "dx"));
  EXPECT_TRUE(GradClose(got.dw, ref.dw.f32(), dw_init, kHeadGradTolRmsScaledAbs, kHeadGradTolRel,
                        kHeadGradTolRelRms, "dW"));
}

// {N, V, C_s, C_t}: V = 1000 with odd widths (rows of 58 bytes: unaligned GEMM operands), and
// the tiny model's head (V = 320, hidden 128).
constexpr std::int64_t kHeadShapes[][4] = {{37, 1000, 29, 36}, {50, 320, 128, 128}};
// {rows per block (0 = all), vocabulary chunk}: V not a multiple of the chunk, exactly V, beyond V.
constexpr HeadLossChunks kChunkings[] = {{0, 64}, {16, 333}, {0, 320}, {7, 1000}, {0, 4096}};

void CheckKlCase(Mode mode) {
  std::uint64_t seed = mode == Mode::kKl ? 200 : 300;
  for (const auto& s : kHeadShapes) {
    const HeadData h = MakeHead(seed++, s[0], s[1], s[2], s[3]);
    Rng rng(seed++);
    std::vector<float> z_t;
    if (mode == Mode::kKlTeacherLogits) z_t = Normal(rng, static_cast<std::size_t>(h.n * h.v), 2.0f);
    const std::vector<float> dx0 = Normal(rng, static_cast<std::size_t>(h.n * h.c_s), 1.0f);
    const std::vector<float> dw0 = Normal(rng, static_cast<std::size_t>(h.v * h.c_s), 1.0f);
    for (std::size_t ci = 0; ci < std::size(kChunkings); ++ci) {
      const bool use_targets = ci % 2 == 1;
      HeadLossCudaOptions opt;
      opt.chunks = kChunkings[ci];
      opt.grad_scale = 1.0f / static_cast<float>(h.n);
      opt.ce_grad_scale = use_targets ? 0.3f / static_cast<float>(h.n) : 0.0f;
      SCOPED_TRACE("N " + std::to_string(h.n) + " V " + std::to_string(h.v) + " rows " +
                   std::to_string(opt.chunks.rows) + " vocab chunk " +
                   std::to_string(opt.chunks.vocab) + " targets " + std::to_string(use_targets));
      const CpuRun ref = RunCpu(h, mode, z_t, use_targets, opt, dx0, dw0);
      const HeadRun got = RunGpu(h, mode, z_t, use_targets, true, opt, dx0, dw0);
      ExpectKlSumsMatch(got.kl, ref.kl);
      ExpectGradsMatch(got, ref, dx0, dw0);
      // Forward only: the same sums, and dx / dW untouched.
      const HeadRun fwd = RunGpu(h, mode, z_t, use_targets, false, opt, dx0, dw0);
      EXPECT_NEAR(fwd.kl.kl_sum, got.kl.kl_sum, kForwardOnlyTolRel * std::fabs(got.kl.kl_sum));
      EXPECT_NEAR(fwd.kl.ce_sum, got.kl.ce_sum, kForwardOnlyTolRel * std::fabs(got.kl.ce_sum));
      EXPECT_EQ(fwd.kl.top1_agree, got.kl.top1_agree);
      EXPECT_EQ(fwd.dx, dx0);
      EXPECT_EQ(fwd.dw, dw0);
    }
  }
}

TEST(CudaHeadLoss, KlWithTeacherHeadMatchesCpuForEveryChunking) { CheckKlCase(Mode::kKl); }

TEST(CudaHeadLoss, KlWithTeacherLogitsMatchesCpuForEveryChunking) {
  CheckKlCase(Mode::kKlTeacherLogits);
}

TEST(CudaHeadLoss, TopOneAgreementIsNeitherTrivialNorZero) {
  // Guards the test data: the top-1 comparison above would not catch a broken argmax if every
  // or no row agreed.
  const HeadData h = MakeHead(200, 37, 1000, 29, 36);
  const CpuRun ref = RunCpu(h, Mode::kKl, {}, false, HeadLossCudaOptions{}, 
                            std::vector<float>(37 * 29, 0.0f), std::vector<float>(1000 * 29, 0.0f));
  EXPECT_GT(ref.kl.top1_agree, 3);
  EXPECT_LT(ref.kl.top1_agree, 34);
}

TEST(CudaHeadLoss, CrossEntropyMatchesCpuForEveryChunking) {
  std::uint64_t seed = 400;
  for (const auto& s : kHeadShapes) {
    const HeadData h = MakeHead(seed++, s[0], s[1], s[2], s[3]);
    Rng rng(seed++);
    const std::vector<float> dx0 = Normal(rng, static_cast<std::size_t>(h.n * h.c_s), 1.0f);
    const std::vector<float> dw0 = Normal(rng, static_cast<std::size_t>(h.v * h.c_s), 1.0f);
    for (const HeadLossChunks& ch : kChunkings) {
      HeadLossCudaOptions opt;
      opt.chunks = ch;
      opt.grad_scale = 0.7f / static_cast<float>(h.n);
      SCOPED_TRACE("N " + std::to_string(h.n) + " V " + std::to_string(h.v) + " rows " +
                   std::to_string(ch.rows) + " vocab chunk " + std::to_string(ch.vocab));
      const CpuRun ref = RunCpu(h, Mode::kCe, {}, true, opt, dx0, dw0);
      EXPECT_GT(ref.ce.correct, 0);  // the argmax targets are counted
      const HeadRun got = RunGpu(h, Mode::kCe, {}, true, true, opt, dx0, dw0);
      ExpectCeSumsMatch(got.ce, ref.ce);
      ExpectGradsMatch(got, ref, dx0, dw0);
      const HeadRun fwd = RunGpu(h, Mode::kCe, {}, true, false, opt, dx0, dw0);
      EXPECT_NEAR(fwd.ce.loss_sum, got.ce.loss_sum, kForwardOnlyTolRel * got.ce.loss_sum);
      EXPECT_EQ(fwd.ce.correct, got.ce.correct);
      EXPECT_EQ(fwd.dx, dx0);
    }
  }
}

TEST(CudaHeadLoss, RepeatedCallsGiveTheSameBits) {
  const HeadData h = MakeHead(500, 37, 1000, 29, 36);
  HeadLossCudaOptions opt;
  opt.chunks = HeadLossChunks{16, 333};
  opt.grad_scale = 1.0f / 37;
  opt.ce_grad_scale = 0.1f;
  const std::vector<float> dx0(37 * 29, 0.5f), dw0(1000 * 29, -0.25f);
  const HeadRun a = RunGpu(h, Mode::kKl, {}, true, true, opt, dx0, dw0);
  const HeadRun b = RunGpu(h, Mode::kKl, {}, true, true, opt, dx0, dw0);
  EXPECT_EQ(std::memcmp(&a.kl, &b.kl, sizeof(HeadKlSums)), 0);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dw, b.dw);
}

TEST(CudaHeadLoss, InvalidTargetsAreCountedAndIgnored) {
  HeadData h = MakeHead(600, 37, 320, 128, 128);
  HeadData valid = h;
  h.targets[3] = 320;  // == V
  h.targets[8] = -2;
  valid.targets[3] = -1;
  valid.targets[8] = -1;
  HeadLossCudaOptions opt;
  opt.chunks = HeadLossChunks{0, 100};
  const std::vector<float> dx0(37 * 128, 0.0f), dw0(320 * 128, 0.0f);
  const CpuRun ref = RunCpu(valid, Mode::kCe, {}, true, opt, dx0, dw0);
  const HeadRun got = RunGpu(h, Mode::kCe, {}, true, true, opt, dx0, dw0);
  EXPECT_EQ(got.ce.invalid_targets, 2);
  EXPECT_EQ(got.ce.count, ref.ce.count);
  EXPECT_TRUE(SumClose(got.ce.loss_sum, ref.ce.loss_sum, "loss_sum"));
  const HeadRun kl = RunGpu(h, Mode::kKl, {}, true, false, opt, dx0, dw0);
  EXPECT_EQ(kl.kl.invalid_targets, 2);
}

TEST(CudaHeadLoss, NoRowsGivesZeroSums) {
  HeadData h = MakeHead(700, 0, 320, 128, 128);
  const HeadRun got = RunGpu(h, Mode::kKl, {}, false, true, HeadLossCudaOptions{}, {}, {});
  EXPECT_EQ(got.kl.kl_sum, 0.0);
  EXPECT_EQ(got.kl.top1_agree, 0);
}

// ---- alignment loss -----------------------------------------------------------------------

template <typename T>
void CheckAlign(std::uint64_t seed, std::int64_t n, std::int64_t c) {
  SCOPED_TRACE("N " + std::to_string(n) + " C " + std::to_string(c) +
               (sizeof(T) == 2 ? " bf16" : " f32"));
  Rng rng(seed);
  Bf16Data t = RandomBf16(rng, static_cast<std::size_t>(n * c), 1.0f);
  Bf16Data s = RandomBf16(rng, static_cast<std::size_t>(n * c), 1.0f);
  // Row 1: equal rows (zero distance, zero gradient); row 2: a tiny difference.
  for (std::int64_t j = 0; j < c && n > 2; ++j) {
    s.bits[c + j] = t.bits[c + j];
    s.vals[c + j] = t.vals[c + j];
    s.bits[2 * c + j] = t.bits[2 * c + j] ^ (j % 3 == 0 ? 1 : 0);
    s.vals[2 * c + j] = Bf16ToF32(s.bits[2 * c + j]);
  }
  const std::vector<float> ds0 = Normal(rng, static_cast<std::size_t>(n * c), 1.0f);
  constexpr float kDloss = 0.25f;
  // CPU.
  const Tensor tt = CpuTensor(t.vals, {n, c}), st = CpuTensor(s.vals, {n, c});
  Tensor rd_ref = Tensor::Empty({n});
  const double loss_ref = AlignLossForward(tt, st, &rd_ref);
  Tensor ds_ref = CpuTensor(ds0, {n, c});
  AlignLossBackward(tt, st, kDloss, ds_ref);
  // GPU, with the inputs as T (bf16 as its bits on the host).
  using HostT = std::conditional_t<sizeof(T) == 4, float, std::uint16_t>;
  DevBuf<HostT> td(sizeof(T) == 4 ? std::vector<HostT>(t.vals.begin(), t.vals.end())
                                  : std::vector<HostT>(t.bits.begin(), t.bits.end()));
  DevBuf<HostT> sd(sizeof(T) == 4 ? std::vector<HostT>(s.vals.begin(), s.vals.end())
                                  : std::vector<HostT>(s.bits.begin(), s.bits.end()));
  const T* t_dev = reinterpret_cast<const T*>(td.get());
  const T* s_dev = reinterpret_cast<const T*>(sd.get());
  DevBuf<double> loss(1);
  DevBuf<float> rd(static_cast<std::size_t>(n)), ds(ds0);
  DevBuf<unsigned char> work(AlignLossWorkspaceBytes(n));
  AlignLossForward(t_dev, s_dev, n, c, loss.get(), rd.get(), work.get(),
                   AlignLossWorkspaceBytes(n), nullptr);
  AlignLossBackward(t_dev, s_dev, n, c, kDloss, ds.get(), nullptr);
  const double got = loss.Download()[0];
  EXPECT_NEAR(got, loss_ref, kAlignLossTolRel * std::fabs(loss_ref));
  const std::vector<float> rdg = rd.Download();
  for (std::int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(rdg[i], rd_ref.f32()[i], kAlignRowDistTolRel * std::fabs(rd_ref.f32()[i]))
        << "row " << i;
  const std::vector<float> dsg = ds.Download();
  int bad = 0;
  for (std::size_t i = 0; i < dsg.size(); ++i) {
    const double r = ds_ref.f32()[i];
    if (!(std::fabs(dsg[i] - r) <= kAlignGradTolAbs + kAlignGradTolRel * std::fabs(r)) &&
        bad++ < 5)
      ADD_FAILURE() << "ds[" << i << "] got " << dsg[i] << " ref " << r;
  }
  if (n > 1) {
    for (std::int64_t j = 0; j < c; ++j) EXPECT_EQ(dsg[c + j], ds0[c + j]) << "zero-distance row";
  }
}

TEST(CudaAlignLoss, ForwardAndBackwardMatchCpu) {
  CheckAlign<float>(800, 37, 29);
  CheckAlign<float>(801, 9, 896);  // several columns per thread
  CheckAlign<__nv_bfloat16>(802, 37, 29);
  CheckAlign<__nv_bfloat16>(803, 5, 3584);
}

TEST(CudaAlignLoss, NoRowsGivesZero) {
  DevBuf<double> loss(std::vector<double>{7.0});
  AlignLossForward(static_cast<const float*>(nullptr), nullptr, 0, 16, loss.get(), nullptr,
                   nullptr, 0, nullptr);
  EXPECT_EQ(loss.Download()[0], 0.0);
}

}  // namespace
}  // namespace radlads::cuda
