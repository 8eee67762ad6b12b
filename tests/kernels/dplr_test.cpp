// DPLR recurrence (RAD-RWKV7): the fp64 reference backward against central finite differences,
// then the fp32 recurrent and chunked forms (forward, backward, initial and final state) against
// the reference over lengths, chunk lengths, head sizes and decay / low-rank regimes; state
// continuation; accumulation; determinism across runs and thread counts.
// Set DPLR_TEST_VERBOSE=1 to print the worst error per tensor.
#include "kernels/ops/dplr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/ref/dplr_ref.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// Tolerances, fp32 fast path vs fp64 reference. Element-wise: |x - ref| <= atol * rms(ref) +
// rtol * |ref|; and the relative RMS error ||x - ref|| / ||ref|| (fla's metric) <= rms.
struct Tol {
  double rms, atol, rtol;
};
// Measured worst over the sweeps below (both forms, all regimes): relative RMS <= 4e-7 for o/hT,
// <= 5.1e-7 for dr/dk/dv/da/db/dh0, <= 6.1e-7 for dg; element-wise <= 5.9e-6 rms(ref). The
// limits leave a 2.5-4x margin.
// Outputs and states.
constexpr Tol kDplrTolOutF32{1.5e-6, 1.5e-5, 1e-5};
// Gradients of r, k, v, a, b and dh0.
constexpr Tol kDplrTolGradF32{2e-6, 2.5e-5, 1e-5};
// dg sums G . S_{t-1} terms of both signs over the whole future (reverse cumulative sums of
// per-row terms in the chunked form), so it cancels the most; fla watches it most closely.
constexpr Tol kDplrTolDgF32{2.5e-6, 2.5e-5, 1e-5};
// Reference backward vs central finite differences of the reference forward (fp64, h = 1e-6):
// |fd - analytic| <= kDplrTolFd * (1 + |analytic|).
constexpr double kDplrTolFd = 1e-6;

enum class Decay { kNearOne, kRwkv7, kStrong, kExtreme };
enum class LowRank { kFla, kSmall };

const char* Name(Decay d) {
  switch (d) {
    case Decay::kNearOne: return "near1";
    case Decay::kRwkv7: return "rwkv7";
    case Decay::kStrong: return "strong";
    case Decay::kExtreme: return "extreme";
  }
  return "?";
}
const char* Name(LowRank l) { return l == LowRank::kFla ? "fla" : "small"; }

// One problem's inputs (fp32 values; the reference reads the same values widened to fp64).
struct Problem {
  std::int64_t B, T, H, K, V;
  float scale;
  std::vector<float> r, g, k, v, a, b, h0, dout, dhT;
};

Problem MakeProblem(std::uint64_t seed, std::int64_t B, std::int64_t T, std::int64_t H,
                    std::int64_t K, std::int64_t V, Decay decay, LowRank lr) {
  testing::Rng rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.f, 1.f);
  Problem p{B, T, H, K, V, 1.0f / std::sqrt(static_cast<float>(K)), {}, {}, {}, {}, {}, {}, {},
            {}, {}};
  const auto nk = static_cast<std::size_t>(B * T * H * K);
  const auto nv = static_cast<std::size_t>(B * T * H * V);
  const auto ns = static_cast<std::size_t>(B * H * K * V);
  p.r.resize(nk);
  p.g.resize(nk);
  p.k.resize(nk);
  p.a.resize(nk);
  p.b.resize(nk);
  p.v.resize(nv);
  p.dout.resize(nv);
  p.h0.resize(ns);
  p.dhT.resize(ns);
  for (auto& x : p.r) x = nd(rng);
  for (auto& x : p.k) x = nd(rng) / std::sqrt(static_cast<float>(K));
  for (auto& x : p.v) x = nd(rng);
  for (auto& x : p.dout) x = nd(rng);
  for (auto& x : p.h0) x = 0.5f * nd(rng);
  for (auto& x : p.dhT) x = nd(rng);
  for (auto& x : p.g) {
    switch (decay) {
      case Decay::kNearOne: x = -1e-3f * (0.5f + ud(rng)); break;
      case Decay::kRwkv7: x = -0.6065306597f / (1.0f + std::exp(-nd(rng))); break;
      case Decay::kStrong: x = -3.0f - 2.0f * ud(rng); break;
      case Decay::kExtreme: x = -20.0f - 40.0f * ud(rng); break;  // exp(x) in (8e-27, 2e-9)
    }
  }
  for (std::int64_t row = 0; row < B * T * H; ++row) {
    float* a = &p.a[static_cast<std::size_t>(row * K)];
    float* b = &p.b[static_cast<std::size_t>(row * K)];
    if (lr == LowRank::kFla) {  // kk = normalize(randn); a = -kk; b = kk * U(0, 1)
      double n2 = 0.0;
      for (std::int64_t i = 0; i < K; ++i) {
        a[i] = nd(rng);
        n2 += static_cast<double>(a[i]) * a[i];
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(n2));
      for (std::int64_t i = 0; i < K; ++i) {
        const float kk = a[i] * inv;
        a[i] = -kk;
        b[i] = kk * ud(rng);
      }
    } else {  // independent random directions, norms about 0.4
      for (std::int64_t i = 0; i < K; ++i) {
        a[i] = 0.4f * nd(rng) / std::sqrt(static_cast<float>(K));
        b[i] = 0.4f * nd(rng) / std::sqrt(static_cast<float>(K));
      }
    }
  }
  return p;
}

std::vector<double> D(const std::vector<float>& x) { return {x.begin(), x.end()}; }

Tensor T4(std::vector<float>& x, std::int64_t a, std::int64_t b, std::int64_t c,
          std::int64_t d) {
  return Tensor::Borrow(x.data(), {a, b, c, d}, DType::kF32);
}

// Outputs of the fast path or of the reference, by name.
using Results = std::map<std::string, std::vector<double>>;

Results RunRef(const Problem& p) {
  const ref::DplrRefDims d{p.B, p.T, p.H, p.K, p.V};
  const auto r = D(p.r), g = D(p.g), k = D(p.k), v = D(p.v), a = D(p.a), b = D(p.b),
             h0 = D(p.h0), dout = D(p.dout), dhT = D(p.dhT);
  Results res;
  res["o"].assign(p.v.size(), 0.0);
  res["hT"].assign(p.h0.size(), 0.0);
  ref::DplrRefForward(d, p.scale, r.data(), g.data(), k.data(), v.data(), a.data(), b.data(),
                      h0.data(), res["o"].data(), res["hT"].data());
  for (const char* n : {"dr", "dg", "dk", "da", "db"}) res[n].assign(p.r.size(), 0.0);
  res["dv"].assign(p.v.size(), 0.0);
  res["dh0"].assign(p.h0.size(), 0.0);
  ref::DplrRefBackward(d, p.scale, r.data(), g.data(), k.data(), v.data(), a.data(), b.data(),
                       h0.data(), dout.data(), dhT.data(), res["dr"].data(), res["dg"].data(),
                       res["dk"].data(), res["dv"].data(), res["da"].data(), res["db"].data(),
                       res["dh0"].data());
  return res;
}

// Runs DplrForward and DplrBackward (gradients into zeroed buffers).
std::map<std::string, std::vector<float>> RunFast(Problem& p, std::int64_t chunk,
                                                  std::int64_t checkpoint = 16) {
  const DplrOptions opts{p.scale, chunk, checkpoint};
  const auto B = p.B, T = p.T, H = p.H, K = p.K, V = p.V;
  std::map<std::string, std::vector<float>> res;
  res["o"].assign(p.v.size(), 0.f);
  res["hT"].assign(p.h0.size(), 0.f);
  for (const char* n : {"dr", "dg", "dk", "da", "db"}) res[n].assign(p.r.size(), 0.f);
  res["dv"].assign(p.v.size(), 0.f);
  res["dh0"].assign(p.h0.size(), 0.f);
  Tensor r = T4(p.r, B, T, H, K), g = T4(p.g, B, T, H, K), k = T4(p.k, B, T, H, K),
         v = T4(p.v, B, T, H, V), a = T4(p.a, B, T, H, K), b = T4(p.b, B, T, H, K),
         h0 = T4(p.h0, B, H, K, V), dout = T4(p.dout, B, T, H, V), dhT = T4(p.dhT, B, H, K, V);
  Tensor o = T4(res["o"], B, T, H, V), hT = T4(res["hT"], B, H, K, V);
  DplrForward(r, g, k, v, a, b, h0, opts, o, &hT);
  Tensor dr = T4(res["dr"], B, T, H, K), dg = T4(res["dg"], B, T, H, K),
         dk = T4(res["dk"], B, T, H, K), dv = T4(res["dv"], B, T, H, V),
         da = T4(res["da"], B, T, H, K), db = T4(res["db"], B, T, H, K),
         dh0 = T4(res["dh0"], B, H, K, V);
  DplrBackward(r, g, k, v, a, b, h0, dout, dhT, opts, dr, dg, dk, dv, da, db, &dh0);
  return res;
}

bool Verbose() {
  const char* e = std::getenv("DPLR_TEST_VERBOSE");
  return e != nullptr && e[0] == '1';
}

// Worst relative RMS per (tensor, form) over the whole sweep, printed when verbose.
std::map<std::string, double>& Worst() {
  static std::map<std::string, double> w;
  return w;
}

void Compare(const std::string& what, const std::string& name, const std::vector<float>& got,
             const std::vector<double>& want, const Tol& tol, const std::string& form) {
  ASSERT_EQ(got.size(), want.size()) << what << " " << name;
  double se = 0.0, sr = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " " << name << "[" << i << "] not finite";
    se += (got[i] - want[i]) * (got[i] - want[i]);
    sr += want[i] * want[i];
  }
  const double rms_ref = std::sqrt(sr / static_cast<double>(std::max<std::size_t>(1, want.size())));
  const double rel = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
  auto& w = Worst()[name + " " + form];
  w = std::max(w, rel);
  EXPECT_LE(rel, tol.rms) << what << ": " << name << " relative RMS error";
  if (Verbose()) {  // worst element-wise error in units of rms(ref), for the atol choice
    double m = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) m = std::max(m, std::fabs(got[i] - want[i]));
    auto& wa = Worst()["elem/rms " + name + " " + form];
    wa = std::max(wa, rms_ref > 0 ? m / rms_ref : m);
  }
  int bad = 0;
  for (std::size_t i = 0; i < got.size() && bad < 5; ++i) {
    const double lim = tol.atol * rms_ref + tol.rtol * std::fabs(want[i]);
    if (std::fabs(got[i] - want[i]) > lim) {
      ADD_FAILURE() << what << ": " << name << "[" << i << "] = " << got[i] << ", reference "
                    << want[i] << ", limit " << lim;
      ++bad;
    }
  }
}

// "o chunked": relative RMS; "elem/rms o chunked": max |x - ref| / rms(ref); cumulative.
void PrintWorst() {
  if (!Verbose()) return;
  for (const auto& [n, w] : Worst()) std::printf("worst %-28s %.3g\n", n.c_str(), w);
}

void CompareAll(const std::string& what, std::map<std::string, std::vector<float>>& got,
                const Results& want, const std::string& form) {
  for (const char* n : {"o", "hT"}) Compare(what, n, got[n], want.at(n), kDplrTolOutF32, form);
  for (const char* n : {"dr", "dk", "dv", "da", "db", "dh0"}) {
    Compare(what, n, got[n], want.at(n), kDplrTolGradF32, form);
  }
  Compare(what, "dg", got["dg"], want.at("dg"), kDplrTolDgF32, form);
}

// ---------------------------------------------------------------------------------------------

double RefLoss(const Problem& p, const std::vector<std::vector<double>>& in) {
  const ref::DplrRefDims d{p.B, p.T, p.H, p.K, p.V};
  std::vector<double> o(p.v.size()), hT(p.h0.size());
  ref::DplrRefForward(d, p.scale, in[0].data(), in[1].data(), in[2].data(), in[3].data(),
                      in[4].data(), in[5].data(), in[6].data(), o.data(), hT.data());
  double l = 0.0;
  for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * p.dout[i];
  for (std::size_t i = 0; i < hT.size(); ++i) l += hT[i] * p.dhT[i];
  return l;
}

TEST(DplrRef, BackwardMatchesCentralFiniteDifferences) {
  std::uint64_t seed = 100;
  for (Decay decay : {Decay::kNearOne, Decay::kRwkv7, Decay::kStrong}) {
    for (LowRank lr : {LowRank::kFla, LowRank::kSmall}) {
      for (auto [K, V] : {std::pair<std::int64_t, std::int64_t>{3, 4}, {4, 2}}) {
        const Problem p = MakeProblem(seed++, 1, 6, 2, K, V, decay, lr);
        std::vector<std::vector<double>> in = {D(p.r), D(p.g), D(p.k), D(p.v),
                                               D(p.a), D(p.b), D(p.h0)};
        const Results an = RunRef(p);
        const char* names[] = {"dr", "dg", "dk", "dv", "da", "db", "dh0"};
        const double h = 1e-6;
        for (std::size_t t = 0; t < in.size(); ++t) {
          for (std::size_t i = 0; i < in[t].size(); ++i) {
            const double x0 = in[t][i];
            in[t][i] = x0 + h;
            const double lp = RefLoss(p, in);
            in[t][i] = x0 - h;
            const double lm = RefLoss(p, in);
            in[t][i] = x0;
            const double fd = (lp - lm) / (2 * h);
            const double ag = an.at(names[t])[i];
            ASSERT_NEAR(fd, ag, kDplrTolFd * (1.0 + std::fabs(ag)))
                << names[t] << "[" << i << "] decay=" << Name(decay) << " lowrank=" << Name(lr);
          }
        }
      }
    }
  }
}

// The vectorisable exp used for the decays: relative error <= 1.5e-7 on [-87.3, 0] (measured
// 8.3e-8), exactly 0 below (no denormals).
TEST(Dplr, ExpNonPosAccuracy) {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.3f * static_cast<float>(i) / 200000.0f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(dplr_internal::ExpNonPos(x) - want) / want);
  }
  EXPECT_LE(worst, 1.5e-7);  // measured 8.3e-8
  EXPECT_EQ(dplr_internal::ExpNonPos(0.0f), 1.0f);
  EXPECT_EQ(dplr_internal::ExpNonPos(-88.0f), 0.0f);
  EXPECT_EQ(dplr_internal::ExpNonPos(-INFINITY), 0.0f);
}

// Recurrent (chunk 0, two checkpoint intervals) and chunked (16, 32, 64) forms vs the reference.
TEST(Dplr, MatchesReferenceAcrossShapesAndRegimes) {
  // Hundreds of tiny problems: one thread keeps the wall time low on a loaded machine (the
  // threaded path is covered by the determinism test, and results do not depend on threads).
  const int saved = cpu::NumThreads();
  cpu::SetNumThreads(1);
  struct Restore {
    int n;
    ~Restore() { cpu::SetNumThreads(n); }
  } restore{saved};
  std::uint64_t seed = 1000;
  for (std::int64_t T : {1, 15, 16, 17, 63, 64, 65, 200}) {
    for (auto [B, H, K, V] : {std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>{
                                  1, 3, 24, 40},
                              {2, 2, 32, 32}}) {
      for (Decay decay : {Decay::kNearOne, Decay::kRwkv7, Decay::kStrong}) {
        for (LowRank lr : {LowRank::kFla, LowRank::kSmall}) {
          Problem p = MakeProblem(seed++, B, T, H, K, V, decay, lr);
          const Results want = RunRef(p);
          for (std::int64_t chunk : {0, 16, 32, 64}) {
            const std::string what = "T=" + std::to_string(T) + " K=" + std::to_string(K) +
                                     " V=" + std::to_string(V) + " decay=" + Name(decay) +
                                     " lowrank=" + Name(lr) + " chunk=" + std::to_string(chunk);
            const std::string form = chunk == 0 ? "recurrent" : "chunked";
            auto got = RunFast(p, chunk);
            CompareAll(what, got, want, form);
            if (chunk == 0 && T == 200) {  // another checkpoint interval
              auto got7 = RunFast(p, 0, 7);
              CompareAll(what + " checkpoint=7", got7, want, form);
            }
            if (::testing::Test::HasFailure()) return;
          }
        }
      }
    }
  }
  PrintWorst();
}

// Decays far beyond RWKV-7's range (g in (-60, -20)): nothing overflows or turns NaN, and every
// tensor, dg included, still matches the reference.
TEST(Dplr, ExtremeDecays) {
  const int saved = cpu::NumThreads();
  cpu::SetNumThreads(1);
  std::uint64_t seed = 5000;
  for (std::int64_t T : {17, 65}) {
    for (LowRank lr : {LowRank::kFla, LowRank::kSmall}) {
      Problem p = MakeProblem(seed++, 1, T, 3, 24, 40, Decay::kExtreme, lr);
      const Results want = RunRef(p);
      for (std::int64_t chunk : {0, 16, 64}) {
        auto got = RunFast(p, chunk);
        CompareAll("extreme T=" + std::to_string(T) + " lowrank=" + Name(lr) +
                       " chunk=" + std::to_string(chunk),
                   got, want, chunk == 0 ? "recurrent" : "chunked");
      }
    }
  }
  PrintWorst();
  cpu::SetNumThreads(saved);
}

// Copies time rows [t0, t1) of a [B,T,H,C] buffer.
std::vector<float> Slice(const std::vector<float>& x, std::int64_t B, std::int64_t T,
                         std::int64_t HC, std::int64_t t0, std::int64_t t1) {
  std::vector<float> out;
  for (std::int64_t b = 0; b < B; ++b) {
    out.insert(out.end(), x.begin() + (b * T + t0) * HC, x.begin() + (b * T + t1) * HC);
  }
  return out;
}

Problem Part(const Problem& p, std::int64_t t0, std::int64_t t1) {
  Problem q = p;
  q.T = t1 - t0;
  const auto HK = p.H * p.K, HV = p.H * p.V;
  q.r = Slice(p.r, p.B, p.T, HK, t0, t1);
  q.g = Slice(p.g, p.B, p.T, HK, t0, t1);
  q.k = Slice(p.k, p.B, p.T, HK, t0, t1);
  q.a = Slice(p.a, p.B, p.T, HK, t0, t1);
  q.b = Slice(p.b, p.B, p.T, HK, t0, t1);
  q.v = Slice(p.v, p.B, p.T, HV, t0, t1);
  q.dout = Slice(p.dout, p.B, p.T, HV, t0, t1);
  return q;
}

// One call over T = 200 equals a call over 120 then one over 80 with the state passed through,
// forward (o, hT) and backward (dh0 of the second call is the first call's dhT). Compared at the
// fp32 gradient tolerance, not bit for bit, even where the chunk boundaries coincide (recurrent,
// chunk 40): the calls have different shapes, and equal bits are promised only for the same
// computation (docs/conversion.md, "Determinism").
TEST(Dplr, ContinuationThroughState) {
  Problem full = MakeProblem(77, 2, 200, 2, 24, 40, Decay::kRwkv7, LowRank::kFla);
  for (std::int64_t chunk : {0, 40, 16}) {
    auto whole = RunFast(full, chunk);
    Problem p2 = Part(full, 120, 200);
    Problem p1 = Part(full, 0, 120);
    // Second part first needs the mid state: forward of the first part.
    auto first_fwd = RunFast(p1, chunk);
    p2.h0 = first_fwd["hT"];
    auto second = RunFast(p2, chunk);
    p1.dhT = second["dh0"];
    auto first = RunFast(p1, chunk);
    const auto HK = full.H * full.K, HV = full.H * full.V;
    std::map<std::string, std::vector<float>> joined;
    for (const char* n : {"dr", "dg", "dk", "da", "db"}) {
      for (std::int64_t b = 0; b < full.B; ++b) {
        auto& j = joined[n];
        j.insert(j.end(), first[n].begin() + b * 120 * HK, first[n].begin() + (b + 1) * 120 * HK);
        j.insert(j.end(), second[n].begin() + b * 80 * HK, second[n].begin() + (b + 1) * 80 * HK);
      }
    }
    for (const char* n : {"o", "dv"}) {
      for (std::int64_t b = 0; b < full.B; ++b) {
        auto& j = joined[n];
        j.insert(j.end(), first[n].begin() + b * 120 * HV, first[n].begin() + (b + 1) * 120 * HV);
        j.insert(j.end(), second[n].begin() + b * 80 * HV, second[n].begin() + (b + 1) * 80 * HV);
      }
    }
    joined["hT"] = second["hT"];
    joined["dh0"] = first["dh0"];
    for (auto& [n, x] : joined) {
      const auto& w = whole[n];
      ASSERT_EQ(x.size(), w.size()) << n;
      Compare("continuation chunk=" + std::to_string(chunk), n, x, {w.begin(), w.end()},
              kDplrTolGradF32, "continuation");
    }
  }
}

// Backward accumulates into existing gradients; undefined h0/dhT are zeros; null hT/dh0 skip.
TEST(Dplr, BackwardAccumulatesAndOptionalStates) {
  for (std::int64_t chunk : {0, 16}) {
    Problem p = MakeProblem(5, 1, 37, 3, 24, 40, Decay::kRwkv7, LowRank::kFla);
    std::fill(p.h0.begin(), p.h0.end(), 0.f);
    std::fill(p.dhT.begin(), p.dhT.end(), 0.f);
    auto base = RunFast(p, chunk);
    const auto B = p.B, T = p.T, H = p.H, K = p.K, V = p.V;
    const DplrOptions opts{p.scale, chunk, 16};
    Tensor r = T4(p.r, B, T, H, K), g = T4(p.g, B, T, H, K), k = T4(p.k, B, T, H, K),
           v = T4(p.v, B, T, H, V), a = T4(p.a, B, T, H, K), b = T4(p.b, B, T, H, K),
           dout = T4(p.dout, B, T, H, V);
    Tensor o = Tensor::Zeros({B, T, H, V});
    DplrForward(r, g, k, v, a, b, Tensor(), opts, o, nullptr);
    std::vector<float> ov(o.f32(), o.f32() + o.numel());
    EXPECT_EQ(ov, base["o"]);
    std::map<std::string, Tensor> grads;
    for (const char* n : {"dr", "dg", "dk", "da", "db"}) {
      grads[n] = Tensor::Full({B, T, H, K}, 1.5f);
    }
    grads["dv"] = Tensor::Full({B, T, H, V}, 1.5f);
    DplrBackward(r, g, k, v, a, b, Tensor(), dout, Tensor(), opts, grads["dr"], grads["dg"],
                 grads["dk"], grads["dv"], grads["da"], grads["db"], nullptr);
    for (auto& [n, t] : grads) {
      const auto& want = base[n];
      for (std::int64_t i = 0; i < t.numel(); ++i) {
        // Equal up to one rounding (the kernel may fuse the last product into the +=).
        const float w = want[static_cast<std::size_t>(i)];
        ASSERT_NEAR(t.f32()[i], 1.5f + w, 1e-6f * (1.5f + std::fabs(w))) << n << "[" << i << "]";
      }
    }
  }
}

// Bit-identical run to run with 2 threads, and equal to 1 thread (work is split by head only).
TEST(Dplr, DeterministicAcrossRunsAndThreadCounts) {
  const int saved = cpu::NumThreads();
  Problem p = MakeProblem(9, 2, 100, 3, 32, 32, Decay::kRwkv7, LowRank::kFla);
  for (std::int64_t chunk : {0, 32}) {
    cpu::SetNumThreads(2);
    auto r1 = RunFast(p, chunk);
    auto r2 = RunFast(p, chunk);
    cpu::SetNumThreads(1);
    auto r3 = RunFast(p, chunk);
    for (auto& [n, x] : r1) {
      EXPECT_EQ(x, r2[n]) << n << " chunk=" << chunk << " differs run to run";
      EXPECT_EQ(x, r3[n]) << n << " chunk=" << chunk << " differs between 1 and 2 threads";
    }
  }
  cpu::SetNumThreads(saved);
}

}  // namespace
}  // namespace radlads
