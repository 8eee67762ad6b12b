// The CUDA trainers (pipeline/cuda/cuda_trainers.h) over the device model of
// pipeline/cuda/gpu_model.h.
//
// Streams: each trainer owns a compute stream and a copy stream. A micro-batch's host inputs
// go through pinned staging buffers and are uploaded on the copy stream, each behind its own
// event, so the compute stream starts on the first input while the later ones are in flight
// (step 1: the forward runs while the target and v_first upload; steps 2/3: the teacher and
// student forwards run while the targets upload). Overlap ACROSS calls (prefetching the next
// micro-batch) is not possible behind this interface: each Accumulate returns its loss, so it
// ends with a synchronisation, and the next batch is not known before the caller passes it.
#include "pipeline/cuda/cuda_trainers.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "base/check.h"
#include "kernels/cuda/align_loss.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_tensor.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/head_loss.h"
#include "pipeline/cuda/gpu_model.h"
#include "pipeline/cuda/gpu_ops.h"

namespace radlads::cuda {
namespace {

constexpr int kSlots = 3;

// Compute and copy streams with pinned staging for the host inputs of one call.
class DeviceSession {
 public:
  DeviceSession() {
    const std::string why = CudaTrainingUnavailableReason();
    if (!why.empty()) throw std::runtime_error(why);
  }
  ~DeviceSession() {
    compute_.Synchronize();
    copy_.Synchronize();
    GemmReleaseStream(compute_.get());
  }
  cudaStream_t s() const { return compute_.get(); }
  // A device tensor (allocated for the compute stream) holding the host tensor's bytes, uploaded
  // on the copy stream through staging slot `slot`; Ready(slot) makes the compute stream wait.
  DeviceTensor Upload(int slot, const Tensor& host, DeviceDType dtype) {
    RADLADS_CHECK(slot >= 0 && slot < kSlots) << "upload slot " << slot;
    DeviceTensor d({host.numel()}, dtype, compute_.get());
    const std::size_t bytes = d.nbytes();
    RADLADS_CHECK(host.nbytes() == bytes) << "upload of " << host.DebugString();
    copied_[slot].Synchronize();  // the staging buffer's previous copy has finished
    void* stage = stage_[slot].Reserve(bytes == 0 ? 1 : bytes);
    if (bytes > 0) std::memcpy(stage, std::as_const(host).raw(), bytes);
    // The block may have been freed by work still queued on the compute stream.
    alloc_ready_.Record(compute_.get());
    alloc_ready_.WaitOn(copy_.get());
    if (bytes > 0) {
      RADLADS_CUDA_CHECK(cudaMemcpyAsync(d.raw(), stage, bytes, cudaMemcpyHostToDevice, copy_.get()));
    }
    copied_[slot].Record(copy_.get());
    return d;
  }
  void Ready(int slot) { copied_[slot].WaitOn(compute_.get()); }
  // Downloads `bytes` from device memory into host memory and waits for the compute stream.
  void Finish(const void* src, void* host, std::size_t bytes) {
    void* stage = result_.Reserve(bytes);
    RADLADS_CUDA_CHECK(cudaMemcpyAsync(stage, src, bytes, cudaMemcpyDeviceToHost, compute_.get()));
    compute_.Synchronize();
    std::memcpy(host, stage, bytes);
  }

 private:
  CudaStream compute_, copy_;
  CudaEvent alloc_ready_, copied_[kSlots];
  PinnedBuffer stage_[kSlots], result_;
};

void CheckIds(const Tensor& ids, std::int64_t vocab, std::int64_t lo, const char* what) {
  RADLADS_CHECK(ids.dtype() == DType::kI32) << what << " must be I32, got " << ids.DebugString();
  const std::int32_t* p = ids.data<std::int32_t>();
  for (std::int64_t i = 0; i < ids.numel(); ++i) {
    RADLADS_CHECK(p[i] >= lo && p[i] < vocab) << what << " " << p[i] << " at " << i << " outside [" << lo << ", "
                                              << vocab << ")";
  }
}

std::vector<std::unique_ptr<GpuMixer>> StudentMixers(const StudentConfig& cfg, const GpuParamStore& store) {
  std::vector<std::unique_ptr<GpuMixer>> m;
  for (int l = 0; l < cfg.base.num_hidden_layers; ++l) m.push_back(MakeGpuStudentMixer(cfg, l, store));
  return m;
}

std::vector<std::unique_ptr<GpuMixer>> TeacherMixers(const Qwen2Config& cfg, const GpuParamStore& store) {
  std::vector<std::unique_ptr<GpuMixer>> m;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) m.push_back(MakeGpuAttention(cfg, l, store));
  return m;
}

HeadLossChunks Chunks(std::int64_t rows) {
  HeadLossChunks c;
  c.rows = rows > 0 ? rows : 0;
  c.vocab = 8192;
  return c;
}

}  // namespace

std::string CudaTrainingUnavailableReason() {
  const DeviceProbe probe = ProbeDevices();
  if (probe.count > 0) return "";
  return "no usable CUDA device: " + probe.reason;
}

DeviceMemoryStats CurrentDeviceMemory() {
  const AllocatorStats s = DeviceAllocator().stats();
  DeviceMemoryStats m;
  m.in_use_bytes = s.in_use;
  m.peak_bytes = s.peak_in_use;
  m.cached_bytes = s.cached;
  m.peak_reserved_bytes = s.peak_reserved;
  return m;
}

void ResetPeakDeviceMemory() { DeviceAllocator().ResetPeak(); }

void ReleaseCachedDeviceMemory() { DeviceAllocator().ReleaseCache(); }

// ---- step 1 ----------------------------------------------------------------------------------

struct CudaAlignTrainer::Impl {
  DeviceSession ses;
  StudentConfig cfg;
  int layer = 0;
  GpuParamStore store;
  std::unique_ptr<GpuMixer> mixer;
  std::unique_ptr<GpuAdamW> opt;
  GpuRope rope;

  double Run(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first, bool backward, float grad_scale) {
    cudaStream_t s = ses.s();
    const std::int64_t C = cfg.base.hidden_size, A = cfg.base.num_attention_heads * cfg.base.head_dim;
    RADLADS_CHECK(mixer_in.rank() == 3 && mixer_in.dim(2) == C && mixer_in.dtype() == DType::kF32)
        << "align: mixer_in " << mixer_in.DebugString();
    RADLADS_CHECK(target.shape() == mixer_in.shape() && target.dtype() == DType::kF32)
        << "align: target " << target.DebugString();
    const std::int64_t B = mixer_in.dim(0), T = mixer_in.dim(1), N = B * T;
    const bool wants_vfirst = cfg.arch == StudentArch::kRwkv7 && layer > 0;
    if (wants_vfirst) {
      RADLADS_CHECK(v_first.defined() && v_first.numel() == N * A && v_first.dtype() == DType::kF32)
          << "align: layer " << layer << " needs v_first [" << B << ", " << T << ", " << A << "]";
    }
    DeviceTensor x = ses.Upload(0, mixer_in, DeviceDType::kF32);
    DeviceTensor t = ses.Upload(1, target, DeviceDType::kF32);
    DeviceTensor vf;
    if (wants_vfirst) vf = ses.Upload(2, v_first, DeviceDType::kF32);
    rope.Ensure(T, cfg.base.head_dim, cfg.base.rope_theta, 512, s);
    GpuMixerCtx ctx;
    ctx.B = B;
    ctx.T = T;
    ctx.rope = &rope;
    ctx.s = s;
    ses.Ready(0);
    if (wants_vfirst) {
      ses.Ready(2);
      ctx.v_first = vf.f32();
    }
    DeviceTensor y = EmptyF32(N * C, s);
    mixer->Forward(x.f32(), ctx, y.f32(), backward);
    ses.Ready(1);
    DeviceTensor loss = DeviceTensor::Bytes(sizeof(double), s);
    {
      const std::size_t wsb = AlignLossWorkspaceBytes(N);
      DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
      AlignLossForward(t.f32(), y.f32(), N, C, static_cast<double*>(loss.raw()), nullptr, ws.raw(), wsb, s);
    }
    if (backward) {
      DeviceTensor dy = ZerosF32(N * C, s);
      AlignLossBackward(t.f32(), y.f32(), N, C, grad_scale, dy.f32(), s);
      DeviceTensor dx = ZerosF32(N * C, s);  // the caller needs no input gradient
      mixer->Backward(dy.f32(), ctx, dx.f32());
    }
    double out = 0.0;
    ses.Finish(loss.raw(), &out, sizeof(double));
    return out;
  }
};

CudaAlignTrainer::CudaAlignTrainer(const StudentConfig& cfg, int layer, ParamSet& params,
                                   const OptimizerSettings& opt)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = cfg;
  m.layer = layer;
  m.store.UploadTrainable(params, m.ses.s());
  m.mixer = MakeGpuStudentMixer(cfg, layer, m.store);
  m.opt = std::make_unique<GpuAdamW>(m.store, opt, m.ses.s());
}

CudaAlignTrainer::~CudaAlignTrainer() {
  impl_.reset();
  ReleaseCachedDeviceMemory();
}

AlignStepStats CudaAlignTrainer::Accumulate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first,
                                            float grad_scale) {
  AlignStepStats st;
  st.loss = impl_->Run(mixer_in, target, v_first, true, grad_scale);
  st.tokens = mixer_in.dim(0) * mixer_in.dim(1);
  return st;
}

double CudaAlignTrainer::Evaluate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first) {
  return impl_->Run(mixer_in, target, v_first, false, 0.0f);
}

OptimizerStepResult CudaAlignTrainer::Step(double lr_mixer) {
  return impl_->opt->Step(lr_mixer, lr_mixer, impl_->ses.s());
}

void CudaAlignTrainer::SyncToHost(ParamSet& params) {
  impl_->store.SyncToHost(params, impl_->opt->step() > 0 || impl_->store.had_moments(), impl_->ses.s());
}

std::int64_t CudaAlignTrainer::optimizer_step() const { return impl_->opt->step(); }
void CudaAlignTrainer::set_optimizer_step(std::int64_t step) { impl_->opt->set_step(step); }

// ---- step 2 ----------------------------------------------------------------------------------

struct CudaDistillTrainer::Impl {
  DeviceSession ses;
  StudentConfig scfg;
  Qwen2Config tcfg;
  GpuParamStore student_store, teacher_store;
  std::unique_ptr<GpuDecoder> student, teacher;
  std::unique_ptr<GpuAdamW> opt;
  std::int64_t chunk = 0;

  DistillStepStats Run(const LmBatch& batch, bool backward, float grad_scale) {
    cudaStream_t s = ses.s();
    const Tensor& ids_h = batch.inputs;
    RADLADS_CHECK(ids_h.rank() == 2) << "ids must be [B,T], got " << ids_h.DebugString();
    const std::int64_t B = ids_h.dim(0), T = ids_h.dim(1), N = B * T;
    const std::int64_t V = scfg.base.vocab_size, Cs = scfg.base.hidden_size, Ct = tcfg.hidden_size;
    RADLADS_CHECK(batch.targets.numel() == N) << "targets " << batch.targets.DebugString() << " for " << N << " ids";
    RADLADS_CHECK(tcfg.vocab_size == V) << "teacher vocabulary " << tcfg.vocab_size << " vs student " << V;
    CheckIds(ids_h, V, 0, "id");
    CheckIds(batch.targets, V, -1, "target");
    DeviceTensor ids = ses.Upload(0, ids_h, DeviceDType::kI32);
    DeviceTensor targets = ses.Upload(1, batch.targets, DeviceDType::kI32);
    ses.Ready(0);
    DeviceTensor th = EmptyF32(N * Ct, s), sh = EmptyF32(N * Cs, s);
    teacher->Forward(ids.i32(), B, T, false, th.f32(), s);
    DeviceTensor th_bf = ToBf16(th.f32(), N * Ct, s);
    th.Reset();
    student->Forward(ids.i32(), B, T, backward, sh.f32(), s);
    DeviceTensor sh_bf = ToBf16(sh.f32(), N * Cs, s);
    sh.Reset();
    ses.Ready(1);
    DeviceTensor dhidden;
    HeadGradsCuda grads;
    if (backward) {
      dhidden = ZerosF32(N * Cs, s);
      grads.dx = dhidden.f32();
      grads.dw = student->head().g();
    }
    HeadLossCudaOptions ho;
    ho.chunks = Chunks(chunk);
    ho.grad_scale = N > 0 ? grad_scale / static_cast<float>(N) : 0.0f;
    DeviceTensor result = DeviceTensor::Bytes(sizeof(HeadKlSums), s);
    {
      const std::size_t wsb = HeadLossWorkspaceBytes(HeadLossKind::kKl, N, V, Cs, Ct, backward, ho.chunks);
      DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
      HeadKl(sh_bf.bf16(), student->head().b(), Cs, th_bf.bf16(), teacher->head().b(), Ct, N, V, targets.i32(),
             grads, ho, ws.raw(), wsb, static_cast<HeadKlSums*>(result.raw()), s);
    }
    th_bf.Reset();
    sh_bf.Reset();
    if (backward) student->Backward(ids.i32(), dhidden.f32(), s);
    HeadKlSums r{};
    ses.Finish(result.raw(), &r, sizeof(r));
    RADLADS_CHECK(r.invalid_targets == 0) << r.invalid_targets << " targets outside [-1, " << V << ")";
    DistillStepStats st;
    st.tokens = N;
    st.kl = N > 0 ? r.kl_sum / static_cast<double>(N) : 0.0;
    st.top1 = N > 0 ? static_cast<double>(r.top1_agree) / static_cast<double>(N) : 0.0;
    st.student_ce = r.ce_count > 0 ? r.ce_sum / static_cast<double>(r.ce_count) : 0.0;
    return st;
  }
};

CudaDistillTrainer::CudaDistillTrainer(const StudentConfig& student_cfg, ParamSet& student_params,
                                       const Qwen2Config& teacher_cfg, const ParamSet& teacher_params,
                                       const OptimizerSettings& opt, std::int64_t kl_chunk)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.scfg = student_cfg;
  m.tcfg = teacher_cfg;
  m.chunk = kl_chunk;
  cudaStream_t s = m.ses.s();
  m.student_store.UploadTrainable(student_params, s);
  m.teacher_store.UploadFrozen(teacher_params, s);
  m.student = std::make_unique<GpuDecoder>(student_cfg.base, m.student_store, StudentMixers(student_cfg, m.student_store),
                                           student_cfg.arch == StudentArch::kRwkv7);
  m.teacher = std::make_unique<GpuDecoder>(teacher_cfg, m.teacher_store, TeacherMixers(teacher_cfg, m.teacher_store),
                                           false);
  m.opt = std::make_unique<GpuAdamW>(m.student_store, opt, s);
}

CudaDistillTrainer::~CudaDistillTrainer() {
  impl_.reset();
  ReleaseCachedDeviceMemory();
}

DistillStepStats CudaDistillTrainer::Accumulate(const LmBatch& batch, float grad_scale) {
  return impl_->Run(batch, true, grad_scale);
}

DistillStepStats CudaDistillTrainer::Evaluate(const LmBatch& batch) { return impl_->Run(batch, false, 0.0f); }

OptimizerStepResult CudaDistillTrainer::Step(double lr_main, double lr_mixer) {
  return impl_->opt->Step(lr_main, lr_mixer, impl_->ses.s());
}

void CudaDistillTrainer::SyncToHost(ParamSet& student_params) {
  impl_->student_store.SyncToHost(student_params, impl_->opt->step() > 0 || impl_->student_store.had_moments(),
                                  impl_->ses.s());
}

std::int64_t CudaDistillTrainer::optimizer_step() const { return impl_->opt->step(); }
void CudaDistillTrainer::set_optimizer_step(std::int64_t step) { impl_->opt->set_step(step); }

// ---- step 3 ----------------------------------------------------------------------------------

struct CudaFinetuneTrainer::Impl {
  DeviceSession ses;
  StudentConfig cfg;
  GpuParamStore store;
  std::unique_ptr<GpuDecoder> model;
  std::unique_ptr<GpuAdamW> opt;
  std::int64_t chunk = 0;
};

CudaFinetuneTrainer::CudaFinetuneTrainer(const StudentConfig& cfg, ParamSet& params, const OptimizerSettings& opt,
                                         std::int64_t chunk)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = cfg;
  m.chunk = chunk;
  m.store.UploadTrainable(params, m.ses.s());
  m.model = std::make_unique<GpuDecoder>(cfg.base, m.store, StudentMixers(cfg, m.store),
                                         cfg.arch == StudentArch::kRwkv7);
  m.opt = std::make_unique<GpuAdamW>(m.store, opt, m.ses.s());
}

CudaFinetuneTrainer::~CudaFinetuneTrainer() {
  impl_.reset();
  ReleaseCachedDeviceMemory();
}

FinetuneStepStats CudaFinetuneTrainer::Accumulate(const LmBatch& batch, float grad_scale) {
  Impl& m = *impl_;
  cudaStream_t s = m.ses.s();
  const Tensor& ids_h = batch.inputs;
  RADLADS_CHECK(ids_h.rank() == 2) << "ids must be [B,T], got " << ids_h.DebugString();
  const std::int64_t B = ids_h.dim(0), T = ids_h.dim(1), N = B * T;
  const std::int64_t V = m.cfg.base.vocab_size, C = m.cfg.base.hidden_size;
  RADLADS_CHECK(batch.targets.numel() == N) << "targets " << batch.targets.DebugString() << " for " << N << " ids";
  CheckIds(ids_h, V, 0, "id");
  CheckIds(batch.targets, V, -1, "target");
  // The loss is the mean over positions with a target, so the gradient is scaled by that count
  // (FinetuneHeadLoss).
  std::int64_t count = 0;
  const std::int32_t* tg = batch.targets.data<std::int32_t>();
  for (std::int64_t i = 0; i < N; ++i) count += tg[i] >= 0 ? 1 : 0;
  DeviceTensor ids = m.ses.Upload(0, ids_h, DeviceDType::kI32);
  DeviceTensor targets = m.ses.Upload(1, batch.targets, DeviceDType::kI32);
  m.ses.Ready(0);
  DeviceTensor hidden = EmptyF32(N * C, s);
  m.model->Forward(ids.i32(), B, T, true, hidden.f32(), s);
  DeviceTensor h_bf = ToBf16(hidden.f32(), N * C, s);
  hidden.Reset();
  m.ses.Ready(1);
  DeviceTensor dhidden = ZerosF32(N * C, s);
  HeadGradsCuda grads;
  grads.dx = dhidden.f32();
  grads.dw = m.model->head().g();
  HeadLossCudaOptions ho;
  ho.chunks = Chunks(m.chunk);
  ho.grad_scale = count > 0 ? grad_scale / static_cast<float>(count) : 0.0f;
  DeviceTensor result = DeviceTensor::Bytes(sizeof(HeadCeSums), s);
  {
    const std::size_t wsb = HeadLossWorkspaceBytes(HeadLossKind::kCrossEntropy, N, V, C, 0, true, ho.chunks);
    DeviceTensor ws = DeviceTensor::Bytes(wsb, s);
    HeadCrossEntropy(h_bf.bf16(), m.model->head().b(), C, N, V, targets.i32(), grads, ho, ws.raw(), wsb,
                     static_cast<HeadCeSums*>(result.raw()), s);
  }
  h_bf.Reset();
  m.model->Backward(ids.i32(), dhidden.f32(), s);
  HeadCeSums r{};
  m.ses.Finish(result.raw(), &r, sizeof(r));
  RADLADS_CHECK(r.invalid_targets == 0) << r.invalid_targets << " targets outside [-1, " << V << ")";
  FinetuneStepStats st;
  st.tokens = r.count;
  st.ce = r.count > 0 ? r.loss_sum / static_cast<double>(r.count) : 0.0;
  return st;
}

OptimizerStepResult CudaFinetuneTrainer::Step(double lr_main, double lr_mixer) {
  return impl_->opt->Step(lr_main, lr_mixer, impl_->ses.s());
}

void CudaFinetuneTrainer::SyncToHost(ParamSet& params) {
  impl_->store.SyncToHost(params, impl_->opt->step() > 0 || impl_->store.had_moments(), impl_->ses.s());
}

std::int64_t CudaFinetuneTrainer::optimizer_step() const { return impl_->opt->step(); }
void CudaFinetuneTrainer::set_optimizer_step(std::int64_t step) { impl_->opt->set_step(step); }

}  // namespace radlads::cuda
