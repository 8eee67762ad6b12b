// GLA recurrence (kernels/ops/gla.h): fp32 recurrent and chunked forms against the fp64
// reference (kernels/ref/gla_ref.h), the reference backward against central finite differences,
// the accumulate convention, continuation across calls, and determinism.
//
// Comparisons follow docs/kernels.md, per tensor by name:
//   element-wise  |fast - ref| <= atol * rms(ref) + rtol * |ref|   (atol is relative to the
//                 tensor's RMS so one constant fits o, dg at g = -5 (~1e-2) and states alike),
//   and           ||fast - ref|| / ||ref|| <= rms   (fla's relative-RMS metric).
// Set RADLADS_GLA_REPORT=1 to print the worst errors seen per form and tensor.
#include "kernels/ops/gla.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/ref/gla_ref.h"
#include "tests/testing/rms_close.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using Tol = testing::RmsTol;
// fp32 paths vs fp64. Measured worst cases (RADLADS_GLA_REPORT=1, GCC -march=native and clang
// sanitizer builds): relative RMS <= 1.1e-6 for every tensor and form (10x margin), element-wise
// at most 0.25 of the bound (4x margin).
constexpr Tol kGlaRecurrentTolF32 = {2e-5, 1e-4, 1e-5};
constexpr Tol kGlaChunkedTolF32 = {2e-5, 1e-4, 1e-5};
// fp32 vs fp32 (continuation with a different chunk split; recurrent vs chunked).
constexpr Tol kGlaF32VsF32Tol = {4e-5, 2e-4, 2e-5};
// Reference backward vs central finite differences of the fp64 forward (step kFdStep).
constexpr double kFdStep = 1e-6;
constexpr double kGlaFdTolAbs = 1e-7;
constexpr double kGlaFdTolRel = 1e-6;

enum class Regime { kNearOne, kModerate, kStrong, kMixed, kExtreme };
const char* RegimeName(Regime r) {
  switch (r) {
    case Regime::kNearOne: return "near-one";
    case Regime::kModerate: return "moderate";
    case Regime::kStrong: return "strong(-5)";
    case Regime::kMixed: return "mixed";
    case Regime::kExtreme: return "extreme";
  }
  return "?";
}

struct Dims {
  std::int64_t B, T, H, K, V;
};

struct Inputs {
  Dims d;
  Tensor r, k, v, g, h0, d_o, dhT;  // h0 / dhT may be undefined
};

Tensor Randn(const Shape& s, testing::Rng& rng) {
  Tensor t = Tensor::Empty(s);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = nd(rng);
  return t;
}

// Log-decay for channel c of the key dim.
float DrawG(Regime regime, std::int64_t c, testing::Rng& rng) {
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  switch (regime) {
    case Regime::kNearOne: return -2e-4f * u01(rng);
    case Regime::kModerate: return -u01(rng);
    case Regime::kStrong: return -5.0f;
    case Regime::kMixed: {
      switch (c % 4) {
        case 0: return -2e-4f * u01(rng);
        case 1: return -u01(rng);
        case 2: return -5.0f;
        default: return -5.0f * u01(rng);
      }
    }
    case Regime::kExtreme:  // beyond the RAD-RWKV6 clamp: exercises the element-wise fallback
      return c % 2 == 0 ? -10.0f - 20.0f * u01(rng) : -1e-3f * u01(rng);
  }
  return 0.f;
}

Inputs MakeInputs(const Dims& d, Regime regime, bool with_h0, bool with_dhT, std::uint64_t seed) {
  testing::Rng rng(seed);
  Inputs in;
  in.d = d;
  in.r = Randn({d.B, d.T, d.H, d.K}, rng);
  in.k = Randn({d.B, d.T, d.H, d.K}, rng);
  in.v = Randn({d.B, d.T, d.H, d.V}, rng);
  in.g = Tensor::Empty({d.B, d.T, d.H, d.K});
  for (std::int64_t i = 0; i < in.g.numel(); ++i) in.g.f32()[i] = DrawG(regime, i % d.K, rng);
  if (with_h0) in.h0 = Randn({d.B, d.H, d.K, d.V}, rng);
  in.d_o = Randn({d.B, d.T, d.H, d.V}, rng);
  if (with_dhT) in.dhT = Randn({d.B, d.H, d.K, d.V}, rng);
  return in;
}

std::vector<double> ToF64(const Tensor& t) {
  if (!t.defined()) return {};
  return std::vector<double>(t.f32(), t.f32() + t.numel());
}

struct Outputs {
  std::vector<double> o, hT, dr, dk, dv, dg, dh0;
};

Outputs RunRef(const Inputs& in, float scale) {
  const Dims& d = in.d;
  ref::GlaRefDims rd{d.B, d.T, d.H, d.K, d.V};
  auto r = ToF64(in.r), k = ToF64(in.k), v = ToF64(in.v), g = ToF64(in.g), h0 = ToF64(in.h0);
  auto d_o = ToF64(in.d_o), dhT = ToF64(in.dhT);
  Outputs out;
  const auto nk = static_cast<std::size_t>(d.B * d.T * d.H * d.K);
  const auto nv = static_cast<std::size_t>(d.B * d.T * d.H * d.V);
  const auto ns = static_cast<std::size_t>(d.B * d.H * d.K * d.V);
  out.o.assign(nv, 0.0);
  out.hT.assign(ns, 0.0);
  out.dr.assign(nk, 0.0);
  out.dk.assign(nk, 0.0);
  out.dg.assign(nk, 0.0);
  out.dv.assign(nv, 0.0);
  out.dh0.assign(ns, 0.0);
  ref::GlaForwardRef(rd, scale, r, k, v, g, h0, out.o, out.hT);
  ref::GlaBackwardRef(rd, scale, r, k, v, g, h0, d_o, dhT, out.dr, out.dk, out.dv, out.dg,
                      out.dh0);
  return out;
}

Outputs RunFast(const Inputs& in, float scale, std::int64_t chunk) {
  const Dims& d = in.d;
  GlaOptions opt{scale, chunk};
  Tensor o = Tensor::Full({d.B, d.T, d.H, d.V}, NAN);  // forward must write every element
  Tensor hT = Tensor::Full({d.B, d.H, d.K, d.V}, NAN);
  GlaForward(in.r, in.k, in.v, in.g, in.h0, opt, o, &hT);
  Tensor dr = Tensor::Zeros(in.r.shape()), dk = Tensor::Zeros(in.r.shape());
  Tensor dg = Tensor::Zeros(in.r.shape()), dv = Tensor::Zeros(in.v.shape());
  Tensor dh0 = Tensor::Zeros({d.B, d.H, d.K, d.V});
  GlaBackward(in.r, in.k, in.v, in.g, in.h0, in.d_o, in.dhT, opt, dr, dk, dv, dg, &dh0);
  return {ToF64(o), ToF64(hT), ToF64(dr), ToF64(dk), ToF64(dv), ToF64(dg), ToF64(dh0)};
}

void ExpectClose(const std::vector<double>& got, const std::vector<double>& want, const Tol& tol,
                 const std::string& key, const std::string& what) {
  testing::WorstErrorReport::Record(key, testing::ExpectRmsClose(got, want, tol, what));
}

void ExpectAllClose(const Outputs& got, const Outputs& want, const Tol& tol,
                    const std::string& form, const std::string& what) {
  ExpectClose(got.o, want.o, tol, form + "/o", what + " o");
  ExpectClose(got.hT, want.hT, tol, form + "/hT", what + " hT");
  ExpectClose(got.dr, want.dr, tol, form + "/dr", what + " dr");
  ExpectClose(got.dk, want.dk, tol, form + "/dk", what + " dk");
  ExpectClose(got.dv, want.dv, tol, form + "/dv", what + " dv");
  ExpectClose(got.dg, want.dg, tol, form + "/dg", what + " dg");
  ExpectClose(got.dh0, want.dh0, tol, form + "/dh0", what + " dh0");
}

std::string FormName(std::int64_t chunk) {
  return chunk == 0 ? "recurrent" : "chunk" + std::to_string(chunk);
}

const auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new testing::WorstErrorReport("RADLADS_GLA_REPORT"));

// ---------------------------------------------------------------------------------------------

TEST(GlaRef, BackwardMatchesFiniteDifferences) {
  // Tiny case; every input (r, k, v, g, h0) perturbed, with d_o and dhT non-zero and decays
  // from near 1 to the -5 clamp.
  const Dims d{1, 5, 2, 3, 2};
  Inputs in = MakeInputs(d, Regime::kMixed, true, true, 101);
  const double scale = 0.7;
  ref::GlaRefDims rd{d.B, d.T, d.H, d.K, d.V};
  std::vector<std::vector<double>> x = {ToF64(in.r), ToF64(in.k), ToF64(in.v), ToF64(in.g),
                                        ToF64(in.h0)};
  const char* names[] = {"r", "k", "v", "g", "h0"};
  const auto d_o = ToF64(in.d_o), dhT = ToF64(in.dhT);
  auto loss = [&]() {
    std::vector<double> o(d_o.size()), hT(dhT.size());
    ref::GlaForwardRef(rd, scale, x[0], x[1], x[2], x[3], x[4], o, hT);
    double l = 0.0;
    for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * d_o[i];
    for (std::size_t i = 0; i < hT.size(); ++i) l += hT[i] * dhT[i];
    return l;
  };
  std::vector<std::vector<double>> grad(5);
  for (int a = 0; a < 5; ++a) grad[a].assign(x[a].size(), 0.0);
  ref::GlaBackwardRef(rd, scale, x[0], x[1], x[2], x[3], x[4], d_o, dhT, grad[0], grad[1],
                      grad[2], grad[3], grad[4]);
  for (int a = 0; a < 5; ++a) {
    for (std::size_t i = 0; i < x[a].size(); ++i) {
      const double keep = x[a][i];
      x[a][i] = keep + kFdStep;
      const double lp = loss();
      x[a][i] = keep - kFdStep;
      const double lm = loss();
      x[a][i] = keep;
      const double fd = (lp - lm) / (2 * kFdStep);
      EXPECT_NEAR(grad[a][i], fd, kGlaFdTolAbs + kGlaFdTolRel * std::fabs(fd))
          << "d" << names[a] << "[" << i << "]";
    }
  }
}

TEST(GlaRef, NoBonusUpdatedStateReadout) {
  // T = 1, zero state: o = (scale r . k) v exactly (the current token at full weight).
  const Dims d{1, 1, 1, 3, 2};
  Inputs in = MakeInputs(d, Regime::kModerate, false, false, 5);
  Outputs ref = RunRef(in, 0.5f);
  for (std::int64_t j = 0; j < d.V; ++j) {
    double want = 0.0;
    for (std::int64_t i = 0; i < d.K; ++i) want += 0.5 * in.r.f32()[i] * in.k.f32()[i];
    want *= in.v.f32()[j];
    EXPECT_NEAR(ref.o[static_cast<std::size_t>(j)], want, 1e-12);
  }
}

TEST(Gla, BothFormsMatchReference) {
  const std::vector<Dims> shapes = {{1, 0, 3, 24, 40}, {2, 0, 2, 32, 32}};
  const std::vector<std::int64_t> Ts = {1, 15, 63, 64, 65, 200};
  const std::vector<Regime> regimes = {Regime::kNearOne, Regime::kModerate, Regime::kStrong,
                                       Regime::kMixed, Regime::kExtreme};
  std::uint64_t seed = 1000;
  for (const Dims& base : shapes) {
    for (std::int64_t T : Ts) {
      for (Regime regime : regimes) {
        Dims d = base;
        d.T = T;
        ++seed;
        const bool with_h0 = seed % 4 != 0, with_dhT = seed % 3 != 0;
        Inputs in = MakeInputs(d, regime, with_h0, with_dhT, seed);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d.K));
        Outputs ref = RunRef(in, scale);
        Outputs rec = RunFast(in, scale, 0);
        for (std::int64_t chunk : {0, 16, 32, 64}) {
          const std::string what = FormName(chunk) + " T=" + std::to_string(T) +
                                   " K=" + std::to_string(d.K) + " V=" + std::to_string(d.V) +
                                   " " + RegimeName(regime) + (with_h0 ? " h0" : "") +
                                   (with_dhT ? " dhT" : "");
          Outputs got = chunk == 0 ? rec : RunFast(in, scale, chunk);
          ExpectAllClose(got, ref, chunk == 0 ? kGlaRecurrentTolF32 : kGlaChunkedTolF32,
                         FormName(chunk), what);
          if (chunk != 0) {
            ExpectAllClose(got, rec, kGlaF32VsF32Tol, "chunk-vs-recurrent", what + " vs recurrent");
          }
          if (::testing::Test::HasFailure()) return;
        }
      }
    }
  }
}

TEST(Gla, OddChunkLengths) {
  // Chunk lengths that are not multiples of the 16-token sub-chunk, shorter than it, or longer
  // than T.
  const Dims d{1, 70, 3, 20, 12};
  Inputs in = MakeInputs(d, Regime::kMixed, true, true, 77);
  const float scale = 0.3f;
  Outputs ref = RunRef(in, scale);
  for (std::int64_t chunk : {1, 5, 24, 48, 100}) {
    ExpectAllClose(RunFast(in, scale, chunk), ref, kGlaChunkedTolF32, "chunk-odd",
                   FormName(chunk));
  }
}

TEST(Gla, EmptySequencePassesStateThrough) {
  const Dims d{2, 0, 2, 4, 3};
  Inputs in = MakeInputs(d, Regime::kModerate, true, true, 3);
  for (std::int64_t chunk : {0, 16}) {
    GlaOptions opt{0.5f, chunk};
    Tensor o = Tensor::Empty({d.B, 0, d.H, d.V});
    Tensor hT = Tensor::Zeros({d.B, d.H, d.K, d.V});
    GlaForward(in.r, in.k, in.v, in.g, in.h0, opt, o, &hT);
    Tensor dr = Tensor::Zeros(in.r.shape()), dk = Tensor::Zeros(in.r.shape());
    Tensor dg = Tensor::Zeros(in.r.shape()), dv = Tensor::Zeros(in.v.shape());
    Tensor dh0 = Tensor::Zeros({d.B, d.H, d.K, d.V});
    GlaBackward(in.r, in.k, in.v, in.g, in.h0, in.d_o, in.dhT, opt, dr, dk, dv, dg, &dh0);
    for (std::int64_t i = 0; i < hT.numel(); ++i) {
      EXPECT_EQ(hT.f32()[i], in.h0.f32()[i]);
      EXPECT_EQ(dh0.f32()[i], in.dhT.f32()[i]);
    }
  }
}

TEST(Gla, BackwardAccumulates) {
  const Dims d{2, 37, 2, 16, 8};
  Inputs in = MakeInputs(d, Regime::kModerate, true, true, 11);
  testing::Rng rng(12);
  for (std::int64_t chunk : {0, 16}) {
    GlaOptions opt{0.25f, chunk};
    std::vector<Tensor> zero = {Tensor::Zeros(in.r.shape()), Tensor::Zeros(in.r.shape()),
                                Tensor::Zeros(in.v.shape()), Tensor::Zeros(in.r.shape()),
                                Tensor::Zeros({d.B, d.H, d.K, d.V})};
    std::vector<Tensor> pre = {Randn(in.r.shape(), rng), Randn(in.r.shape(), rng),
                               Randn(in.v.shape(), rng), Randn(in.r.shape(), rng),
                               Randn({d.B, d.H, d.K, d.V}, rng)};
    std::vector<Tensor> acc;
    for (const Tensor& t : pre) acc.push_back(t.Clone());
    GlaBackward(in.r, in.k, in.v, in.g, in.h0, in.d_o, in.dhT, opt, zero[0], zero[1], zero[2],
                zero[3], &zero[4]);
    GlaBackward(in.r, in.k, in.v, in.g, in.h0, in.d_o, in.dhT, opt, acc[0], acc[1], acc[2],
                acc[3], &acc[4]);
    // One rounding apart at most (the op may fuse its last multiply with the +=).
    const char* names[] = {"dr", "dk", "dv", "dg", "dh0"};
    for (int a = 0; a < 5; ++a) {
      for (std::int64_t i = 0; i < acc[a].numel(); ++i) {
        const float p = pre[a].f32()[i], z = zero[a].f32()[i];
        ASSERT_NEAR(acc[a].f32()[i], p + z, 1.2e-7f * (std::fabs(p) + std::fabs(z)))
            << FormName(chunk) << " " << names[a] << "[" << i << "]";
      }
    }
  }
}

TEST(Gla, ContinuationAcrossCalls) {
  // T = 200 in one call == 120 then 80 with the state passed through, forward and backward.
  const Dims d{2, 200, 2, 24, 40};
  const std::int64_t T1 = 120;
  Inputs in = MakeInputs(d, Regime::kMixed, true, true, 21);
  const float scale = 1.0f / std::sqrt(24.0f);
  auto slice = [&](const Tensor& t, std::int64_t t0, std::int64_t t1) {
    const std::int64_t row = t.dim(2) * t.dim(3);
    Tensor out = Tensor::Empty({t.dim(0), t1 - t0, t.dim(2), t.dim(3)});
    for (std::int64_t b = 0; b < t.dim(0); ++b) {
      std::copy(t.f32() + (b * t.dim(1) + t0) * row, t.f32() + (b * t.dim(1) + t1) * row,
                out.f32() + b * (t1 - t0) * row);
    }
    return out;
  };
  auto part = [&](std::int64_t t0, std::int64_t t1) {
    Inputs p;
    p.d = d;
    p.d.T = t1 - t0;
    p.r = slice(in.r, t0, t1);
    p.k = slice(in.k, t0, t1);
    p.v = slice(in.v, t0, t1);
    p.g = slice(in.g, t0, t1);
    p.d_o = slice(in.d_o, t0, t1);
    return p;
  };
  auto concat = [&](const std::vector<double>& a, const std::vector<double>& b, std::int64_t ta,
                    std::int64_t tb, std::int64_t C) {
    std::vector<double> out;
    const std::int64_t row = d.H * C;
    for (std::int64_t bb = 0; bb < d.B; ++bb) {
      out.insert(out.end(), a.begin() + bb * ta * row, a.begin() + (bb + 1) * ta * row);
      out.insert(out.end(), b.begin() + bb * tb * row, b.begin() + (bb + 1) * tb * row);
    }
    return out;
  };
  for (std::int64_t chunk : {0, 16, 32, 64}) {
    Outputs whole = RunFast(in, scale, chunk);
    Inputs p1 = part(0, T1), p2 = part(T1, d.T);
    p1.h0 = in.h0;
    GlaOptions opt{scale, chunk};
    Tensor o1 = Tensor::Empty({d.B, T1, d.H, d.V}), h1 = Tensor::Empty({d.B, d.H, d.K, d.V});
    GlaForward(p1.r, p1.k, p1.v, p1.g, p1.h0, opt, o1, &h1);
    p2.h0 = h1;
    p2.dhT = in.dhT;
    Outputs second = RunFast(p2, scale, chunk);  // its dh0 is the dhT of the first part
    p1.dhT = Tensor::Empty({d.B, d.H, d.K, d.V});
    for (std::int64_t i = 0; i < p1.dhT.numel(); ++i) {
      p1.dhT.f32()[i] = static_cast<float>(second.dh0[static_cast<std::size_t>(i)]);
    }
    Outputs first = RunFast(p1, scale, chunk);
    Outputs joined;
    const std::int64_t T2 = d.T - T1;
    joined.o = concat(first.o, second.o, T1, T2, d.V);
    joined.hT = second.hT;
    joined.dr = concat(first.dr, second.dr, T1, T2, d.K);
    joined.dk = concat(first.dk, second.dk, T1, T2, d.K);
    joined.dv = concat(first.dv, second.dv, T1, T2, d.V);
    joined.dg = concat(first.dg, second.dg, T1, T2, d.K);
    joined.dh0 = first.dh0;
    ExpectAllClose(joined, whole, kGlaF32VsF32Tol, "continuation", FormName(chunk) + " 120+80");
  }
}

TEST(Gla, DeterministicWithTwoThreads) {
  const Dims d{2, 90, 3, 32, 24};
  Inputs in = MakeInputs(d, Regime::kMixed, true, true, 31);
  const int saved = cpu::NumThreads();
  for (std::int64_t chunk : {0, 32}) {
    cpu::SetNumThreads(2);
    Outputs a = RunFast(in, 0.2f, chunk);
    Outputs b = RunFast(in, 0.2f, chunk);
    cpu::SetNumThreads(1);
    Outputs c = RunFast(in, 0.2f, chunk);
    for (const Outputs* x : {&b, &c}) {
      EXPECT_EQ(a.o, x->o) << FormName(chunk);
      EXPECT_EQ(a.hT, x->hT) << FormName(chunk);
      EXPECT_EQ(a.dr, x->dr) << FormName(chunk);
      EXPECT_EQ(a.dk, x->dk) << FormName(chunk);
      EXPECT_EQ(a.dv, x->dv) << FormName(chunk);
      EXPECT_EQ(a.dg, x->dg) << FormName(chunk);
      EXPECT_EQ(a.dh0, x->dh0) << FormName(chunk);
    }
  }
  cpu::SetNumThreads(saved);
}

// Rough timings (not a test): kernels_gla_test --gtest_also_run_disabled_tests
// --gtest_filter='*Timing*'. Best of 5 wall-clock times, and the process CPU time of that run
// (less sensitive to other load on a shared machine). RADLADS_THREADS sets the thread count.
double CpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

TEST(Gla, DISABLED_Timing) {
  for (const Dims& d : {Dims{8, 256, 4, 32, 32}, Dims{2, 512, 8, 64, 64},
                        Dims{8, 256, 4, 64, 64}, Dims{2, 512, 8, 128, 128}}) {
    Inputs in = MakeInputs(d, Regime::kMixed, true, true, 5);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d.K));
    Tensor o = Tensor::Empty({d.B, d.T, d.H, d.V}), hT = Tensor::Empty({d.B, d.H, d.K, d.V});
    Tensor dr = Tensor::Zeros(in.r.shape()), dk = Tensor::Zeros(in.r.shape());
    Tensor dg = Tensor::Zeros(in.r.shape()), dv = Tensor::Zeros(in.v.shape());
    Tensor dh0 = Tensor::Zeros({d.B, d.H, d.K, d.V});
    for (std::int64_t chunk : {0, 16, 32, 64}) {
      GlaOptions opt{scale, chunk};
      auto best = [&](auto&& fn) {
        std::pair<double, double> ms{1e30, 1e30};
        for (int rep = 0; rep < 5; ++rep) {
          const auto t0 = std::chrono::steady_clock::now();
          const double c0 = CpuMs();
          fn();
          const double c1 = CpuMs();
          const auto t1 = std::chrono::steady_clock::now();
          const double wall = std::chrono::duration<double, std::milli>(t1 - t0).count();
          if (wall < ms.first) ms = {wall, c1 - c0};
        }
        return ms;
      };
      const auto fwd = best([&] { GlaForward(in.r, in.k, in.v, in.g, in.h0, opt, o, &hT); });
      const auto bwd = best([&] {
        GlaBackward(in.r, in.k, in.v, in.g, in.h0, in.d_o, in.dhT, opt, dr, dk, dv, dg, &dh0);
      });
      std::printf("B=%ld T=%ld H=%ld K=%ld V=%ld %-10s wall fwd %7.2f bwd %7.2f fwd+bwd %7.2f ms"
                  " | cpu fwd %7.2f fwd+bwd %7.2f ms (threads %d)\n",
                  static_cast<long>(d.B), static_cast<long>(d.T), static_cast<long>(d.H),
                  static_cast<long>(d.K), static_cast<long>(d.V), FormName(chunk).c_str(),
                  fwd.first, bwd.first, fwd.first + bwd.first, fwd.second,
                  fwd.second + bwd.second, cpu::NumThreads());
    }
  }
}

}  // namespace
}  // namespace radlads
