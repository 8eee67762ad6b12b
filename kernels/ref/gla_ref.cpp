#include "kernels/ref/gla_ref.h"

#include <cmath>
#include <vector>

#include "base/check.h"

namespace radlads::ref {
namespace {

// Index of element (b, t, h, c) in a [B, T, H, C] array.
std::int64_t At(const GlaRefDims& d, std::int64_t b, std::int64_t t, std::int64_t h,
                std::int64_t c, std::int64_t C) {
  return ((b * d.T + t) * d.H + h) * C + c;
}

void CheckSizes(const GlaRefDims& d, std::span<const double> r, std::span<const double> k,
                std::span<const double> v, std::span<const double> g,
                std::span<const double> h0) {
  const auto nk = static_cast<std::size_t>(d.B * d.T * d.H * d.K);
  const auto nv = static_cast<std::size_t>(d.B * d.T * d.H * d.V);
  const auto ns = static_cast<std::size_t>(d.B * d.H * d.K * d.V);
  RADLADS_CHECK(r.size() == nk && k.size() == nk && g.size() == nk && v.size() == nv)
      << "GlaRef: input sizes";
  RADLADS_CHECK(h0.empty() || h0.size() == ns) << "GlaRef: h0 size";
}

// States S_0..S_T of one (b, h), each K*V, key-major.
std::vector<double> AllStates(const GlaRefDims& d, std::int64_t b, std::int64_t h,
                              std::span<const double> k, std::span<const double> v,
                              std::span<const double> g, std::span<const double> h0) {
  const std::int64_t KV = d.K * d.V;
  std::vector<double> S(static_cast<std::size_t>((d.T + 1) * KV), 0.0);
  if (!h0.empty()) {
    for (std::int64_t e = 0; e < KV; ++e) S[e] = h0[(b * d.H + h) * KV + e];
  }
  for (std::int64_t t = 1; t <= d.T; ++t) {
    const double* prev = &S[(t - 1) * KV];
    double* cur = &S[t * KV];
    for (std::int64_t i = 0; i < d.K; ++i) {
      const double decay = std::exp(g[At(d, b, t - 1, h, i, d.K)]);
      const double ki = k[At(d, b, t - 1, h, i, d.K)];
      for (std::int64_t j = 0; j < d.V; ++j) {
        cur[i * d.V + j] = decay * prev[i * d.V + j] + ki * v[At(d, b, t - 1, h, j, d.V)];
      }
    }
  }
  return S;
}

}  // namespace

void GlaForwardRef(const GlaRefDims& d, double scale, std::span<const double> r,
                   std::span<const double> k, std::span<const double> v,
                   std::span<const double> g, std::span<const double> h0, std::span<double> o,
                   std::span<double> hT) {
  CheckSizes(d, r, k, v, g, h0);
  const std::int64_t KV = d.K * d.V;
  for (std::int64_t b = 0; b < d.B; ++b) {
    for (std::int64_t h = 0; h < d.H; ++h) {
      std::vector<double> S = AllStates(d, b, h, k, v, g, h0);
      for (std::int64_t t = 1; t <= d.T; ++t) {
        const double* St = &S[t * KV];
        for (std::int64_t j = 0; j < d.V; ++j) {
          double acc = 0.0;
          for (std::int64_t i = 0; i < d.K; ++i) {
            acc += St[i * d.V + j] * scale * r[At(d, b, t - 1, h, i, d.K)];
          }
          o[At(d, b, t - 1, h, j, d.V)] = acc;
        }
      }
      if (!hT.empty()) {
        for (std::int64_t e = 0; e < KV; ++e) hT[(b * d.H + h) * KV + e] = S[d.T * KV + e];
      }
    }
  }
}

void GlaBackwardRef(const GlaRefDims& d, double scale, std::span<const double> r,
                    std::span<const double> k, std::span<const double> v,
                    std::span<const double> g, std::span<const double> h0,
                    std::span<const double> d_o, std::span<const double> dhT,
                    std::span<double> dr, std::span<double> dk, std::span<double> dv,
                    std::span<double> dg, std::span<double> dh0) {
  CheckSizes(d, r, k, v, g, h0);
  const std::int64_t KV = d.K * d.V;
  for (std::int64_t b = 0; b < d.B; ++b) {
    for (std::int64_t h = 0; h < d.H; ++h) {
      std::vector<double> S = AllStates(d, b, h, k, v, g, h0);
      // G holds dL/dS_t once the step-t readout term is added.
      std::vector<double> G(static_cast<std::size_t>(KV), 0.0);
      if (!dhT.empty()) {
        for (std::int64_t e = 0; e < KV; ++e) G[e] = dhT[(b * d.H + h) * KV + e];
      }
      for (std::int64_t t = d.T; t >= 1; --t) {
        const std::int64_t tt = t - 1;  // 0-based token index
        const double* St = &S[t * KV];
        const double* Sp = &S[(t - 1) * KV];
        // o_t = S_t^T q_t  =>  dS_t += q_t do_t^T.
        for (std::int64_t i = 0; i < d.K; ++i) {
          const double qi = scale * r[At(d, b, tt, h, i, d.K)];
          for (std::int64_t j = 0; j < d.V; ++j) {
            G[i * d.V + j] += qi * d_o[At(d, b, tt, h, j, d.V)];
          }
        }
        for (std::int64_t i = 0; i < d.K; ++i) {
          double dq = 0.0, dki = 0.0, x = 0.0;
          for (std::int64_t j = 0; j < d.V; ++j) {
            dq += St[i * d.V + j] * d_o[At(d, b, tt, h, j, d.V)];
            dki += G[i * d.V + j] * v[At(d, b, tt, h, j, d.V)];
            x += G[i * d.V + j] * Sp[i * d.V + j];
          }
          const double decay = std::exp(g[At(d, b, tt, h, i, d.K)]);
          dr[At(d, b, tt, h, i, d.K)] += scale * dq;
          dk[At(d, b, tt, h, i, d.K)] += dki;
          dg[At(d, b, tt, h, i, d.K)] += decay * x;
        }
        for (std::int64_t j = 0; j < d.V; ++j) {
          double acc = 0.0;
          for (std::int64_t i = 0; i < d.K; ++i) acc += G[i * d.V + j] * k[At(d, b, tt, h, i, d.K)];
          dv[At(d, b, tt, h, j, d.V)] += acc;
        }
        // S_t = diag(exp(g_t)) S_{t-1} + ...  =>  G_{t-1} (before its own readout term)
        // = diag(exp(g_t)) G_t.
        for (std::int64_t i = 0; i < d.K; ++i) {
          const double decay = std::exp(g[At(d, b, tt, h, i, d.K)]);
          for (std::int64_t j = 0; j < d.V; ++j) G[i * d.V + j] *= decay;
        }
      }
      if (!dh0.empty()) {
        for (std::int64_t e = 0; e < KV; ++e) dh0[(b * d.H + h) * KV + e] += G[e];
      }
    }
  }
}

}  // namespace radlads::ref
