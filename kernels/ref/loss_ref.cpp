#include "kernels/ref/loss_ref.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"

namespace radlads {
namespace {

std::size_t Idx(std::int64_t i) { return static_cast<std::size_t>(i); }

std::int64_t ArgMax(std::span<const double> row) {
  std::int64_t best = 0;
  for (std::size_t v = 1; v < row.size(); ++v)
    if (row[v] > row[Idx(best)]) best = static_cast<std::int64_t>(v);
  return best;
}

}  // namespace

double AlignLossRef(std::span<const double> t, std::span<const double> s, std::int64_t n,
                    std::int64_t c, double dloss, std::span<double> ds) {
  RADLADS_CHECK(t.size() == Idx(n * c) && s.size() == Idx(n * c)) << "AlignLossRef sizes";
  RADLADS_CHECK(ds.empty() || ds.size() == Idx(n * c)) << "AlignLossRef ds size";
  if (n == 0) return 0.0;
  const double scale = 1.0 / (static_cast<double>(n) * std::sqrt(static_cast<double>(c)));
  double loss = 0.0;
  for (std::int64_t r = 0; r < n; ++r) {
    double sq = 0.0;
    for (std::int64_t j = 0; j < c; ++j) {
      const double d = t[Idx(r * c + j)] - s[Idx(r * c + j)];
      sq += d * d;
    }
    const double dist = std::sqrt(sq);
    loss += dist * scale;
    if (ds.empty() || dist == 0.0) continue;
    for (std::int64_t j = 0; j < c; ++j)
      ds[Idx(r * c + j)] += dloss * scale * (s[Idx(r * c + j)] - t[Idx(r * c + j)]) / dist;
  }
  return loss;
}

std::vector<double> LinearRef(std::span<const double> x, std::span<const double> w, std::int64_t n,
                              std::int64_t c, std::int64_t vc) {
  RADLADS_CHECK(x.size() == Idx(n * c) && w.size() == Idx(vc * c)) << "LinearRef sizes";
  std::vector<double> z(Idx(n * vc), 0.0);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t v = 0; v < vc; ++v) {
      double acc = 0.0;
      for (std::int64_t j = 0; j < c; ++j) acc += x[Idx(r * c + j)] * w[Idx(v * c + j)];
      z[Idx(r * vc + v)] = acc;
    }
  return z;
}

void LinearBackwardRef(std::span<const double> x, std::span<const double> w,
                       std::span<const double> dz, std::int64_t n, std::int64_t c, std::int64_t vc,
                       std::span<double> dx, std::span<double> dw) {
  RADLADS_CHECK(dz.size() == Idx(n * vc)) << "LinearBackwardRef dz size";
  if (!dx.empty()) {
    RADLADS_CHECK(dx.size() == Idx(n * c)) << "LinearBackwardRef dx size";
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t j = 0; j < c; ++j) {
        double acc = 0.0;
        for (std::int64_t v = 0; v < vc; ++v) acc += dz[Idx(r * vc + v)] * w[Idx(v * c + j)];
        dx[Idx(r * c + j)] += acc;
      }
  }
  if (!dw.empty()) {
    RADLADS_CHECK(dw.size() == Idx(vc * c)) << "LinearBackwardRef dW size";
    for (std::int64_t v = 0; v < vc; ++v)
      for (std::int64_t j = 0; j < c; ++j) {
        double acc = 0.0;
        for (std::int64_t r = 0; r < n; ++r) acc += dz[Idx(r * vc + v)] * x[Idx(r * c + j)];
        dw[Idx(v * c + j)] += acc;
      }
  }
}

std::vector<double> LogSoftmaxRef(std::span<const double> z, std::int64_t n, std::int64_t vc) {
  std::vector<double> out(z.begin(), z.end());
  for (std::int64_t r = 0; r < n; ++r) {
    double* row = out.data() + r * vc;
    const double m = *std::max_element(row, row + vc);
    double sum = 0.0;
    for (std::int64_t v = 0; v < vc; ++v) sum += std::exp(row[v] - m);
    const double lse = m + std::log(sum);
    for (std::int64_t v = 0; v < vc; ++v) row[v] -= lse;
  }
  return out;
}

KlRefResult KlFromLogitsRef(std::span<const double> zs, std::span<const double> zt, std::int64_t n,
                            std::int64_t vc, std::span<const std::int32_t> targets, double gs,
                            double cs, std::span<double> dzs) {
  RADLADS_CHECK(zs.size() == Idx(n * vc) && zt.size() == Idx(n * vc)) << "KlFromLogitsRef sizes";
  RADLADS_CHECK(targets.empty() || targets.size() == Idx(n)) << "KlFromLogitsRef targets";
  RADLADS_CHECK(dzs.empty() || dzs.size() == Idx(n * vc)) << "KlFromLogitsRef dzs";
  const std::vector<double> ls = LogSoftmaxRef(zs, n, vc);
  const std::vector<double> lt = LogSoftmaxRef(zt, n, vc);
  KlRefResult res;
  for (std::int64_t r = 0; r < n; ++r) {
    const std::span<const double> rs = zs.subspan(Idx(r * vc), Idx(vc));
    const std::span<const double> rt = zt.subspan(Idx(r * vc), Idx(vc));
    res.top1_agree += ArgMax(rs) == ArgMax(rt) ? 1 : 0;
    const std::int32_t y = targets.empty() ? -1 : targets[Idx(r)];
    if (y >= 0) {
      res.ce_sum -= ls[Idx(r * vc + y)];
      res.ce_count += 1;
    }
    for (std::int64_t v = 0; v < vc; ++v) {
      const std::size_t i = Idx(r * vc + v);
      const double pt = std::exp(lt[i]);
      const double ps = std::exp(ls[i]);
      res.kl_sum += pt * (lt[i] - ls[i]);
      if (!dzs.empty()) {
        dzs[i] += gs * (ps - pt);
        if (y >= 0) dzs[i] += cs * (ps - (v == y ? 1.0 : 0.0));
      }
    }
  }
  return res;
}

CeRefResult CrossEntropyFromLogitsRef(std::span<const double> z, std::int64_t n, std::int64_t vc,
                                      std::span<const std::int32_t> targets, double gs,
                                      std::span<double> dz) {
  RADLADS_CHECK(z.size() == Idx(n * vc) && targets.size() == Idx(n)) << "CrossEntropyRef sizes";
  RADLADS_CHECK(dz.empty() || dz.size() == Idx(n * vc)) << "CrossEntropyRef dz";
  const std::vector<double> lp = LogSoftmaxRef(z, n, vc);
  CeRefResult res;
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int32_t y = targets[Idx(r)];
    if (y < 0) continue;
    res.loss_sum -= lp[Idx(r * vc + y)];
    res.count += 1;
    res.correct += ArgMax(z.subspan(Idx(r * vc), Idx(vc))) == y ? 1 : 0;
    if (dz.empty()) continue;
    for (std::int64_t v = 0; v < vc; ++v)
      dz[Idx(r * vc + v)] += gs * (std::exp(lp[Idx(r * vc + v)]) - (v == y ? 1.0 : 0.0));
  }
  return res;
}

KlRefResult FusedKlRef(std::span<const double> xs, std::span<const double> ws,
                       std::span<const double> xt, std::span<const double> wt, std::int64_t n,
                       std::int64_t c_s, std::int64_t c_t, std::int64_t vc,
                       std::span<const std::int32_t> targets, double gs, double cs,
                       std::span<double> dxs, std::span<double> dws) {
  const std::vector<double> zs = LinearRef(xs, ws, n, c_s, vc);
  const std::vector<double> zt = LinearRef(xt, wt, n, c_t, vc);
  std::vector<double> dz(Idx(n * vc), 0.0);
  KlRefResult res = KlFromLogitsRef(zs, zt, n, vc, targets, gs, cs, dz);
  LinearBackwardRef(xs, ws, dz, n, c_s, vc, dxs, dws);
  return res;
}

CeRefResult FusedCrossEntropyRef(std::span<const double> x, std::span<const double> w,
                                 std::int64_t n, std::int64_t c, std::int64_t vc,
                                 std::span<const std::int32_t> targets, double gs,
                                 std::span<double> dx, std::span<double> dw) {
  const std::vector<double> z = LinearRef(x, w, n, c, vc);
  std::vector<double> dz(Idx(n * vc), 0.0);
  CeRefResult res = CrossEntropyFromLogitsRef(z, n, vc, targets, gs, dz);
  LinearBackwardRef(x, w, dz, n, c, vc, dx, dw);
  return res;
}

void AdamWStepRef(std::span<double> p, std::span<const double> g, std::span<double> m,
                  std::span<double> v, std::int64_t step, const AdamWConfig& cfg) {
  RADLADS_CHECK(g.size() == p.size() && m.size() == p.size() && v.size() == p.size())
      << "AdamWStepRef sizes";
  const double t = static_cast<double>(step);
  const double bc1 = cfg.bias_correction ? 1.0 - std::pow(cfg.beta1, t) : 1.0;
  const double bc2 = cfg.bias_correction ? 1.0 - std::pow(cfg.beta2, t) : 1.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g[i];
    v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g[i] * g[i];
    const double mhat = m[i] / bc1;
    const double vhat = v[i] / bc2;
    p[i] -= cfg.lr * (mhat / (std::sqrt(vhat) + cfg.eps) + cfg.weight_decay * p[i]);
  }
}

double GlobalGradNormRef(const std::vector<std::vector<double>>& grads) {
  double sq = 0.0;
  for (const auto& g : grads)
    for (double x : g) sq += x * x;
  return std::sqrt(sq);
}

double ClipGradNormRef(std::vector<std::vector<double>>& grads, double max_norm) {
  const double norm = GlobalGradNormRef(grads);
  const double coef = std::min(1.0, max_norm / (norm + 1e-6));
  for (auto& g : grads)
    for (double& x : g) x *= coef;
  return norm;
}

}  // namespace radlads
