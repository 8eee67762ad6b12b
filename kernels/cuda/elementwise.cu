// Elementwise glue kernels (contract: kernels/cuda/elementwise.h).
#include "kernels/cuda/elementwise.h"

#include "kernels/cuda/glue_common.cuh"

namespace radlads::cuda {

using namespace glue;  // glue_common.cuh's helpers, as in norms.cu, optimizer.cu, rope.cu

template <typename T>
void ActivationForward(Activation act, const T* x, std::int64_t n, T* y, cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float v = Ld(x, i);
        float r;
        switch (act) {
          case Activation::kSigmoid: r = SigmoidF(v); break;
          case Activation::kTanh: r = glue::TanhF(v); break;
          case Activation::kSilu: r = glue::SiluF(v); break;
          default: r = glue::SoftplusF(v); break;
        }
        St(y, i, r);
      },
      stream);
}

template <typename T>
void ActivationBackward(Activation act, const T* saved, const T* dy, std::int64_t n, T* dx,
                        cudaStream_t stream) {
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float v = Ld(saved, i);
        float d;
        switch (act) {
          case Activation::kSigmoid: d = v * (1.0f - v); break;
          case Activation::kTanh: d = 1.0f - v * v; break;
          case Activation::kSilu: {
            const float s = SigmoidF(v);
            d = s * (1.0f + v * (1.0f - s));
            break;
          }
          default: d = SigmoidF(v); break;
        }
        Acc(dx, i, Ld(dy, i) * d);
      },
      stream);
}

template <typename T>
void SwiGluForward(const T* g, const T* u, std::int64_t n, T* y, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { St(y, i, glue::SiluF(Ld(g, i)) * Ld(u, i)); }, stream);
}

template <typename T>
void SwiGluBackward(const T* g, const T* u, const T* dy, std::int64_t n, T* dg, T* du,
                    cudaStream_t stream) {
  if (dg == nullptr && du == nullptr) return;
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float x = Ld(g, i), d = Ld(dy, i);
        const float s = SigmoidF(x);
        if (dg != nullptr) Acc(dg, i, d * Ld(u, i) * (s * (1.0f + x * (1.0f - s))));
        if (du != nullptr) Acc(du, i, d * (x * s));
      },
      stream);
}

template <typename T>
void LoraActivationInPlace(LoraAct act, T* h, std::int64_t n, cudaStream_t stream) {
  if (act == LoraAct::kNone) return;
  const bool tanh_act = act == LoraAct::kTanh;
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float v = Ld(h, i);
        St(h, i, tanh_act ? glue::TanhF(v) : SigmoidF(v));
      },
      stream);
}

template <typename T>
void LoraActivationGradInPlace(LoraAct act, const T* h, T* dz, std::int64_t n,
                               cudaStream_t stream) {
  if (act == LoraAct::kNone) return;
  const bool tanh_act = act == LoraAct::kTanh;
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float v = Ld(h, i);
        St(dz, i, Ld(dz, i) * (tanh_act ? 1.0f - v * v : v * (1.0f - v)));
      },
      stream);
}

template <typename T>
void BroadcastRows(const float* bias, std::int64_t n, std::int64_t c, T* y, cudaStream_t stream) {
  if (c <= 0) return;
  ForEach(
      n * c, [=] __device__(i64 i) { St(y, i, bias[i % c]); }, stream);
}

template <typename T>
void SumRows(const T* x, std::int64_t n, std::int64_t c, float* out, double* ws,
             cudaStream_t stream) {
  ColumnSum(n, c, glue::RowsOf<T>{x, c}, glue::AccumulateF32{out}, ws, stream);
}

template <typename T>
void AddScaled(const T* a, float alpha, const T* b, std::int64_t n, T* y, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { St(y, i, Ld(a, i) + alpha * Ld(b, i)); }, stream);
}

template <typename T>
void Mul(const T* a, const T* b, std::int64_t n, T* y, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { St(y, i, Ld(a, i) * Ld(b, i)); }, stream);
}

template <typename T>
void MulBackward(const T* a, const T* b, const T* dy, std::int64_t n, T* da, T* db,
                 cudaStream_t stream) {
  if (da == nullptr && db == nullptr) return;
  ForEach(
      n,
      [=] __device__(i64 i) {
        const float g = Ld(dy, i);
        if (da != nullptr) Acc(da, i, g * Ld(b, i));
        if (db != nullptr) Acc(db, i, g * Ld(a, i));
      },
      stream);
}

template <typename T>
void MulRowBroadcast(const T* a, const float* b, std::int64_t n, std::int64_t c, T* y,
                     cudaStream_t stream) {
  if (c <= 0) return;
  ForEach(
      n * c, [=] __device__(i64 i) { St(y, i, Ld(a, i) * b[i % c]); }, stream);
}

template <typename T>
void MulRowBroadcastBackward(const T* a, const float* b, const T* dy, std::int64_t n,
                             std::int64_t c, T* da, float* db, double* ws, cudaStream_t stream) {
  if (c <= 0) return;
  if (da != nullptr) {
    ForEach(
        n * c, [=] __device__(i64 i) { Acc(da, i, Ld(dy, i) * b[i % c]); }, stream);
  }
  if (db != nullptr)
    ColumnSum(n, c, glue::RowsOfProduct<T>{dy, a, c}, glue::AccumulateF32{db}, ws, stream);
}

template <typename T>
void LerpForward(const T* x, const T* d, const float* mu, const T* m, std::int64_t n,
                 std::int64_t c, T* y, cudaStream_t stream) {
  if (c <= 0) return;
  ForEach(
      n * c,
      [=] __device__(i64 i) {
        const float coef = m != nullptr ? mu[i % c] + Ld(m, i) : mu[i % c];
        St(y, i, Ld(x, i) + Ld(d, i) * coef);
      },
      stream);
}

template <typename T>
void LerpBackward(const T* d, const float* mu, const T* m, const T* dy, std::int64_t n,
                  std::int64_t c, T* dx, T* dd, float* dmu, T* dm, double* ws,
                  cudaStream_t stream) {
  if (c <= 0) return;
  if (dm != nullptr && m == nullptr) {
    std::fprintf(stderr, "LerpBackward: dm requested without m\n");
    std::abort();
  }
  if (dx != nullptr || dd != nullptr || dm != nullptr) {
    ForEach(
        n * c,
        [=] __device__(i64 i) {
          const float g = Ld(dy, i);
          if (dx != nullptr) Acc(dx, i, g);
          if (dd != nullptr) Acc(dd, i, g * (mu[i % c] + (m != nullptr ? Ld(m, i) : 0.0f)));
          if (dm != nullptr) Acc(dm, i, g * Ld(d, i));
        },
        stream);
  }
  if (dmu != nullptr)
    ColumnSum(n, c, glue::RowsOfProduct<T>{dy, d, c}, glue::AccumulateF32{dmu}, ws, stream);
}

template <typename T>
void TokenShiftDeltaForward(const T* x, std::int64_t batch, std::int64_t time, std::int64_t c,
                            T* delta, cudaStream_t stream) {
  if (time <= 0 || c <= 0) return;
  const i64 tc = time * c;
  ForEach(
      batch * tc,
      [=] __device__(i64 i) {
        const bool first = i % tc < c;
        St(delta, i, (first ? 0.0f : Ld(x, i - c)) - Ld(x, i));
      },
      stream);
}

template <typename T>
void TokenShiftDeltaBackward(const T* ddelta, std::int64_t batch, std::int64_t time,
                             std::int64_t c, T* dx, cudaStream_t stream) {
  if (time <= 0 || c <= 0) return;
  const i64 tc = time * c;
  ForEach(
      batch * tc,
      [=] __device__(i64 i) {
        const bool last = i % tc >= tc - c;
        const float g = Ld(ddelta, i);
        Acc(dx, i, last ? -g : Ld(ddelta, i + c) - g);
      },
      stream);
}

void ConvertF32ToBf16(const float* src, std::int64_t n, __nv_bfloat16* dst, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { dst[i] = __float2bfloat16_rn(src[i]); }, stream);
}

void ConvertBf16ToF32(const __nv_bfloat16* src, std::int64_t n, float* dst, cudaStream_t stream) {
  ForEach(
      n, [=] __device__(i64 i) { dst[i] = __bfloat162float(src[i]); }, stream);
}

#define RADLADS_GLUE_INSTANTIATE(T)                                                             \
  template void ActivationForward<T>(Activation, const T*, std::int64_t, T*, cudaStream_t);    \
  template void ActivationBackward<T>(Activation, const T*, const T*, std::int64_t, T*,        \
                                      cudaStream_t);                                            \
  template void SwiGluForward<T>(const T*, const T*, std::int64_t, T*, cudaStream_t);          \
  template void SwiGluBackward<T>(const T*, const T*, const T*, std::int64_t, T*, T*,          \
                                  cudaStream_t);                                                \
  template void LoraActivationInPlace<T>(LoraAct, T*, std::int64_t, cudaStream_t);             \
  template void LoraActivationGradInPlace<T>(LoraAct, const T*, T*, std::int64_t,              \
                                             cudaStream_t);                                     \
  template void BroadcastRows<T>(const float*, std::int64_t, std::int64_t, T*, cudaStream_t);  \
  template void SumRows<T>(const T*, std::int64_t, std::int64_t, float*, double*,              \
                           cudaStream_t);                                                       \
  template void AddScaled<T>(const T*, float, const T*, std::int64_t, T*, cudaStream_t);       \
  template void Mul<T>(const T*, const T*, std::int64_t, T*, cudaStream_t);                    \
  template void MulBackward<T>(const T*, const T*, const T*, std::int64_t, T*, T*,             \
                               cudaStream_t);                                                   \
  template void MulRowBroadcast<T>(const T*, const float*, std::int64_t, std::int64_t, T*,     \
                                   cudaStream_t);                                               \
  template void MulRowBroadcastBackward<T>(const T*, const float*, const T*, std::int64_t,     \
                                           std::int64_t, T*, float*, double*, cudaStream_t);    \
  template void LerpForward<T>(const T*, const T*, const float*, const T*, std::int64_t,       \
                               std::int64_t, T*, cudaStream_t);                                 \
  template void LerpBackward<T>(const T*, const float*, const T*, const T*, std::int64_t,      \
                                std::int64_t, T*, T*, float*, T*, double*, cudaStream_t);       \
  template void TokenShiftDeltaForward<T>(const T*, std::int64_t, std::int64_t, std::int64_t,  \
                                          T*, cudaStream_t);                                    \
  template void TokenShiftDeltaBackward<T>(const T*, std::int64_t, std::int64_t, std::int64_t, \
                                           T*, cudaStream_t);

RADLADS_GLUE_INSTANTIATE(float)
RADLADS_GLUE_INSTANTIATE(__nv_bfloat16)
#undef RADLADS_GLUE_INSTANTIATE

}  // namespace radlads::cuda
