// The RADLADS training steps on one CUDA device: the same contract as pipeline/train_steps.h
// (AlignTrainer, DistillTrainer, FinetuneTrainer) with the model resident on the GPU.
//
// Numerics (docs/cuda.md): fp32 master weights and AdamW moments on the device; activations and
// GEMM operands in bf16 with fp32 accumulation (kernels/cuda/gemm.h); recurrences with fp32
// state (kernels/cuda/gla.h, kernels/cuda/dplr.h); the teacher's attention through
// kernels/cuda/attention.h; the LM head and KL / CE through kernels/cuda/head_loss.h, never
// holding fp32 logits for the whole vocabulary. Each layer's activations are recomputed in the
// backward from the layer's saved input (activation recomputation per layer), so device memory
// holds one layer's activations plus every layer's [B,T,C] input.
// Results match the CPU trainers to bf16 tolerance, not bit for bit; on one device and one
// build they are deterministic (no float atomics, fixed reduction orders, cuBLASLt algorithms
// fixed per shape).
//
// Host <-> device: the constructors upload the trainable ParamSet (F32 values, and the AdamW
// moments when present: a resumed run continues exactly where its checkpoint left), and the
// frozen teacher (F32 or BF16/F16 views, converted to bf16 once on the device).
// SyncToHost writes the device's master weights, moments and the optimizer step counter back
// into the ParamSet, so the CPU code that writes checkpoints and exports models is unchanged.
// Gradients stay on the device.
//
// Without the CUDA backend (RADLADS_HAVE_CUDA == 0) every constructor throws
// std::runtime_error("built without the CUDA backend ..."), and CudaTrainingAvailable() says
// why, so `--device cuda` can be refused before any work.
// Thread-safety: none; one trainer per device and thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pipeline/decoder.h"
#include "pipeline/lm_batch.h"
#include "pipeline/optimizer.h"
#include "pipeline/param_set.h"
#include "pipeline/train_steps.h"
#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads::cuda {

// Empty when one-GPU training can run here; else why not ("built without the CUDA backend",
// "no usable CUDA device: cudaErrorInsufficientDriver ...").
std::string CudaTrainingUnavailableReason();

// Device memory the trainers have used: the caching allocator's current and peak bytes on
// device 0, for the planner's GPU memory model to be checked against.
struct DeviceMemoryStats {
  std::int64_t in_use_bytes = 0;
  std::int64_t peak_bytes = 0;
  std::int64_t cached_bytes = 0;  // held by the allocator's cache, free for reuse
  std::int64_t peak_reserved_bytes = 0;  // peak of in-use + cached: what the device really held
};
DeviceMemoryStats CurrentDeviceMemory();
void ResetPeakDeviceMemory();
// Returns the allocator's cached (free) memory to the driver (the trainers' destructors do).
void ReleaseCachedDeviceMemory();

// Step 1, one layer: the student mixer of `layer` (params: that layer's mixer, trainable) against
// the teacher's mixer input and output, as AlignTrainer.
class CudaAlignTrainer {
 public:
  CudaAlignTrainer(const StudentConfig& cfg, int layer, ParamSet& params, const OptimizerSettings& opt);
  ~CudaAlignTrainer();
  AlignStepStats Accumulate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first, float grad_scale);
  double Evaluate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first);
  OptimizerStepResult Step(double lr_mixer);
  void SyncToHost(ParamSet& params);
  std::int64_t optimizer_step() const;
  // On resume: the step counter of the checkpoint (the moments come with the ParamSet).
  void set_optimizer_step(std::int64_t step);
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Step 2: the whole student (every parameter trainable) against the frozen teacher.
class CudaDistillTrainer {
 public:
  CudaDistillTrainer(const StudentConfig& student_cfg, ParamSet& student_params, const Qwen2Config& teacher_cfg,
                     const ParamSet& teacher_params, const OptimizerSettings& opt, std::int64_t kl_chunk);
  ~CudaDistillTrainer();
  DistillStepStats Accumulate(const LmBatch& batch, float grad_scale);
  DistillStepStats Evaluate(const LmBatch& batch);
  OptimizerStepResult Step(double lr_main, double lr_mixer);
  void SyncToHost(ParamSet& student_params);
  std::int64_t optimizer_step() const;
  // On resume: the step counter of the checkpoint (the moments come with the ParamSet).
  void set_optimizer_step(std::int64_t step);
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Step 3: next-token CE on the student alone.
class CudaFinetuneTrainer {
 public:
  CudaFinetuneTrainer(const StudentConfig& cfg, ParamSet& params, const OptimizerSettings& opt, std::int64_t chunk);
  ~CudaFinetuneTrainer();
  FinetuneStepStats Accumulate(const LmBatch& batch, float grad_scale);
  OptimizerStepResult Step(double lr_main, double lr_mixer);
  void SyncToHost(ParamSet& params);
  std::int64_t optimizer_step() const;
  // On resume: the step counter of the checkpoint (the moments come with the ParamSet).
  void set_optimizer_step(std::int64_t step);
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace radlads::cuda
