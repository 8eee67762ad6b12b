// CUDA versions of the elementwise chains that pipeline/rwkv6_mixer.cpp and rwkv7_mixer.cpp run
// between their GEMMs, LoRA products and recurrences: the same formulas, fused the way the CPU
// mixers fuse them, on device pointers.
//   - T is float or __nv_bfloat16 for every activation-shaped tensor of one call (math fp32);
//     [C] / [A] parameters and their gradients are fp32.
//   - "out" = OVERWRITTEN, "+=" = ACCUMULATED, "in/out" = transformed in place; as on the CPU.
//   - Parameter gradients reduced over rows are two-level fp64 column sums (glue_plan.h); `ws`
//     needs ColSumWorkspaceBytes(rows, cols) bytes for the (rows, cols) named at the function.
//   - Deterministic (no atomics); asynchronous on `stream`.
// Layouts: rows = B*T tokens, C model channels, A = H*N attention channels; [5, BT, C] is the
// RWKV-6 tokenshift's five branches r, k, v, w, g (time_maa_w2's block order).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace radlads::cuda {

inline constexpr int kRwkv6Shifts = 5;

// ---- RAD-RWKV6 tokenshift: x_c = x + delta (mu_c + m_c), m = tanh(xx T1) T2, xx = x + delta mu_x,
// delta_t = x_{t-1} - x_t (x_{-1} = 0 at every window start) ------------------------------------

// delta, xx [B, T, C] out.
template <typename T>
void Rwkv6ShiftPrepare(const T* x, const float* mu_x, std::int64_t batch, std::int64_t time,
                       std::int64_t c, T* delta, T* xx, cudaStream_t stream);

struct Rwkv6ShiftMu {
  const float* mu[kRwkv6Shifts];  // time_maa_{r,k,v,w,g} [C]
};
struct Rwkv6ShiftDmu {
  float* dmu[kRwkv6Shifts];  // their gradients [C] (+=; null: frozen)
};

// xs [5, rows, C] out = x + delta (mu_i + m_i), m [5, rows, C] (the LoRA output).
template <typename T>
void Rwkv6ShiftMix(const T* x, const T* delta, const T* m, Rwkv6ShiftMu mu, std::int64_t rows,
                   std::int64_t c, T* xs, cudaStream_t stream);

// First backward pass, dxs [5, rows, C] the five branches' input gradients:
//   dx += sum_i dxs_i;  ddelta out = sum_i dxs_i (mu_i + m_i);  dm [5, rows, C] out = dxs_i delta;
//   dmu_i += float(fp64 column sum of dxs_i delta)   (ws: rows x 5C).
template <typename T>
void Rwkv6ShiftBackwardBranches(const T* dxs, const T* delta, const T* m, Rwkv6ShiftMu mu,
                                std::int64_t rows, std::int64_t c, T* dx, T* ddelta, T* dm,
                                Rwkv6ShiftDmu dmu, double* ws, cudaStream_t stream);

// Second pass, after the LoRA backward gave dxx [B, T, C] (xx's gradient): with
// f_t = ddelta_t + dxx_t mu_x (delta's total gradient),
//   dx_t += dxx_t;  dx_t += f_{t+1} - f_t (f_T = 0);  dmu_x += float(column sum of dxx delta)
//   (ws: rows x C; dmu_x null skips).
template <typename T>
void Rwkv6ShiftBackwardFinish(const T* dxx, const T* delta, const T* ddelta, const float* mu_x,
                              std::int64_t batch, std::int64_t time, std::int64_t c, T* dx,
                              float* dmu_x, double* ws, cudaStream_t stream);

// ---- RAD-RWKV6 decay and state balancing ---------------------------------------------------------
// logw out = max(-exp(d), -5); with k_out non-null (balance_state): k_out = k_exp * (1 - exp(logw)).
template <typename T>
void Rwkv6DecayForward(const T* d, const T* k_exp, std::int64_t n, T* logw, T* k_out,
                       cudaStream_t stream);
// In place: with balance, dk (in/out) becomes dk' = dk (1 - w) and dlogw first gains
// -dk k_exp w; then dlogw (in/out) becomes the gradient wrt d: dlogw * (-exp(d)) where
// -exp(d) >= -5, else 0. Without balance k_exp and dk are ignored (pass null).
template <typename T>
void Rwkv6DecayBackward(const T* d, const T* logw, const T* k_exp, std::int64_t n, bool balance,
                        T* dk, T* dlogw, cudaStream_t stream);

// ---- RAD-RWKV6 full-rank gate (gate_rank_type 1) -----------------------------------------------------
// g (in/out: z -> sigmoid(z)); pg out = pn * g.
template <typename T>
void Rwkv6GateForward(T* g, const T* pn, std::int64_t n, T* pg, cudaStream_t stream);
// d_pn out = d_pg g;  dz out = d_pg pn g (1 - g).
template <typename T>
void Rwkv6GateBackward(const T* d_pg, const T* g, const T* pn, std::int64_t n, T* d_pn, T* dz,
                       cudaStream_t stream);

// ---- RAD-RWKV7 ----------------------------------------------------------------------------------------
inline constexpr float kRwkv7DecayScale = 0.60653065971263342f;  // e^-0.5
inline constexpr float kRwkv7NormEps = 1e-12f;                    // F.normalize's eps

// lw (in/out) = -e^-0.5 sigmoid(lw): the decay after its LoRA.
template <typename T>
void Rwkv7DecayForward(T* lw, std::int64_t n, cudaStream_t stream);

// The removal / replacement keys per (token, head) row of N channels (rows = B*T*H, heads H;
// channel of element j of row q: (q % H) * N + j in k_k, k_a [A]):
//   kappa = k / max(|k|, eps) (balance) or k k_k / max(|k k_k|, eps), |.| in fp64;
//   ktil  = k (1 - exp(logw) + a) (balance) or k (1 + (a - 1) k_a);
//   ad = -kappa;  bd = kappa a.
// With nrm non-null, kappa and nrm [rows] are written; with nrm null, kappa is READ (the
// backward's recomputation). ktil, ad, bd out. k_k / k_a unused with balance (may be null).
template <typename T>
void Rwkv7DplrKeys(const T* kx, const T* a, const T* logw, const float* k_k, const float* k_a,
                   std::int64_t rows, std::int64_t heads, std::int64_t n_head, bool balance,
                   T* kappa, float* nrm, T* ktil, T* ad, T* bd, cudaStream_t stream);

// The keys', decay's and ICLR's backward, fused per row as in Rwkv7Mixer::Backward. Inputs:
// the saved kx, kappa, nrm, a (post-sigmoid), logw, and the recurrence's dktil, dad, dbd.
//   dkx out;  da out = pre-sigmoid ICLR gradient;  dlogw in/out: the recurrence's d log w in,
//   the gradient wrt the decay's pre-sigmoid value out;
//   without balance: dkk_e, dka_e [rows*N] fp32 out (null skips): the per-element terms whose
//   column sums (SumRows over B*T rows of A) are dk_k and dk_a.
template <typename T>
void Rwkv7KeysBackward(const T* kx, const T* kappa, const float* nrm, const T* a, const T* logw,
                       const float* k_k, const float* k_a, const T* dktil, const T* dad,
                       const T* dbd, std::int64_t rows, std::int64_t heads, std::int64_t n_head,
                       bool balance, T* dlogw, T* dkx, T* da, float* dkk_e, float* dka_e,
                       cudaStream_t stream);

// Value residual (layers > 0): v out = vx + nu (vfirst - vx).
template <typename T>
void Rwkv7ValueMixForward(const T* vx, const T* vfirst, const T* nu, std::int64_t n, T* v,
                          cudaStream_t stream);
// dvx out = dv (1 - nu);  dnu out = dv (vfirst - vx) nu (1 - nu) (pre-sigmoid);
// dvfirst += dv nu (null skips).
template <typename T>
void Rwkv7ValueMixBackward(const T* dv, const T* vx, const T* vfirst, const T* nu, std::int64_t n,
                           T* dvx, T* dnu, T* dvfirst, cudaStream_t stream);

}  // namespace radlads::cuda
