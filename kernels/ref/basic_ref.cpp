#include "kernels/ref/basic_ref.h"

#include <cmath>
#include <vector>

namespace radlads::ref {

void EmbeddingForwardRef(const std::int32_t* ids, Index n, const double* table, Index c,
                         double* out) {
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < c; ++j) out[i * c + j] = table[ids[i] * c + j];
}

void EmbeddingBackwardRef(const std::int32_t* ids, Index n, const double* dout, Index c,
                          double* dtable) {
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < c; ++j) dtable[ids[i] * c + j] += dout[i * c + j];
}

// ---------------------------------------------------------------------------------------------
namespace {
double RmsRstd(const double* xr, Index c, double eps) {
  double ss = 0;
  for (Index j = 0; j < c; ++j) ss += xr[j] * xr[j];
  return 1.0 / std::sqrt(ss / static_cast<double>(c) + eps);
}
}  // namespace

void RmsNormForwardRef(const double* x, const double* w, Index n, Index c, double eps, double* y,
                       double* rstd) {
  for (Index r = 0; r < n; ++r) {
    const double rs = RmsRstd(x + r * c, c, eps);
    if (rstd != nullptr) rstd[r] = rs;
    for (Index j = 0; j < c; ++j) y[r * c + j] = w[j] * x[r * c + j] * rs;
  }
}

void RmsNormBackwardRef(const double* x, const double* w, Index n, Index c, double eps,
                        const double* dy, double* dx, double* dw) {
  for (Index r = 0; r < n; ++r) {
    const double* xr = x + r * c;
    const double* gr = dy + r * c;
    const double rs = RmsRstd(xr, c, eps);
    double dot = 0;  // sum_j w_j dy_j x_j
    for (Index j = 0; j < c; ++j) dot += w[j] * gr[j] * xr[j];
    for (Index j = 0; j < c; ++j) {
      if (dx != nullptr)
        dx[r * c + j] += rs * w[j] * gr[j] - xr[j] * rs * rs * rs * dot / static_cast<double>(c);
      if (dw != nullptr) dw[j] += gr[j] * xr[j] * rs;
    }
  }
}

// ---------------------------------------------------------------------------------------------
void LinearForwardRef(const double* x, const double* w, const double* b, Index n, Index in,
                      Index out, double* y) {
  for (Index r = 0; r < n; ++r)
    for (Index o = 0; o < out; ++o) {
      double s = b != nullptr ? b[o] : 0.0;
      for (Index i = 0; i < in; ++i) s += x[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
}

void LinearBackwardRef(const double* x, const double* w, const double* dy, Index n, Index in,
                       Index out, double* dx, double* dw, double* db) {
  for (Index r = 0; r < n; ++r)
    for (Index o = 0; o < out; ++o) {
      const double g = dy[r * out + o];
      if (db != nullptr) db[o] += g;
      for (Index i = 0; i < in; ++i) {
        if (dx != nullptr) dx[r * in + i] += g * w[o * in + i];
        if (dw != nullptr) dw[o * in + i] += g * x[r * in + i];
      }
    }
}

// ---------------------------------------------------------------------------------------------
void RopeTableRef(Index max_pos, Index d, double theta, double* cos_t, double* sin_t) {
  const Index half = d / 2;
  for (Index t = 0; t < max_pos; ++t)
    for (Index i = 0; i < half; ++i) {
      const double angle = static_cast<double>(t) *
                           std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
      cos_t[t * half + i] = std::cos(angle);
      sin_t[t * half + i] = std::sin(angle);
    }
}

namespace {
// y = R(sign * angle) x per head: y1 = x1 c - x2 s', y2 = x2 c + x1 s', s' = sign * s.
void RopeRotateRef(const double* x, Index b, Index t, Index h, Index d, Index pos0,
                   const double* cos_t, const double* sin_t, double sign, bool accumulate,
                   double* y) {
  const Index half = d / 2;
  for (Index bi = 0; bi < b; ++bi)
    for (Index ti = 0; ti < t; ++ti)
      for (Index hi = 0; hi < h; ++hi) {
        const Index o = ((bi * t + ti) * h + hi) * d;
        const Index p = (pos0 + ti) * half;
        for (Index i = 0; i < half; ++i) {
          const double c = cos_t[p + i], s = sign * sin_t[p + i];
          const double x1 = x[o + i], x2 = x[o + i + half];
          const double y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
          y[o + i] = accumulate ? y[o + i] + y1 : y1;
          y[o + i + half] = accumulate ? y[o + i + half] + y2 : y2;
        }
      }
}
}  // namespace

void RopeForwardRef(const double* x, Index b, Index t, Index h, Index d, Index pos0,
                    const double* cos_t, const double* sin_t, double* y) {
  RopeRotateRef(x, b, t, h, d, pos0, cos_t, sin_t, 1.0, false, y);
}

void RopeBackwardRef(const double* dy, Index b, Index t, Index h, Index d, Index pos0,
                     const double* cos_t, const double* sin_t, double* dx) {
  RopeRotateRef(dy, b, t, h, d, pos0, cos_t, sin_t, -1.0, true, dx);
}

void RopeInPlaceRef(double* x, Index b, Index t, Index h, Index d, Index pos0, double theta) {
  const auto n = static_cast<std::size_t>((pos0 + t) * (d / 2));
  std::vector<double> cos_t(n), sin_t(n);
  RopeTableRef(pos0 + t, d, theta, cos_t.data(), sin_t.data());
  // RopeRotateRef reads both halves of an element pair before writing them: in place is safe.
  RopeForwardRef(x, b, t, h, d, pos0, cos_t.data(), sin_t.data(), x);
}

// ---------------------------------------------------------------------------------------------
double SigmoidRef(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double SigmoidGradRef(double x) { return SigmoidRef(x) * (1.0 - SigmoidRef(x)); }
double TanhRef(double x) { return std::tanh(x); }
double TanhGradRef(double x) { return 1.0 - std::tanh(x) * std::tanh(x); }
double SiluRef(double x) { return x * SigmoidRef(x); }
double SiluGradRef(double x) {
  const double s = SigmoidRef(x);
  return s + x * s * (1.0 - s);
}
double SoftplusRef(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
double SoftplusGradRef(double x) { return SigmoidRef(x); }

void SwiGluForwardRef(const double* g, const double* u, Index n, double* y) {
  for (Index i = 0; i < n; ++i) y[i] = SiluRef(g[i]) * u[i];
}

void SwiGluBackwardRef(const double* g, const double* u, const double* dy, Index n, double* dg,
                       double* du) {
  for (Index i = 0; i < n; ++i) {
    if (dg != nullptr) dg[i] += dy[i] * u[i] * SiluGradRef(g[i]);
    if (du != nullptr) du[i] += dy[i] * SiluRef(g[i]);
  }
}

// ---------------------------------------------------------------------------------------------
void GqaExpandForwardRef(const double* x, Index rows, Index hkv, Index h, Index d, double* y) {
  const Index group = h / hkv;
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < h; ++j)
      for (Index i = 0; i < d; ++i) y[(r * h + j) * d + i] = x[(r * hkv + j / group) * d + i];
}

void GqaExpandBackwardRef(const double* dy, Index rows, Index hkv, Index h, Index d, double* dx) {
  const Index group = h / hkv;
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < h; ++j)
      for (Index i = 0; i < d; ++i) dx[(r * hkv + j / group) * d + i] += dy[(r * h + j) * d + i];
}

// ---------------------------------------------------------------------------------------------
namespace {
// Mean and 1/sqrt(var + eps) of one group of `gs` values.
void GroupStatsRef(const double* xg, Index gs, double eps, double* mean, double* rstd) {
  double s = 0;
  for (Index i = 0; i < gs; ++i) s += xg[i];
  *mean = s / static_cast<double>(gs);
  double v = 0;
  for (Index i = 0; i < gs; ++i) v += (xg[i] - *mean) * (xg[i] - *mean);
  *rstd = 1.0 / std::sqrt(v / static_cast<double>(gs) + eps);
}
}  // namespace

void GroupNormForwardRef(const double* x, const double* w, const double* b, Index n, Index c,
                         Index groups, double eps, double* y) {
  const Index gs = c / groups;
  for (Index r = 0; r < n; ++r)
    for (Index g = 0; g < groups; ++g) {
      const Index o = r * c + g * gs;
      double mean = 0, rstd = 0;
      GroupStatsRef(x + o, gs, eps, &mean, &rstd);
      for (Index i = 0; i < gs; ++i) {
        const Index j = g * gs + i;
        y[o + i] = (x[o + i] - mean) * rstd * w[j] + (b != nullptr ? b[j] : 0.0);
      }
    }
}

void GroupNormBackwardRef(const double* x, const double* w, Index n, Index c, Index groups,
                          double eps, const double* dy, double* dx, double* dw, double* db) {
  const Index gs = c / groups;
  std::vector<double> xhat(static_cast<std::size_t>(gs));
  for (Index r = 0; r < n; ++r)
    for (Index g = 0; g < groups; ++g) {
      const Index o = r * c + g * gs;
      double mean = 0, rstd = 0;
      GroupStatsRef(x + o, gs, eps, &mean, &rstd);
      double mean_g = 0, mean_gx = 0;
      for (Index i = 0; i < gs; ++i) {
        const double gw = dy[o + i] * w[g * gs + i];
        xhat[static_cast<std::size_t>(i)] = (x[o + i] - mean) * rstd;
        mean_g += gw / static_cast<double>(gs);
        mean_gx += gw * xhat[static_cast<std::size_t>(i)] / static_cast<double>(gs);
      }
      for (Index i = 0; i < gs; ++i) {
        const Index j = g * gs + i;
        const double xh = xhat[static_cast<std::size_t>(i)];
        if (dx != nullptr) dx[o + i] += rstd * (dy[o + i] * w[j] - mean_g - xh * mean_gx);
        if (dw != nullptr) dw[j] += dy[o + i] * xh;
        if (db != nullptr) db[j] += dy[o + i];
      }
    }
}

// ---------------------------------------------------------------------------------------------
void MulForwardRef(const double* a, const double* b, Index n, Index c, bool b_rows_broadcast,
                   double* y) {
  for (Index i = 0; i < n * c; ++i) y[i] = a[i] * b[b_rows_broadcast ? i % c : i];
}

void MulBackwardRef(const double* a, const double* b, const double* dy, Index n, Index c,
                    bool b_rows_broadcast, double* da, double* db) {
  for (Index i = 0; i < n * c; ++i) {
    const Index j = b_rows_broadcast ? i % c : i;
    if (da != nullptr) da[i] += dy[i] * b[j];
    if (db != nullptr) db[j] += dy[i] * a[i];
  }
}

void LerpForwardRef(const double* x, const double* d, const double* mu, const double* m, Index n,
                    Index c, double* y) {
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < c; ++j) {
      const Index i = r * c + j;
      y[i] = x[i] + d[i] * (mu[j] + (m != nullptr ? m[i] : 0.0));
    }
}

void LerpBackwardRef(const double* d, const double* mu, const double* m, const double* dy,
                     Index n, Index c, double* dx, double* dd, double* dmu, double* dm) {
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < c; ++j) {
      const Index i = r * c + j;
      if (dx != nullptr) dx[i] += dy[i];
      if (dd != nullptr) dd[i] += dy[i] * (mu[j] + (m != nullptr ? m[i] : 0.0));
      if (dmu != nullptr) dmu[j] += dy[i] * d[i];
      if (dm != nullptr) dm[i] += dy[i] * d[i];
    }
}

void TokenShiftDeltaForwardRef(const double* x, Index b, Index t, Index c, double* delta) {
  for (Index bi = 0; bi < b; ++bi)
    for (Index ti = 0; ti < t; ++ti)
      for (Index j = 0; j < c; ++j) {
        const Index i = (bi * t + ti) * c + j;
        delta[i] = (ti > 0 ? x[i - c] : 0.0) - x[i];
      }
}

void TokenShiftDeltaBackwardRef(const double* ddelta, Index b, Index t, Index c, double* dx) {
  for (Index bi = 0; bi < b; ++bi)
    for (Index ti = 0; ti < t; ++ti)
      for (Index j = 0; j < c; ++j) {
        const Index i = (bi * t + ti) * c + j;
        dx[i] -= ddelta[i];                   // delta[t] = ... - x[t]
        if (ti > 0) dx[i - c] += ddelta[i];   // delta[t] = x[t-1] - ...
      }
}

// ---------------------------------------------------------------------------------------------
namespace {
double ActRef(ops::LoraActivation act, double z) {
  switch (act) {
    case ops::LoraActivation::kTanh: return std::tanh(z);
    case ops::LoraActivation::kSigmoid: return SigmoidRef(z);
    case ops::LoraActivation::kNone: break;
  }
  return z;
}
double ActGradRef(ops::LoraActivation act, double z) {
  switch (act) {
    case ops::LoraActivation::kTanh: return TanhGradRef(z);
    case ops::LoraActivation::kSigmoid: return SigmoidGradRef(z);
    case ops::LoraActivation::kNone: break;
  }
  return 1.0;
}
// z = x w1, [n, kr].
std::vector<double> LoraPreRef(const double* x, const double* w1, Index n, Index in, Index kr) {
  std::vector<double> z(static_cast<std::size_t>(n * kr), 0.0);
  for (Index r = 0; r < n; ++r)
    for (Index j = 0; j < kr; ++j)
      for (Index p = 0; p < in; ++p)
        z[static_cast<std::size_t>(r * kr + j)] += x[r * in + p] * w1[p * kr + j];
  return z;
}
}  // namespace

void LoraForwardRef(const double* x, const double* w1, const double* w2, const double* bias,
                    Index n, Index in, Index k, Index r, Index out, ops::LoraActivation act,
                    double* y) {
  const Index kr = k * r;
  const std::vector<double> z = LoraPreRef(x, w1, n, in, kr);
  for (Index b = 0; b < k; ++b)
    for (Index row = 0; row < n; ++row)
      for (Index o = 0; o < out; ++o) {
        double s = bias != nullptr ? bias[o] : 0.0;
        for (Index i = 0; i < r; ++i)
          s += ActRef(act, z[static_cast<std::size_t>(row * kr + b * r + i)]) *
               w2[(b * r + i) * out + o];
        y[(b * n + row) * out + o] = s;
      }
}

void LoraBackwardRef(const double* x, const double* w1, const double* w2, Index n, Index in,
                     Index k, Index r, Index out, ops::LoraActivation act, const double* dy,
                     double* dx, double* dw1, double* dw2, double* dbias) {
  const Index kr = k * r;
  const std::vector<double> z = LoraPreRef(x, w1, n, in, kr);
  for (Index row = 0; row < n; ++row)
    for (Index j = 0; j < kr; ++j) {
      const Index b = j / r, i = j % r;
      const double zj = z[static_cast<std::size_t>(row * kr + j)];
      double dh = 0;  // d loss / d h[row, j]
      for (Index o = 0; o < out; ++o) {
        const double g = dy[(b * n + row) * out + o];
        dh += g * w2[(b * r + i) * out + o];
        if (dw2 != nullptr) dw2[(b * r + i) * out + o] += ActRef(act, zj) * g;
      }
      const double dz = dh * ActGradRef(act, zj);
      for (Index p = 0; p < in; ++p) {
        if (dx != nullptr) dx[row * in + p] += dz * w1[p * kr + j];
        if (dw1 != nullptr) dw1[p * kr + j] += x[row * in + p] * dz;
      }
    }
  if (dbias != nullptr)
    for (Index row = 0; row < n; ++row)
      for (Index o = 0; o < out; ++o) dbias[o] += dy[row * out + o];
}

}  // namespace radlads::ref
