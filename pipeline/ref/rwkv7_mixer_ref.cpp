#include "pipeline/ref/rwkv7_mixer_ref.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "kernels/ref/basic_ref.h"

namespace radlads::ref {
namespace {

using Vec = std::vector<double>;

const Vec& Need(const Rwkv7RefParams& p, const std::string& name, std::size_t numel) {
  auto it = p.find(name);
  RADLADS_CHECK(it != p.end()) << "Rwkv7MixerRefForward: missing parameter " << name;
  RADLADS_CHECK(it->second.size() == numel)
      << "Rwkv7MixerRefForward: " << name << " has " << it->second.size() << " values, want "
      << numel;
  return it->second;
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }
double Softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

// y [n, out] = x [n, in] W^T (+ b), W [out, in].
Vec LinearT(const Vec& x, std::int64_t n, std::int64_t in, const Vec& w, std::int64_t out,
            const Vec* b) {
  Vec y(static_cast<std::size_t>(n * out));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = b != nullptr ? (*b)[static_cast<std::size_t>(o)] : 0.0;
      for (std::int64_t c = 0; c < in; ++c)
        s += x[static_cast<std::size_t>(i * in + c)] * w[static_cast<std::size_t>(o * in + c)];
      y[static_cast<std::size_t>(i * out + o)] = s;
    }
  return y;
}

// y [n, out] = x [n, in] W, W [in, out].
Vec MatMul(const Vec& x, std::int64_t n, std::int64_t in, const Vec& w, std::int64_t out) {
  Vec y(static_cast<std::size_t>(n * out), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (std::int64_t c = 0; c < in; ++c)
        s += x[static_cast<std::size_t>(i * in + c)] * w[static_cast<std::size_t>(c * out + o)];
      y[static_cast<std::size_t>(i * out + o)] = s;
    }
  return y;
}

}  // namespace

Rwkv7RefResult Rwkv7MixerRefForward(const StudentConfig& cfg, int layer, const Rwkv7RefParams& p,
                                    std::int64_t B, std::int64_t T, std::int64_t pos0,
                                    const Vec& x, const Vec* v_first) {
  const std::int64_t C = cfg.base.hidden_size, H = cfg.base.num_attention_heads,
                     KV = cfg.base.num_key_value_heads, N = cfg.base.head_dim, A = H * N,
                     G = H / KV, n = B * T;
  const auto sz = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  RADLADS_CHECK(x.size() == sz(n * C)) << "Rwkv7MixerRefForward: x size";
  const std::int64_t rd = cfg.lora_rank_decay, ra = cfg.lora_rank_iclr,
                     rv = cfg.lora_rank_value_residual_mix, rg = cfg.lora_rank_gate;

  // 1. Projections (+ RoPE before the GQA expansion).
  const Vec* bq = cfg.attention_bias ? &Need(p, "q_proj.bias", sz(A)) : nullptr;
  const Vec* bk = cfg.attention_bias ? &Need(p, "k_proj.bias", sz(KV * N)) : nullptr;
  const Vec* bv = cfg.attention_bias ? &Need(p, "v_proj.bias", sz(KV * N)) : nullptr;
  Vec r = LinearT(x, n, C, Need(p, "q_proj.weight", sz(A * C)), A, bq);
  Vec kk = LinearT(x, n, C, Need(p, "k_proj.weight", sz(KV * N * C)), KV * N, bk);
  Vec vv = LinearT(x, n, C, Need(p, "v_proj.weight", sz(KV * N * C)), KV * N, bv);
  if (cfg.use_rope) {
    RopeInPlaceRef(r.data(), B, T, H, N, pos0, cfg.base.rope_theta);
    RopeInPlaceRef(kk.data(), B, T, KV, N, pos0, cfg.base.rope_theta);
  }
  Vec k(sz(n * A)), v(sz(n * A));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t j = 0; j < N; ++j) {
        k[sz((i * H + h) * N + j)] = kk[sz((i * KV + h / G) * N + j)];
        v[sz((i * H + h) * N + j)] = vv[sz((i * KV + h / G) * N + j)];
      }

  // 2. Decay, as the released code writes it: w = exp(-exp(-0.5 - softplus(-w_raw))).
  Vec hw = MatMul(x, n, C, Need(p, "w1", sz(C * rd)), rd);
  for (double& e : hw) e = std::tanh(e);
  Vec wraw = MatMul(hw, n, rd, Need(p, "w2", sz(rd * A)), A);
  const Vec& w0 = Need(p, "w0", sz(A));
  Vec w(sz(n * A));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < A; ++c) {
      const double z = w0[sz(c)] + wraw[sz(i * A + c)];
      w[sz(i * A + c)] = std::exp(-std::exp(-0.5 - Softplus(-z)));
    }

  // 3. ICLR.
  Vec ah = MatMul(x, n, C, Need(p, "a1", sz(C * ra)), ra);
  Vec a = MatMul(ah, n, ra, Need(p, "a2", sz(ra * A)), A);
  const Vec& a0 = Need(p, "a0", sz(A));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < A; ++c) a[sz(i * A + c)] = Sigmoid(a0[sz(c)] + a[sz(i * A + c)]);

  // 4. Value residual.
  Rwkv7RefResult res;
  if (layer == 0) {
    res.v_first_out = v;
  } else {
    RADLADS_CHECK(v_first != nullptr && v_first->size() == sz(n * A))
        << "Rwkv7MixerRefForward: layer " << layer << " needs v_first [B, T, A]";
    Vec vh = MatMul(x, n, C, Need(p, "v1", sz(C * rv)), rv);
    Vec nu = MatMul(vh, n, rv, Need(p, "v2", sz(rv * A)), A);
    const Vec& v0 = Need(p, "v0", sz(A));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < A; ++c) {
        const std::size_t e = sz(i * A + c);
        const double m = Sigmoid(v0[sz(c)] + nu[e]);
        v[e] = v[e] + m * ((*v_first)[e] - v[e]);
      }
  }

  // 5. Gate.
  Vec g;
  if (cfg.gate_rank_type == 2) {
    Vec gh = MatMul(x, n, C, Need(p, "g1", sz(C * rg)), rg);
    for (double& e : gh) e = Sigmoid(e);
    g = MatMul(gh, n, rg, Need(p, "g2", sz(rg * A)), A);
  } else if (cfg.gate_rank_type == 1) {
    g = LinearT(x, n, C, Need(p, "gate.weight", sz(A * C)), A, nullptr);
    for (double& e : g) e = Sigmoid(e);
  }

  // 6. Keys.
  const Vec& k_k = Need(p, "k_k", sz(A));
  const Vec& k_a = Need(p, "k_a", sz(A));
  Vec kappa(sz(n * A)), ktil(sz(n * A));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t base = (i * H + h) * N;
      double ss = 0.0;
      for (std::int64_t j = 0; j < N; ++j) {
        const double e = cfg.balance_state ? k[sz(base + j)] : k[sz(base + j)] * k_k[sz(h * N + j)];
        kappa[sz(base + j)] = e;
        ss += e * e;
      }
      const double m = std::max(std::sqrt(ss), 1e-12);
      for (std::int64_t j = 0; j < N; ++j) {
        const std::size_t e = sz(base + j);
        kappa[e] /= m;
        ktil[e] = cfg.balance_state ? k[e] * (1.0 - w[e] + a[e])
                                    : k[e] * (1.0 + (a[e] - 1.0) * k_a[sz(h * N + j)]);
      }
    }

  // 7. Recurrence, state S [value i][key j] per (b, h).
  const double scale = cfg.groupnorm_att ? 1.0 : 1.0 / std::sqrt(static_cast<double>(N));
  Vec out(sz(n * A));
  Vec S(sz(N * N)), sk(sz(N));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      std::fill(S.begin(), S.end(), 0.0);
      for (std::int64_t t = 0; t < T; ++t) {
        const std::int64_t base = ((b * T + t) * H + h) * N;
        for (std::int64_t i = 0; i < N; ++i) {
          double s = 0.0;
          for (std::int64_t j = 0; j < N; ++j) s += S[sz(i * N + j)] * kappa[sz(base + j)];
          sk[sz(i)] = s;
        }
        for (std::int64_t i = 0; i < N; ++i)
          for (std::int64_t j = 0; j < N; ++j) {
            const std::size_t e = sz(base + j);
            double& sij = S[sz(i * N + j)];
            sij = sij * w[e] - sk[sz(i)] * (a[e] * kappa[e]) + v[sz(base + i)] * ktil[e];
          }
        for (std::int64_t i = 0; i < N; ++i) {
          double s = 0.0;
          for (std::int64_t j = 0; j < N; ++j) s += S[sz(i * N + j)] * r[sz(base + j)];
          out[sz(base + i)] = scale * s;
        }
      }
    }

  // GroupNorm per head.
  if (cfg.groupnorm_att) {
    const Vec& lw = Need(p, "ln_x.weight", sz(A));
    const Vec& lb = Need(p, "ln_x.bias", sz(A));
    const double eps = static_cast<double>(N) * 1e-5;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t h = 0; h < H; ++h) {
        const std::int64_t base = (i * H + h) * N;
        double mean = 0.0, var = 0.0;
        for (std::int64_t j = 0; j < N; ++j) mean += out[sz(base + j)];
        mean /= static_cast<double>(N);
        for (std::int64_t j = 0; j < N; ++j) {
          const double d = out[sz(base + j)] - mean;
          var += d * d;
        }
        var /= static_cast<double>(N);
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (std::int64_t j = 0; j < N; ++j) {
          const std::size_t e = sz(base + j);
          out[e] = (out[e] - mean) * rstd * lw[sz(h * N + j)] + lb[sz(h * N + j)];
        }
      }
  }

  // 8. Gate and output projection.
  if (!g.empty())
    for (std::size_t e = 0; e < out.size(); ++e) out[e] *= g[e];
  const Vec* bo = cfg.attention_output_bias ? &Need(p, "o_proj.bias", sz(C)) : nullptr;
  res.y = LinearT(out, n, A, Need(p, "o_proj.weight", sz(C * A)), C, bo);
  return res;
}

}  // namespace radlads::ref
