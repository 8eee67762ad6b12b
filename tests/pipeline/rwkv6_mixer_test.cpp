// RAD-RWKV6 mixer (pipeline/rwkv6_mixer.h): forward against the fp64 reference for every flag
// combination, backward against central finite differences of the reference, the accumulate
// convention, frozen parameters, recurrent vs chunked GLA, the parameter declaration and the
// initialisation of docs/spec.md §3.3.
#include "pipeline/rwkv6_mixer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "kernels/ops/rope.h"
#include "pipeline/ref/rwkv6_mixer_ref.h"
#include "tests/kernels/ops_test_util.h"
#include "tests/pipeline/rwkv6_test_util.h"

namespace radlads {
namespace {

using testing::AllClose;
using testing::FromF64;
using testing::MakeRwkv6Config;
using testing::RandomTensor;
using testing::RefParamsOf;
using testing::Rng;
using testing::Rwkv6Flags;
using testing::Rwkv6Sizes;
using testing::ToF64;
using testing::Tol;

// Named tolerances. atol is relative to the reference tensor's largest |element| (fp32
// rounding of a sum scales with its largest terms, not with each element), then
// |got - ref| <= atol + rtol |ref| element-wise and ||got - ref|| / ||ref|| <= rms.
struct ScaledTol {
  double atol_over_max, rtol, rms;
};
// fp32 mixer vs the fp64 reference forward (B=2, T=19, C=40, A=40, every flag combination).
constexpr ScaledTol kRwkv6FwdTol = {1e-5, 1e-4, 1e-5};
// fp32 mixer gradients vs central differences (eps 1e-6) of the fp64 reference forward.
constexpr ScaledTol kRwkv6FdTol = {1e-5, 1e-3, 2e-5};
// Recurrent (chunk 0) vs chunked (chunk 16) GLA inside the mixer, outputs and gradients.
constexpr ScaledTol kRwkv6ChunkTol = {1e-5, 1e-4, 1e-5};

double MaxAbs(const std::vector<double>& v) {
  double mx = 0;
  for (double e : v) mx = std::max(mx, std::fabs(e));
  return mx;
}

Tol Scaled(const ScaledTol& t, const std::vector<double>& ref) {
  return Tol{t.atol_over_max * std::max(MaxAbs(ref), 1e-3), t.rtol, t.rms};
}

constexpr int kLayer = 1;

// A declared, randomised mixer ParamSet with every parameter trainable, and an input.
struct MixerCase {
  StudentConfig cfg;
  ParamSet params;
  std::int64_t B = 0, T = 0, pos0 = 0;
  Tensor x;
  ops::RopeTable rope;

  MixerCase(const Rwkv6Sizes& s, const Rwkv6Flags& f, std::int64_t b, std::int64_t t, std::uint64_t seed,
        std::int64_t p0 = 0)
      : cfg(MakeRwkv6Config(s, f)), B(b), T(t), pos0(p0) {
    Rng rng(seed);
    DeclareRwkv6MixerParams(cfg, kLayer, params);
    testing::RandomizeRwkv6Params(cfg, kLayer, params, rng);
    params.SetTrainable([](const std::string&) { return true; });
    x = RandomTensor({B, T, s.C}, rng);
    rope = ops::MakeRopeTable(pos0 + T + 1, s.N, cfg.base.rope_theta);
  }

  MixerContext Ctx(bool need_backward = true) const {
    MixerContext ctx;
    ctx.batch = B;
    ctx.time = T;
    ctx.pos0 = pos0;
    ctx.rope = &rope;
    ctx.need_backward = need_backward;
    return ctx;
  }

  std::unique_ptr<Rwkv6Mixer> Mixer(std::int64_t chunk = 16) {
    Rwkv6MixerOptions o;
    o.gla_chunk = chunk;
    return std::make_unique<Rwkv6Mixer>(cfg, kLayer, params, o);
  }

  std::vector<double> Ref(const ref::Rwkv6RefParams& p, const std::vector<double>& xv,
                          ref::Rwkv6RefTrace* trace = nullptr) const {
    return ref::Rwkv6MixerForwardRef(cfg, p, xv, B, T, pos0, trace);
  }
};

// Every flag combination that changes the computation.
std::vector<Rwkv6Flags> AllFlagCombos() {
  std::vector<Rwkv6Flags> out;
  for (int ts = 0; ts < 2; ++ts)
    for (int gate = 0; gate < 3; ++gate)
      for (int bal = 0; bal < 2; ++bal)
        for (int gn = 0; gn < 2; ++gn)
          for (int rope = 0; rope < 2; ++rope)
            for (int ob = 0; ob < 2; ++ob)
              for (int qb = 0; qb < 2; ++qb) {
                Rwkv6Flags f;
                f.use_tokenshift = ts;
                f.gate_rank_type = gate;
                f.balance_state = bal;
                f.groupnorm_att = gn;
                f.use_rope = rope;
                f.attention_output_bias = ob;
                f.attention_bias = qb;
                out.push_back(f);
              }
  return out;
}

// The combinations the gradient tests cover: the released setting and the ablations'
// switches, so that every parameter and every branch's backward is exercised.
std::vector<Rwkv6Flags> MainFlagCombos() {
  std::vector<Rwkv6Flags> out;
  out.push_back(Rwkv6Flags{});  // released qwerky6: tokenshift, full gate, balance, no norm/rope
  out.push_back(Rwkv6Flags{false, 2, false, true, true, true, true});
  out.push_back(Rwkv6Flags{true, 0, true, true, true, false, false});
  out.push_back(Rwkv6Flags{true, 2, true, false, true, true, true});
  out.push_back(Rwkv6Flags{false, 1, true, false, false, true, false});
  return out;
}

Tensor RunForward(Rwkv6Mixer& m, const MixerCase& s, MixerContext& ctx) {
  Tensor y = Tensor::Empty(s.x.shape());
  m.Forward(s.x, ctx, y);
  return y;
}

TEST(Rwkv6MixerTest, ForwardMatchesReferenceForEveryFlagCombination) {
  std::uint64_t seed = 100;
  for (const Rwkv6Flags& f : AllFlagCombos()) {
    MixerCase s(Rwkv6Sizes{}, f, 2, 19, ++seed, /*pos0=*/3);
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    auto m = s.Mixer();
    MixerContext ctx = s.Ctx(false);
    Tensor y = RunForward(*m, s, ctx);
    const std::vector<double> ref = s.Ref(RefParamsOf(s.params, kLayer), ToF64(s.x));
    EXPECT_TRUE(AllClose(y, ref, Scaled(kRwkv6FwdTol, ref)));
  }
}

TEST(Rwkv6MixerTest, ForwardWithAttentionWidthDifferentFromHidden) {
  // head_dim given explicitly: A = H*N = 3*8 = 24 != C = 17 (gate, ln_x, decay are A wide).
  Rwkv6Sizes sz{17, 3, 1, 8, 4, 5, 3, 2};
  for (int gate = 0; gate < 3; ++gate) {
    Rwkv6Flags f;
    f.gate_rank_type = gate;
    f.groupnorm_att = gate == 2;
    f.use_rope = true;
    MixerCase s(sz, f, 3, 11, 7 + static_cast<std::uint64_t>(gate));
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    auto m = s.Mixer();
    MixerContext ctx = s.Ctx(false);
    Tensor y = RunForward(*m, s, ctx);
    const std::vector<double> ref = s.Ref(RefParamsOf(s.params, kLayer), ToF64(s.x));
    EXPECT_TRUE(AllClose(y, ref, Scaled(kRwkv6FwdTol, ref)));
  }
}

TEST(Rwkv6MixerTest, BackwardMatchesFiniteDifferencesOfReference) {
  // Smaller shape: A = 12 != C = 14, 3 query heads per kv head, RoPE needs N even.
  const Rwkv6Sizes sz{14, 3, 1, 4, 3, 4, 3, 2};
  std::uint64_t seed = 500;
  for (const Rwkv6Flags& f : MainFlagCombos()) {
    MixerCase s(sz, f, 2, 7, ++seed, /*pos0=*/2);
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    Rng rng(seed * 7);
    Tensor dy = RandomTensor(s.x.shape(), rng);
    const std::vector<double> dyv = ToF64(dy);

    auto m = s.Mixer();
    MixerContext ctx = s.Ctx(true);
    RunForward(*m, s, ctx);
    Tensor dx = Tensor::Zeros(s.x.shape());
    m->Backward(dy, ctx, &dx);

    ref::Rwkv6RefParams rp = RefParamsOf(s.params, kLayer);
    std::vector<double> xv = ToF64(s.x);
    // The decay pre-activation stays clear of the clamp's kink at ln 5 (so the central
    // differences are smooth), and some channels are clamped.
    {
      ref::Rwkv6RefTrace tr;
      s.Ref(rp, xv, &tr);
      double margin = 1e9;
      int clamped = 0;
      for (double d : tr.d) {
        margin = std::min(margin, std::fabs(d - std::log(5.0)));
        clamped += -std::exp(d) < -5.0;
      }
      ASSERT_GT(margin, 0.1);
      ASSERT_GT(clamped, 0);
    }
    auto loss = [&] { return testing::Dot(s.Ref(rp, xv), dyv); };

    const std::vector<double> fd_x = testing::NumericGrad(&xv, loss);
    EXPECT_TRUE(AllClose(dx, fd_x, Scaled(kRwkv6FdTol, fd_x))) << "dx";
    for (Param* p : s.params.params()) {
      const std::string suffix = testing::MixerSuffix(p->name);
      SCOPED_TRACE(suffix);
      ASSERT_TRUE(p->grad.defined());
      const std::vector<double> fd = testing::NumericGrad(&rp[suffix], loss);
      EXPECT_TRUE(AllClose(p->grad, fd, Scaled(kRwkv6FdTol, fd)));
      if (s.cfg.gate_rank_type == 0 && suffix == "time_maa_g") {
        // Declared (the released layout has it) but unused without a gate.
        EXPECT_EQ(MaxAbs(ToF64(p->grad)), 0.0);
      } else {
        EXPECT_GT(MaxAbs(fd), 1e-2) << "a path the test does not exercise";
      }
      if (suffix == "time_decay") {
        // The clamp at -5: channels with -exp(d) < -5 have exactly zero decay gradient.
        const float* g = p->grad.f32();
        int nonzero = 0;
        for (std::int64_t a = 0; a < p->grad.numel(); ++a) {
          if (testing::IsClampedChannel(a)) {
            EXPECT_EQ(g[a], 0.0f) << "clamped channel " << a;
          } else {
            nonzero += g[a] != 0.0f;
          }
        }
        EXPECT_GT(nonzero, 0);
      }
    }
  }
}

std::vector<Tensor*> AllGrads(ParamSet& params) {
  std::vector<Tensor*> out;
  for (Param* p : params.params())
    if (p->grad.defined()) out.push_back(&p->grad);
  return out;
}

TEST(Rwkv6MixerTest, BackwardAccumulates) {
  for (const Rwkv6Flags& f : MainFlagCombos()) {
    MixerCase s(Rwkv6Sizes{}, f, 2, 19, 900);
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    Rng rng(901);
    Tensor dy = RandomTensor(s.x.shape(), rng);
    auto m = s.Mixer();
    MixerContext ctx = s.Ctx(true);
    RunForward(*m, s, ctx);
    Tensor dx = Tensor::Zeros(s.x.shape());
    std::vector<Tensor*> grads = AllGrads(s.params);
    grads.push_back(&dx);
    testing::ExpectAccumulates(grads, [&] { m->Backward(dy, ctx, &dx); });
  }
}

TEST(Rwkv6MixerTest, TwoMixersOnSharedParametersSumTheirGradients) {
  // Two mixer objects bound to one ParamSet (a parameter used twice): the gradients are the sum
  // of both uses.
  MixerCase s(Rwkv6Sizes{}, Rwkv6Flags{}, 2, 19, 910);
  Rng rng(911);
  Tensor dy1 = RandomTensor(s.x.shape(), rng), dy2 = RandomTensor(s.x.shape(), rng);
  auto m1 = s.Mixer(), m2 = s.Mixer();
  std::vector<Tensor*> grads = AllGrads(s.params);
  auto run = [&](Rwkv6Mixer& m, const Tensor& dy) {
    MixerContext ctx = s.Ctx(true);
    RunForward(m, s, ctx);
    m.Backward(dy, ctx, nullptr);
  };
  s.params.ZeroGrads();
  run(*m1, dy1);
  std::vector<std::vector<double>> g1;
  for (Tensor* g : grads) g1.push_back(ToF64(*g));
  s.params.ZeroGrads();
  run(*m2, dy2);
  std::vector<std::vector<double>> sum;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    sum.push_back(ToF64(*grads[i]));
    for (std::size_t j = 0; j < sum[i].size(); ++j) sum[i][j] += g1[i][j];
  }
  s.params.ZeroGrads();
  run(*m1, dy1);
  run(*m2, dy2);  // both forwards share the same x; m1's state is independent of m2's
  for (std::size_t i = 0; i < grads.size(); ++i) EXPECT_TRUE(AllClose(*grads[i], sum[i], Tol{1e-6, 1e-5, 1e-6}));
}

TEST(Rwkv6MixerTest, RecurrentAndChunkedGlaAgree) {
  const Rwkv6Flags released{};
  const Rwkv6Flags other{false, 2, true, true, true, true, true};
  for (const Rwkv6Flags& f : {released, other}) {
    // T = 37: two full chunks of 16 and a partial one.
    MixerCase s(Rwkv6Sizes{}, f, 2, 37, 1000, 5);
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    Rng rng(1001);
    Tensor dy = RandomTensor(s.x.shape(), rng);
    std::vector<Tensor*> grads = AllGrads(s.params);
    auto run = [&](std::int64_t chunk, std::vector<std::vector<double>>& out) {
      s.params.ZeroGrads();
      auto m = s.Mixer(chunk);
      MixerContext ctx = s.Ctx(true);
      out.push_back(ToF64(RunForward(*m, s, ctx)));
      Tensor dx = Tensor::Zeros(s.x.shape());
      m->Backward(dy, ctx, &dx);
      out.push_back(ToF64(dx));
      for (Tensor* g : grads) out.push_back(ToF64(*g));
    };
    std::vector<std::vector<double>> rec, chk;
    run(0, rec);
    run(16, chk);
    ASSERT_EQ(rec.size(), chk.size());
    for (std::size_t i = 0; i < rec.size(); ++i)
      EXPECT_TRUE(AllClose(chk[i], rec[i], Scaled(kRwkv6ChunkTol, rec[i]))) << "output #" << i << " (0 y, 1 dx, then grads)";
  }
}

TEST(Rwkv6MixerTest, FrozenParametersGetNoGradientButDxIsRight) {
  for (const Rwkv6Flags& f : MainFlagCombos()) {
    MixerCase s(Rwkv6Sizes{}, f, 2, 19, 1200);
    SCOPED_TRACE(testing::FlagsString(s.cfg));
    Rng rng(1201);
    Tensor dy = RandomTensor(s.x.shape(), rng);
    auto full = [&] {
      auto m = s.Mixer();
      MixerContext ctx = s.Ctx(true);
      RunForward(*m, s, ctx);
      Tensor dx = Tensor::Zeros(s.x.shape());
      m->Backward(dy, ctx, &dx);
      return dx;
    };
    s.params.ZeroGrads();
    const std::vector<double> dx_all = ToF64(full());
    std::map<std::string, std::vector<double>> g_all;
    for (Param* p : s.params.params()) g_all[p->name] = ToF64(p->grad);

    // Freeze the projections, the decay and the tokenshift LoRA (stage-3a's complement, and
    // the teacher-copied weights), keep the rest; then freeze everything.
    auto frozen = [](const std::string& n) {
      return n.find("_proj.") != std::string::npos || n.find("time_decay") != std::string::npos ||
             n.find("time_maa_w") != std::string::npos;
    };
    for (int all_frozen = 0; all_frozen < 2; ++all_frozen) {
      ParamSet& ps = s.params;
      for (Param* p : ps.params()) p->grad = Tensor();
      ps.SetTrainable([&](const std::string& n) { return !all_frozen && !frozen(n); });
      Tensor dx = full();
      EXPECT_TRUE(AllClose(dx, dx_all, Tol{1e-6, 1e-5, 1e-6})) << "all_frozen=" << all_frozen;
      for (Param* p : ps.params()) {
        if (!p->trainable) {
          EXPECT_FALSE(p->grad.defined()) << p->name;
        } else {
          EXPECT_TRUE(AllClose(p->grad, g_all[p->name], Tol{1e-6, 1e-5, 1e-6})) << p->name;
        }
      }
    }
    s.params.SetTrainable([](const std::string&) { return true; });
  }
}

TEST(Rwkv6MixerTest, BackwardWithoutInputGradient) {
  // dx == nullptr: the tokenshift parameters' gradients still come out right.
  MixerCase s(Rwkv6Sizes{}, Rwkv6Flags{}, 2, 19, 1300);
  Rng rng(1301);
  Tensor dy = RandomTensor(s.x.shape(), rng);
  std::vector<Tensor*> grads = AllGrads(s.params);
  std::vector<std::vector<double>> with_dx;
  for (int pass = 0; pass < 2; ++pass) {
    s.params.ZeroGrads();
    auto m = s.Mixer();
    MixerContext ctx = s.Ctx(true);
    RunForward(*m, s, ctx);
    Tensor dx = Tensor::Zeros(s.x.shape());
    m->Backward(dy, ctx, pass == 0 ? &dx : nullptr);
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (pass == 0) with_dx.push_back(ToF64(*grads[i]));
      else EXPECT_TRUE(AllClose(*grads[i], with_dx[i], Tol{0, 0, 0})) << "gradient #" << i;
    }
  }
}

// --- Declaration and init -----------------------------------------------------------------

TEST(Rwkv6MixerTest, DeclaresTheReleasedNamesAndShapes) {
  // The released qwerky6 setting (§9.2) at C = 40, H = 4, KV = 2, N = 10.
  Rwkv6Flags f;
  f.attention_output_bias = true;
  const StudentConfig cfg = MakeRwkv6Config(Rwkv6Sizes{}, f);
  ParamSet ps;
  DeclareRwkv6MixerParams(cfg, 3, ps);
  const std::string p = "model.layers.3.self_attn.";
  const std::map<std::string, Shape> want = {
      {"q_proj.weight", {40, 40}},   {"q_proj.bias", {40}},        {"k_proj.weight", {20, 40}},
      {"k_proj.bias", {20}},         {"v_proj.weight", {20, 40}},  {"v_proj.bias", {20}},
      {"o_proj.weight", {40, 40}},   {"o_proj.bias", {40}},        {"gate.weight", {40, 40}},
      {"time_maa_x", {1, 1, 40}},    {"time_maa_r", {1, 1, 40}},   {"time_maa_k", {1, 1, 40}},
      {"time_maa_v", {1, 1, 40}},    {"time_maa_w", {1, 1, 40}},   {"time_maa_g", {1, 1, 40}},
      {"time_maa_w1", {40, 30}},     {"time_maa_w2", {5, 6, 40}},  {"time_decay", {1, 1, 40}},
      {"time_decay_w1", {40, 8}},    {"time_decay_w2", {8, 40}}};
  EXPECT_EQ(ps.size(), want.size());
  for (const auto& [name, shape] : want) {
    const Param* q = ps.Find(p + name);
    ASSERT_NE(q, nullptr) << name;
    EXPECT_EQ(q->value.shape(), shape) << name;
    EXPECT_EQ(q->group, 1) << name;
  }
  // The other variants: LoRA gate (g2 is A wide), GroupNorm, no tokenshift, no biases.
  Rwkv6Sizes sz{17, 3, 1, 8, 4, 5, 3, 2};
  Rwkv6Flags g{false, 2, true, true, false, false, false};
  ParamSet ps2;
  DeclareRwkv6MixerParams(MakeRwkv6Config(sz, g), 0, ps2);
  const std::string p0 = "model.layers.0.self_attn.";
  EXPECT_EQ(ps2.size(), 11u);
  EXPECT_EQ(ps2.Get(p0 + "g1").value.shape(), (Shape{17, 3}));
  EXPECT_EQ(ps2.Get(p0 + "g2").value.shape(), (Shape{3, 24}));
  EXPECT_EQ(ps2.Get(p0 + "ln_x.weight").value.shape(), (Shape{24}));
  EXPECT_EQ(ps2.Get(p0 + "ln_x.bias").value.shape(), (Shape{24}));
  EXPECT_EQ(ps2.Get(p0 + "o_proj.weight").value.shape(), (Shape{17, 24}));
  EXPECT_EQ(ps2.Find(p0 + "q_proj.bias"), nullptr);
  EXPECT_EQ(ps2.Find(p0 + "time_maa_x"), nullptr);
  EXPECT_EQ(ps2.Find(p0 + "gate.weight"), nullptr);

  // Teacher-copied names: all declared (with attention_bias), none touched by the init.
  const std::vector<std::string> copied = Rwkv6TeacherCopiedNames();
  EXPECT_EQ(copied, (std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight",
                                              "k_proj.bias", "v_proj.weight", "v_proj.bias",
                                              "o_proj.weight"}));
  for (const std::string& n : copied) ps.Get(p + n).value.Fill(0.25f);
  InitRng irng(1);
  InitRwkv6MixerNewParams(cfg, 3, ps, irng);
  for (const std::string& n : copied) {
    const Tensor& v = ps.Get(p + n).value;
    for (std::int64_t i = 0; i < v.numel(); ++i) ASSERT_EQ(v.f32()[i], 0.25f) << n;
  }
}

TEST(Rwkv6MixerTest, InitDecayRampMatchesTheFormula) {
  // A 7B-like A (28 heads of 128 = 3584 channels, 28 layers) on a small C.
  const Rwkv6Sizes sz{64, 28, 4, 128, 8, 16, 8, 28};
  const StudentConfig cfg = MakeRwkv6Config(sz, Rwkv6Flags{});
  const std::int64_t A = 28 * 128;
  for (int layer : {0, 13, 27}) {
    ParamSet ps;
    DeclareRwkv6MixerParams(cfg, layer, ps);
    InitRng rng(42);
    InitRwkv6MixerNewParams(cfg, layer, ps, rng);
    const float* td = ps.Get(Rwkv6MixerPrefix(layer) + "time_decay").value.f32();
    const double expo = 0.7 + 1.3 * layer / 27.0;
    for (std::int64_t n = 0; n < A; ++n)
      ASSERT_EQ(td[n], static_cast<float>(-6.0 + 5.0 * std::pow(static_cast<double>(n) / (A - 1), expo)))
          << "layer " << layer << " channel " << n;
    EXPECT_EQ(td[0], -6.0f);
    EXPECT_EQ(td[A - 1], -1.0f);
    // At init the LoRA is zero, so w = exp(-exp(time_decay)): about 0.9975 ... 0.69 (§7.5).
    const double w_first = std::exp(-std::exp(static_cast<double>(td[0])));
    const double w_last = std::exp(-std::exp(static_cast<double>(td[A - 1])));
    EXPECT_NEAR(w_first, 0.99752, 1e-5);
    EXPECT_NEAR(w_last, 0.69220, 1e-5);
    // Monotone ramp: decays get stronger with the channel index.
    for (std::int64_t n = 1; n < A; ++n) ASSERT_GE(td[n], td[n - 1]);
  }
  // One layer (L = 1): the exponent is 0.7, no division by zero; one channel: -6.
  Rwkv6Sizes one{8, 1, 1, 2, 2, 2, 2, 1};
  const StudentConfig c1 = MakeRwkv6Config(one, Rwkv6Flags{});
  ParamSet ps;
  DeclareRwkv6MixerParams(c1, 0, ps);
  InitRng rng(3);
  InitRwkv6MixerNewParams(c1, 0, ps, rng);
  const float* td = ps.Get(Rwkv6MixerPrefix(0) + "time_decay").value.f32();
  EXPECT_EQ(td[0], -6.0f);
  EXPECT_EQ(td[1], -1.0f);
}

TEST(Rwkv6MixerTest, InitValuesOfTheNewParameters) {
  Rwkv6Flags f;
  f.groupnorm_att = true;
  f.attention_output_bias = true;
  for (int gate = 1; gate <= 2; ++gate) {
    f.gate_rank_type = gate;
    const StudentConfig cfg = MakeRwkv6Config(Rwkv6Sizes{}, f);
    ParamSet ps;
    DeclareRwkv6MixerParams(cfg, 0, ps);
    Rng rng(5);
    testing::RandomizeRwkv6Params(cfg, 0, ps, rng);  // init must overwrite every new value
    InitRng irng(6);
    InitRwkv6MixerNewParams(cfg, 0, ps, irng);
    const std::string p = Rwkv6MixerPrefix(0);
    auto all = [&](const std::string& n, float v) {
      const Tensor& t = ps.Get(p + n).value;
      for (std::int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.f32()[i], v) << n << "[" << i << "]";
    };
    auto uniform001 = [&](const std::string& n) {
      const Tensor& t = ps.Get(p + n).value;
      double mx = 0;
      for (std::int64_t i = 0; i < t.numel(); ++i) {
        ASSERT_LE(std::fabs(t.f32()[i]), 0.01f) << n;
        mx = std::max(mx, std::fabs(static_cast<double>(t.f32()[i])));
      }
      EXPECT_GT(mx, 0.005) << n;
    };
    all("time_maa_x", 1.0f);
    for (const char* c : {"r", "k", "v", "w", "g"}) all(std::string("time_maa_") + c, 0.0f);
    all("time_maa_w1", 0.0f);
    uniform001("time_maa_w2");
    all("time_decay_w1", 0.0f);
    uniform001("time_decay_w2");
    all("ln_x.weight", 1.0f);
    all("ln_x.bias", 0.0f);
    all("o_proj.bias", 0.0f);
    if (gate == 1) {
      all("gate.weight", 0.0f);
    } else {
      all("g1", 0.0f);
      // g2 [r_g, A] = orth x 0.1 with rows < cols: g2 g2^T = 0.01 I.
      const Tensor& g2 = ps.Get(p + "g2").value;
      const std::int64_t r = g2.dim(0), a = g2.dim(1);
      for (std::int64_t i = 0; i < r; ++i)
        for (std::int64_t j = 0; j < r; ++j) {
          double dot = 0;
          for (std::int64_t c = 0; c < a; ++c) dot += static_cast<double>(g2.f32()[i * a + c]) * g2.f32()[j * a + c];
          EXPECT_NEAR(dot, i == j ? 0.01 : 0.0, 1e-6);
        }
    }
  }
}

TEST(Rwkv6MixerTest, AtInitTokenshiftIsIdentityAndGateIsHalf) {
  // Released setting with random "teacher" projections and the §3.3 init of the rest.
  MixerCase s(Rwkv6Sizes{}, Rwkv6Flags{}, 2, 19, 1400);
  InitRng irng(1401);
  InitRwkv6MixerNewParams(s.cfg, kLayer, s.params, irng);
  // The reference: every x_c is x exactly, g is exactly 0.5, log w = max(-exp(time_decay), -5).
  ref::Rwkv6RefTrace tr;
  const std::vector<double> xv = ToF64(s.x);
  const std::vector<double> y_ref = s.Ref(RefParamsOf(s.params, kLayer), xv, &tr);
  for (int c = 0; c < 5; ++c) EXPECT_EQ(tr.xs[c], xv) << "x_" << "rkvwg"[c];
  for (double g : tr.g) ASSERT_EQ(g, 0.5);
  const float* td = s.params.Get(Rwkv6MixerPrefix(kLayer) + "time_decay").value.f32();
  const std::int64_t A = 40;
  for (std::size_t i = 0; i < tr.logw.size(); ++i) {
    const double w = std::exp(tr.logw[i]);
    ASSERT_NEAR(w, std::exp(-std::exp(static_cast<double>(td[i % A]))), 1e-12);
  }
  // The fp32 mixer: y(init) == 0.5 * y of the same mixer without tokenshift and gate.
  auto m = s.Mixer();
  MixerContext ctx = s.Ctx(false);
  Tensor y = RunForward(*m, s, ctx);
  EXPECT_TRUE(AllClose(y, y_ref, Scaled(kRwkv6FwdTol, y_ref)));

  Rwkv6Flags plain;
  plain.use_tokenshift = false;
  plain.gate_rank_type = 0;
  const StudentConfig cfg2 = MakeRwkv6Config(Rwkv6Sizes{}, plain);
  ParamSet ps2;
  DeclareRwkv6MixerParams(cfg2, kLayer, ps2);
  for (Param* p : ps2.params()) {
    const Tensor& src = s.params.Get(p->name).value;
    std::copy(src.f32(), src.f32() + src.numel(), p->value.f32());
  }
  Rwkv6Mixer m2(cfg2, kLayer, ps2);
  Tensor y2 = Tensor::Empty(s.x.shape());
  m2.Forward(s.x, ctx, y2);
  std::vector<double> half = ToF64(y2);
  for (double& v : half) v *= 0.5;
  EXPECT_TRUE(AllClose(y, half, Tol{1e-7, 1e-6, 1e-7}));
}

// Forward+backward timing (not a test): B=8, T=128, C=128, H=4, KV=2, N=32, released setting.
// Run with --gtest_also_run_disabled_tests --gtest_filter='*Timing*'.
TEST(Rwkv6MixerTest, DISABLED_Timing) {
  const Rwkv6Sizes sz{128, 4, 2, 32, 32, 64, 32, 2};
  for (std::int64_t chunk : {0, 16}) {
    MixerCase s(sz, Rwkv6Flags{}, 8, 128, 77);
    Rng rng(78);
    Tensor dy = RandomTensor(s.x.shape(), rng);
    auto m = s.Mixer(chunk);
    double best_f = 1e9, best_fb = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      MixerContext ctx = s.Ctx(true);
      const auto t0 = std::chrono::steady_clock::now();
      RunForward(*m, s, ctx);
      const auto t1 = std::chrono::steady_clock::now();
      Tensor dx = Tensor::Zeros(s.x.shape());
      m->Backward(dy, ctx, &dx);
      const auto t2 = std::chrono::steady_clock::now();
      best_f = std::min(best_f, std::chrono::duration<double, std::milli>(t1 - t0).count());
      best_fb = std::min(best_fb, std::chrono::duration<double, std::milli>(t2 - t0).count());
    }
    std::printf("rwkv6 mixer B=8 T=128 C=128 H=4 KV=2 N=32 chunk=%lld: fwd %.2f ms, fwd+bwd %.2f ms\n",
                static_cast<long long>(chunk), best_f, best_fb);
  }
}

}  // namespace
}  // namespace radlads
