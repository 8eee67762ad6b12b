// CUDA elementwise ops: activations, SwiGLU, the elementwise steps of the LoRA chains, products,
// lerp, token shift, row sums and bf16 <-> fp32 conversion. Same math, layouts and conventions
// as kernels/ops/activation.h, elementwise.h and lora.h, on device pointers:
//   - forward ops OVERWRITE their outputs (which may alias an input of the same shape unless a
//     comment says otherwise); backward ops ACCUMULATE (+=) into every gradient; a null
//     gradient pointer skips it;
//   - T is float or __nv_bfloat16 (activations and their gradients; one dtype per call, math in
//     fp32, bf16 stored with round-to-nearest-even); broadcast vectors ([C] parameters) and
//     their gradients are fp32;
//   - gradients of broadcast [C] vectors are two-level fp64 column sums (glue_plan.h): `ws`
//     needs ColSumWorkspaceBytes(n, c) bytes whenever such a gradient is requested;
//   - everything runs asynchronously on `stream`; deterministic (no atomics); n = elements,
//     or rows for [n, c] arguments. Grid-stride loops of 256 threads.
// Activation formulas are the CPU's (vec_math.h) with CUDA's libm (expf, tanhf, log1pf: a few
// ulp from the CPU's polynomials).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace radlads::cuda {

enum class Activation : int { kSigmoid, kTanh, kSilu, kSoftplus };

// y = act(x).
template <typename T>
void ActivationForward(Activation act, const T* x, std::int64_t n, T* y, cudaStream_t stream);
// dx += dy * act'(.): sigmoid/tanh take the forward OUTPUT y as `saved` (s(1-s), 1-t^2);
// silu/softplus take the INPUT x (silu'(x), sigmoid(x)).
template <typename T>
void ActivationBackward(Activation act, const T* saved, const T* dy, std::int64_t n, T* dx,
                        cudaStream_t stream);

// SwiGLU: y = silu(g) * u (y may alias g or u); dg += dy*u*silu'(g), du += dy*silu(g).
template <typename T>
void SwiGluForward(const T* g, const T* u, std::int64_t n, T* y, cudaStream_t stream);
template <typename T>
void SwiGluBackward(const T* g, const T* u, const T* dy, std::int64_t n, T* dg, T* du,
                    cudaStream_t stream);

// --- LoRA chains (kernels/ops/lora.h): y = act(x W1) W2 (+ bias); the GEMMs run elsewhere ----
enum class LoraAct : int { kNone, kTanh, kSigmoid };
// h = act(h) in place (after the first GEMM). kNone: nothing.
template <typename T>
void LoraActivationInPlace(LoraAct act, T* h, std::int64_t n, cudaStream_t stream);
// dz *= act'(.) in place, through the saved activation output h (tanh: 1-h^2, sigmoid:
// h(1-h), none: nothing). dz = dy W2^T comes from a GEMM; this is an OVERWRITE, not an add.
template <typename T>
void LoraActivationGradInPlace(LoraAct act, const T* h, T* dz, std::int64_t n,
                               cudaStream_t stream);
// y [n, c] = bias [c] on every row (the prefill before the second GEMM with beta = 1).
template <typename T>
void BroadcastRows(const float* bias, std::int64_t n, std::int64_t c, T* y, cudaStream_t stream);
// out [c] += sum over the rows of x [n, c] (LoRA dbias, GroupNorm db, any broadcast bias).
template <typename T>
void SumRows(const T* x, std::int64_t n, std::int64_t c, float* out, double* ws,
             cudaStream_t stream);

// --- products, sums, lerp -------------------------------------------------------------------
// y = a + alpha * b (all n elements; y may alias a or b).
template <typename T>
void AddScaled(const T* a, float alpha, const T* b, std::int64_t n, T* y, cudaStream_t stream);
// y = a * b, same shape (n elements).
template <typename T>
void Mul(const T* a, const T* b, std::int64_t n, T* y, cudaStream_t stream);
// da += dy * b; db += dy * a (same shape).
template <typename T>
void MulBackward(const T* a, const T* b, const T* dy, std::int64_t n, T* da, T* db,
                 cudaStream_t stream);
// y [n, c] = a [n, c] * b [c] (b broadcast over rows, e.g. RWKV-7's k * k_k).
template <typename T>
void MulRowBroadcast(const T* a, const float* b, std::int64_t n, std::int64_t c, T* y,
                     cudaStream_t stream);
// da += dy * b; db [c] += sum over rows of dy * a.
template <typename T>
void MulRowBroadcastBackward(const T* a, const float* b, const T* dy, std::int64_t n,
                             std::int64_t c, T* da, float* db, double* ws, cudaStream_t stream);

// Data-dependent lerp (RWKV-6 tokenshift): y = x + d * (mu + m). x, d, y, m: [n, c]; mu: [c];
// m may be null (mu alone).
template <typename T>
void LerpForward(const T* x, const T* d, const float* mu, const T* m, std::int64_t n,
                 std::int64_t c, T* y, cudaStream_t stream);
// dx += dy; dd += dy*(mu + m); dmu [c] += sum over rows of dy*d; dm += dy*d. Pass the same m
// (possibly null) as the forward; dm must be null when m is.
template <typename T>
void LerpBackward(const T* d, const float* mu, const T* m, const T* dy, std::int64_t n,
                  std::int64_t c, T* dx, T* dd, float* dmu, T* dm, double* ws,
                  cudaStream_t stream);

// --- token shift (elementwise.h) -------------------------------------------------------------
// delta[b, t] = x[b, t-1] - x[b, t], x[b, -1] = 0. x, delta [B, T, C]; no aliasing.
template <typename T>
void TokenShiftDeltaForward(const T* x, std::int64_t batch, std::int64_t time, std::int64_t c,
                            T* delta, cudaStream_t stream);
// dx[b, t] += ddelta[b, t+1] - ddelta[b, t] (the first term only for t < T-1); no aliasing.
template <typename T>
void TokenShiftDeltaBackward(const T* ddelta, std::int64_t batch, std::int64_t time,
                             std::int64_t c, T* dx, cudaStream_t stream);

// --- conversion -----------------------------------------------------------------------------
// Round to nearest even (NaN stays NaN, +-inf stays), as base/dtype.h's F32ToBf16.
void ConvertF32ToBf16(const float* src, std::int64_t n, __nv_bfloat16* dst, cudaStream_t stream);
// Exact.
void ConvertBf16ToF32(const __nv_bfloat16* src, std::int64_t n, float* dst, cudaStream_t stream);

}  // namespace radlads::cuda
