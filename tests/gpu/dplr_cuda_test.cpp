// CUDA DPLR recurrence (kernels/cuda/dplr.h) against the CPU op (kernels/ops/dplr.h, itself
// proven against the fp64 reference) on the same bf16-rounded inputs: both GPU forms (recurrent
// reference, chunked WY), forward and every gradient, initial / final state and their
// gradients, head sizes 32 / 64 / 128, odd lengths, weak (RWKV-7 range) and strong decays,
// several chunk lengths (including ones whose buffers spill from shared memory to the
// workspace), fp32 I/O, accumulation into pre-filled gradients, T = 0, determinism, and the
// chunked form against the recurrent one on the GPU. Fixed seeds throughout.
// Set DPLR_CUDA_TEST_VERBOSE=1 to print every comparison's error.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/dplr.h"
#include "kernels/ops/dplr.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using cuda::DplrCudaConfig;
using cuda::DplrCudaDims;
using cuda::DplrDType;
using cuda::DplrForm;
using I64 = std::int64_t;

// Error metrics against the CPU op: relative RMS error ||x - ref|| / ||ref|| (fla's metric) and
// the largest element error relative to max|ref|.
struct Tol {
  double rms, max;
};
// bf16 outputs and gradients: one bf16 rounding of the result (<= 2^-9 relative per element,
// about 1.5e-3 RMS) on top of fp32 differences of order 1e-6; dg's cancellation is absorbed by
// the fp32 arithmetic before its single rounding, so the same limit holds.
constexpr Tol kTolBf16Out{4e-3, 1.2e-2};
constexpr Tol kTolBf16Grad{4e-3, 1.2e-2};
// fp32 states (hT, dh0) and every fp32-I/O result: only the order of fp32 sums and expf differ
// from the CPU (which is within ~1e-6 of fp64); strong decays at T = 67 included.
constexpr Tol kTolF32{2e-5, 1e-4};
// dg in fp32 I/O: reverse cumulative sums of terms of both signs, the most cancellation.
constexpr Tol kTolF32Dg{5e-5, 2e-4};
// The chunked GPU form against the recurrent GPU form (both fp32 inside, bf16 out).
constexpr Tol kTolFastVsSimpleBf16{4e-3, 1.2e-2};

enum class Decay { kWeak, kStrong };

bool Verbose() {
  const char* e = std::getenv("DPLR_CUDA_TEST_VERBOSE");
  return e != nullptr && e[0] == '1';
}

float RoundBf16(float x) { return Bf16ToF32(F32ToBf16(x)); }

struct Problem {
  I64 B, T, H, D;
  float scale;
  std::vector<float> r, g, k, v, a, b, dout;  // [B,T,H,D], bf16-representable when rounded
  std::vector<float> h0, dhT;                 // [B,H,D,D] fp32
};

Problem MakeProblem(std::uint64_t seed, I64 B, I64 T, I64 H, I64 D, Decay decay, bool round) {
  testing::Rng rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.f, 1.f);
  Problem p{B, T, H, D, 1.0f / std::sqrt(static_cast<float>(D)), {}, {}, {}, {}, {}, {}, {}, {},
            {}};
  const auto n = static_cast<std::size_t>(B * T * H * D), ns = static_cast<std::size_t>(B * H * D * D);
  for (auto* x : {&p.r, &p.g, &p.k, &p.v, &p.a, &p.b, &p.dout}) x->resize(n);
  p.h0.resize(ns);
  p.dhT.resize(ns);
  for (auto& x : p.r) x = nd(rng);
  for (auto& x : p.k) x = nd(rng) / std::sqrt(static_cast<float>(D));
  for (auto& x : p.v) x = nd(rng);
  for (auto& x : p.dout) x = nd(rng);
  for (auto& x : p.h0) x = 0.5f * nd(rng);
  for (auto& x : p.dhT) x = nd(rng);
  for (auto& x : p.g) {
    x = decay == Decay::kWeak ? -0.6065306597f / (1.0f + std::exp(-nd(rng)))  // RWKV-7 range
                              : -3.0f - 2.0f * ud(rng);                        // [-5, -3]
  }
  for (I64 row = 0; row < B * T * H; ++row) {  // a = -kappa, b = kappa * iclr, kappa unit norm
    float* a = &p.a[static_cast<std::size_t>(row * D)];
    float* b = &p.b[static_cast<std::size_t>(row * D)];
    double n2 = 0.0;
    for (I64 i = 0; i < D; ++i) {
      a[i] = nd(rng);
      n2 += static_cast<double>(a[i]) * a[i];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(n2));
    for (I64 i = 0; i < D; ++i) {
      const float kk = a[i] * inv;
      a[i] = -kk;
      b[i] = kk * ud(rng);
    }
  }
  if (round) {
    for (auto* x : {&p.r, &p.g, &p.k, &p.v, &p.a, &p.b, &p.dout}) {
      for (auto& e : *x) e = RoundBf16(e);
    }
  }
  return p;
}

// Which optional state tensors a run uses.
struct States {
  bool h0 = false, hT = false, dhT = false, dh0 = false;
};

struct Outs {
  std::vector<float> o, hT, dr, dg, dk, dv, da, db, dh0;
};

Tensor T4(std::vector<float>& x, I64 a, I64 b, I64 c, I64 d) {
  return Tensor::Borrow(x.data(), {a, b, c, d}, DType::kF32);
}

// The CPU op (recurrent form) with gradients accumulated into copies of `prefill` (zeros when
// empty).
Outs RunCpu(Problem p, const States& st, float prefill) {
  const I64 B = p.B, T = p.T, H = p.H, D = p.D;
  const auto n = p.r.size(), ns = p.h0.size();
  Outs out;
  out.o.assign(n, 0.f);
  out.hT.assign(ns, 0.f);
  for (auto* x : {&out.dr, &out.dg, &out.dk, &out.dv, &out.da, &out.db}) x->assign(n, prefill);
  out.dh0.assign(ns, prefill);
  const DplrOptions opts{p.scale, 0, 16};
  Tensor r = T4(p.r, B, T, H, D), g = T4(p.g, B, T, H, D), k = T4(p.k, B, T, H, D),
         v = T4(p.v, B, T, H, D), a = T4(p.a, B, T, H, D), b = T4(p.b, B, T, H, D),
         dout = T4(p.dout, B, T, H, D);
  Tensor h0 = st.h0 ? T4(p.h0, B, H, D, D) : Tensor();
  Tensor dhT = st.dhT ? T4(p.dhT, B, H, D, D) : Tensor();
  Tensor o = T4(out.o, B, T, H, D), hT = T4(out.hT, B, H, D, D);
  DplrForward(r, g, k, v, a, b, h0, opts, o, st.hT ? &hT : nullptr);
  Tensor dr = T4(out.dr, B, T, H, D), dg = T4(out.dg, B, T, H, D), dk = T4(out.dk, B, T, H, D),
         dv = T4(out.dv, B, T, H, D), da = T4(out.da, B, T, H, D), db = T4(out.db, B, T, H, D),
         dh0 = T4(out.dh0, B, H, D, D);
  DplrBackward(r, g, k, v, a, b, h0, dout, dhT, opts, dr, dg, dk, dv, da, db,
               st.dh0 ? &dh0 : nullptr);
  return out;
}

void Check(cudaError_t e, const char* what) {
  ASSERT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e);
}

// A device buffer holding `x` as bf16 or fp32 (or fp32 always when force_f32).
class DevBuf {
 public:
  DevBuf() = default;
  DevBuf(const std::vector<float>& x, bool bf16) : n_(x.size()), bf16_(bf16) {
    const std::size_t bytes = n_ * (bf16 ? 2 : 4);
    if (cudaMalloc(&p_, std::max<std::size_t>(bytes, 1)) != cudaSuccess) std::abort();
    if (bf16) {
      std::vector<std::uint16_t> h(n_);
      for (std::size_t i = 0; i < n_; ++i) h[i] = F32ToBf16(x[i]);
      cudaMemcpy(p_, h.data(), bytes, cudaMemcpyHostToDevice);
    } else {
      cudaMemcpy(p_, x.data(), bytes, cudaMemcpyHostToDevice);
    }
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() {
    if (p_ != nullptr) cudaFree(p_);
  }
  void* get() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }
  std::vector<float> Download() const {
    std::vector<float> x(n_);
    if (bf16_) {
      std::vector<std::uint16_t> h(n_);
      cudaMemcpy(h.data(), p_, n_ * 2, cudaMemcpyDeviceToHost);
      for (std::size_t i = 0; i < n_; ++i) x[i] = Bf16ToF32(h[i]);
    } else {
      cudaMemcpy(x.data(), p_, n_ * 4, cudaMemcpyDeviceToHost);
    }
    return x;
  }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
  bool bf16_ = false;
};

// Runs the GPU forward and backward (gradients accumulated into buffers pre-filled with
// `prefill`), on a non-default stream.
Outs RunGpu(const Problem& p, const DplrCudaConfig& cfg, const States& st, float prefill) {
  const bool bf = cfg.dtype == DplrDType::kBf16;
  const DplrCudaDims d{p.B, p.T, p.H, p.D};
  const auto n = p.r.size(), ns = p.h0.size();
  const std::vector<float> fill(n, prefill), fills(ns, prefill), zeros(n, 0.f),
      zs(ns, 0.f);
  DevBuf r(p.r, bf), g(p.g, bf), k(p.k, bf), v(p.v, bf), a(p.a, bf), b(p.b, bf),
      dout(p.dout, bf), h0(p.h0, false), dhT(p.dhT, false);
  DevBuf o(zeros, bf), hT(zs, false), dr(fill, bf), dg(fill, bf), dk(fill, bf), dv(fill, bf),
      da(fill, bf), db(fill, bf), dh0(fills, false);
  cudaStream_t stream = nullptr;
  Check(cudaStreamCreate(&stream), "cudaStreamCreate");
  const std::size_t wf = cuda::DplrCudaForwardWorkspaceBytes(d, cfg);
  const std::size_t wb = cuda::DplrCudaBackwardWorkspaceBytes(d, cfg);
  void* ws = nullptr;
  if (std::max(wf, wb) > 0) Check(cudaMalloc(&ws, std::max(wf, wb)), "cudaMalloc workspace");
  cuda::DplrCudaForwardArgs fa;
  fa.r = r.get(), fa.g = g.get(), fa.k = k.get(), fa.v = v.get(), fa.a = a.get(), fa.b = b.get();
  fa.h0 = st.h0 ? h0.f32() : nullptr;
  fa.o = o.get();
  fa.hT = st.hT ? hT.f32() : nullptr;
  cuda::DplrCudaForward(d, cfg, fa, ws, wf, stream);
  cuda::DplrCudaBackwardArgs ba;
  ba.r = r.get(), ba.g = g.get(), ba.k = k.get(), ba.v = v.get(), ba.a = a.get(), ba.b = b.get();
  ba.h0 = fa.h0;
  ba.dout = dout.get();
  ba.dhT = st.dhT ? dhT.f32() : nullptr;
  ba.dr = dr.get(), ba.dg = dg.get(), ba.dk = dk.get(), ba.dv = dv.get(), ba.da = da.get();
  ba.db = db.get();
  ba.dh0 = st.dh0 ? dh0.f32() : nullptr;
  cuda::DplrCudaBackward(d, cfg, ba, ws, wb, stream);
  Check(cudaStreamSynchronize(stream), "kernels");
  Check(cudaGetLastError(), "kernels");
  Outs out;
  out.o = o.Download();
  out.hT = hT.Download();
  out.dr = dr.Download(), out.dg = dg.Download(), out.dk = dk.Download();
  out.dv = dv.Download(), out.da = da.Download(), out.db = db.Download();
  out.dh0 = dh0.Download();
  if (ws != nullptr) cudaFree(ws);
  cudaStreamDestroy(stream);
  return out;
}

void Compare(const std::string& what, const std::vector<float>& got,
             const std::vector<float>& want, const Tol& tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double se = 0.0, sr = 0.0, emax = 0.0, rmax = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i];
    const double e = static_cast<double>(got[i]) - want[i];
    se += e * e;
    sr += static_cast<double>(want[i]) * want[i];
    emax = std::max(emax, std::fabs(e));
    rmax = std::max(rmax, std::fabs(static_cast<double>(want[i])));
  }
  const double rel = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
  const double relmax = rmax > 0 ? emax / rmax : emax;
  if (Verbose()) std::printf("%-60s rms %.2e max %.2e\n", what.c_str(), rel, relmax);
  EXPECT_LE(rel, tol.rms) << what << ": relative RMS error";
  EXPECT_LE(relmax, tol.max) << what << ": max error / max|ref|";
}

void CompareAll(const std::string& what, const Outs& got, const Outs& want, const States& st,
                bool bf16) {
  const Tol out = bf16 ? kTolBf16Out : kTolF32;
  const Tol grad = bf16 ? kTolBf16Grad : kTolF32;
  const Tol dgt = bf16 ? kTolBf16Grad : kTolF32Dg;
  Compare(what + " o", got.o, want.o, out);
  if (st.hT) Compare(what + " hT", got.hT, want.hT, kTolF32);
  Compare(what + " dr", got.dr, want.dr, grad);
  Compare(what + " dg", got.dg, want.dg, dgt);
  Compare(what + " dk", got.dk, want.dk, grad);
  Compare(what + " dv", got.dv, want.dv, grad);
  Compare(what + " da", got.da, want.da, grad);
  Compare(what + " db", got.db, want.db, grad);
  if (st.dh0) Compare(what + " dh0", got.dh0, want.dh0, kTolF32);
}

std::string Label(const Problem& p, const DplrCudaConfig& cfg, Decay decay, const States& st) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%s %s B%lld T%lld H%lld D%lld c%lld %s %s",
                cfg.form == DplrForm::kChunked ? "chunked" : "recurrent",
                cfg.dtype == DplrDType::kBf16 ? "bf16" : "f32", static_cast<long long>(p.B),
                static_cast<long long>(p.T), static_cast<long long>(p.H),
                static_cast<long long>(p.D),
                static_cast<long long>(cfg.form == DplrForm::kChunked ? cfg.chunk : cfg.checkpoint),
                decay == Decay::kWeak ? "weak" : "strong", st.h0 ? "states" : "no-states");
  return buf;
}

DplrCudaConfig Cfg(DplrForm form, DplrDType dt, float scale, I64 chunk = 16, I64 ckpt = 16) {
  DplrCudaConfig c;
  c.form = form;
  c.dtype = dt;
  c.scale = scale;
  c.chunk = chunk;
  c.checkpoint = ckpt;
  return c;
}

// Both forms, bf16 I/O, against the CPU: head sizes x odd lengths x decays x with / without
// the states.
TEST(DplrCuda, BothFormsMatchCpuBf16) {
  std::uint64_t seed = 1000;
  for (I64 D : {32, 64, 128}) {
    for (I64 T : {1, 17, 67}) {
      for (Decay decay : {Decay::kWeak, Decay::kStrong}) {
        for (bool with_states : {false, true}) {
          const Problem p = MakeProblem(++seed, 2, T, 3, D, decay, true);
          const States st{with_states, with_states, with_states, with_states};
          const Outs want = RunCpu(p, st, 0.0f);
          for (DplrForm form : {DplrForm::kRecurrent, DplrForm::kChunked}) {
            const DplrCudaConfig cfg = Cfg(form, DplrDType::kBf16, p.scale);
            CompareAll(Label(p, cfg, decay, st), RunGpu(p, cfg, st, 0.0f), want, st, true);
          }
        }
      }
    }
  }
}

// fp32 I/O: the same comparison at fp32 tolerances (this is where an indexing slip that bf16
// rounding could hide shows up), both forms, all head sizes, strong and weak decays.
TEST(DplrCuda, BothFormsMatchCpuF32) {
  std::uint64_t seed = 2000;
  for (I64 D : {32, 64, 128}) {
    for (Decay decay : {Decay::kWeak, Decay::kStrong}) {
      const Problem p = MakeProblem(++seed, 1, 67, 2, D, decay, false);
      const States st{true, true, true, true};
      const Outs want = RunCpu(p, st, 0.0f);
      for (DplrForm form : {DplrForm::kRecurrent, DplrForm::kChunked}) {
        const DplrCudaConfig cfg = Cfg(form, DplrDType::kF32, p.scale);
        CompareAll(Label(p, cfg, decay, st), RunGpu(p, cfg, st, 0.0f), want, st, false);
      }
    }
  }
}

// Chunk lengths 1, 7, 32 and 64 (64 at D = 128 overflows shared memory: the workspace path)
// and recurrent checkpoint intervals 1, 5 and 64, fp32 I/O.
TEST(DplrCuda, ChunkAndCheckpointLengths) {
  std::uint64_t seed = 3000;
  for (I64 D : {64, 128}) {
    const Problem p = MakeProblem(++seed, 1, 67, 2, D, Decay::kWeak, false);
    const States st{true, true, true, true};
    const Outs want = RunCpu(p, st, 0.0f);
    for (I64 c : {1, 7, 32, 64}) {
      const DplrCudaConfig cfg = Cfg(DplrForm::kChunked, DplrDType::kF32, p.scale, c);
      CompareAll(Label(p, cfg, Decay::kWeak, st), RunGpu(p, cfg, st, 0.0f), want, st, false);
    }
    for (I64 ck : {1, 5, 64}) {
      const DplrCudaConfig cfg = Cfg(DplrForm::kRecurrent, DplrDType::kF32, p.scale, 16, ck);
      CompareAll(Label(p, cfg, Decay::kWeak, st), RunGpu(p, cfg, st, 0.0f), want, st, false);
    }
  }
}

// The backward accumulates: gradients pre-filled with 0.25 end as 0.25 + the gradient; only
// hT / dhT without h0 / dh0 and the reverse also work.
TEST(DplrCuda, AccumulatesAndMixedStates) {
  const Problem p = MakeProblem(4001, 2, 17, 2, 64, Decay::kWeak, true);
  for (const States st : {States{true, true, true, true}, States{false, true, true, false},
                          States{true, false, false, true}}) {
    const Outs want = RunCpu(p, st, 0.25f);
    for (DplrForm form : {DplrForm::kRecurrent, DplrForm::kChunked}) {
      const DplrCudaConfig cfg = Cfg(form, DplrDType::kBf16, p.scale);
      CompareAll(Label(p, cfg, Decay::kWeak, st) + " prefilled", RunGpu(p, cfg, st, 0.25f), want,
                 st, true);
    }
  }
}

// T = 0: hT = h0 and dh0 += dhT.
TEST(DplrCuda, EmptySequence) {
  const Problem p = MakeProblem(5001, 2, 0, 3, 32, Decay::kWeak, true);
  const States st{true, true, true, true};
  const Outs want = RunCpu(p, st, 0.5f);
  for (DplrForm form : {DplrForm::kRecurrent, DplrForm::kChunked}) {
    const Outs got = RunGpu(p, Cfg(form, DplrDType::kBf16, p.scale), st, 0.5f);
    Compare("T=0 hT", got.hT, want.hT, kTolF32);
    Compare("T=0 dh0", got.dh0, want.dh0, kTolF32);
  }
}

// The fast form against the GPU reference on longer sequences, and determinism (two runs are
// bit-identical).
TEST(DplrCuda, ChunkedMatchesRecurrentAndIsDeterministic) {
  std::uint64_t seed = 6000;
  for (I64 D : {64, 128}) {
    for (Decay decay : {Decay::kWeak, Decay::kStrong}) {
      const Problem p = MakeProblem(++seed, 2, 301, 2, D, decay, true);
      const States st{true, true, true, true};
      const Outs simple =
          RunGpu(p, Cfg(DplrForm::kRecurrent, DplrDType::kBf16, p.scale), st, 0.0f);
      const DplrCudaConfig cfg = Cfg(DplrForm::kChunked, DplrDType::kBf16, p.scale);
      const Outs fast = RunGpu(p, cfg, st, 0.0f);
      const std::string what = Label(p, cfg, decay, st) + " vs recurrent";
      Compare(what + " o", fast.o, simple.o, kTolFastVsSimpleBf16);
      Compare(what + " hT", fast.hT, simple.hT, kTolF32);
      for (const auto& [name, x, y] :
           {std::tuple{"dr", &fast.dr, &simple.dr}, std::tuple{"dg", &fast.dg, &simple.dg},
            std::tuple{"dk", &fast.dk, &simple.dk}, std::tuple{"dv", &fast.dv, &simple.dv},
            std::tuple{"da", &fast.da, &simple.da}, std::tuple{"db", &fast.db, &simple.db}}) {
        Compare(what + " " + name, *x, *y, kTolFastVsSimpleBf16);
      }
      Compare(what + " dh0", fast.dh0, simple.dh0, kTolF32);
      const Outs again = RunGpu(p, cfg, st, 0.0f);
      EXPECT_EQ(std::memcmp(again.dg.data(), fast.dg.data(), fast.dg.size() * 4), 0) << what;
      EXPECT_EQ(std::memcmp(again.o.data(), fast.o.data(), fast.o.size() * 4), 0) << what;
      EXPECT_EQ(std::memcmp(again.dh0.data(), fast.dh0.data(), fast.dh0.size() * 4), 0) << what;
    }
  }
}

}  // namespace
}  // namespace radlads
