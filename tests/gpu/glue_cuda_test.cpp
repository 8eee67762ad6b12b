// The CUDA glue kernels (kernels/cuda/{norms,rope,elementwise,optimizer}.h) against the CPU
// ops they mirror, on the same inputs (bf16-rounded for the bf16 entry points), fresh random
// values from fixed seeds, odd sizes, every gradient with the accumulate convention (gradients
// start from random values, not zero). RWKV chains: glue_cuda_rwkv_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "base/dtype.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/glue_plan.h"
#include "kernels/cuda/norms.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/rope.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/adamw.h"
#include "kernels/ops/elementwise.h"
#include "kernels/ops/grad_norm.h"
#include "kernels/ops/groupnorm.h"
#include "kernels/ops/rmsnorm.h"
#include "kernels/ops/rope.h"
#include "tests/gpu/glue_cuda_test_util.h"

namespace radlads::gluetest {
namespace {

namespace cu = radlads::cuda;

// --- RMSNorm -----------------------------------------------------------------------------------

template <typename T>
void CheckRmsNorm(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " n=" << n << " c=" << c);
  Rng rng(seed);
  const Vec x = Prep<T>(Random(n * c, rng, 1.5f));
  const Vec w = Random(c, rng, 0.5f, 1.0f);
  const Vec dy = Prep<T>(Random(n * c, rng));
  const Vec dx0 = Prep<T>(Random(n * c, rng, 0.3f));
  const Vec dw0 = Random(c, rng, 0.3f);
  const float eps = 1e-6f;
  Tensor ty = Tensor::Empty({n, c}), tr = Tensor::Empty({n});
  ops::RmsNormForward(Cpu(x, {n, c}), Cpu(w, {c}), eps, ty, tr);
  Tensor tdx = Cpu(dx0, {n, c}), tdw = Cpu(dw0, {c});
  ops::RmsNormBackward(Cpu(x, {n, c}), Cpu(w, {c}), tr, Cpu(dy, {n, c}), &tdx, &tdw);

  Dev<T> gx(x), gy(n * c), gdy(dy), gdx(dx0);
  Dev<float> gw(w), gr(n), gdw(dw0);
  DevBytes ws(cu::ColSumWorkspaceBytes(n, c));
  cu::RmsNormForward(gx.get(), gw.get(), eps, n, c, gy.get(), gr.get(), nullptr);
  cu::RmsNormBackward(gx.get(), gw.get(), gr.get(), gdy.get(), n, c, gdx.get(), gdw.get(),
                      ws.as<double>(), nullptr);
  EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
  EXPECT_TRUE(testing::AllClose(D(gr.Get()), D(Host(tr)), kF32Tol)) << "rstd";
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
  EXPECT_TRUE(Close<T>(gdw.Get(), Host(tdw))) << "dw";
  // In place (y aliases x) gives the same y.
  cu::RmsNormForward(gx.get(), gw.get(), eps, n, c, gx.get(), gr.get(), nullptr);
  EXPECT_TRUE(Close<T>(gx.Get(), Host(ty))) << "y in place";
}

TEST(GlueCuda, RmsNorm) {
  for (auto [n, c] : {std::pair<std::int64_t, std::int64_t>{37, 129}, {1, 896}, {300, 7}}) {
    CheckRmsNorm<float>(n, c, 101);
    CheckRmsNorm<bf16>(n, c, 102);
  }
}

// --- GroupNorm ---------------------------------------------------------------------------------

template <typename T>
void CheckGroupNorm(std::int64_t n, std::int64_t groups, std::int64_t gs, bool bias,
                    std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " n=" << n << " groups=" << groups
                                    << " gs=" << gs << " bias=" << bias);
  const std::int64_t c = groups * gs;
  Rng rng(seed);
  Vec x = Random(n * c, rng, 2.0f, 0.5f);
  for (std::int64_t i = 0; i < gs; ++i) x[static_cast<std::size_t>(i)] = 0.25f;  // a constant group
  x = Prep<T>(x);
  const Vec w = Random(c, rng, 0.5f, 1.0f), b = Random(c, rng, 0.3f);
  const Vec dy = Prep<T>(Random(n * c, rng));
  const Vec dx0 = Prep<T>(Random(n * c, rng, 0.3f));
  const Vec dw0 = Random(c, rng, 0.3f), db0 = Random(c, rng, 0.3f);
  const float eps = static_cast<float>(static_cast<double>(gs) * 1e-5);
  Tensor ty = Tensor::Empty({n, c}), tm = Tensor::Empty({n, groups}),
         tr = Tensor::Empty({n, groups});
  ops::GroupNormForward(Cpu(x, {n, c}), Cpu(w, {c}), bias ? Cpu(b, {c}) : Tensor(), groups, eps,
                        ty, tm, tr);
  Tensor tdx = Cpu(dx0, {n, c}), tdw = Cpu(dw0, {c}), tdb = Cpu(db0, {c});
  ops::GroupNormBackward(Cpu(x, {n, c}), Cpu(w, {c}), tm, tr, Cpu(dy, {n, c}), &tdx, &tdw, &tdb);

  Dev<T> gx(x), gy(n * c), gdy(dy), gdx(dx0);
  Dev<float> gw(w), gb(b), gm(n * groups), gr(n * groups), gdw(dw0), gdb(db0);
  DevBytes ws(cu::ColSumWorkspaceBytes(n, c));
  cu::GroupNormForward(gx.get(), gw.get(), bias ? gb.get() : nullptr, n, c, groups, eps, gy.get(),
                       gm.get(), gr.get(), nullptr);
  cu::GroupNormBackward(gx.get(), gw.get(), gm.get(), gr.get(), gdy.get(), n, c, groups,
                        gdx.get(), gdw.get(), gdb.get(), ws.as<double>(), nullptr);
  EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
  EXPECT_TRUE(testing::AllClose(D(gm.Get()), D(Host(tm)), kF32Tol)) << "mean";
  EXPECT_TRUE(testing::AllClose(D(gr.Get()), D(Host(tr)), kF32Tol)) << "rstd";
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
  EXPECT_TRUE(Close<T>(gdw.Get(), Host(tdw))) << "dw";
  EXPECT_TRUE(Close<T>(gdb.Get(), Host(tdb))) << "db";
}

TEST(GlueCuda, GroupNormPerHead) {
  for (const std::int64_t gs : {32, 64, 128, 33}) {
    CheckGroupNorm<float>(23, 5, gs, true, 200 + gs);
    CheckGroupNorm<bf16>(23, 5, gs, true, 300 + gs);
  }
  CheckGroupNorm<float>(9, 3, 64, false, 401);
  CheckGroupNorm<bf16>(9, 3, 64, false, 402);
}

// --- RoPE --------------------------------------------------------------------------------------

TEST(GlueCuda, RopeTableMatchesTheCpuTable) {
  for (const std::int64_t d : {32, 64, 128}) {
    const std::int64_t tmax = 4099;
    const double theta = 1e6;
    const ops::RopeTable ref = ops::MakeRopeTable(tmax, d, theta);
    const Vec inv = cu::RopeInvFreq(d, theta);
    Dev<float> ginv(inv), gc(tmax * d / 2), gs(tmax * d / 2);
    cu::RopeTableBuild(ginv.get(), tmax, d, gc.get(), gs.get(), nullptr);
    const Vec c = gc.Get(), s = gs.Get();
    // Same fp32 angle; cos/sin in double on both sides, rounded once: at most 1 ulp apart.
    int off = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
      const float rc = ref.cos.f32()[i], rs = ref.sin.f32()[i];
      if (c[i] != rc) {
        ++off;
        EXPECT_EQ(std::nextafter(c[i], rc), rc) << "cos " << i;
      }
      if (s[i] != rs) {
        ++off;
        EXPECT_EQ(std::nextafter(s[i], rs), rs) << "sin " << i;
      }
    }
    EXPECT_LT(off, static_cast<int>(c.size() / 1000 + 1)) << "d=" << d;
  }
}

template <typename T>
void CheckRope(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t d, std::int64_t pos0,
               std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " B=" << b << " T=" << t << " H=" << h
                                    << " D=" << d << " pos0=" << pos0);
  const std::int64_t tmax = pos0 + t + 3, n = b * t * h * d;
  const ops::RopeTable table = ops::MakeRopeTable(tmax, d, 1e6);
  Rng rng(seed);
  const Vec x = Prep<T>(Random(n, rng)), dy = Prep<T>(Random(n, rng));
  const Vec dx0 = Prep<T>(Random(n, rng, 0.3f));
  Tensor ty = Tensor::Empty({b, t, h, d}), tdx = Cpu(dx0, {b, t, h, d});
  ops::RopeForward(Cpu(x, {b, t, h, d}), table, pos0, ty);
  ops::RopeBackward(Cpu(dy, {b, t, h, d}), table, pos0, tdx);
  // The device uses the CPU's table, uploaded, so only the rotation is under test here.
  Dev<float> gc(Host(table.cos)), gs(Host(table.sin));
  Dev<T> gx(x), gy(n), gdy(dy), gdx(dx0);
  cu::RopeForward(gx.get(), gc.get(), gs.get(), b, t, h, d, pos0, gy.get(), nullptr);
  cu::RopeBackward(gdy.get(), gc.get(), gs.get(), b, t, h, d, pos0, gdx.get(), nullptr);
  EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
  cu::RopeForward(gx.get(), gc.get(), gs.get(), b, t, h, d, pos0, gx.get(), nullptr);
  EXPECT_TRUE(Close<T>(gx.Get(), Host(ty))) << "y in place";
}

TEST(GlueCuda, Rope) {
  for (const std::int64_t d : {32, 64, 128}) {
    CheckRope<float>(2, 37, 3, d, 5, 500 + d);
    CheckRope<bf16>(2, 37, 3, d, 5, 600 + d);
  }
  CheckRope<float>(1, 1, 1, 2, 0, 701);
  CheckRope<bf16>(3, 17, 2, 64, 1000, 702);
}

// --- activations, SwiGLU, LoRA steps -----------------------------------------------------------

// Normal values plus the saturating tails the CPU ops handle (exp overflow, +-1 tanh).
Vec ActivationInputs(std::int64_t n, Rng& rng) {
  Vec v = Random(n, rng, 3.0f);
  const float tails[] = {-100.0f, -89.0f, -20.0f, -9.5f, 0.0f, 1e-4f, 9.5f, 17.5f, 25.0f, 100.0f};
  for (std::size_t i = 0; i < std::size(tails) && i < v.size(); ++i) v[i * 7 % v.size()] = tails[i];
  return v;
}

template <typename T>
void CheckActivations(std::uint64_t seed) {
  SCOPED_TRACE(DtypeName<T>());
  const std::int64_t n = 4097;
  Rng rng(seed);
  const Vec x = Prep<T>(ActivationInputs(n, rng));
  const Vec dy = Prep<T>(Random(n, rng));
  const Vec dx0 = Prep<T>(Random(n, rng, 0.3f));
  struct Case {
    cu::Activation act;
    void (*fwd)(const Tensor&, Tensor&);
    void (*bwd)(const Tensor&, const Tensor&, Tensor&);
    bool saves_output;
    const char* name;
  };
  const Case cases[] = {
      {cu::Activation::kSigmoid, ops::SigmoidForward, ops::SigmoidBackward, true, "sigmoid"},
      {cu::Activation::kTanh, ops::TanhForward, ops::TanhBackward, true, "tanh"},
      {cu::Activation::kSilu, ops::SiluForward, ops::SiluBackward, false, "silu"},
      {cu::Activation::kSoftplus, ops::SoftplusForward, ops::SoftplusBackward, false, "softplus"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Tensor ty = Tensor::Empty({n});
    k.fwd(Cpu(x, {n}), ty);
    Dev<T> gx(x), gy(n);
    cu::ActivationForward(k.act, gx.get(), n, gy.get(), nullptr);
    EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
    // Backward from the same saved values on both sides.
    const Vec saved = k.saves_output ? Prep<T>(Host(ty)) : x;
    Tensor tdx = Cpu(dx0, {n});
    k.bwd(Cpu(saved, {n}), Cpu(dy, {n}), tdx);
    Dev<T> gsaved(saved), gdy(dy), gdx(dx0);
    cu::ActivationBackward(k.act, gsaved.get(), gdy.get(), n, gdx.get(), nullptr);
    EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
  }
}

TEST(GlueCuda, Activations) {
  CheckActivations<float>(801);
  CheckActivations<bf16>(802);
}

template <typename T>
void CheckSwiGlu(std::int64_t n, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " n=" << n);
  Rng rng(seed);
  const Vec g = Prep<T>(ActivationInputs(n, rng)), u = Prep<T>(Random(n, rng));
  const Vec dy = Prep<T>(Random(n, rng));
  const Vec dg0 = Prep<T>(Random(n, rng, 0.3f)), du0 = Prep<T>(Random(n, rng, 0.3f));
  Tensor ty = Tensor::Empty({n}), tdg = Cpu(dg0, {n}), tdu = Cpu(du0, {n});
  ops::SwiGluForward(Cpu(g, {n}), Cpu(u, {n}), ty);
  ops::SwiGluBackward(Cpu(g, {n}), Cpu(u, {n}), Cpu(dy, {n}), &tdg, &tdu);
  Dev<T> gg(g), gu(u), gy(n), gdy(dy), gdg(dg0), gdu(du0);
  cu::SwiGluForward(gg.get(), gu.get(), n, gy.get(), nullptr);
  cu::SwiGluBackward(gg.get(), gu.get(), gdy.get(), n, gdg.get(), gdu.get(), nullptr);
  EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
  EXPECT_TRUE(Close<T>(gdg.Get(), Host(tdg))) << "dg";
  EXPECT_TRUE(Close<T>(gdu.Get(), Host(tdu))) << "du";
  // One gradient alone.
  Dev<T> gdu2(du0);
  cu::SwiGluBackward(gg.get(), gu.get(), gdy.get(), n, static_cast<T*>(nullptr), gdu2.get(),
                     nullptr);
  EXPECT_TRUE(Close<T>(gdu2.Get(), Host(tdu))) << "du alone";
}

TEST(GlueCuda, SwiGlu) {
  for (const std::int64_t n : {1, 255, 4864 * 3 + 1}) {
    CheckSwiGlu<float>(n, 900 + n);
    CheckSwiGlu<bf16>(n, 1000 + n);
  }
}

template <typename T>
void CheckLoraSteps(std::uint64_t seed) {
  SCOPED_TRACE(DtypeName<T>());
  const std::int64_t n = 45, r = 33, out = 67;
  Rng rng(seed);
  // act(h) in place and dz *= act'(h): the CPU LoRA's ApplyActivation / ApplyActivationGrad.
  const Vec z = Prep<T>(Random(n * r, rng, 2.0f)), dz = Prep<T>(Random(n * r, rng));
  for (const cu::LoraAct act : {cu::LoraAct::kNone, cu::LoraAct::kTanh, cu::LoraAct::kSigmoid}) {
    Vec h(z.size()), dzr(z.size());
    for (std::size_t i = 0; i < z.size(); ++i) {
      h[i] = act == cu::LoraAct::kTanh      ? ops::TanhScalar(z[i])
             : act == cu::LoraAct::kSigmoid ? ops::SigmoidScalar(z[i])
                                            : z[i];
    }
    Dev<T> gh(z);
    cu::LoraActivationInPlace(act, gh.get(), n * r, nullptr);
    EXPECT_TRUE(Close<T>(gh.Get(), h)) << "h, act " << static_cast<int>(act);
    const Vec hs = Prep<T>(h);
    for (std::size_t i = 0; i < z.size(); ++i) {
      const float dv = act == cu::LoraAct::kTanh      ? 1.0f - hs[i] * hs[i]
                       : act == cu::LoraAct::kSigmoid ? hs[i] * (1.0f - hs[i])
                                                      : 1.0f;
      dzr[i] = dz[i] * dv;
    }
    Dev<T> ghs(hs), gdz(dz);
    cu::LoraActivationGradInPlace(act, ghs.get(), gdz.get(), n * r, nullptr);
    EXPECT_TRUE(Close<T>(gdz.Get(), dzr)) << "dz, act " << static_cast<int>(act);
  }
  // Bias prefill and dbias.
  const Vec bias = Random(out, rng), dy = Prep<T>(Random(n * out, rng));
  const Vec dbias0 = Random(out, rng, 0.3f);
  Dev<float> gb(bias), gdb(dbias0);
  Dev<T> gy(n * out), gdy(dy);
  cu::BroadcastRows(gb.get(), n, out, gy.get(), nullptr);
  Vec yref(static_cast<std::size_t>(n * out));
  for (std::int64_t i = 0; i < n * out; ++i) yref[static_cast<std::size_t>(i)] = bias[static_cast<std::size_t>(i % out)];
  EXPECT_TRUE(Close<T>(gy.Get(), Prep<T>(yref))) << "bias rows";
  DevBytes ws(cu::ColSumWorkspaceBytes(n, out));
  cu::SumRows(gdy.get(), n, out, gdb.get(), ws.as<double>(), nullptr);
  Tensor tdb = Cpu(dbias0, {out});
  ops::SumRows(Cpu(dy, {n, out}), tdb);
  EXPECT_TRUE(testing::AllClose(D(gdb.Get()), D(Host(tdb)), kF32Tol)) << "dbias";
}

TEST(GlueCuda, LoraElementwiseSteps) {
  CheckLoraSteps<float>(1101);
  CheckLoraSteps<bf16>(1102);
}

// --- products, lerp, token shift ------------------------------------------------------------------

template <typename T>
void CheckProducts(std::uint64_t seed) {
  SCOPED_TRACE(DtypeName<T>());
  const std::int64_t n = 531, c = 77;  // 531 rows: three column-sum chunks, the last partial
  Rng rng(seed);
  const Vec a = Prep<T>(Random(n * c, rng)), b = Prep<T>(Random(n * c, rng));
  const Vec bv = Random(c, rng), dy = Prep<T>(Random(n * c, rng));
  const Vec da0 = Prep<T>(Random(n * c, rng, 0.3f)), db0 = Prep<T>(Random(n * c, rng, 0.3f));
  const Vec dbv0 = Random(c, rng, 0.3f);
  DevBytes ws(cu::ColSumWorkspaceBytes(n, c));
  {
    Tensor ty = Tensor::Empty({n, c}), tda = Cpu(da0, {n, c}), tdb = Cpu(db0, {n, c});
    ops::Mul(Cpu(a, {n, c}), Cpu(b, {n, c}), ty);
    ops::MulBackward(Cpu(a, {n, c}), Cpu(b, {n, c}), Cpu(dy, {n, c}), &tda, &tdb);
    Dev<T> ga(a), gb(b), gy(n * c), gdy(dy), gda(da0), gdb(db0);
    cu::Mul(ga.get(), gb.get(), n * c, gy.get(), nullptr);
    cu::MulBackward(ga.get(), gb.get(), gdy.get(), n * c, gda.get(), gdb.get(), nullptr);
    EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "mul y";
    EXPECT_TRUE(Close<T>(gda.Get(), Host(tda))) << "mul da";
    EXPECT_TRUE(Close<T>(gdb.Get(), Host(tdb))) << "mul db";
    Tensor ts = Tensor::Empty({n, c});
    ops::AddScaled(Cpu(a, {n, c}), -0.75f, Cpu(b, {n, c}), ts);
    cu::AddScaled(ga.get(), -0.75f, gb.get(), n * c, gy.get(), nullptr);
    EXPECT_TRUE(Close<T>(gy.Get(), Host(ts))) << "add scaled";
  }
  {
    Tensor ty = Tensor::Empty({n, c}), tda = Cpu(da0, {n, c}), tdb = Cpu(dbv0, {c});
    ops::Mul(Cpu(a, {n, c}), Cpu(bv, {c}), ty);
    ops::MulBackward(Cpu(a, {n, c}), Cpu(bv, {c}), Cpu(dy, {n, c}), &tda, &tdb);
    Dev<T> ga(a), gy(n * c), gdy(dy), gda(da0);
    Dev<float> gb(bv), gdb(dbv0);
    cu::MulRowBroadcast(ga.get(), gb.get(), n, c, gy.get(), nullptr);
    cu::MulRowBroadcastBackward(ga.get(), gb.get(), gdy.get(), n, c, gda.get(), gdb.get(),
                                ws.as<double>(), nullptr);
    EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "bcast y";
    EXPECT_TRUE(Close<T>(gda.Get(), Host(tda))) << "bcast da";
    EXPECT_TRUE(testing::AllClose(D(gdb.Get()), D(Host(tdb)), kF32Tol)) << "bcast db";
  }
}

TEST(GlueCuda, Products) {
  CheckProducts<float>(1201);
  CheckProducts<bf16>(1202);
}

template <typename T>
void CheckLerp(bool with_m, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " m=" << with_m);
  const std::int64_t n = 263, c = 45;
  Rng rng(seed);
  const Vec x = Prep<T>(Random(n * c, rng)), d = Prep<T>(Random(n * c, rng));
  const Vec m = Prep<T>(Random(n * c, rng, 0.5f)), mu = Random(c, rng, 0.5f);
  const Vec dy = Prep<T>(Random(n * c, rng));
  const Vec dx0 = Prep<T>(Random(n * c, rng, 0.3f)), dd0 = Prep<T>(Random(n * c, rng, 0.3f));
  const Vec dm0 = Prep<T>(Random(n * c, rng, 0.3f)), dmu0 = Random(c, rng, 0.3f);
  const Tensor tm = with_m ? Cpu(m, {n, c}) : Tensor();
  Tensor ty = Tensor::Empty({n, c});
  ops::LerpForward(Cpu(x, {n, c}), Cpu(d, {n, c}), Cpu(mu, {c}), tm, ty);
  Tensor tdx = Cpu(dx0, {n, c}), tdd = Cpu(dd0, {n, c}), tdm = Cpu(dm0, {n, c}),
         tdmu = Cpu(dmu0, {c});
  ops::LerpBackward(Cpu(d, {n, c}), Cpu(mu, {c}), tm, Cpu(dy, {n, c}), &tdx, &tdd, &tdmu,
                    with_m ? &tdm : nullptr);
  Dev<T> gx(x), gd(d), gm(m), gy(n * c), gdy(dy), gdx(dx0), gdd(dd0), gdm(dm0);
  Dev<float> gmu(mu), gdmu(dmu0);
  DevBytes ws(cu::ColSumWorkspaceBytes(n, c));
  T* mptr = with_m ? gm.get() : nullptr;
  cu::LerpForward(gx.get(), gd.get(), gmu.get(), mptr, n, c, gy.get(), nullptr);
  cu::LerpBackward(gd.get(), gmu.get(), mptr, gdy.get(), n, c, gdx.get(), gdd.get(), gdmu.get(),
                   with_m ? gdm.get() : nullptr, ws.as<double>(), nullptr);
  EXPECT_TRUE(Close<T>(gy.Get(), Host(ty))) << "y";
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
  EXPECT_TRUE(Close<T>(gdd.Get(), Host(tdd))) << "dd";
  EXPECT_TRUE(testing::AllClose(D(gdmu.Get()), D(Host(tdmu)), kF32Tol)) << "dmu";
  if (with_m) {
    EXPECT_TRUE(Close<T>(gdm.Get(), Host(tdm))) << "dm";
  }
}

TEST(GlueCuda, Lerp) {
  for (const bool m : {false, true}) {
    CheckLerp<float>(m, 1300 + m);
    CheckLerp<bf16>(m, 1310 + m);
  }
}

template <typename T>
void CheckTokenShift(std::int64_t b, std::int64_t t, std::int64_t c, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << DtypeName<T>() << " B=" << b << " T=" << t << " C=" << c);
  Rng rng(seed);
  const std::int64_t n = b * t * c;
  const Vec x = Prep<T>(Random(n, rng)), dd = Prep<T>(Random(n, rng));
  const Vec dx0 = Prep<T>(Random(n, rng, 0.3f));
  Tensor tdelta = Tensor::Empty({b, t, c}), tdx = Cpu(dx0, {b, t, c});
  ops::TokenShiftDeltaForward(Cpu(x, {b, t, c}), tdelta);
  ops::TokenShiftDeltaBackward(Cpu(dd, {b, t, c}), tdx);
  Dev<T> gx(x), gdelta(n), gdd(dd), gdx(dx0);
  cu::TokenShiftDeltaForward(gx.get(), b, t, c, gdelta.get(), nullptr);
  cu::TokenShiftDeltaBackward(gdd.get(), b, t, c, gdx.get(), nullptr);
  EXPECT_TRUE(Close<T>(gdelta.Get(), Host(tdelta))) << "delta";
  EXPECT_TRUE(Close<T>(gdx.Get(), Host(tdx))) << "dx";
}

TEST(GlueCuda, TokenShiftDelta) {
  for (auto [b, t, c] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{3, 17, 29},
                         {2, 1, 64},
                         {1, 129, 896}}) {
    CheckTokenShift<float>(b, t, c, 1400 + t);
    CheckTokenShift<bf16>(b, t, c, 1500 + t);
  }
}

// --- conversion ----------------------------------------------------------------------------------

TEST(GlueCuda, Bf16ConversionIsRoundToNearestEven) {
  Rng rng(1601);
  Vec v = Random(100003, rng, 10.0f);
  const float specials[] = {0.0f, -0.0f, 1.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::max(), 1e-40f,
                            // ties: 1 + 2^-8 (rounds to even 1), 1 + 3*2^-8 (rounds up)
                            1.00390625f, 1.01171875f};
  for (std::size_t i = 0; i < std::size(specials); ++i) v[i] = specials[i];
  Dev<float> src(v);
  DevBytes dst(v.size() * 2);
  cu::ConvertF32ToBf16(src.get(), static_cast<std::int64_t>(v.size()), dst.as<bf16>(), nullptr);
  std::vector<std::uint16_t> bits(v.size());
  dst.Download(bits.data(), bits.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(bits[i], F32ToBf16(v[i])) << v[i];
  Dev<float> back(static_cast<std::int64_t>(v.size()));
  cu::ConvertBf16ToF32(dst.as<bf16>(), static_cast<std::int64_t>(v.size()), back.get(), nullptr);
  const Vec b = back.Get();
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(b[i], Bf16ToF32(bits[i]));
  // NaN stays NaN.
  Vec nan = {std::numeric_limits<float>::quiet_NaN()};
  Dev<float> gnan(nan);
  cu::ConvertF32ToBf16(gnan.get(), 1, dst.as<bf16>(), nullptr);
  cu::ConvertBf16ToF32(dst.as<bf16>(), 1, back.get(), nullptr);
  EXPECT_TRUE(std::isnan(back.Get()[0]));
}

// --- AdamW, gradient norm, clipping -------------------------------------------------------------

struct OptTensors {
  std::vector<Vec> p, g;
  std::vector<Dev<float>> dp, dg, dm, dv;
  std::vector<cu::MultiTensorEntry> entries;
};

OptTensors MakeOptTensors(const std::vector<std::int64_t>& sizes, Rng& rng) {
  OptTensors t;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::int64_t n = sizes[i];
    t.p.push_back(Random(n, rng));
    t.g.push_back(Random(n, rng, 0.05f));
    t.dp.emplace_back(t.p.back());
    t.dg.emplace_back(t.g.back());
    t.dm.emplace_back(Vec(static_cast<std::size_t>(n), 0.0f));
    t.dv.emplace_back(Vec(static_cast<std::size_t>(n), 0.0f));
    cu::MultiTensorEntry e;
    e.param = t.dp.back().get();
    e.grad = t.dg.back().get();
    e.m = t.dm.back().get();
    e.v = t.dv.back().get();
    e.n = n;
    e.group = static_cast<std::int32_t>(i % 2);
    t.entries.push_back(e);
  }
  return t;
}

const std::vector<std::int64_t> kOptSizes = {1, 7, 32769, 1000, 65537, 3};

TEST(GlueCuda, AdamWMultiTensorMatchesAdamWStepOverSteps) {
  for (const double wd : {0.0, 0.1}) {
    SCOPED_TRACE(::testing::Message() << "wd=" << wd);
    Rng rng(1701);
    OptTensors t = MakeOptTensors(kOptSizes, rng);
    const auto chunks = cu::BuildMultiTensorChunks(t.entries);
    DevBytes de(t.entries.size() * sizeof(cu::MultiTensorEntry));
    DevBytes dc(chunks.size() * sizeof(cu::MultiTensorChunk));
    de.Upload(t.entries.data(), t.entries.size() * sizeof(cu::MultiTensorEntry));
    dc.Upload(chunks.data(), chunks.size() * sizeof(cu::MultiTensorChunk));
    std::vector<Tensor> cp, cm, cv;
    for (const Vec& p : t.p) {
      const auto n = static_cast<std::int64_t>(p.size());
      cp.push_back(Cpu(p, {n}));
      cm.push_back(Tensor::Zeros({n}));
      cv.push_back(Tensor::Zeros({n}));
    }
    const double lr[2] = {3e-3, 1e-2};
    for (std::int64_t step = 1; step <= 5; ++step) {
      std::vector<Tensor> cg;
      for (std::size_t i = 0; i < t.g.size(); ++i) {
        t.g[i] = Random(static_cast<std::int64_t>(t.g[i].size()), rng, 0.05f);
        t.dg[i].Set(t.g[i]);
        cg.push_back(Cpu(t.g[i], {static_cast<std::int64_t>(t.g[i].size())}));
      }
      for (std::size_t i = 0; i < cp.size(); ++i) {
        AdamWConfig cfg;
        cfg.lr = lr[t.entries[i].group];
        cfg.weight_decay = wd;
        AdamWStep(cp[i], cg[i], cm[i], cv[i], step, cfg);
      }
      const AdamWConfig d;
      const cu::AdamWScalars s =
          cu::MakeAdamWScalars(lr, 2, d.beta1, d.beta2, d.eps, wd, true, step);
      cu::AdamWMultiTensor(de.as<cu::MultiTensorEntry>(), dc.as<cu::MultiTensorChunk>(),
                           static_cast<std::int64_t>(chunks.size()), s, nullptr, step == 5,
                           nullptr);
      for (std::size_t i = 0; i < cp.size(); ++i) {
        SCOPED_TRACE(::testing::Message() << "step " << step << " tensor " << i);
        // Identical operation sequence in fp32: equal up to the CPU compiler's contractions.
        constexpr testing::Tol kAdamTol = {1e-7, 1e-6, 1e-7};
        ASSERT_TRUE(testing::AllClose(D(t.dp[i].Get()), D(Host(cp[i])), kAdamTol)) << "param";
        ASSERT_TRUE(testing::AllClose(D(t.dm[i].Get()), D(Host(cm[i])), kAdamTol)) << "m";
        ASSERT_TRUE(testing::AllClose(D(t.dv[i].Get()), D(Host(cv[i])), kAdamTol)) << "v";
      }
    }
    for (auto& g : t.dg)
      for (float x : g.Get()) ASSERT_EQ(x, 0.0f) << "zero_grad";
  }
}

TEST(GlueCuda, GradNormIsDeterministicAndClipsAsTheCpu) {
  Rng rng(1801);
  OptTensors t = MakeOptTensors(kOptSizes, rng);
  const auto chunks = cu::BuildMultiTensorChunks(t.entries);
  const auto nc = static_cast<std::int64_t>(chunks.size());
  DevBytes de(t.entries.size() * sizeof(cu::MultiTensorEntry));
  DevBytes dc(chunks.size() * sizeof(cu::MultiTensorChunk));
  de.Upload(t.entries.data(), t.entries.size() * sizeof(cu::MultiTensorEntry));
  dc.Upload(chunks.data(), chunks.size() * sizeof(cu::MultiTensorChunk));
  DevBytes ws(cu::GradNormWorkspaceBytes(nc)), sumsq(sizeof(double)), norm(sizeof(double)),
      scale(sizeof(float));
  std::vector<Tensor> cg;
  for (const Vec& g : t.g) cg.push_back(Cpu(g, {static_cast<std::int64_t>(g.size())}));
  const double ref = GlobalGradNorm(cg);

  double s1 = 0, s2 = 0;
  cu::GradSumSquares(de.as<cu::MultiTensorEntry>(), dc.as<cu::MultiTensorChunk>(), nc,
                     ws.as<double>(), sumsq.as<double>(), nullptr);
  sumsq.Download(&s1, sizeof(double));
  cu::GradSumSquares(de.as<cu::MultiTensorEntry>(), dc.as<cu::MultiTensorChunk>(), nc,
                     ws.as<double>(), sumsq.as<double>(), nullptr);
  sumsq.Download(&s2, sizeof(double));
  EXPECT_EQ(std::memcmp(&s1, &s2, sizeof(double)), 0) << "two runs, different bits";
  EXPECT_NEAR(std::sqrt(s1), ref, 1e-12 * ref);

  // Clip at a quarter of the norm: every gradient scaled by the CPU's factor.
  const double max_norm = ref / 4;
  cu::ClipScaleFromSumSquares(sumsq.as<double>(), max_norm, norm.as<double>(), scale.as<float>(),
                              nullptr);
  cu::ScaleGrads(de.as<cu::MultiTensorEntry>(), dc.as<cu::MultiTensorChunk>(), nc,
                 scale.as<float>(), nullptr);
  float k = 0;
  double nr = 0;
  scale.Download(&k, sizeof(float));
  norm.Download(&nr, sizeof(double));
  EXPECT_EQ(k, cu::ClipScale(max_norm, nr));
  ClipGradsWithNorm(cg, max_norm, nr);
  for (std::size_t i = 0; i < cg.size(); ++i) {
    const Vec got = t.dg[i].Get();
    for (std::size_t j = 0; j < got.size(); ++j) ASSERT_EQ(got[j], cg[i].f32()[j]) << i << "," << j;
  }
  // Below the limit: untouched.
  cu::ClipScaleFromSumSquares(sumsq.as<double>(), ref * 10, norm.as<double>(), scale.as<float>(),
                              nullptr);
  scale.Download(&k, sizeof(float));
  EXPECT_EQ(k, 1.0f);
  // A NaN gradient: the norm says so, the scale stays 1 (the caller skips the step).
  Vec bad = t.g[2];
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  t.dg[2].Set(bad);
  cu::GradSumSquares(de.as<cu::MultiTensorEntry>(), dc.as<cu::MultiTensorChunk>(), nc,
                     ws.as<double>(), sumsq.as<double>(), nullptr);
  cu::ClipScaleFromSumSquares(sumsq.as<double>(), 1.0, norm.as<double>(), scale.as<float>(),
                              nullptr);
  scale.Download(&k, sizeof(float));
  norm.Download(&nr, sizeof(double));
  EXPECT_TRUE(std::isnan(nr));
  EXPECT_EQ(k, 1.0f);
}

}  // namespace
}  // namespace radlads::gluetest
