// RAD-RWKV6 / RAD-RWKV7 elementwise chains (contract: kernels/cuda/rwkv_glue.h).
#include "kernels/cuda/rwkv_glue.h"

#include "kernels/cuda/glue_common.cuh"

namespace radlads::cuda {

using namespace glue;  // glue_common.cuh's helpers, as in norms.cu, optimizer.cu, rope.cu

namespace glue {

constexpr float kLogDecayMin = -5.0f;
constexpr int kRowWarps = 4;  // warps per block for the per-(token, head) row kernels

// dmu_i: sum over rows of dxs_i * delta, as 5C virtual columns (i = col / C).
template <typename T>
struct ShiftDmuTerms {
  const T* dxs;
  const T* delta;
  i64 rows, c;
  __device__ double operator()(i64 r, i64 jj) const {
    const i64 i = jj / c, j = jj % c;
    return static_cast<double>(Ld(dxs, (i * rows + r) * c + j)) * Ld(delta, r * c + j);
  }
};
// dmu_i[j] += float(sum): the CPU mixer's rounding (float of the fp64 sum, then a float add).
struct ShiftDmuOut {
  Rwkv6ShiftDmu d;
  i64 c;
  __device__ void operator()(i64 jj, double s) const {
    float* p = d.dmu[jj / c];
    if (p != nullptr) p[jj % c] += static_cast<float>(s);
  }
};
struct AddRoundedF32 {
  float* out;
  __device__ void operator()(i64 j, double s) const { out[j] += static_cast<float>(s); }
};

unsigned RowWarpBlocks(i64 rows) {
  const i64 b = (rows + kRowWarps - 1) / kRowWarps;
  return static_cast<unsigned>(b < (1 << 16) ? b : (1 << 16));
}

template <typename T>
__global__ void DplrKeysKernel(const T* kx, const T* a, const T* logw, const float* kk,
                               const float* ka, i64 rows, i64 heads, i64 nh, bool balance,
                               T* kappa, float* nrm, T* ktil, T* ad, T* bd) {
  const int lane = threadIdx.x & 31;
  const i64 step = static_cast<i64>(gridDim.x) * kRowWarps;
  for (i64 q = static_cast<i64>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5); q < rows;
       q += step) {
    const i64 off = q * nh, ch = (q % heads) * nh;
    if (nrm != nullptr) {
      double ss = 0.0;
      for (i64 j = lane; j < nh; j += 32) {
        const double t = balance ? static_cast<double>(Ld(kx, off + j))
                                 : static_cast<double>(Ld(kx, off + j)) * kk[ch + j];
        ss += t * t;
      }
      ss = WarpSum(ss);
      const auto nr = static_cast<float>(sqrt(ss));
      if (lane == 0) nrm[q] = nr;
      const float inv = 1.0f / fmaxf(nr, kRwkv7NormEps);
      for (i64 j = lane; j < nh; j += 32) {
        const float kq = Ld(kx, off + j);
        St(kappa, off + j, balance ? kq * inv : kq * kk[ch + j] * inv);
      }
    }
    for (i64 j = lane; j < nh; j += 32) {
      const float kq = Ld(kx, off + j), aj = Ld(a, off + j), kapj = Ld(kappa, off + j);
      const float kt = balance ? kq * (1.0f - expf(Ld(logw, off + j)) + aj)
                               : kq * (1.0f + (aj - 1.0f) * ka[ch + j]);
      St(ktil, off + j, kt);
      St(ad, off + j, -kapj);
      St(bd, off + j, kapj * aj);
    }
  }
}

template <typename T>
__global__ void KeysBackwardKernel(const T* kx, const T* kappa, const float* nrm, const T* a,
                                   const T* logw, const float* kk, const float* ka,
                                   const T* dktil, const T* dad, const T* dbd, i64 rows,
                                   i64 heads, i64 nh, bool balance, T* dlogw, T* dkx, T* da,
                                   float* dkk_e, float* dka_e) {
  const int lane = threadIdx.x & 31;
  const i64 step = static_cast<i64>(gridDim.x) * kRowWarps;
  for (i64 q = static_cast<i64>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5); q < rows;
       q += step) {
    const i64 off = q * nh, ch = (q % heads) * nh;
    double dot = 0.0;
    for (i64 j = lane; j < nh; j += 32) {
      const float dkap = -Ld(dad, off + j) + Ld(dbd, off + j) * Ld(a, off + j);
      dot += static_cast<double>(Ld(kappa, off + j)) * dkap;
    }
    dot = WarpSum(dot);
    const float nr = nrm[q];
    const bool proj = nr > kRwkv7NormEps;
    const float inv = 1.0f / fmaxf(nr, kRwkv7NormEps);
    const float dotf = proj ? static_cast<float>(dot) : 0.0f;
    for (i64 j = lane; j < nh; j += 32) {
      const i64 i = off + j;
      const float aj = Ld(a, i), kj = Ld(kx, i), kapj = Ld(kappa, i), lw = Ld(logw, i);
      const float dbdj = Ld(dbd, i);
      const float dkap = -Ld(dad, i) + dbdj * aj;
      const float dnj = (dkap - kapj * dotf) * inv;
      const float dkt = Ld(dktil, i);
      const float s = -lw / kRwkv7DecayScale;
      if (balance) {
        const float wj = expf(lw);
        St(dkx, i, dkt * (1.0f - wj + aj) + dnj);
        const float dlw = Ld(dlogw, i) - dkt * kj * wj;
        const float daj = dbdj * kapj + dkt * kj;
        St(da, i, daj * aj * (1.0f - aj));
        St(dlogw, i, dlw * (-kRwkv7DecayScale) * s * (1.0f - s));
      } else {
        const float kaj = ka[ch + j];
        St(dkx, i, dkt * (1.0f + (aj - 1.0f) * kaj) + dnj * kk[ch + j]);
        const float daj = dbdj * kapj + dkt * kj * kaj;
        if (dka_e != nullptr) dka_e[i] = dkt * kj * (aj - 1.0f);
        if (dkk_e != nullptr) dkk_e[i] = dnj * kj;
        St(da, i, daj * aj * (1.0f - aj));
        St(dlogw, i, Ld(dlogw, i) * (-kRwkv7DecayScale) * s * (1.0f - s));
      }
    }
  }
}

}  // namespace glue

// ---- RWKV-6 tokenshift ------------------------------------------------------------------------

template <typename T>
void Rwkv6ShiftPrepare(const T* x, const float* mu_x, std::int64_t batch, std::int64_t time,
                       std::int64_t c, T* delta, T* xx, cudaStream_t stream) {
  if (time <= 0 || c <= 0) return;
  const i64 tc = time * c;
  ForEach(
      batch * tc,
      [=] __device__(i64 i) {
        const float xi = Ld(x, i);
        const float dl = (i % tc < c ? 0.0f : Ld(x, i - c)) - xi;
        St(delta, i, dl);
        St(xx, i, xi + dl * mu_x[i % c]);
      },
      stream);
}

template <typename T>
void Rwkv6ShiftMix(const T* x, const T* delta, const T* m, Rwkv6ShiftMu mu, std::int64_t rows,
                   std::int64_t c, T* xs, cudaStream_t stream) {
  if (c <= 0) return;
  const i64 plane = rows * c;
  ForEach(
      kRwkv6Shifts * plane,
      [=] __device__(i64 e) {
        const i64 b = e / plane, o = e % plane;
        St(xs, e, Ld(x, o) + Ld(delta, o) * (mu.mu[b][o % c] + Ld(m, e)));
      },
      stream);
}

template <typename T>
void Rwkv6ShiftBackwardBranches(const T* dxs, const T* delta, const T* m, Rwkv6ShiftMu mu,
                                std::int64_t rows, std::int64_t c, T* dx, T* ddelta, T* dm,
                                Rwkv6ShiftDmu dmu, double* ws, cudaStream_t stream) {
  if (c <= 0) return;
  const i64 plane = rows * c;
  ForEach(
      plane,
      [=] __device__(i64 o) {
        const float dl = Ld(delta, o);
        const i64 j = o % c;
        float sdx = 0.0f, sdd = 0.0f;
#pragma unroll
        for (int b = 0; b < kRwkv6Shifts; ++b) {
          const float g = Ld(dxs, b * plane + o);
          sdx += g;
          sdd += g * (mu.mu[b][j] + Ld(m, b * plane + o));
          St(dm, b * plane + o, g * dl);
        }
        Acc(dx, o, sdx);
        St(ddelta, o, sdd);
      },
      stream);
  bool any = false;
  for (float* p : dmu.dmu) any = any || p != nullptr;
  if (any)
    ColumnSum(rows, kRwkv6Shifts * c, glue::ShiftDmuTerms<T>{dxs, delta, rows, c},
              glue::ShiftDmuOut{dmu, c}, ws, stream);
}

template <typename T>
void Rwkv6ShiftBackwardFinish(const T* dxx, const T* delta, const T* ddelta, const float* mu_x,
                              std::int64_t batch, std::int64_t time, std::int64_t c, T* dx,
                              float* dmu_x, double* ws, cudaStream_t stream) {
  if (time <= 0 || c <= 0) return;
  const i64 tc = time * c;
  ForEach(
      batch * tc,
      [=] __device__(i64 i) {
        const bool last = i % tc >= tc - c;
        const float g = Ld(dxx, i), mj = mu_x[i % c];
        const float f0 = Ld(ddelta, i) + g * mj;
        const float f1 = last ? 0.0f : Ld(ddelta, i + c) + Ld(dxx, i + c) * mj;
        float v = Ld(dx, i);
        v += g;
        v += f1 - f0;
        St(dx, i, v);
      },
      stream);
  if (dmu_x != nullptr)
    ColumnSum(batch * time, c, glue::RowsOfProduct<T>{dxx, delta, c}, glue::AddRoundedF32{dmu_x},
              ws, stream);
}

// ---- RWKV-6 decay, balance, gate --------------------------------------------------------------

template <typename T>
void Rwkv6DecayForward(const T* d, const T* k_exp, std::int64_t n, T* logw, T* k_out,
                       cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float e = -expf(Ld(d, i));
        const float lw = e > glue::kLogDecayMin ? e : glue::kLogDecayMin;
        St(logw, i, lw);
        if (k_out != nullptr) St(k_out, i, Ld(k_exp, i) * -expm1f(lw));
      },
      stream);
}

template <typename T>
void Rwkv6DecayBackward(const T* d, const T* logw, const T* k_exp, std::int64_t n, bool balance,
                        T* dk, T* dlogw, cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        float dlw = Ld(dlogw, i);
        if (balance) {
          const float em1 = expm1f(Ld(logw, i));  // w - 1
          const float dki = Ld(dk, i);
          dlw -= dki * Ld(k_exp, i) * (em1 + 1.0f);
          St(dk, i, dki * -em1);
        }
        const float e = -expf(Ld(d, i));
        St(dlogw, i, e >= glue::kLogDecayMin ? dlw * e : 0.0f);
      },
      stream);
}

template <typename T>
void Rwkv6GateForward(T* g, const T* pn, std::int64_t n, T* pg, cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float gi = SigmoidF(Ld(g, i));
        St(g, i, gi);
        St(pg, i, Ld(pn, i) * gi);
      },
      stream);
}

template <typename T>
void Rwkv6GateBackward(const T* d_pg, const T* g, const T* pn, std::int64_t n, T* d_pn, T* dz,
                       cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float gi = Ld(g, i), d = Ld(d_pg, i);
        St(d_pn, i, d * gi);
        St(dz, i, d * Ld(pn, i) * (gi * (1.0f - gi)));
      },
      stream);
}

// ---- RWKV-7 -------------------------------------------------------------------------------------

template <typename T>
void Rwkv7DecayForward(T* lw, std::int64_t n, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { St(lw, i, -kRwkv7DecayScale * SigmoidF(Ld(lw, i))); }, stream);
}

template <typename T>
void Rwkv7DplrKeys(const T* kx, const T* a, const T* logw, const float* k_k, const float* k_a,
                   std::int64_t rows, std::int64_t heads, std::int64_t n_head, bool balance,
                   T* kappa, float* nrm, T* ktil, T* ad, T* bd, cudaStream_t stream) {
  if (rows <= 0 || n_head <= 0) return;
  glue::DplrKeysKernel<T><<<glue::RowWarpBlocks(rows), 32 * glue::kRowWarps, 0, stream>>>(
      kx, a, logw, k_k, k_a, rows, heads, n_head, balance, kappa, nrm, ktil, ad, bd);
  glue::CheckLaunch();
}

template <typename T>
void Rwkv7KeysBackward(const T* kx, const T* kappa, const float* nrm, const T* a, const T* logw,
                       const float* k_k, const float* k_a, const T* dktil, const T* dad,
                       const T* dbd, std::int64_t rows, std::int64_t heads, std::int64_t n_head,
                       bool balance, T* dlogw, T* dkx, T* da, float* dkk_e, float* dka_e,
                       cudaStream_t stream) {
  if (rows <= 0 || n_head <= 0) return;
  glue::KeysBackwardKernel<T><<<glue::RowWarpBlocks(rows), 32 * glue::kRowWarps, 0, stream>>>(
      kx, kappa, nrm, a, logw, k_k, k_a, dktil, dad, dbd, rows, heads, n_head, balance, dlogw,
      dkx, da, balance ? nullptr : dkk_e, balance ? nullptr : dka_e);
  glue::CheckLaunch();
}

template <typename T>
void Rwkv7ValueMixForward(const T* vx, const T* vfirst, const T* nu, std::int64_t n, T* v,
                          cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float x = Ld(vx, i);
        St(v, i, x + Ld(nu, i) * (Ld(vfirst, i) - x));
      },
      stream);
}

template <typename T>
void Rwkv7ValueMixBackward(const T* dv, const T* vx, const T* vfirst, const T* nu, std::int64_t n,
                           T* dvx, T* dnu, T* dvfirst, cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float d = Ld(dv, i), u = Ld(nu, i);
        St(dvx, i, d * (1.0f - u));
        St(dnu, i, d * (Ld(vfirst, i) - Ld(vx, i)) * u * (1.0f - u));
        if (dvfirst != nullptr) Acc(dvfirst, i, d * u);
      },
      stream);
}

#define RADLADS_RWKV_GLUE_INSTANTIATE(T)                                                        \
  template void Rwkv6ShiftPrepare<T>(const T*, const float*, std::int64_t, std::int64_t,       \
                                     std::int64_t, T*, T*, cudaStream_t);                       \
  template void Rwkv6ShiftMix<T>(const T*, const T*, const T*, Rwkv6ShiftMu, std::int64_t,     \
                                 std::int64_t, T*, cudaStream_t);                               \
  template void Rwkv6ShiftBackwardBranches<T>(const T*, const T*, const T*, Rwkv6ShiftMu,      \
                                              std::int64_t, std::int64_t, T*, T*, T*,           \
                                              Rwkv6ShiftDmu, double*, cudaStream_t);            \
  template void Rwkv6ShiftBackwardFinish<T>(const T*, const T*, const T*, const float*,        \
                                            std::int64_t, std::int64_t, std::int64_t, T*,       \
                                            float*, double*, cudaStream_t);                     \
  template void Rwkv6DecayForward<T>(const T*, const T*, std::int64_t, T*, T*, cudaStream_t);  \
  template void Rwkv6DecayBackward<T>(const T*, const T*, const T*, std::int64_t, bool, T*,    \
                                      T*, cudaStream_t);                                        \
  template void Rwkv6GateForward<T>(T*, const T*, std::int64_t, T*, cudaStream_t);             \
  template void Rwkv6GateBackward<T>(const T*, const T*, const T*, std::int64_t, T*, T*,       \
                                     cudaStream_t);                                             \
  template void Rwkv7DecayForward<T>(T*, std::int64_t, cudaStream_t);                          \
  template void Rwkv7DplrKeys<T>(const T*, const T*, const T*, const float*, const float*,     \
                                 std::int64_t, std::int64_t, std::int64_t, bool, T*, float*,    \
                                 T*, T*, T*, cudaStream_t);                                     \
  template void Rwkv7KeysBackward<T>(const T*, const T*, const float*, const T*, const T*,     \
                                     const float*, const float*, const T*, const T*, const T*,  \
                                     std::int64_t, std::int64_t, std::int64_t, bool, T*, T*,    \
                                     T*, float*, float*, cudaStream_t);                         \
  template void Rwkv7ValueMixForward<T>(const T*, const T*, const T*, std::int64_t, T*,        \
                                        cudaStream_t);                                          \
  template void Rwkv7ValueMixBackward<T>(const T*, const T*, const T*, const T*, std::int64_t, \
                                         T*, T*, T*, cudaStream_t);

RADLADS_RWKV_GLUE_INSTANTIATE(float)
RADLADS_RWKV_GLUE_INSTANTIATE(__nv_bfloat16)
#undef RADLADS_RWKV_GLUE_INSTANTIATE

}  // namespace radlads::cuda
