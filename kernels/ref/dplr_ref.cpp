#include "kernels/ref/dplr_ref.h"

#include <cmath>
#include <cstddef>
#include <vector>

namespace radlads::ref {
namespace {

// Index of element c of the (b, t, h) row of a [B,T,H,C] tensor.
std::size_t Idx(const DplrRefDims& d, std::int64_t b, std::int64_t t, std::int64_t h,
                std::int64_t c, std::int64_t C) {
  return static_cast<std::size_t>(((b * d.T + t) * d.H + h) * C + c);
}

std::size_t StateOffset(const DplrRefDims& d, std::int64_t b, std::int64_t h) {
  return static_cast<std::size_t>((b * d.H + h) * d.K * d.V);
}

// Runs the forward for one (b, h); fills states[t] = S_t for t = 0..T (each K*V) and
// sa[t-1] = S_{t-1}^T a_t (each V) when the vectors are non-null; writes o.
void ForwardHead(const DplrRefDims& d, double scale, const double* r, const double* g,
                 const double* k, const double* v, const double* a, const double* b,
                 const double* h0, std::int64_t bi, std::int64_t hi, double* o,
                 std::vector<double>& S, std::vector<double>* states, std::vector<double>* sas) {
  const std::int64_t K = d.K, V = d.V;
  S.assign(static_cast<std::size_t>(K * V), 0.0);
  if (h0 != nullptr) {
    for (std::int64_t i = 0; i < K * V; ++i) S[i] = h0[StateOffset(d, bi, hi) + i];
  }
  if (states != nullptr) states->assign(S.begin(), S.end());
  if (sas != nullptr) sas->clear();
  std::vector<double> sa(static_cast<std::size_t>(V));
  for (std::int64_t t = 0; t < d.T; ++t) {
    for (std::int64_t j = 0; j < V; ++j) {
      double s = 0.0;
      for (std::int64_t i = 0; i < K; ++i) s += a[Idx(d, bi, t, hi, i, K)] * S[i * V + j];
      sa[j] = s;
    }
    for (std::int64_t i = 0; i < K; ++i) {
      const double w = std::exp(g[Idx(d, bi, t, hi, i, K)]);
      const double bk = b[Idx(d, bi, t, hi, i, K)];
      const double kk = k[Idx(d, bi, t, hi, i, K)];
      for (std::int64_t j = 0; j < V; ++j) {
        S[i * V + j] = w * S[i * V + j] + bk * sa[j] + kk * v[Idx(d, bi, t, hi, j, V)];
      }
    }
    for (std::int64_t j = 0; j < V; ++j) {
      double s = 0.0;
      for (std::int64_t i = 0; i < K; ++i) s += scale * r[Idx(d, bi, t, hi, i, K)] * S[i * V + j];
      if (o != nullptr) o[Idx(d, bi, t, hi, j, V)] = s;
    }
    if (states != nullptr) states->insert(states->end(), S.begin(), S.end());
    if (sas != nullptr) sas->insert(sas->end(), sa.begin(), sa.end());
  }
}

}  // namespace

void DplrRefForward(const DplrRefDims& d, double scale, const double* r, const double* g,
                    const double* k, const double* v, const double* a, const double* b,
                    const double* h0, double* o, double* hT) {
  std::vector<double> S;
  for (std::int64_t bi = 0; bi < d.B; ++bi) {
    for (std::int64_t hi = 0; hi < d.H; ++hi) {
      ForwardHead(d, scale, r, g, k, v, a, b, h0, bi, hi, o, S, nullptr, nullptr);
      if (hT != nullptr) {
        for (std::int64_t i = 0; i < d.K * d.V; ++i) hT[StateOffset(d, bi, hi) + i] = S[i];
      }
    }
  }
}

// Reverse sweep. With G = dL/dS_t (starting from dhT), for t = T..1:
//   G += q_t do_t^T                       (o_t reads S_t; q = scale * r)
//   dr_t = scale * S_t do_t
//   dk_t = G v_t,  dv_t = G^T k_t
//   dsa  = G^T b_t,  db_t = G sa_t
//   dg_t = exp(g_t) * rowsum(G . S_{t-1})  (d/dg of diag(exp g) S_{t-1})
//   da_t = S_{t-1} dsa
//   G   <- diag(exp(g_t)) G + a_t dsa^T    (= dL/dS_{t-1})
// and dh0 = G at the end.
void DplrRefBackward(const DplrRefDims& d, double scale, const double* r, const double* g,
                     const double* k, const double* v, const double* a, const double* b,
                     const double* h0, const double* dout, const double* dhT, double* dr,
                     double* dg, double* dk, double* dv, double* da, double* db, double* dh0) {
  const std::int64_t K = d.K, V = d.V;
  std::vector<double> S, states, sas, G(static_cast<std::size_t>(K * V)),
      dsa(static_cast<std::size_t>(V));
  for (std::int64_t bi = 0; bi < d.B; ++bi) {
    for (std::int64_t hi = 0; hi < d.H; ++hi) {
      ForwardHead(d, scale, r, g, k, v, a, b, h0, bi, hi, nullptr, S, &states, &sas);
      for (std::int64_t i = 0; i < K * V; ++i) {
        G[i] = dhT != nullptr ? dhT[StateOffset(d, bi, hi) + i] : 0.0;
      }
      for (std::int64_t t = d.T - 1; t >= 0; --t) {
        const double* St = &states[static_cast<std::size_t>((t + 1) * K * V)];
        const double* Sp = &states[static_cast<std::size_t>(t * K * V)];
        const double* sa = &sas[static_cast<std::size_t>(t * V)];
        for (std::int64_t i = 0; i < K; ++i) {
          const double q = scale * r[Idx(d, bi, t, hi, i, K)];
          for (std::int64_t j = 0; j < V; ++j) G[i * V + j] += q * dout[Idx(d, bi, t, hi, j, V)];
        }
        for (std::int64_t i = 0; i < K; ++i) {
          double sdr = 0.0, sdk = 0.0, sdb = 0.0, sdw = 0.0;
          for (std::int64_t j = 0; j < V; ++j) {
            sdr += St[i * V + j] * dout[Idx(d, bi, t, hi, j, V)];
            sdk += G[i * V + j] * v[Idx(d, bi, t, hi, j, V)];
            sdb += G[i * V + j] * sa[j];
            sdw += G[i * V + j] * Sp[i * V + j];
          }
          dr[Idx(d, bi, t, hi, i, K)] += scale * sdr;
          dk[Idx(d, bi, t, hi, i, K)] += sdk;
          db[Idx(d, bi, t, hi, i, K)] += sdb;
          dg[Idx(d, bi, t, hi, i, K)] += std::exp(g[Idx(d, bi, t, hi, i, K)]) * sdw;
        }
        for (std::int64_t j = 0; j < V; ++j) {
          double sdv = 0.0, sds = 0.0;
          for (std::int64_t i = 0; i < K; ++i) {
            sdv += G[i * V + j] * k[Idx(d, bi, t, hi, i, K)];
            sds += G[i * V + j] * b[Idx(d, bi, t, hi, i, K)];
          }
          dv[Idx(d, bi, t, hi, j, V)] += sdv;
          dsa[j] = sds;
        }
        for (std::int64_t i = 0; i < K; ++i) {
          double sda = 0.0;
          for (std::int64_t j = 0; j < V; ++j) sda += Sp[i * V + j] * dsa[j];
          da[Idx(d, bi, t, hi, i, K)] += sda;
          const double w = std::exp(g[Idx(d, bi, t, hi, i, K)]);
          const double ai = a[Idx(d, bi, t, hi, i, K)];
          for (std::int64_t j = 0; j < V; ++j) G[i * V + j] = w * G[i * V + j] + ai * dsa[j];
        }
      }
      if (dh0 != nullptr) {
        for (std::int64_t i = 0; i < K * V; ++i) dh0[StateOffset(d, bi, hi) + i] += G[i];
      }
    }
  }
}

}  // namespace radlads::ref
