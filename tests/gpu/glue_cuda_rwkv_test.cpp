// The CUDA RAD-RWKV6 / RAD-RWKV7 elementwise chains (kernels/cuda/rwkv_glue.h) against the CPU:
// the tokenshift passes against the ops they fuse (ops::TokenShiftDelta*, ops::Lerp*), and the
// decay / balance / gate / key / value-residual chains against the formulas of
// pipeline/rwkv6_mixer.cpp and rwkv7_mixer.cpp written out below in fp32 (those live in the
// mixers' private code). Weak and strong decays (the -5 clamp active and not), a zero key row
// (the normalisation's eps), odd sizes, head sizes 32/64/128, both dtypes.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cuda/glue_plan.h"
#include "kernels/cuda/rwkv_glue.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/elementwise.h"
#include "tests/gpu/glue_cuda_test_util.h"

namespace radlads::gluetest {
namespace {

namespace cu = radlads::cuda;
constexpr int kS = cu::kRwkv6Shifts;

// --- RWKV-6 tokenshift -------------------------------------------------------------------------

template <typename T>
void CheckShift(std::int64_t b, std::int64_t t, std::int64_t c, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " B=" << b << " T=" << t << " C=" << c);
  const std::int64_t rows = b * t, plane = rows * c;
  Rng rng(seed);
  const Vec x = Prep<T>(Random(plane, rng));
  const Vec mux = Random(c, rng, 0.5f, 0.5f);
  Vec mu[kS];
  for (Vec& m : mu) m = Random(c, rng, 0.5f);
  const Vec m = Prep<T>(Random(kS * plane, rng, 0.3f));  // the LoRA output [5, rows, C]
  Dev<T> gx(x), gdelta(plane), gxx(plane), gm(m), gxs(kS * plane);
  Dev<float> gmux(mux);
  std::vector<Dev<float>> gmu;
  cu::Rwkv6ShiftMu mus{};
  for (int i = 0; i < kS; ++i) {
    gmu.emplace_back(mu[i]);
    mus.mu[i] = gmu.back().get();
  }

  // Forward: delta and xx, then the five mixes.
  Tensor tdelta = Tensor::Empty({b, t, c}), txx = Tensor::Empty({b, t, c});
  ops::TokenShiftDeltaForward(Cpu(x, {b, t, c}), tdelta);
  ops::LerpForward(Cpu(x, {b, t, c}), tdelta, Cpu(mux, {c}), Tensor(), txx);
  cu::Rwkv6ShiftPrepare(gx.get(), gmux.get(), b, t, c, gdelta.get(), gxx.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdelta.Get(), Host(tdelta))) << "delta";
  EXPECT_TRUE(Close<T>(gxx.Get(), Host(txx))) << "xx";
  const Vec delta = Prep<T>(Host(tdelta));
  gdelta.Set(delta);
  Vec xs_ref;
  for (int i = 0; i < kS; ++i) {
    Tensor y = Tensor::Empty({rows, c});
    const Vec mi(m.begin() + i * plane, m.begin() + (i + 1) * plane);
    ops::LerpForward(Cpu(x, {rows, c}), Cpu(delta, {rows, c}), Cpu(mu[i], {c}),
                     Cpu(mi, {rows, c}), y);
    const Vec yv = Host(y);
    xs_ref.insert(xs_ref.end(), yv.begin(), yv.end());
  }
  cu::Rwkv6ShiftMix(gx.get(), gdelta.get(), gm.get(), mus, rows, c, gxs.get(), nullptr);
  EXPECT_TRUE(Close<T>(gxs.Get(), xs_ref)) << "xs";

  // Backward, branches: the five lerp backwards.
  const Vec dxs = Prep<T>(Random(kS * plane, rng));
  const Vec dx0 = Prep<T>(Random(plane, rng, 0.3f));
  Vec dmu0[kS];
  for (Vec& d : dmu0) d = Random(c, rng, 0.3f);
  Tensor tdx = Cpu(dx0, {rows, c}), tdd = Tensor::Zeros({rows, c});
  Vec dm_ref;
  Tensor tdmu[kS];
  for (int i = 0; i < kS; ++i) {
    const Vec gi(dxs.begin() + i * plane, dxs.begin() + (i + 1) * plane);
    const Vec mi(m.begin() + i * plane, m.begin() + (i + 1) * plane);
    Tensor dm = Tensor::Zeros({rows, c});
    tdmu[i] = Cpu(dmu0[i], {c});
    ops::LerpBackward(Cpu(delta, {rows, c}), Cpu(mu[i], {c}), Cpu(mi, {rows, c}),
                      Cpu(gi, {rows, c}), &tdx, &tdd, i == 3 ? nullptr : &tdmu[i], &dm);
    const Vec dmv = Host(dm);
    dm_ref.insert(dm_ref.end(), dmv.begin(), dmv.end());
  }
  Dev<T> gdxs(dxs), gdx(dx0), gddelta(plane), gdm(kS * plane);
  std::vector<Dev<float>> gdmu;
  cu::Rwkv6ShiftDmu dmus{};
  for (int i = 0; i < kS; ++i) {
    gdmu.emplace_back(dmu0[i]);
    dmus.dmu[i] = i == 3 ? nullptr : gdmu.back().get();  // one frozen branch
  }
  DevBytes ws(cu::ColSumWorkspaceBytes(rows, kS * c));
  cu::Rwkv6ShiftBackwardBranches(gdxs.get(), gdelta.get(), gm.get(), mus, rows, c, gdx.get(),
                                 gddelta.get(), gdm.get(), dmus, ws.as<double>(), nullptr);
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx (branches)";
  EXPECT_TRUE(Close<T>(gddelta.Get(), Host(tdd))) << "ddelta (branches)";
  EXPECT_TRUE(Close<T>(gdm.Get(), dm_ref)) << "dm";
  for (int i = 0; i < kS; ++i)
    EXPECT_TRUE(testing::AllClose(D(gdmu[static_cast<std::size_t>(i)].Get()), D(Host(tdmu[i])), kF32Tol))
        << "dmu " << i;

  // Backward, finish: xx's lerp, then delta's shift.
  const Vec dxx = Prep<T>(Random(plane, rng));
  const Vec ddelta = Prep<T>(Host(tdd));
  const Vec dx1 = Prep<T>(Random(plane, rng, 0.3f));
  const Vec dmux0 = Random(c, rng, 0.3f);
  Tensor tdx2 = Cpu(dx1, {b, t, c}), tdd2 = Cpu(ddelta, {b, t, c}), tdmux = Cpu(dmux0, {c});
  ops::LerpBackward(Cpu(delta, {b, t, c}), Cpu(mux, {c}), Tensor(), Cpu(dxx, {b, t, c}), &tdx2,
                    &tdd2, &tdmux, nullptr);
  ops::TokenShiftDeltaBackward(tdd2, tdx2);
  Dev<T> gdxx(dxx), gdd2(ddelta), gdx2(dx1);
  Dev<float> gdmux(dmux0);
  cu::Rwkv6ShiftBackwardFinish(gdxx.get(), gdelta.get(), gdd2.get(), gmux.get(), b, t, c,
                               gdx2.get(), gdmux.get(), ws.as<double>(), nullptr);
  EXPECT_TRUE(Close<T>(gdx2.Get(), Host(tdx2))) << "dx (finish)";
  EXPECT_TRUE(testing::AllClose(D(gdmux.Get()), D(Host(tdmux)), kF32Tol)) << "dmu_x";
}

TEST(GlueCudaRwkv, Rwkv6TokenShift) {
  CheckShift<float>(2, 19, 37, 2001);
  CheckShift<bf16>(2, 19, 37, 2002);
  CheckShift<float>(3, 1, 64, 2003);
  CheckShift<bf16>(1, 300, 96, 2004);  // 300 rows: two column-sum chunks
}

// --- RWKV-6 decay, balance, gate ----------------------------------------------------------------

template <typename T>
void CheckRwkv6Decay(bool balance, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " balance=" << balance);
  const std::int64_t n = 3 * 17 * 64 + 5;
  Rng rng(seed);
  const Vec d = Prep<T>(Uniform(n, rng, -4.0f, 3.0f));  // -exp(d) in [-20, -0.02]: both sides of -5
  const Vec kexp = Prep<T>(Random(n, rng));
  Vec lw(static_cast<std::size_t>(n)), k(lw.size());
  for (std::size_t i = 0; i < lw.size(); ++i) {
    const float e = -std::exp(d[i]);
    lw[i] = e > -5.0f ? e : -5.0f;
    k[i] = kexp[i] * -std::expm1(lw[i]);
  }
  Dev<T> gd(d), gk(kexp), glw(n), gko(n);
  cu::Rwkv6DecayForward(gd.get(), gk.get(), n, glw.get(), balance ? gko.get() : nullptr, nullptr);
  EXPECT_TRUE(Close<T>(glw.Get(), lw)) << "logw";
  if (balance) {
    EXPECT_TRUE(Close<T>(gko.Get(), k)) << "k";
  }

  const Vec lws = Prep<T>(lw);
  const Vec dk = Prep<T>(Random(n, rng)), dlw = Prep<T>(Random(n, rng));
  Vec dk_ref = dk, dd_ref(dlw.size());
  for (std::size_t i = 0; i < dd_ref.size(); ++i) {
    float g = dlw[i];
    if (balance) {
      const float em1 = std::expm1(lws[i]);
      g = g - dk[i] * kexp[i] * (em1 + 1.0f);
      dk_ref[i] = dk[i] * -em1;
    }
    const float e = -std::exp(d[i]);
    dd_ref[i] = e >= -5.0f ? g * e : 0.0f;
  }
  Dev<T> glws(lws), gdk(dk), gdlw(dlw);
  cu::Rwkv6DecayBackward(gd.get(), glws.get(), balance ? gk.get() : nullptr, n, balance,
                         balance ? gdk.get() : nullptr, gdlw.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdlw.Get(), dd_ref)) << "dd";
  EXPECT_TRUE(Close<T>(gdk.Get(), dk_ref)) << "dk";
}

TEST(GlueCudaRwkv, Rwkv6DecayAndBalance) {
  for (const bool balance : {false, true}) {
    CheckRwkv6Decay<float>(balance, 2100 + balance);
    CheckRwkv6Decay<bf16>(balance, 2110 + balance);
  }
}

template <typename T>
void CheckRwkv6Gate(std::uint64_t seed) {
  SCOPED_TRACE(DtypeName<T>());
  const std::int64_t n = 2 * 13 * 96 + 1;
  Rng rng(seed);
  const Vec z = Prep<T>(Random(n, rng, 3.0f)), pn = Prep<T>(Random(n, rng));
  Vec g(z.size()), pg(z.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    g[i] = ops::SigmoidScalar(z[i]);
    pg[i] = pn[i] * g[i];
  }
  Dev<T> gg(z), gpn(pn), gpg(n);
  cu::Rwkv6GateForward(gg.get(), gpn.get(), n, gpg.get(), nullptr);
  EXPECT_TRUE(Close<T>(gg.Get(), g)) << "g";
  EXPECT_TRUE(Close<T>(gpg.Get(), pg)) << "pg";
  const Vec gs = Prep<T>(g), dpg = Prep<T>(Random(n, rng));
  Vec dpn(g.size()), dz(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    dpn[i] = dpg[i] * gs[i];
    dz[i] = dpg[i] * pn[i] * (gs[i] * (1.0f - gs[i]));
  }
  Dev<T> ggs(gs), gdpg(dpg), gdpn(n), gdz(n);
  cu::Rwkv6GateBackward(gdpg.get(), ggs.get(), gpn.get(), n, gdpn.get(), gdz.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdpn.Get(), dpn)) << "d_pn";
  EXPECT_TRUE(Close<T>(gdz.Get(), dz)) << "dz";
}

TEST(GlueCudaRwkv, Rwkv6Gate) {
  CheckRwkv6Gate<float>(2201);
  CheckRwkv6Gate<bf16>(2202);
}

// --- RWKV-7 ----------------------------------------------------------------------------------------

constexpr float kC = cu::kRwkv7DecayScale;
constexpr float kEps = cu::kRwkv7NormEps;

// Rwkv7Mixer::DplrKeys with nrm (the forward), fp32 with an fp64 norm.
struct KeysRef {
  Vec kappa, nrm, ktil, ad, bd;
};
KeysRef DplrKeysRef(const Vec& kx, const Vec& a, const Vec& lw, const Vec& kk, const Vec& ka,
                    std::int64_t rows, std::int64_t heads, std::int64_t nh, bool balance) {
  KeysRef r;
  r.kappa.resize(kx.size());
  r.ktil.resize(kx.size());
  r.ad.resize(kx.size());
  r.bd.resize(kx.size());
  r.nrm.resize(static_cast<std::size_t>(rows));
  for (std::int64_t q = 0; q < rows; ++q) {
    const std::int64_t off = q * nh, ch = (q % heads) * nh;
    double ss = 0;
    for (std::int64_t j = 0; j < nh; ++j) {
      const double t = balance ? static_cast<double>(kx[off + j])
                               : static_cast<double>(kx[off + j]) * kk[ch + j];
      ss += t * t;
    }
    const auto nr = static_cast<float>(std::sqrt(ss));
    r.nrm[q] = nr;
    const float inv = 1.0f / std::fmax(nr, kEps);
    for (std::int64_t j = 0; j < nh; ++j) {
      const std::size_t i = off + j;
      const float kap = balance ? kx[i] * inv : kx[i] * kk[ch + j] * inv;
      r.kappa[i] = kap;
      r.ktil[i] = balance ? kx[i] * (1.0f - std::exp(lw[i]) + a[i])
                          : kx[i] * (1.0f + (a[i] - 1.0f) * ka[ch + j]);
      r.ad[i] = -kap;
      r.bd[i] = kap * a[i];
    }
  }
  return r;
}

template <typename T>
void CheckRwkv7Keys(std::int64_t heads, std::int64_t nh, bool balance, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " H=" << heads << " N=" << nh
                                    << " balance=" << balance);
  const std::int64_t bt = 2 * 11, rows = bt * heads, n = rows * nh, A = heads * nh;
  Rng rng(seed);
  Vec kx = Random(n, rng);
  for (std::int64_t j = 0; j < nh; ++j) kx[static_cast<std::size_t>(nh + j)] = 0.0f;  // |k| = 0
  kx = Prep<T>(kx);
  Vec a = Uniform(n, rng, 0.02f, 0.98f);
  Vec lw = Uniform(n, rng, -6.0f, 6.0f);  // w_raw: strong and weak decays
  for (float& v : lw) v = -kC * ops::SigmoidScalar(v);
  a = Prep<T>(a);
  const Vec kk = Random(A, rng, 0.3f, 1.0f), ka = Random(A, rng, 0.3f, 1.0f);

  // The decay's sigmoid after its LoRA.
  {
    Rng r2(seed + 1);
    const Vec raw = Prep<T>(Random(n, r2, 3.0f));
    Vec ref(raw.size());
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = -kC * ops::SigmoidScalar(raw[i]);
    Dev<T> g(raw);
    cu::Rwkv7DecayForward(g.get(), n, nullptr);
    EXPECT_TRUE(Close<T>(g.Get(), ref)) << "log w";
  }
  lw = Prep<T>(lw);

  const KeysRef ref = DplrKeysRef(kx, a, lw, kk, ka, rows, heads, nh, balance);
  Dev<T> gkx(kx), ga(a), glw(lw), gkap(n), gkt(n), gad(n), gbd(n);
  Dev<float> gkk(kk), gka(ka), gnrm(rows);
  cu::Rwkv7DplrKeys(gkx.get(), ga.get(), glw.get(), gkk.get(), gka.get(), rows, heads, nh,
                    balance, gkap.get(), gnrm.get(), gkt.get(), gad.get(), gbd.get(), nullptr);
  EXPECT_TRUE(Close<T>(gkap.Get(), ref.kappa)) << "kappa";
  EXPECT_TRUE(testing::AllClose(D(gnrm.Get()), D(ref.nrm), kF32Tol)) << "nrm";
  EXPECT_TRUE(Close<T>(gkt.Get(), ref.ktil)) << "ktil";
  EXPECT_TRUE(Close<T>(gad.Get(), ref.ad)) << "ad";
  EXPECT_TRUE(Close<T>(gbd.Get(), ref.bd)) << "bd";
  // The backward's recomputation reads the saved kappa (nrm null) and gives the same keys.
  const Vec kappa = Prep<T>(ref.kappa);
  gkap.Set(kappa);
  Dev<T> gkt2(n), gad2(n), gbd2(n);
  cu::Rwkv7DplrKeys(gkx.get(), ga.get(), glw.get(), gkk.get(), gka.get(), rows, heads, nh,
                    balance, gkap.get(), nullptr, gkt2.get(), gad2.get(), gbd2.get(), nullptr);
  EXPECT_TRUE(Close<T>(gkt2.Get(), ref.ktil)) << "ktil (recomputed)";
  EXPECT_TRUE(Close<T>(gbd2.Get(), ref.bd)) << "bd (recomputed)";

  // Backward (Rwkv7Mixer::Backward's fused loop).
  const Vec dkt = Prep<T>(Random(n, rng)), dad = Prep<T>(Random(n, rng));
  const Vec dbd = Prep<T>(Random(n, rng)), dlw = Prep<T>(Random(n, rng));
  Vec dkx_r(kx.size()), da_r(kx.size()), dlw_r(kx.size()), dkk_r(kx.size()), dka_r(kx.size());
  for (std::int64_t q = 0; q < rows; ++q) {
    const std::int64_t off = q * nh, ch = (q % heads) * nh;
    double dot = 0;
    for (std::int64_t j = 0; j < nh; ++j) {
      const std::size_t i = off + j;
      dot += static_cast<double>(kappa[i]) * (-dad[i] + dbd[i] * a[i]);
    }
    const float nr = ref.nrm[q];
    const float inv = 1.0f / std::fmax(nr, kEps);
    const float dotf = nr > kEps ? static_cast<float>(dot) : 0.0f;
    for (std::int64_t j = 0; j < nh; ++j) {
      const std::size_t i = off + j;
      const float dkap = -dad[i] + dbd[i] * a[i];
      const float dn = (dkap - kappa[i] * dotf) * inv;
      const float s = -lw[i] / kC;
      if (balance) {
        const float w = std::exp(lw[i]);
        dkx_r[i] = dkt[i] * (1.0f - w + a[i]) + dn;
        const float g = dlw[i] - dkt[i] * kx[i] * w;
        da_r[i] = (dbd[i] * kappa[i] + dkt[i] * kx[i]) * a[i] * (1.0f - a[i]);
        dlw_r[i] = g * (-kC) * s * (1.0f - s);
      } else {
        dkx_r[i] = dkt[i] * (1.0f + (a[i] - 1.0f) * ka[ch + j]) + dn * kk[ch + j];
        da_r[i] = (dbd[i] * kappa[i] + dkt[i] * kx[i] * ka[ch + j]) * a[i] * (1.0f - a[i]);
        dka_r[i] = dkt[i] * kx[i] * (a[i] - 1.0f);
        dkk_r[i] = dn * kx[i];
        dlw_r[i] = dlw[i] * (-kC) * s * (1.0f - s);
      }
    }
  }
  Dev<T> gdkt(dkt), gdad(dad), gdbd(dbd), gdlw(dlw), gdkx(n), gda(n);
  Dev<float> gnrm_ref(ref.nrm), gdkk(n), gdka(n);
  cu::Rwkv7KeysBackward(gkx.get(), gkap.get(), gnrm_ref.get(), ga.get(), glw.get(), gkk.get(),
                        gka.get(), gdkt.get(), gdad.get(), gdbd.get(), rows, heads, nh, balance,
                        gdlw.get(), gdkx.get(), gda.get(), gdkk.get(), gdka.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdkx.Get(), dkx_r)) << "dkx";
  EXPECT_TRUE(Close<T>(gda.Get(), da_r)) << "da";
  EXPECT_TRUE(Close<T>(gdlw.Get(), dlw_r)) << "dlogw";
  if (!balance) {
    // fp32 outputs, but from the dtype's inputs: the fp32 tolerance only for T = float.
    EXPECT_TRUE(testing::AllClose(D(gdkk.Get()), D(dkk_r), TolFor<T>())) << "dkk_e";
    EXPECT_TRUE(testing::AllClose(D(gdka.Get()), D(dka_r), TolFor<T>())) << "dka_e";
  }
}

TEST(GlueCudaRwkv, Rwkv7KeysDecayIclr) {
  for (const std::int64_t nh : {32, 64, 128}) {
    for (const bool balance : {false, true}) {
      CheckRwkv7Keys<float>(3, nh, balance, 2300 + nh + balance);
      CheckRwkv7Keys<bf16>(3, nh, balance, 2400 + nh + balance);
    }
  }
  CheckRwkv7Keys<float>(2, 33, false, 2501);  // a head size that is not a multiple of 32
}

template <typename T>
void CheckValueMix(std::uint64_t seed) {
  SCOPED_TRACE(DtypeName<T>());
  const std::int64_t n = 5 * 7 * 64 + 3;
  Rng rng(seed);
  const Vec vx = Prep<T>(Random(n, rng)), vf = Prep<T>(Random(n, rng));
  const Vec nu = Prep<T>(Uniform(n, rng, 0.0f, 1.0f));
  Vec v(vx.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = vx[i] + nu[i] * (vf[i] - vx[i]);
  Dev<T> gvx(vx), gvf(vf), gnu(nu), gv(n);
  cu::Rwkv7ValueMixForward(gvx.get(), gvf.get(), gnu.get(), n, gv.get(), nullptr);
  EXPECT_TRUE(Close<T>(gv.Get(), v)) << "v";
  const Vec dv = Prep<T>(Random(n, rng)), dvf0 = Prep<T>(Random(n, rng, 0.3f));
  Vec dvx(v.size()), dnu(v.size()), dvf = dvf0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    dvx[i] = dv[i] * (1.0f - nu[i]);
    dnu[i] = dv[i] * (vf[i] - vx[i]) * nu[i] * (1.0f - nu[i]);
    dvf[i] += dv[i] * nu[i];
  }
  Dev<T> gdv(dv), gdvx(n), gdnu(n), gdvf(dvf0);
  cu::Rwkv7ValueMixBackward(gdv.get(), gvx.get(), gvf.get(), gnu.get(), n, gdvx.get(), gdnu.get(),
                            gdvf.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdvx.Get(), dvx)) << "dvx";
  EXPECT_TRUE(Close<T>(gdnu.Get(), dnu)) << "dnu";
  EXPECT_TRUE(Close<T>(gdvf.Get(), dvf)) << "dvfirst";
}

TEST(GlueCudaRwkv, Rwkv7ValueResidual) {
  CheckValueMix<float>(2601);
  CheckValueMix<bf16>(2602);
}

}  // namespace
}  // namespace radlads::gluetest
