#include "pipeline/ref/rwkv6_mixer_ref.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "kernels/ref/basic_ref.h"

namespace radlads::ref {
namespace {

using Vec = std::vector<double>;

const Vec& Get(const Rwkv6RefParams& p, const std::string& name, std::size_t numel) {
  auto it = p.find(name);
  RADLADS_CHECK(it != p.end()) << "rwkv6 reference: missing parameter " << name;
  RADLADS_CHECK(it->second.size() == numel)
      << "rwkv6 reference: " << name << " has " << it->second.size() << " values, expected " << numel;
  return it->second;
}

// y [rows, out] = x [rows, in] W^T (+ b), W [out, in].
Vec Linear(const Vec& x, std::int64_t rows, std::int64_t in, const Vec& w, const Vec* b,
           std::int64_t out) {
  Vec y(static_cast<std::size_t>(rows * out));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = b != nullptr ? (*b)[static_cast<std::size_t>(o)] : 0.0;
      for (std::int64_t i = 0; i < in; ++i)
        s += x[static_cast<std::size_t>(r * in + i)] * w[static_cast<std::size_t>(o * in + i)];
      y[static_cast<std::size_t>(r * out + o)] = s;
    }
  return y;
}

// y [rows, out] = x [rows, in] M, M [in, out] (LoRA factor layout).
Vec MatMul(const Vec& x, std::int64_t rows, std::int64_t in, const double* m, std::int64_t out) {
  Vec y(static_cast<std::size_t>(rows * out), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < in; ++i) {
      const double xv = x[static_cast<std::size_t>(r * in + i)];
      for (std::int64_t o = 0; o < out; ++o) y[static_cast<std::size_t>(r * out + o)] += xv * m[i * out + o];
    }
  return y;
}

}  // namespace

std::vector<double> Rwkv6MixerForwardRef(const StudentConfig& cfg, const Rwkv6RefParams& params,
                                         const std::vector<double>& x, std::int64_t B,
                                         std::int64_t T, std::int64_t pos0, Rwkv6RefTrace* trace) {
  const Qwen2Config& base = cfg.base;
  const std::int64_t C = base.hidden_size, H = base.num_attention_heads,
                     KV = base.num_key_value_heads, N = base.head_dim;
  const std::int64_t A = H * N, Akv = KV * N, BT = B * T, G = H / KV;
  const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  RADLADS_CHECK(x.size() == n(BT * C)) << "rwkv6 reference: x size " << x.size();

  // 1. Tokenshift: x_c = x + delta (mu_c + m_c), delta_t = x_{t-1} - x_t, x_{-1} = 0.
  Vec xs[5];
  if (cfg.use_tokenshift) {
    const std::int64_t r = cfg.lora_rank_tokenshift;
    Vec delta(n(BT * C));
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t c = 0; c < C; ++c) {
          const double prev = t > 0 ? x[n(((b * T) + t - 1) * C + c)] : 0.0;
          delta[n((b * T + t) * C + c)] = prev - x[n((b * T + t) * C + c)];
        }
    const Vec& mu_x = Get(params, "time_maa_x", n(C));
    Vec xx(n(BT * C));
    for (std::int64_t i = 0; i < BT; ++i)
      for (std::int64_t c = 0; c < C; ++c)
        xx[n(i * C + c)] = x[n(i * C + c)] + delta[n(i * C + c)] * mu_x[n(c)];
    const Vec& w1 = Get(params, "time_maa_w1", n(C * 5 * r));
    const Vec& w2 = Get(params, "time_maa_w2", n(5 * r * C));
    Vec h = MatMul(xx, BT, C, w1.data(), 5 * r);
    for (double& v : h) v = std::tanh(v);
    const char* names[5] = {"time_maa_r", "time_maa_k", "time_maa_v", "time_maa_w", "time_maa_g"};
    for (int blk = 0; blk < 5; ++blk) {
      const Vec& mu = Get(params, names[blk], n(C));
      // m = h[:, blk*r : (blk+1)*r] w2[blk]
      Vec m(n(BT * C), 0.0);
      for (std::int64_t i = 0; i < BT; ++i)
        for (std::int64_t j = 0; j < r; ++j) {
          const double hv = h[n(i * 5 * r + blk * r + j)];
          for (std::int64_t c = 0; c < C; ++c) m[n(i * C + c)] += hv * w2[n((blk * r + j) * C + c)];
        }
      xs[blk].resize(n(BT * C));
      for (std::int64_t i = 0; i < BT; ++i)
        for (std::int64_t c = 0; c < C; ++c)
          xs[blk][n(i * C + c)] = x[n(i * C + c)] + delta[n(i * C + c)] * (mu[n(c)] + m[n(i * C + c)]);
    }
  } else {
    for (Vec& v : xs) v = x;
  }

  // 2. Projections; RoPE on r and k' before the GQA expansion.
  const Vec* bq = cfg.attention_bias ? &Get(params, "q_proj.bias", n(A)) : nullptr;
  const Vec* bk = cfg.attention_bias ? &Get(params, "k_proj.bias", n(Akv)) : nullptr;
  const Vec* bv = cfg.attention_bias ? &Get(params, "v_proj.bias", n(Akv)) : nullptr;
  Vec r = Linear(xs[0], BT, C, Get(params, "q_proj.weight", n(A * C)), bq, A);
  Vec kp = Linear(xs[1], BT, C, Get(params, "k_proj.weight", n(Akv * C)), bk, Akv);
  Vec vp = Linear(xs[2], BT, C, Get(params, "v_proj.weight", n(Akv * C)), bv, Akv);
  if (cfg.use_rope) {
    RopeInPlaceRef(r.data(), B, T, H, N, pos0, base.rope_theta);
    RopeInPlaceRef(kp.data(), B, T, KV, N, pos0, base.rope_theta);
  }
  // Query head h reads kv head h / G.
  Vec k(n(BT * A)), v(n(BT * A));
  for (std::int64_t i = 0; i < BT; ++i)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t j = 0; j < N; ++j) {
        k[n(i * A + h * N + j)] = kp[n(i * Akv + (h / G) * N + j)];
        v[n(i * A + h * N + j)] = vp[n(i * Akv + (h / G) * N + j)];
      }

  // 3. Decay: d = time_decay + tanh(x_w D1) D2, log w = max(-exp(d), -5).
  const std::int64_t rd = cfg.lora_rank_decay;
  const Vec& td = Get(params, "time_decay", n(A));
  const Vec& d1 = Get(params, "time_decay_w1", n(C * rd));
  const Vec& d2 = Get(params, "time_decay_w2", n(rd * A));
  Vec hd = MatMul(xs[3], BT, C, d1.data(), rd);
  for (double& e : hd) e = std::tanh(e);
  Vec d = MatMul(hd, BT, rd, d2.data(), A);
  Vec logw(n(BT * A));
  for (std::int64_t i = 0; i < BT; ++i)
    for (std::int64_t a = 0; a < A; ++a) {
      d[n(i * A + a)] += td[n(a)];
      logw[n(i * A + a)] = std::max(-std::exp(d[n(i * A + a)]), -5.0);
    }

  // 4. State balancing: k = k' (1 - w).
  if (cfg.balance_state)
    for (std::size_t i = 0; i < k.size(); ++i) k[i] *= 1.0 - std::exp(logw[i]);

  // 5. GLA per (b, h): S [N key, N value] = diag(w_t) S + k_t v_t^T, p_t = S^T (N^-1/2 r_t).
  const double scale = 1.0 / std::sqrt(static_cast<double>(N));
  Vec p(n(BT * A), 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      Vec S(n(N * N), 0.0);
      for (std::int64_t t = 0; t < T; ++t) {
        const std::int64_t o = (b * T + t) * A + h * N;
        for (std::int64_t kk = 0; kk < N; ++kk) {
          const double w = std::exp(logw[n(o + kk)]);
          for (std::int64_t vv = 0; vv < N; ++vv)
            S[n(kk * N + vv)] = w * S[n(kk * N + vv)] + k[n(o + kk)] * v[n(o + vv)];
        }
        for (std::int64_t vv = 0; vv < N; ++vv) {
          double s = 0;
          for (std::int64_t kk = 0; kk < N; ++kk) s += S[n(kk * N + vv)] * scale * r[n(o + kk)];
          p[n(o + vv)] = s;
        }
      }
    }
  if (trace != nullptr) trace->p = p;

  // 6. GroupNorm: one group per head, biased variance, eps = N * 1e-5, affine.
  if (cfg.groupnorm_att) {
    const Vec& lw = Get(params, "ln_x.weight", n(A));
    const Vec& lb = Get(params, "ln_x.bias", n(A));
    const double eps = static_cast<double>(N) * 1e-5;
    for (std::int64_t i = 0; i < BT; ++i)
      for (std::int64_t h = 0; h < H; ++h) {
        double* q = p.data() + i * A + h * N;
        double mean = 0;
        for (std::int64_t j = 0; j < N; ++j) mean += q[j];
        mean /= static_cast<double>(N);
        double var = 0;
        for (std::int64_t j = 0; j < N; ++j) var += (q[j] - mean) * (q[j] - mean);
        var /= static_cast<double>(N);
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (std::int64_t j = 0; j < N; ++j)
          q[j] = (q[j] - mean) * rstd * lw[n(h * N + j)] + lb[n(h * N + j)];
      }
  }

  // 7. Gate.
  Vec g;
  if (cfg.gate_rank_type == 1) {
    g = Linear(xs[4], BT, C, Get(params, "gate.weight", n(A * C)), nullptr, A);
    for (double& e : g) e = 1.0 / (1.0 + std::exp(-e));
  } else if (cfg.gate_rank_type == 2) {
    const std::int64_t rg = cfg.lora_rank_gate;
    Vec hg = MatMul(xs[4], BT, C, Get(params, "g1", n(C * rg)).data(), rg);
    for (double& e : hg) e = 1.0 / (1.0 + std::exp(-e));
    g = MatMul(hg, BT, rg, Get(params, "g2", n(rg * A)).data(), A);
  }
  if (!g.empty())
    for (std::size_t i = 0; i < p.size(); ++i) p[i] *= g[i];

  // 8. Output projection.
  const Vec* bo = cfg.attention_output_bias ? &Get(params, "o_proj.bias", n(C)) : nullptr;
  Vec y = Linear(p, BT, A, Get(params, "o_proj.weight", n(C * A)), bo, C);

  if (trace != nullptr) {
    for (int i = 0; i < 5; ++i) trace->xs[i] = xs[i];
    trace->d = d;
    trace->logw = logw;
    trace->g = g;
  }
  return y;
}

}  // namespace radlads::ref
