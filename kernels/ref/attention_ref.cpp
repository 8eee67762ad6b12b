#include "kernels/ref/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "base/check.h"

namespace radlads {
namespace {

// Element offsets into [B,T,nh,D].
std::int64_t At(const AttentionRefShape& s, std::int64_t nh, std::int64_t b, std::int64_t t,
                std::int64_t head) {
  return ((b * s.t + t) * nh + head) * s.d;
}

void CheckShape(const AttentionRefShape& s) {
  RADLADS_CHECK(s.b >= 0 && s.t >= 0 && s.h > 0 && s.hkv > 0 && s.d > 0 && s.h % s.hkv == 0)
      << "attention ref shape b=" << s.b << " t=" << s.t << " h=" << s.h << " hkv=" << s.hkv
      << " d=" << s.d;
}

// The causal softmax of one head: p[i*T + j] = exp(S_ij - lse_i) for j <= i, 0 above the
// diagonal, with S_ij = scale * q_i . k_j. Writes lse_i to lse[i].
void Probabilities(const AttentionRefShape& s, const double* q, const double* k, double scale,
                   std::int64_t b, std::int64_t h, std::vector<double>& p,
                   std::vector<double>& lse) {
  const std::int64_t T = s.t, g = h / (s.h / s.hkv);
  std::vector<double> scores(static_cast<std::size_t>(T * T),
                             -std::numeric_limits<double>::infinity());
  for (std::int64_t i = 0; i < T; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (std::int64_t d = 0; d < s.d; ++d)
        dot += q[At(s, s.h, b, i, h) + d] * k[At(s, s.hkv, b, j, g) + d];
      scores[i * T + j] = scale * dot;
    }
  }
  p.assign(static_cast<std::size_t>(T * T), 0.0);
  lse.assign(static_cast<std::size_t>(T), 0.0);
  for (std::int64_t i = 0; i < T; ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j <= i; ++j) m = std::max(m, scores[i * T + j]);
    double sum = 0;
    for (std::int64_t j = 0; j <= i; ++j) sum += std::exp(scores[i * T + j] - m);
    lse[i] = m + std::log(sum);
    for (std::int64_t j = 0; j <= i; ++j) p[i * T + j] = std::exp(scores[i * T + j] - lse[i]);
  }
}

}  // namespace

void AttentionForwardRef(const AttentionRefShape& s, const double* q, const double* k,
                         const double* v, double scale, double* o, double* lse) {
  CheckShape(s);
  const std::int64_t T = s.t, g_size = s.h / s.hkv;
  std::vector<double> p, row_lse;
  for (std::int64_t b = 0; b < s.b; ++b) {
    for (std::int64_t h = 0; h < s.h; ++h) {
      const std::int64_t g = h / g_size;
      Probabilities(s, q, k, scale, b, h, p, row_lse);
      for (std::int64_t i = 0; i < T; ++i) {
        for (std::int64_t d = 0; d < s.d; ++d) {
          double acc = 0;
          for (std::int64_t j = 0; j <= i; ++j) acc += p[i * T + j] * v[At(s, s.hkv, b, j, g) + d];
          o[At(s, s.h, b, i, h) + d] = acc;
        }
        if (lse != nullptr) lse[(b * s.h + h) * T + i] = row_lse[i];
      }
    }
  }
}

void AttentionBackwardRef(const AttentionRefShape& s, const double* q, const double* k,
                          const double* v, double scale, const double* d_o, double* dq,
                          double* dk, double* dv) {
  CheckShape(s);
  const std::int64_t T = s.t, g_size = s.h / s.hkv;
  std::vector<double> p, row_lse;
  std::vector<double> dp(static_cast<std::size_t>(T * T)), ds(static_cast<std::size_t>(T * T));
  for (std::int64_t b = 0; b < s.b; ++b) {
    for (std::int64_t h = 0; h < s.h; ++h) {
      const std::int64_t g = h / g_size;
      Probabilities(s, q, k, scale, b, h, p, row_lse);
      // dP_ij = dO_i . v_j;  dS_ij = P_ij (dP_ij - sum_l P_il dP_il)  (softmax backward).
      for (std::int64_t i = 0; i < T; ++i) {
        double row = 0;
        for (std::int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < s.d; ++d)
            dot += d_o[At(s, s.h, b, i, h) + d] * v[At(s, s.hkv, b, j, g) + d];
          dp[i * T + j] = dot;
          row += p[i * T + j] * dot;
        }
        for (std::int64_t j = 0; j <= i; ++j) ds[i * T + j] = p[i * T + j] * (dp[i * T + j] - row);
      }
      // dV_j += sum_i P_ij dO_i;  dQ_i += scale sum_j dS_ij k_j;  dK_j += scale sum_i dS_ij q_i.
      for (std::int64_t i = 0; i < T; ++i) {
        for (std::int64_t j = 0; j <= i; ++j) {
          for (std::int64_t d = 0; d < s.d; ++d) {
            dv[At(s, s.hkv, b, j, g) + d] += p[i * T + j] * d_o[At(s, s.h, b, i, h) + d];
            dq[At(s, s.h, b, i, h) + d] += scale * ds[i * T + j] * k[At(s, s.hkv, b, j, g) + d];
            dk[At(s, s.hkv, b, j, g) + d] += scale * ds[i * T + j] * q[At(s, s.h, b, i, h) + d];
          }
        }
      }
    }
  }
}

}  // namespace radlads
