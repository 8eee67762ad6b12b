// Helpers for the RAD-RWKV7 mixer tests: configs, random parameters at scales where every path
// of the mixer matters, fp32 <-> fp64 copies, the two-metric comparison of docs/kernels.md, and
// central finite differences of the fp64 reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "pipeline/param_set.h"
#include "pipeline/ref/rwkv7_mixer_ref.h"
#include "pipeline/rwkv7_mixer.h"
#include "storage/student_config.h"
#include "tests/testing/test_util.h"

namespace radlads::rwkv7test {

using testing::Rng;

// A named tolerance: element-wise |got - ref| <= atol * rms(ref) + rtol * |ref|, and the
// relative RMS error ||got - ref|| / ||ref|| <= rms (fla's metric). An all-zero ref requires
// got == 0 to within atol.
struct Tol {
  double atol;
  double rtol;
  double rms;
};

struct Flags {
  bool balance_state = true;
  bool groupnorm_att = false;
  bool use_rope = false;
  int gate_rank_type = 2;
  bool attention_bias = true;
  bool attention_output_bias = false;
};

inline std::string FlagsName(const Flags& f, int layer) {
  std::ostringstream s;
  s << (f.balance_state ? "balance" : "standard") << (f.groupnorm_att ? "+gn" : "")
    << (f.use_rope ? "+rope" : "") << "+gate" << f.gate_rank_type
    << (f.attention_bias ? "" : "+nobias") << (f.attention_output_bias ? "+obias" : "") << " L"
    << layer;
  return s.str();
}

struct Dims {
  std::int64_t C, H, KV, N, L, rd, ra, rv, rg;
};

inline StudentConfig MakeConfig(const Dims& d, const Flags& f) {
  Qwen2Config base;
  base.hidden_size = d.C;
  base.num_attention_heads = d.H;
  base.num_key_value_heads = d.KV;
  base.head_dim = d.N;
  base.num_hidden_layers = d.L;
  base.intermediate_size = 2 * d.C;
  base.vocab_size = 64;
  base.rope_theta = 10000.0;
  StudentConfig c = StudentConfig::Defaults(StudentArch::kRwkv7, base);
  c.balance_state = f.balance_state;
  c.groupnorm_att = f.groupnorm_att;
  c.use_rope = f.use_rope;
  c.gate_rank_type = f.gate_rank_type;
  c.attention_bias = f.attention_bias;
  c.attention_output_bias = f.attention_output_bias;
  c.use_tokenshift = false;
  c.lora_rank_decay = d.rd;
  c.lora_rank_iclr = d.ra;
  c.lora_rank_value_residual_mix = d.rv;
  c.lora_rank_gate = d.rg;
  return c;
}

inline std::vector<double> ToF64(const Tensor& t) {
  const float* p = t.f32();
  return std::vector<double>(p, p + t.numel());
}

inline Tensor FromF64(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::Empty(shape);
  float* p = t.f32();
  for (std::size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
  return t;
}

inline Tensor RandomTensor(const Shape& shape, Rng& rng, float scale = 1.0f) {
  Tensor t = Tensor::Empty(shape);
  std::normal_distribution<float> nd(0.0f, scale);
  float* p = t.f32();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = nd(rng);
  return t;
}

// Suffix of a parameter name under its "self_attn." prefix.
inline std::string Suffix(const std::string& name) {
  const std::string key = ".self_attn.";
  const std::size_t at = name.find(key);
  return at == std::string::npos ? name : name.substr(at + key.size());
}

// Fresh random values for every parameter of `layer` (not the init values): projections of
// unit-order outputs, decays spread over (0.58, 0.97), sigmoids off saturation, LoRA paths
// contributing O(0.3) each, k_k / k_a / ln_x away from their identity values.
inline void RandomizeParams(const StudentConfig& cfg, int layer, ParamSet& params, Rng& rng) {
  const double C = static_cast<double>(cfg.base.hidden_size);
  const std::string pre = Rwkv7MixerPrefix(layer);
  auto normal = [&](Tensor& t, double s) {
    std::normal_distribution<double> nd(0.0, s);
    float* p = t.f32();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(nd(rng));
  };
  auto uniform = [&](Tensor& t, double lo, double hi) {
    std::uniform_real_distribution<double> ud(lo, hi);
    float* p = t.f32();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(ud(rng));
  };
  for (Param* p : params.params()) {
    if (p->name.rfind(pre, 0) != 0) continue;
    const std::string s = Suffix(p->name);
    Tensor& t = p->value;
    if (s == "q_proj.weight" || s == "k_proj.weight" || s == "v_proj.weight" || s == "gate.weight") {
      normal(t, 1.0 / std::sqrt(C));
    } else if (s == "o_proj.weight") {
      normal(t, 1.0 / std::sqrt(static_cast<double>(t.dim(1))));
    } else if (s.find("bias") != std::string::npos && s != "ln_x.bias") {
      normal(t, 0.3);
    } else if (s == "w0") {
      uniform(t, -3.0, 2.0);
    } else if (s == "a0" || s == "v0") {
      normal(t, 1.0);
    } else if (s == "w1" || s == "a1" || s == "v1" || s == "g1") {
      normal(t, 0.7 / std::sqrt(C));
    } else if (s == "w2" || s == "a2" || s == "v2" || s == "g2") {
      normal(t, 0.6 / std::sqrt(static_cast<double>(t.dim(0))));
    } else if (s == "k_k") {
      uniform(t, 0.5, 1.5);
    } else if (s == "k_a") {
      uniform(t, 0.0, 1.5);
    } else if (s == "r_k") {
      normal(t, 1.0);
    } else if (s == "ln_x.weight") {
      uniform(t, 0.6, 1.4);
    } else if (s == "ln_x.bias") {
      normal(t, 0.3);
    } else {
      ADD_FAILURE() << "RandomizeParams: unexpected parameter " << p->name;
    }
  }
}

inline ref::Rwkv7RefParams RefParamsOf(int layer, const ParamSet& params) {
  ref::Rwkv7RefParams out;
  const std::string pre = Rwkv7MixerPrefix(layer);
  for (const Param* p : params.params())
    if (p->name.rfind(pre, 0) == 0) out[Suffix(p->name)] = ToF64(p->value);
  return out;
}

inline double Rms(const std::vector<double>& v) {
  double s = 0.0;
  for (double e : v) s += e * e;
  return v.empty() ? 0.0 : std::sqrt(s / static_cast<double>(v.size()));
}

// Worst errors of a comparison (for tuning tolerances).
struct Err {
  double rel_rms = 0.0;  // ||got - ref|| / ||ref||
  double elem = 0.0;     // max |got - ref| / (rms(ref) + |ref|)
};

inline Err Measure(const std::vector<double>& got, const std::vector<double>& ref) {
  double se = 0.0, sr = 0.0, worst = 0.0;
  const double rr = Rms(ref);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = got[i] - ref[i];
    se += d * d;
    sr += ref[i] * ref[i];
    worst = std::max(worst, std::fabs(d) / (rr + std::fabs(ref[i]) + 1e-300));
  }
  Err e;
  e.rel_rms = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
  e.elem = worst;
  return e;
}

inline ::testing::AssertionResult AllClose(const std::vector<double>& got,
                                           const std::vector<double>& ref, Tol tol,
                                           const std::string& what) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure()
           << what << ": size " << got.size() << " vs reference " << ref.size();
  }
  const double rr = Rms(ref);
  double se = 0.0, sr = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = got[i] - ref[i];
    if (!(std::fabs(d) <= tol.atol * (rr > 0 ? rr : 1.0) + tol.rtol * std::fabs(ref[i]))) {
      return ::testing::AssertionFailure()
             << what << ": element " << i << ": got " << got[i] << ", reference " << ref[i]
             << " (rms(ref) " << rr << ", atol " << tol.atol << " x rms, rtol " << tol.rtol << ")";
    }
    se += d * d;
    sr += ref[i] * ref[i];
  }
  const double rel = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
  if (!(rel <= tol.rms)) {
    return ::testing::AssertionFailure()
           << what << ": relative RMS error " << rel << " > " << tol.rms;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult AllClose(const Tensor& got, const std::vector<double>& ref,
                                           Tol tol, const std::string& what) {
  return AllClose(ToF64(got), ref, tol, what);
}

// Central differences of loss() with respect to every element of *v, which loss() reads
// (perturbed in place by +-eps * max(1, |v_i|) and restored).
inline std::vector<double> NumericGrad(std::vector<double>* v, const std::function<double()>& loss,
                                       double eps = 1e-6) {
  std::vector<double> g(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    const double orig = (*v)[i];
    const double h = eps * std::max(1.0, std::fabs(orig));
    (*v)[i] = orig + h;
    const double lp = loss();
    (*v)[i] = orig - h;
    const double lm = loss();
    (*v)[i] = orig;
    g[i] = (lp - lm) / (2.0 * h);
  }
  return g;
}

inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace radlads::rwkv7test
