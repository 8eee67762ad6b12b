// RAD-RWKV7 mixer: parameter declaration and spec init, the fp32 forward against the fp64
// reference over every flag combination that matters, the backward (inputs, v_first and every
// parameter) against central finite differences of the reference, the accumulate convention,
// frozen parameters, recurrent vs chunked DPLR, and two layers sharing one MixerContext (the
// v_first gradient path). Set RWKV7_TEST_VERBOSE=1 to print the worst error per comparison.
#include "pipeline/rwkv7_mixer.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops/rope.h"
#include "pipeline/ref/rwkv7_mixer_ref.h"
#include "tests/pipeline/rwkv7_test_util.h"

namespace radlads {
namespace {

using rwkv7test::Dims;
using rwkv7test::Flags;
using rwkv7test::Tol;
using rwkv7test::ToF64;

// fp32 mixer vs fp64 reference, forward (y, v_first_out). Measured worst over the 100-config
// sweep: relative RMS 9.7e-7, element-wise 1.3e-5 x (rms(ref) + |ref|), both with GroupNorm
// (a head whose output has a small variance amplifies the fp32 rounding by its rstd).
constexpr Tol kFwdTol{5e-5, 2e-4, 5e-6};
// fp32 analytic gradients vs central differences (h = 1e-6) of the fp64 reference. Measured
// worst: relative RMS 5.2e-6 (one layer) / 8.4e-6 (two layers, k_proj.bias, a short sum with
// cancellation), element-wise 1.5e-5 x (rms(ref) + |ref|).
constexpr Tol kGradTol{1e-4, 1e-3, 4e-5};
// Recurrent (chunk 0) vs chunked (chunk 16) DPLR inside the mixer, both fp32; also the frozen
// vs trainable comparison. Measured worst: relative RMS 6.6e-7, element-wise 5.6e-6.
constexpr Tol kChunkTol{3e-5, 1e-4, 3e-6};

bool Verbose() {
  const char* v = std::getenv("RWKV7_TEST_VERBOSE");
  return v != nullptr && v[0] == '1';
}

void Report(const std::string& what, const std::vector<double>& got, const std::vector<double>& ref) {
  if (!Verbose()) return;
  const rwkv7test::Err e = rwkv7test::Measure(got, ref);
  std::printf("%-48s rel_rms %.3g  elem %.3g\n", what.c_str(), e.rel_rms, e.elem);
}

#define EXPECT_CLOSE(got, ref, tol, what)                                     \
  do {                                                                        \
    const std::vector<double> got_ = (got);                                   \
    Report((what), got_, (ref));                                              \
    EXPECT_TRUE(rwkv7test::AllClose(got_, (ref), (tol), (what)));             \
  } while (0)

// The sizes of the brief: odd, not multiples of any tile or chunk.
constexpr Dims kDims{40, 4, 2, 10, 3, 6, 8, 6, 8};
constexpr std::int64_t kB = 2, kT = 19, kPos0 = 5;
// Small sizes for the finite-difference checks (A = 16 != C = 12).
constexpr Dims kSmall{12, 4, 2, 4, 3, 3, 4, 5, 3};
constexpr std::int64_t kSmallB = 2, kSmallT = 5, kSmallPos0 = 3;

// One training step of a mixer.
struct Step {
  Tensor y, dx, v_first_out, dv_first;
};

// Forward + backward. Layer 0: dvf (may be undefined) is placed in ctx.dv_first and flows into
// the value path. Layer >= 1: v_first is the context's value, its gradient is returned.
Step RunStep(Rwkv7Mixer& m, const ops::RopeTable& rope, std::int64_t pos0, const Tensor& x,
             const Tensor& v_first, const Tensor& dy, const Tensor& dvf) {
  MixerContext ctx;
  ctx.batch = x.dim(0);
  ctx.time = x.dim(1);
  ctx.pos0 = pos0;
  ctx.rope = &rope;
  ctx.need_backward = true;
  if (m.layer() > 0) ctx.v_first = v_first;
  Step s;
  s.y = Tensor::Empty(x.shape());
  m.Forward(x, ctx, s.y);
  if (m.layer() == 0) {
    s.v_first_out = ctx.v_first.Clone();
    if (dvf.defined()) ctx.dv_first = dvf.Clone();
  } else {
    ctx.dv_first = Tensor::Zeros(v_first.shape());
  }
  s.dx = Tensor::Zeros(x.shape());
  m.Backward(dy, ctx, &s.dx);
  if (m.layer() > 0) s.dv_first = ctx.dv_first;
  return s;
}

struct Problem {
  StudentConfig cfg;
  int layer;
  ParamSet params;
  Tensor x, v_first, dy, dvf;
  std::int64_t B, T, pos0;
  ops::RopeTable rope;
};

std::unique_ptr<Problem> MakeProblem(const Dims& d, const Flags& f, int layer, std::int64_t B,
                                     std::int64_t T, std::int64_t pos0, std::uint64_t seed) {
  auto p = std::make_unique<Problem>();
  p->cfg = rwkv7test::MakeConfig(d, f);
  p->layer = layer;
  p->B = B;
  p->T = T;
  p->pos0 = pos0;
  testing::Rng rng(seed);
  DeclareRwkv7MixerParams(p->cfg, layer, p->params);
  rwkv7test::RandomizeParams(p->cfg, layer, p->params, rng);
  p->params.SetTrainable([](const std::string&) { return true; });
  const std::int64_t A = d.H * d.N;
  p->x = rwkv7test::RandomTensor({B, T, d.C}, rng);
  p->dy = rwkv7test::RandomTensor({B, T, d.C}, rng);
  if (layer > 0) p->v_first = rwkv7test::RandomTensor({B, T, A}, rng);
  p->dvf = rwkv7test::RandomTensor({B, T, A}, rng);
  p->rope = ops::MakeRopeTable(pos0 + T, d.N, p->cfg.base.rope_theta);
  return p;
}

ref::Rwkv7RefResult RefForward(const Problem& p, const ref::Rwkv7RefParams& rp,
                               const std::vector<double>& x, const std::vector<double>* vf) {
  return ref::Rwkv7MixerRefForward(p.cfg, p.layer, rp, p.B, p.T, p.pos0, x, vf);
}

std::vector<Flags> AllFlagCombos() {
  std::vector<Flags> out;
  for (int bal = 0; bal < 2; ++bal)
    for (int gn = 0; gn < 2; ++gn)
      for (int rope = 0; rope < 2; ++rope)
        for (int gate = 0; gate < 3; ++gate)
          for (int obias = 0; obias < 2; ++obias) {
            Flags f;
            f.balance_state = bal == 0;
            f.groupnorm_att = gn == 1;
            f.use_rope = rope == 1;
            f.gate_rank_type = gate;
            f.attention_output_bias = obias == 1;
            out.push_back(f);
          }
  // Without q/k/v biases.
  Flags nb;
  nb.attention_bias = false;
  out.push_back(nb);
  nb.balance_state = false;
  nb.groupnorm_att = true;
  nb.use_rope = true;
  out.push_back(nb);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Declaration and init.

TEST(Rwkv7MixerParams, DeclaresTheReleasedLayout) {
  Flags f;
  f.groupnorm_att = true;
  f.attention_output_bias = true;
  const StudentConfig cfg = rwkv7test::MakeConfig(kDims, f);
  ParamSet ps;
  DeclareRwkv7MixerParams(cfg, 1, ps);
  const std::int64_t C = 40, A = 40, KVN = 20;
  const std::map<std::string, Shape> want = {
      {"q_proj.weight", {A, C}}, {"q_proj.bias", {A}},     {"k_proj.weight", {KVN, C}},
      {"k_proj.bias", {KVN}},    {"v_proj.weight", {KVN, C}}, {"v_proj.bias", {KVN}},
      {"o_proj.weight", {C, A}}, {"o_proj.bias", {C}},     {"w0", {1, 1, A}},
      {"w1", {C, 6}},            {"w2", {6, A}},           {"a0", {1, 1, A}},
      {"a1", {C, 8}},            {"a2", {8, A}},           {"v0", {1, 1, A}},
      {"v1", {C, 6}},            {"v2", {6, A}},           {"g1", {C, 8}},
      {"g2", {8, A}},            {"k_k", {1, 1, A}},       {"k_a", {1, 1, A}},
      {"r_k", {4, 10}},          {"ln_x.weight", {A}},     {"ln_x.bias", {A}}};
  EXPECT_EQ(ps.size(), want.size());
  for (const auto& [name, shape] : want) {
    const Param* p = ps.Find("model.layers.1.self_attn." + name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->value.shape(), shape) << name;
    EXPECT_EQ(p->group, 1) << name;
    for (std::int64_t i = 0; i < p->value.numel(); ++i) ASSERT_EQ(p->value.f32()[i], 0.0f) << name;
  }
  for (const std::string& s : Rwkv7TeacherCopiedNames())
    EXPECT_NE(ps.Find("model.layers.1.self_attn." + s), nullptr) << s;

  // Gate type 1, no GroupNorm, no biases; A != C.
  Flags g;
  g.gate_rank_type = 1;
  g.attention_bias = false;
  const StudentConfig cfg1 = rwkv7test::MakeConfig(kSmall, g);
  ParamSet ps1;
  DeclareRwkv7MixerParams(cfg1, 0, ps1);
  EXPECT_EQ(ps1.Get("model.layers.0.self_attn.gate.weight").value.shape(), Shape({16, 12}));
  EXPECT_EQ(ps1.Get("model.layers.0.self_attn.w0").value.shape(), Shape({1, 1, 16}));
  EXPECT_EQ(ps1.Get("model.layers.0.self_attn.o_proj.weight").value.shape(), Shape({12, 16}));
  for (const char* absent : {"q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias", "g1",
                             "g2", "ln_x.weight", "ln_x.bias"})
    EXPECT_EQ(ps1.Find(std::string("model.layers.0.self_attn.") + absent), nullptr) << absent;
  Flags none;
  none.gate_rank_type = 0;
  ParamSet ps0;
  DeclareRwkv7MixerParams(rwkv7test::MakeConfig(kSmall, none), 2, ps0);
  EXPECT_EQ(ps0.Find("model.layers.2.self_attn.gate.weight"), nullptr);
  EXPECT_EQ(ps0.Find("model.layers.2.self_attn.g1"), nullptr);
}

TEST(Rwkv7MixerParams, InitValues) {
  Flags f;
  f.groupnorm_att = true;
  f.attention_output_bias = true;
  Dims d = kDims;
  d.L = 5;
  const StudentConfig cfg = rwkv7test::MakeConfig(d, f);
  const std::int64_t A = 40;
  for (int layer : {0, 2, 4}) {
    ParamSet ps;
    DeclareRwkv7MixerParams(cfg, layer, ps);
    InitRng rng(7);
    InitRwkv7MixerNewParams(cfg, layer, ps, rng);
    auto val = [&](const char* n) { return ToF64(ps.Get(Rwkv7MixerPrefix(layer) + n).value); };
    const std::vector<double> w0 = val("w0");
    const double expo = 0.85 + std::sqrt(layer / 4.0);
    for (std::int64_t n = 0; n < A; ++n)
      EXPECT_NEAR(w0[n], -6.5 + 5.0 * std::pow(n / double(A - 1), expo), 1e-5) << n;
    auto all = [&](const char* n, double v) {
      for (double e : val(n)) ASSERT_EQ(e, v) << n;
    };
    all("w1", 0.0);
    all("a0", 0.0);
    all("a1", 0.0);
    all("v0", 1.0);
    all("v1", 0.0);
    all("g1", 0.0);
    all("k_k", 0.85f);
    all("k_a", 1.0);
    all("r_k", 0.0);
    all("ln_x.weight", 1.0);
    all("ln_x.bias", 0.0);
    all("o_proj.bias", 0.0);
    // orth x 0.1 on [r, A] with r < A: orthonormal rows times 0.1.
    for (const char* n : {"w2", "a2", "v2", "g2"}) {
      const Tensor t = ps.Get(Rwkv7MixerPrefix(layer) + n).value;
      const std::int64_t rows = t.dim(0), cols = t.dim(1);
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < rows; ++j) {
          double s = 0;
          for (std::int64_t c = 0; c < cols; ++c)
            s += double(t.f32()[i * cols + c]) * t.f32()[j * cols + c];
          EXPECT_NEAR(s, i == j ? 0.01 : 0.0, 1e-7) << n << " " << i << "," << j;
        }
    }
  }
  // L = 1 and gate type 1 are defined.
  Flags g1;
  g1.gate_rank_type = 1;
  Dims d1 = kSmall;
  d1.L = 1;
  const StudentConfig cfg1 = rwkv7test::MakeConfig(d1, g1);
  ParamSet ps;
  DeclareRwkv7MixerParams(cfg1, 0, ps);
  ps.Get("model.layers.0.self_attn.gate.weight").value.Fill(3.0f);
  InitRng rng(1);
  InitRwkv7MixerNewParams(cfg1, 0, ps, rng);
  for (double e : ToF64(ps.Get("model.layers.0.self_attn.gate.weight").value)) ASSERT_EQ(e, 0.0);
  const std::vector<double> w0 = ToF64(ps.Get("model.layers.0.self_attn.w0").value);
  EXPECT_NEAR(w0.front(), -6.5, 1e-6);
  EXPECT_NEAR(w0.back(), -1.5, 1e-6);
}

// docs/spec.md §7.5: at init w spans about 0.9991 .. 0.896 at layer 0, a = 0.5, nu = sigmoid(1), and
// with G1 = 0 the gate is 0.5 x the column sums of G2 (small), so the output is near zero.
TEST(Rwkv7MixerInit, SanityAtInit) {
  Dims d{64, 4, 2, 16, 4, 32, 32, 32, 32};
  const StudentConfig cfg = rwkv7test::MakeConfig(d, Flags{});
  const std::int64_t B = 2, T = 9, A = 64;
  ParamSet ps;
  testing::Rng rng(11);
  InitRng irng(12);
  for (int l = 0; l < 2; ++l) {
    DeclareRwkv7MixerParams(cfg, l, ps);
    InitRwkv7MixerNewParams(cfg, l, ps, irng);
    // The teacher copies: random projections.
    for (const std::string& s : Rwkv7TeacherCopiedNames()) {
      Tensor& t = ps.Get(Rwkv7MixerPrefix(l) + s).value;
      t = rwkv7test::RandomTensor(t.shape(), rng, 0.15f).Clone();
    }
  }
  ps.SetTrainable([](const std::string&) { return true; });
  Rwkv7Mixer m0(cfg, 0, ps), m1(cfg, 1, ps);
  const Tensor x = rwkv7test::RandomTensor({B, T, 64}, rng);
  MixerContext ctx;
  ctx.batch = B;
  ctx.time = T;
  Tensor y0 = Tensor::Empty({B, T, 64}), y1 = Tensor::Empty({B, T, 64});
  m0.Forward(x, ctx, y0);
  m1.Forward(x, ctx, y1);

  // Decay: w = exp(log w) per channel, independent of x (W1 = 0).
  const float* lw = m0.log_decay().f32();
  double wmax = 0, wmin = 1;
  for (std::int64_t i = 0; i < B * T * A; ++i) {
    const double w = std::exp(double(lw[i]));
    wmax = std::max(wmax, w);
    wmin = std::min(wmin, w);
    EXPECT_EQ(lw[i], lw[i % A]);
  }
  EXPECT_NEAR(wmax, 0.99909, 2e-5);
  EXPECT_NEAR(wmin, 0.8956, 5e-4);
  EXPECT_GT(std::exp(double(lw[0])), std::exp(double(lw[A - 1])));  // ramp: slowest decay first
  for (std::int64_t i = 0; i < B * T * A; ++i) ASSERT_EQ(m0.iclr().f32()[i], 0.5f);
  EXPECT_FALSE(m0.value_mix().defined());
  const float nu = 1.0f / (1.0f + std::exp(-1.0f));
  EXPECT_NEAR(nu, 0.7311, 1e-4);
  for (std::int64_t i = 0; i < B * T * A; ++i) ASSERT_NEAR(m1.value_mix().f32()[i], nu, 1e-7);
  // Gate: 0.5 x column sums of G2.
  const Tensor g2 = ps.Get("model.layers.0.self_attn.g2").value;
  double gmax = 0;
  for (std::int64_t c = 0; c < A; ++c) {
    double s = 0;
    for (std::int64_t r = 0; r < 32; ++r) s += g2.f32()[r * A + c];
    for (std::int64_t i = 0; i < B * T; ++i)
      ASSERT_NEAR(m0.gate().f32()[i * A + c], 0.5 * s, 1e-6) << c;
    gmax = std::max(gmax, std::fabs(0.5 * s));
  }
  EXPECT_LT(gmax, 0.1);
  EXPECT_GT(gmax, 1e-4);
}

// ---------------------------------------------------------------------------------------------
// Forward vs the fp64 reference.

TEST(Rwkv7MixerForward, MatchesReferenceForEveryFlagCombination) {
  std::uint64_t seed = 100;
  for (const Flags& f : AllFlagCombos()) {
    for (int layer : {0, 1}) {
      const std::string name = rwkv7test::FlagsName(f, layer);
      SCOPED_TRACE(name);
      auto p = MakeProblem(kDims, f, layer, kB, kT, f.use_rope ? kPos0 : 0, ++seed);
      Rwkv7Mixer m(p->cfg, layer, p->params);
      MixerContext ctx;
      ctx.batch = kB;
      ctx.time = kT;
      ctx.pos0 = p->pos0;
      ctx.rope = &p->rope;
      ctx.need_backward = (seed % 2) == 0;  // both modes
      if (layer > 0) ctx.v_first = p->v_first;
      Tensor y = Tensor::Empty(p->x.shape());
      m.Forward(p->x, ctx, y);
      const std::vector<double> vf = layer > 0 ? ToF64(p->v_first) : std::vector<double>();
      const ref::Rwkv7RefResult r =
          RefForward(*p, rwkv7test::RefParamsOf(layer, p->params), ToF64(p->x),
                     layer > 0 ? &vf : nullptr);
      EXPECT_CLOSE(ToF64(y), r.y, kFwdTol, name + " y");
      if (layer == 0) {
        ASSERT_TRUE(ctx.v_first.defined());
        EXPECT_EQ(ctx.v_first.shape(), Shape({kB, kT, 40}));
        EXPECT_CLOSE(ToF64(ctx.v_first), r.v_first_out, kFwdTol, name + " v_first");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward vs central differences of the reference.

// L = sum(y * dy) (+ sum(v_first_out * dvf) at layer 0).
void CheckGradients(const Flags& f, int layer, std::uint64_t seed) {
  const std::string name = rwkv7test::FlagsName(f, layer);
  SCOPED_TRACE(name);
  auto p = MakeProblem(kSmall, f, layer, kSmallB, kSmallT, kSmallPos0, seed);
  Rwkv7Mixer m(p->cfg, layer, p->params);
  const Step s = RunStep(m, p->rope, p->pos0, p->x, p->v_first, p->dy, p->dvf);

  ref::Rwkv7RefParams rp = rwkv7test::RefParamsOf(layer, p->params);
  std::vector<double> x = ToF64(p->x);
  std::vector<double> vf = layer > 0 ? ToF64(p->v_first) : std::vector<double>();
  const std::vector<double> dy = ToF64(p->dy), dvf = ToF64(p->dvf);
  auto loss = [&]() {
    const ref::Rwkv7RefResult r = RefForward(*p, rp, x, layer > 0 ? &vf : nullptr);
    double l = rwkv7test::Dot(r.y, dy);
    if (layer == 0) l += rwkv7test::Dot(r.v_first_out, dvf);
    return l;
  };
  EXPECT_CLOSE(ToF64(s.dx), rwkv7test::NumericGrad(&x, loss), kGradTol, name + " dx");
  if (layer > 0) {
    EXPECT_CLOSE(ToF64(s.dv_first), rwkv7test::NumericGrad(&vf, loss), kGradTol,
                 name + " dv_first");
  }
  for (const Param* q : p->params.params()) {
    const std::string sfx = rwkv7test::Suffix(q->name);
    ASSERT_TRUE(q->grad.defined()) << q->name;
    const std::vector<double> fd = rwkv7test::NumericGrad(&rp[sfx], loss);
    const bool unused = sfx == "r_k" || (layer == 0 && (sfx == "v0" || sfx == "v1" || sfx == "v2"));
    if (unused) {
      for (double e : ToF64(q->grad)) ASSERT_EQ(e, 0.0) << q->name;
      for (double e : fd) ASSERT_EQ(e, 0.0) << q->name;
      continue;
    }
    EXPECT_CLOSE(ToF64(q->grad), fd, kGradTol, name + " d" + sfx);
  }
}

TEST(Rwkv7MixerBackward, MatchesFiniteDifferences) {
  std::vector<std::pair<Flags, int>> cases;
  auto add = [&](bool bal, bool gn, bool rope, int gate, bool bias, bool obias, int layer) {
    Flags f;
    f.balance_state = bal;
    f.groupnorm_att = gn;
    f.use_rope = rope;
    f.gate_rank_type = gate;
    f.attention_bias = bias;
    f.attention_output_bias = obias;
    cases.emplace_back(f, layer);
  };
  add(true, false, false, 2, true, false, 1);
  add(true, true, true, 1, true, false, 0);
  add(false, true, true, 2, true, true, 1);
  add(false, false, true, 0, false, false, 0);
  add(true, true, false, 0, true, true, 1);
  add(false, false, false, 1, true, false, 1);
  add(true, false, true, 2, true, true, 0);
  add(false, true, false, 2, true, false, 0);
  std::uint64_t seed = 500;
  for (const auto& [f, layer] : cases) CheckGradients(f, layer, ++seed);
}

// Backward ACCUMULATES into dx, the parameter gradients and ctx.dv_first.
TEST(Rwkv7MixerBackward, Accumulates) {
  Flags f;
  f.balance_state = false;
  f.groupnorm_att = true;
  f.use_rope = true;
  f.attention_output_bias = true;
  for (int layer : {0, 1}) {
    SCOPED_TRACE(layer);
    auto p = MakeProblem(kDims, f, layer, kB, kT, kPos0, 900 + layer);
    Rwkv7Mixer m(p->cfg, layer, p->params);
    const Step fresh = RunStep(m, p->rope, p->pos0, p->x, p->v_first, p->dy, p->dvf);
    std::map<std::string, std::vector<double>> g1;
    for (Param* q : p->params.params()) g1[q->name] = ToF64(q->grad);
    // Prefill everything with random values, run again, subtract.
    testing::Rng rng(77);
    std::map<std::string, std::vector<double>> pre;
    for (Param* q : p->params.params()) {
      q->grad = rwkv7test::RandomTensor(q->value.shape(), rng).Clone();
      pre[q->name] = ToF64(q->grad);
    }
    // The mixer holds handles to the old grad buffers: rebuild it on the new ones.
    Rwkv7Mixer m2(p->cfg, layer, p->params);
    MixerContext ctx;
    ctx.batch = kB;
    ctx.time = kT;
    ctx.pos0 = p->pos0;
    ctx.rope = &p->rope;
    if (layer > 0) ctx.v_first = p->v_first;
    Tensor y = Tensor::Empty(p->x.shape());
    m2.Forward(p->x, ctx, y);
    const Tensor dvf_pre = rwkv7test::RandomTensor({kB, kT, 40}, rng);
    ctx.dv_first = layer > 0 ? dvf_pre.Clone() : p->dvf.Clone();
    const Tensor dx_pre = rwkv7test::RandomTensor(p->x.shape(), rng);
    Tensor dx = dx_pre.Clone();
    m2.Backward(p->dy, ctx, &dx);
    auto diff = [](const Tensor& a, const Tensor& b) {
      std::vector<double> d = ToF64(a), e = ToF64(b);
      for (std::size_t i = 0; i < d.size(); ++i) d[i] -= e[i];
      return d;
    };
    const Tol acc{1e-5, 1e-4, 1e-6};
    EXPECT_CLOSE(diff(dx, dx_pre), ToF64(fresh.dx), acc, "dx");
    if (layer > 0) {
      EXPECT_CLOSE(diff(ctx.dv_first, dvf_pre), ToF64(fresh.dv_first), acc, "dv_first");
    } else {
      // Layer 0 reads ctx.dv_first and leaves it alone.
      EXPECT_EQ(ToF64(ctx.dv_first), ToF64(p->dvf));
    }
    for (Param* q : p->params.params()) {
      std::vector<double> d = ToF64(q->grad);
      for (std::size_t i = 0; i < d.size(); ++i) d[i] -= pre[q->name][i];
      EXPECT_CLOSE(d, g1[q->name], acc, q->name);
    }
  }
}

// Frozen parameters get no gradient (none is allocated) but their paths still reach dx, and the
// trainable parameters' gradients are unchanged. A null dx skips the input gradient.
TEST(Rwkv7MixerBackward, FrozenParameters) {
  Flags f;
  f.groupnorm_att = true;
  f.gate_rank_type = 1;
  f.use_rope = true;
  auto full = MakeProblem(kDims, f, 1, kB, kT, kPos0, 1234);
  auto frozen = MakeProblem(kDims, f, 1, kB, kT, kPos0, 1234);
  const std::vector<std::string> frozen_names = {"q_proj.weight", "v_proj.bias", "w1", "a0",
                                                 "v2", "gate.weight", "k_k", "ln_x.weight",
                                                 "o_proj.weight"};
  ParamSet fresh;
  DeclareRwkv7MixerParams(frozen->cfg, 1, fresh);
  for (Param* q : fresh.params()) q->value = frozen->params.Get(q->name).value;
  auto is_frozen = [&](const std::string& n) {
    for (const std::string& s : frozen_names)
      if (rwkv7test::Suffix(n) == s) return true;
    return false;
  };
  fresh.SetTrainable([&](const std::string& n) { return !is_frozen(n); });
  Rwkv7Mixer mf(full->cfg, 1, full->params), mz(frozen->cfg, 1, fresh);
  const Step a = RunStep(mf, full->rope, kPos0, full->x, full->v_first, full->dy, Tensor());
  const Step b = RunStep(mz, frozen->rope, kPos0, frozen->x, frozen->v_first, frozen->dy, Tensor());
  EXPECT_EQ(ToF64(a.y), ToF64(b.y));
  EXPECT_CLOSE(ToF64(b.dx), ToF64(a.dx), kChunkTol, "dx");
  EXPECT_CLOSE(ToF64(b.dv_first), ToF64(a.dv_first), kChunkTol, "dv_first");
  for (Param* q : fresh.params()) {
    if (is_frozen(q->name)) {
      EXPECT_FALSE(q->grad.defined()) << q->name;
      EXPECT_FALSE(q->trainable) << q->name;
    } else {
      EXPECT_CLOSE(ToF64(q->grad), ToF64(full->params.Get(q->name).grad), kChunkTol, q->name);
    }
  }
  // dx == nullptr.
  Rwkv7Mixer mn(full->cfg, 1, full->params);
  MixerContext ctx;
  ctx.batch = kB;
  ctx.time = kT;
  ctx.pos0 = kPos0;
  ctx.rope = &full->rope;
  ctx.v_first = full->v_first;
  Tensor y = Tensor::Empty(full->x.shape());
  mn.Forward(full->x, ctx, y);
  mn.Backward(full->dy, ctx, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Recurrent vs chunked DPLR inside the mixer.

TEST(Rwkv7MixerChunk, RecurrentAndChunkedAgree) {
  for (std::int64_t T : {kT, std::int64_t{40}}) {
    for (int layer : {0, 1}) {
      Flags f;
      f.balance_state = layer == 0;
      f.groupnorm_att = layer == 1;
      f.use_rope = true;
      SCOPED_TRACE(rwkv7test::FlagsName(f, layer) + " T" + std::to_string(T));
      auto p0 = MakeProblem(kDims, f, layer, kB, T, kPos0, 4000 + T + layer);
      auto p1 = MakeProblem(kDims, f, layer, kB, T, kPos0, 4000 + T + layer);
      Rwkv7MixerOptions rec, chk;
      chk.dplr_chunk = 16;
      Rwkv7Mixer m0(p0->cfg, layer, p0->params, rec), m1(p1->cfg, layer, p1->params, chk);
      const Step a = RunStep(m0, p0->rope, kPos0, p0->x, p0->v_first, p0->dy, p0->dvf);
      const Step b = RunStep(m1, p1->rope, kPos0, p1->x, p1->v_first, p1->dy, p1->dvf);
      EXPECT_CLOSE(ToF64(b.y), ToF64(a.y), kChunkTol, "y");
      EXPECT_CLOSE(ToF64(b.dx), ToF64(a.dx), kChunkTol, "dx");
      if (layer > 0) EXPECT_CLOSE(ToF64(b.dv_first), ToF64(a.dv_first), kChunkTol, "dv_first");
      for (Param* q : p0->params.params()) {
        const std::string sfx = rwkv7test::Suffix(q->name);
        if (sfx == "r_k" || (layer == 0 && sfx[0] == 'v' && sfx.size() == 2)) continue;
        EXPECT_CLOSE(ToF64(p1->params.Get(q->name).grad), ToF64(q->grad), kChunkTol, q->name);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Two layers sharing one MixerContext: layer 0 then layer 1 forward, backward in reverse order;
// gradients of L = sum(y0 * dy0) + sum(y1 * dy1) vs the reference composition.

TEST(Rwkv7MixerTwoLayers, SharedContextMatchesReferenceComposition) {
  Flags f;
  f.use_rope = true;
  f.groupnorm_att = true;
  f.gate_rank_type = 2;
  const StudentConfig cfg = rwkv7test::MakeConfig(kSmall, f);
  const std::int64_t B = kSmallB, T = kSmallT, C = kSmall.C, pos0 = kSmallPos0;
  testing::Rng rng(31337);
  ParamSet ps;
  for (int l = 0; l < 2; ++l) {
    DeclareRwkv7MixerParams(cfg, l, ps);
    rwkv7test::RandomizeParams(cfg, l, ps, rng);
  }
  ps.SetTrainable([](const std::string&) { return true; });
  const Tensor x0 = rwkv7test::RandomTensor({B, T, C}, rng);
  const Tensor x1 = rwkv7test::RandomTensor({B, T, C}, rng);
  const Tensor dy0 = rwkv7test::RandomTensor({B, T, C}, rng);
  const Tensor dy1 = rwkv7test::RandomTensor({B, T, C}, rng);
  const ops::RopeTable rope = ops::MakeRopeTable(pos0 + T, kSmall.N, cfg.base.rope_theta);

  Rwkv7Mixer m0(cfg, 0, ps), m1(cfg, 1, ps);
  MixerContext ctx;
  ctx.batch = B;
  ctx.time = T;
  ctx.pos0 = pos0;
  ctx.rope = &rope;
  Tensor y0 = Tensor::Empty({B, T, C}), y1 = Tensor::Empty({B, T, C});
  m0.Forward(x0, ctx, y0);
  m1.Forward(x1, ctx, y1);
  ctx.dv_first = Tensor::Zeros(ctx.v_first.shape());
  Tensor dx0 = Tensor::Zeros({B, T, C}), dx1 = Tensor::Zeros({B, T, C});
  m1.Backward(dy1, ctx, &dx1);
  m0.Backward(dy0, ctx, &dx0);

  std::array<ref::Rwkv7RefParams, 2> rp = {rwkv7test::RefParamsOf(0, ps),
                                           rwkv7test::RefParamsOf(1, ps)};
  std::vector<double> rx0 = ToF64(x0), rx1 = ToF64(x1);
  const std::vector<double> rdy0 = ToF64(dy0), rdy1 = ToF64(dy1);
  auto loss = [&]() {
    const ref::Rwkv7RefResult r0 = ref::Rwkv7MixerRefForward(cfg, 0, rp[0], B, T, pos0, rx0, nullptr);
    const ref::Rwkv7RefResult r1 =
        ref::Rwkv7MixerRefForward(cfg, 1, rp[1], B, T, pos0, rx1, &r0.v_first_out);
    return rwkv7test::Dot(r0.y, rdy0) + rwkv7test::Dot(r1.y, rdy1);
  };
  EXPECT_CLOSE(ToF64(dx0), rwkv7test::NumericGrad(&rx0, loss), kGradTol, "dx0");
  EXPECT_CLOSE(ToF64(dx1), rwkv7test::NumericGrad(&rx1, loss), kGradTol, "dx1");
  for (const Param* q : ps.params()) {
    const int l = q->name.rfind("model.layers.0.", 0) == 0 ? 0 : 1;
    const std::string sfx = rwkv7test::Suffix(q->name);
    const std::vector<double> fd = rwkv7test::NumericGrad(&rp[static_cast<std::size_t>(l)][sfx], loss);
    if (rwkv7test::Rms(fd) == 0.0) {
      for (double e : ToF64(q->grad)) ASSERT_EQ(e, 0.0) << q->name;
      continue;
    }
    EXPECT_CLOSE(ToF64(q->grad), fd, kGradTol, q->name);
  }
  // Layer 0's v_proj gets gradient from layer 1 (through v_first): without the dv_first path
  // its gradient would be that of layer 0 alone.
  ParamSet alone;
  DeclareRwkv7MixerParams(cfg, 0, alone);
  for (Param* q : alone.params()) q->value = ps.Get(q->name).value;
  alone.SetTrainable([](const std::string&) { return true; });
  Rwkv7Mixer a0(cfg, 0, alone);
  const Step s = RunStep(a0, rope, pos0, x0, Tensor(), dy0, Tensor());
  const rwkv7test::Err e = rwkv7test::Measure(ToF64(alone.Get("model.layers.0.self_attn.v_proj.weight").grad),
                                              ToF64(ps.Get("model.layers.0.self_attn.v_proj.weight").grad));
  EXPECT_GT(e.rel_rms, 0.05);
  (void)s;
}

// ---------------------------------------------------------------------------------------------
// Rough timing (run with --gtest_also_run_disabled_tests).

TEST(Rwkv7MixerTiming, DISABLED_ForwardBackward) {
  const Dims d{128, 4, 2, 32, 4, 32, 32, 32, 32};
  for (std::int64_t chunk : {std::int64_t{0}, std::int64_t{16}}) {
    Flags f;
    f.use_rope = true;
    auto p = MakeProblem(d, f, 1, 8, 128, 0, 1);
    Rwkv7MixerOptions o;
    o.dplr_chunk = chunk;
    Rwkv7Mixer m(p->cfg, 1, p->params, o);
    RunStep(m, p->rope, 0, p->x, p->v_first, p->dy, Tensor());  // warm-up
    const int reps = 10;
    double fwd = 0, tot = 0;
    for (int i = 0; i < reps; ++i) {
      MixerContext ctx;
      ctx.batch = 8;
      ctx.time = 128;
      ctx.rope = &p->rope;
      ctx.v_first = p->v_first;
      ctx.dv_first = Tensor::Zeros(p->v_first.shape());
      Tensor y = Tensor::Empty(p->x.shape()), dx = Tensor::Zeros(p->x.shape());
      const auto t0 = std::chrono::steady_clock::now();
      m.Forward(p->x, ctx, y);
      const auto t1 = std::chrono::steady_clock::now();
      m.Backward(p->dy, ctx, &dx);
      const auto t2 = std::chrono::steady_clock::now();
      fwd += std::chrono::duration<double, std::milli>(t1 - t0).count();
      tot += std::chrono::duration<double, std::milli>(t2 - t0).count();
    }
    std::printf("B=8 T=128 C=128 H=4 KV=2 N=32 chunk %lld: forward %.2f ms, forward+backward %.2f ms\n",
                static_cast<long long>(chunk), fwd / reps, tot / reps);
  }
}

}  // namespace
}  // namespace radlads
