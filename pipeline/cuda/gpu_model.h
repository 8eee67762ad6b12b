// The CUDA model behind pipeline/cuda/cuda_trainers.h: parameters on the device, the Qwen2
// decoder stack with activation recomputation per layer, the teacher's attention mixer
// (forward only), the RAD-RWKV6 / RAD-RWKV7 mixers (pipeline/cuda/gpu_rwkv6.cpp,
// gpu_rwkv7.cpp, mirroring pipeline/rwkv6_mixer.cpp and rwkv7_mixer.cpp), and AdamW.
//
// Parameters (GpuParamStore): a trainable parameter has an fp32 master value, a gradient and
// two AdamW moments on the device, plus a bf16 copy when it is a GEMM operand (a "matrix":
// rank >= 2 with more than one row; [1,1,C] vectors are not), refreshed after every optimizer
// step. A frozen parameter (the teacher) keeps only what the forward reads: matrices in bf16,
// vectors (norms, biases) in fp32.
//
// Activations: fp32 [B*T, C] between ops (bf16 only as GEMM operands and the GLA kernel's I/O,
// see gpu_ops.h). Memory per training micro-batch: every layer's input x_l (fp32 [B,T,C],
// L + 1 of them), RAD-RWKV7's v_first ([B,T,A]), and ONE layer's saved activations at a time:
// the forward keeps nothing else, and the backward recomputes layer l's forward from x_l
// (keeping its activations), back-propagates through it, and frees them before layer l-1.
// Thread-safety: none. Everything runs on the stream the caller passes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/device_tensor.h"
#include "kernels/cuda/glue_plan.h"
#include "pipeline/optimizer.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads::cuda {

struct GpuParam {
  std::string name;
  std::vector<std::int64_t> shape;
  std::int64_t n = 0;
  int group = 0;
  bool trainable = false;
  bool matrix = false;
  DeviceTensor value;  // fp32 (trainable: every parameter; frozen: vectors)
  DeviceTensor bf;     // bf16 (matrices)
  DeviceTensor grad, m, v;  // trainable only
  const float* f() const { return value.defined() ? value.f32() : nullptr; }
  const __nv_bfloat16* b() const { return bf.defined() ? bf.bf16() : nullptr; }
  float* g() const { return grad.defined() ? grad.f32() : nullptr; }
};

class GpuParamStore {
 public:
  // Trainable parameters of `params` (F32): values, gradients (zeros) and moments (uploaded
  // when the Param has them, else zeros). Frozen ones are uploaded as frozen.
  void UploadTrainable(const ParamSet& params, cudaStream_t s);
  // A frozen model (F32 or BF16/F16 views): matrices converted to bf16, vectors to fp32.
  void UploadFrozen(const ParamSet& params, cudaStream_t s);
  GpuParam* Find(const std::string& name) const;
  GpuParam& Get(const std::string& name) const;  // aborts when missing
  std::vector<GpuParam*> trainable() const;
  void RefreshBf16(cudaStream_t s);  // trainable matrices' bf16 copies from the fp32 masters
  // Values and (when `moments`) AdamW moments of the trainable parameters into `params`.
  void SyncToHost(ParamSet& params, bool moments, cudaStream_t s) const;
  bool had_moments() const { return had_moments_; }

 private:
  GpuParam& AddParam(const Param& p, bool trainable, cudaStream_t s);
  std::vector<std::unique_ptr<GpuParam>> params_;
  std::map<std::string, GpuParam*, std::less<>> index_;
  bool had_moments_ = false;
};

// RoPE cos/sin tables [positions, D/2] on the device (kernels/cuda/rope.h).
class GpuRope {
 public:
  void Ensure(std::int64_t needed, std::int64_t head_dim, double theta, std::int64_t max_pos_hint,
              cudaStream_t s);
  const float* cos() const { return cos_.f32(); }
  const float* sin() const { return sin_.f32(); }

 private:
  DeviceTensor cos_, sin_;
  std::int64_t positions_ = 0;
};

struct GpuMixerCtx {
  std::int64_t B = 0, T = 0, pos0 = 0;
  const GpuRope* rope = nullptr;
  cudaStream_t s = nullptr;
  // RAD-RWKV7 value residual (pipeline/mixer.h): layer 0's forward writes v_first [B*T, A]
  // (when non-null); later layers read it and their backward adds into dv_first (when non-null),
  // which layer 0's backward consumes.
  float* v_first = nullptr;
  float* dv_first = nullptr;
};

class GpuMixer {
 public:
  virtual ~GpuMixer() = default;
  // y [B*T, C] out. With keep, saves what Backward needs (x must stay unchanged until then).
  virtual void Forward(const float* x, GpuMixerCtx& ctx, float* y, bool keep) = 0;
  // dx [B*T, C] +=; parameter gradients +=; frees the saved activations.
  virtual void Backward(const float* dy, GpuMixerCtx& ctx, float* dx) = 0;
};

std::unique_ptr<GpuMixer> MakeGpuAttention(const Qwen2Config& cfg, int layer, const GpuParamStore& store);
std::unique_ptr<GpuMixer> MakeGpuRwkv6(const StudentConfig& cfg, int layer, const GpuParamStore& store);
std::unique_ptr<GpuMixer> MakeGpuRwkv7(const StudentConfig& cfg, int layer, const GpuParamStore& store);
std::unique_ptr<GpuMixer> MakeGpuStudentMixer(const StudentConfig& cfg, int layer, const GpuParamStore& store);

// The decoder (pipeline/decoder.h's math) over a GpuParamStore with the Hugging Face names.
class GpuDecoder {
 public:
  GpuDecoder(const Qwen2Config& cfg, const GpuParamStore& store, std::vector<std::unique_ptr<GpuMixer>> mixers,
             bool rwkv7_value_residual);
  // ids [B*T] device int32 -> hidden [B*T, C] (after the final norm), written into `hidden`.
  // With train, keeps each layer's input for Backward.
  void Forward(const std::int32_t* ids, std::int64_t B, std::int64_t T, bool train, float* hidden, cudaStream_t s);
  // dhidden [B*T, C]: accumulates every trainable parameter's gradient.
  void Backward(const std::int32_t* ids, const float* dhidden, cudaStream_t s);
  const GpuParam& head() const { return *head_; }
  const Qwen2Config& config() const { return cfg_; }

 private:
  struct LayerW {
    const GpuParam *in_norm, *post_norm, *gate, *up, *down;
  };
  struct Saved {  // one layer's activations, during its backward
    DeviceTensor rstd1, h, n2, rstd2, g, u, a;  // (the mixer keeps its own input)
  };
  void Block(int l, const float* x, GpuMixerCtx& ctx, bool keep, float* out, Saved* sv);
  void BlockBackward(int l, const float* x, const float* dout, GpuMixerCtx& ctx, Saved& sv, float* dx);

  Qwen2Config cfg_;
  std::vector<LayerW> layers_;
  std::vector<std::unique_ptr<GpuMixer>> mixers_;
  const GpuParam *embed_ = nullptr, *final_norm_ = nullptr, *head_ = nullptr;
  bool value_residual_ = false;
  GpuRope rope_;
  // Saved by a training forward.
  std::int64_t B_ = 0, T_ = 0;
  std::vector<DeviceTensor> inputs_;  // x_0 .. x_L
  DeviceTensor final_rstd_, v_first_;
};

// AdamW over a store's trainable parameters (pipeline/optimizer.h's semantics: global-norm
// clipping, the ".self_attn." group on lr_mixer, a skipped update on a non-finite norm, the
// step counter advancing on applied updates only, gradients zeroed after every step).
class GpuAdamW {
 public:
  GpuAdamW(GpuParamStore& store, const OptimizerSettings& opt, cudaStream_t s);
  OptimizerStepResult Step(double lr_main, double lr_mixer, cudaStream_t s);
  std::int64_t step() const { return step_; }
  void set_step(std::int64_t st) { step_ = st; }
  void ZeroGrads(cudaStream_t s);

 private:
  GpuParamStore& store_;
  OptimizerSettings opt_;
  std::int64_t step_ = 0;
  std::int64_t num_chunks_ = 0;
  DeviceTensor entries_, chunks_, ws_, sumsq_, norm_, scale_;
  std::vector<GpuParam*> params_;
};

}  // namespace radlads::cuda
