// Device building blocks of the CUDA trainers (pipeline/cuda/cuda_trainers.h): the layer-level
// operations the CPU pipeline gets from kernels/ops (Linear, LoRA, GQA expansion, embedding),
// written over the CUDA kernels of kernels/cuda on raw device pointers.
//
// Precision: activations and their gradients are fp32 on the device; every GEMM takes bf16
// operands (the weights' bf16 copies, activations rounded to bf16 right before the GEMM) and
// accumulates in fp32 (kernels/cuda/gemm.h). Conventions as kernels/ops: forwards OVERWRITE,
// backwards ACCUMULATE (+=) unless a comment says otherwise; a null gradient skips it.
// Everything is enqueued on `s`; temporaries come from the caching allocator on `s`, so they
// are reusable as soon as the host call returns. Deterministic (fixed orders, no atomics).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_tensor.h"
#include "kernels/cuda/elementwise.h"

namespace radlads::cuda {

using bf16 = __nv_bfloat16;

DeviceTensor EmptyF32(std::int64_t n, cudaStream_t s);
DeviceTensor ZerosF32(std::int64_t n, cudaStream_t s);
// A bf16 copy of n fp32 values.
DeviceTensor ToBf16(const float* x, std::int64_t n, cudaStream_t s);
void CopyF32(const float* src, std::int64_t n, float* dst, cudaStream_t s);

// y [n, out] = x [n, in] W^T (+ bias [out]); W bf16 [out, in] (PyTorch Linear layout).
void LinearForward(const bf16* x, std::int64_t n, std::int64_t in, const bf16* w, const float* bias,
                   std::int64_t out, float* y, cudaStream_t s);
// dx [n, in] (+= when accumulate_dx, else =) dy W;  dw [out, in] += dy^T x;  db [out] += column
// sums of dy. dy is fp32 [n, out] (rounded to bf16 for the GEMMs); x is the forward's bf16 input
// (may be null when dw is null).
void LinearBackward(const bf16* x, const float* dy, std::int64_t n, std::int64_t in, std::int64_t out,
                    const bf16* w, float* dx, bool accumulate_dx, float* dw, float* db, cudaStream_t s);

// LoRA chain y = act(x W1) W2 (+ bias), factors stored [in, K*r] and [K, r, out] (kernels/ops/lora.h).
struct LoraWeights {
  const bf16* w1 = nullptr;
  const bf16* w2 = nullptr;
  std::int64_t in = 0, rank = 0, out = 0, blocks = 1;  // K = blocks (5 for the tokenshift)
  const float* bias = nullptr;                          // [out], only with K = 1
};
struct LoraGrads {
  float* dw1 = nullptr;
  float* dw2 = nullptr;
  float* dbias = nullptr;
};
// h [n, K*r] out = act(x W1);  y [K, n, out] out.
void LoraForward(const bf16* x, std::int64_t n, const LoraWeights& w, LoraAct act, float* h, float* y,
                 cudaStream_t s);
// dy [K, n, out]; dx [n, in] +=; the factor and bias gradients +=.
void LoraBackward(const bf16* x, std::int64_t n, const LoraWeights& w, LoraAct act, const float* h,
                  const float* dy, float* dx, const LoraGrads& g, cudaStream_t s);

// GQA expansion (kernels/ops/gqa.h): x [rows, hkv, d] -> y [rows, hkv*group, d], query head h
// reads kv head h / group. Backward: dx [rows, hkv, d] += the group sum of dy (in group order).
void GqaExpandForward(const float* x, std::int64_t rows, std::int64_t hkv, std::int64_t group,
                      std::int64_t d, float* y, cudaStream_t s);
void GqaExpandBackward(const float* dy, std::int64_t rows, std::int64_t hkv, std::int64_t group,
                       std::int64_t d, float* dx, cudaStream_t s);

// out [n, c] fp32 = table rows ids[i] (ids must be in range: the caller checks on the host).
void EmbeddingForward(const std::int32_t* ids, std::int64_t n, const float* table, std::int64_t c,
                      float* out, cudaStream_t s);
void EmbeddingForward(const std::int32_t* ids, std::int64_t n, const bf16* table, std::int64_t c,
                      float* out, cudaStream_t s);
// dtable[ids[i]] += dout[i] for i in order (one thread per column walks the positions: the
// CPU op's order, deterministic).
void EmbeddingBackward(const std::int32_t* ids, std::int64_t n, const float* dout, std::int64_t c,
                       float* dtable, cudaStream_t s);

}  // namespace radlads::cuda
