// The planner's memory model for one-GPU training (`radlads-coord run --device cuda`,
// pipeline/cuda/cuda_trainers.h): the device bytes the trainers allocate for a task of each
// training step, each term a named formula (docs/planner.md §4, "One GPU").
//
// The design it models (pipeline/cuda/gpu_model.h): fp32 master weights, fp32 gradients and two
// fp32 AdamW moments of every trainable parameter, plus a bf16 copy of the matrices for the
// GEMMs (counted for every parameter); the frozen teacher with bf16 matrices and fp32 vectors;
// fp32 activations between ops, each layer recomputed in the backward from its saved fp32
// [B,T,C] input (every layer's input kept, one layer's activations alive); the fused LM head +
// loss tiled over [rows, vocabulary chunk] (kernels/cuda/head_loss_plan.h), never holding fp32
// logits for the whole vocabulary; the caching allocator's 512-byte rounding per tensor.
//
// What it is compared with: the caching allocator's peak (cuda::CurrentDeviceMemory), reported
// by the task as "peak_gpu_mib" and printed by the run beside this estimate. The CUDA context and
// the libraries' handles are not allocations of ours and not counted here (a few hundred MiB per
// process, inside the capacity margin).
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/memory_model.h"
#include "plan/plan.h"

namespace radlads {

enum class OneGpuStep { kAlign, kDistill, kFinetune };

struct OneGpuQuery {
  OneGpuStep step = OneGpuStep::kDistill;
  std::int64_t micro_batch = 1, seq_len = 0;
  std::int64_t loss_rows = 512;     // head loss rows per block (kl_chunk_tokens; 512 for step 3)
  std::int64_t vocab_chunk = 8192;  // head loss vocabulary chunk (kernels/cuda/head_loss_plan.h)
};

// cuBLASLt's workspace per stream (kernels/cuda/gemm.h) is a cudaMalloc of its own: listed
// with 0 bytes, like the context.
// One student mixer's activations kept by its training forward plus the buffers alive in its
// backward, bytes per token (coefficients read from pipeline/cuda/gpu_rwkv6.cpp, gpu_rwkv7.cpp).
double GpuMixerBytesPerToken(const ModelSizes& s);

// One task's device bytes. capacity_bytes / usable_bytes are 0 (the planner does not know
// the card); `what` is "align task (one GPU)", "distill (one GPU)" or "finetune (one GPU)".
MemoryBreakdown OneGpuTrainingMemory(const ModelSizes& s, const OneGpuQuery& q);

// The plan's enabled training steps on one GPU, in protocol order, each at its planned
// micro-batch and sequence length.
std::vector<MemoryBreakdown> OneGpuPlanMemory(const Plan& plan);

}  // namespace radlads
