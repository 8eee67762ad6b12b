#include "pipeline/cuda/gpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/norms.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/rope.h"
#include "pipeline/cuda/gpu_ops.h"
#include "storage/student_config.h"

namespace radlads::cuda {
namespace {

// The host values of `t` as fp32 (a copy only when the dtype is not F32).
std::vector<float> HostF32(const Tensor& t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  RADLADS_CHECK(ConvertToF32(t.dtype(), std::as_const(t).raw(), out.data(), out.size()))
      << "cannot convert " << t.DebugString() << " to fp32";
  return out;
}

void Upload(const DeviceTensor& dst, const void* src, std::size_t bytes, cudaStream_t s) {
  dst.UploadAsync(src, bytes, s);
}

DeviceTensor ColSumWs(std::int64_t rows, std::int64_t cols, cudaStream_t s) {
  return DeviceTensor::Bytes(ColSumWorkspaceBytes(rows, cols), s);
}

}  // namespace

// ---- parameters ------------------------------------------------------------------------------

GpuParam& GpuParamStore::AddParam(const Param& p, bool trainable, cudaStream_t s) {
  RADLADS_CHECK(index_.find(p.name) == index_.end()) << "GpuParamStore: duplicate " << p.name;
  auto gp = std::make_unique<GpuParam>();
  gp->name = p.name;
  gp->shape = p.value.shape();
  gp->n = p.value.numel();
  gp->group = p.group;
  gp->trainable = trainable;
  const std::size_t rank = gp->shape.size();
  gp->matrix = rank >= 2 && gp->shape[rank - 2] > 1;
  const std::size_t f32_bytes = static_cast<std::size_t>(gp->n) * sizeof(float);
  if (trainable) {
    RADLADS_CHECK(p.value.dtype() == DType::kF32) << p.name << ": a trainable parameter must be F32";
    gp->value = DeviceTensor({gp->n}, DeviceDType::kF32, s);
    Upload(gp->value, std::as_const(p.value).raw(), f32_bytes, s);
    gp->grad = DeviceTensor::Zeros({gp->n}, DeviceDType::kF32, s);
    gp->m = DeviceTensor({gp->n}, DeviceDType::kF32, s);
    gp->v = DeviceTensor({gp->n}, DeviceDType::kF32, s);
    if (p.adam_m.defined() && p.adam_v.defined()) {
      RADLADS_CHECK(p.adam_m.numel() == gp->n && p.adam_v.numel() == gp->n) << p.name << ": moment shapes";
      Upload(gp->m, std::as_const(p.adam_m).raw(), f32_bytes, s);
      Upload(gp->v, std::as_const(p.adam_v).raw(), f32_bytes, s);
      had_moments_ = true;
    } else {
      gp->m.ZeroAsync(s);
      gp->v.ZeroAsync(s);
    }
    if (gp->matrix) {
      gp->bf = DeviceTensor({gp->n}, DeviceDType::kBF16, s);
      ConvertF32ToBf16(gp->value.f32(), gp->n, gp->bf.bf16(), s);
    }
  } else if (gp->matrix) {
    gp->bf = DeviceTensor({gp->n}, DeviceDType::kBF16, s);
    if (p.value.dtype() == DType::kBF16) {
      Upload(gp->bf, std::as_const(p.value).raw(), static_cast<std::size_t>(gp->n) * 2, s);
    } else {
      DeviceTensor tmp({gp->n}, DeviceDType::kF32, s);
      if (p.value.dtype() == DType::kF32) {
        Upload(tmp, std::as_const(p.value).raw(), f32_bytes, s);
      } else {
        const std::vector<float> h = HostF32(p.value);
        Upload(tmp, h.data(), f32_bytes, s);
      }
      ConvertF32ToBf16(tmp.f32(), gp->n, gp->bf.bf16(), s);
    }
  } else {
    gp->value = DeviceTensor({gp->n}, DeviceDType::kF32, s);
    if (p.value.dtype() == DType::kF32) {
      Upload(gp->value, std::as_const(p.value).raw(), f32_bytes, s);
    } else {
      const std::vector<float> h = HostF32(p.value);
      Upload(gp->value, h.data(), f32_bytes, s);
    }
  }
  // Pageable host sources: the copies above return once the source was staged; synchronise
  // anyway so that host temporaries (HostF32) are certainly no longer read.
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(s));
  GpuParam& ref = *gp;
  index_[gp->name] = gp.get();
  params_.push_back(std::move(gp));
  return ref;
}

void GpuParamStore::UploadTrainable(const ParamSet& params, cudaStream_t s) {
  for (const Param* p : params.params()) AddParam(*p, p->trainable, s);
}

void GpuParamStore::UploadFrozen(const ParamSet& params, cudaStream_t s) {
  for (const Param* p : params.params()) AddParam(*p, false, s);
}

GpuParam* GpuParamStore::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

GpuParam& GpuParamStore::Get(const std::string& name) const {
  GpuParam* p = Find(name);
  RADLADS_CHECK(p != nullptr) << "no parameter named " << name << " on the device";
  return *p;
}

std::vector<GpuParam*> GpuParamStore::trainable() const {
  std::vector<GpuParam*> out;
  for (const auto& p : params_)
    if (p->trainable) out.push_back(p.get());
  return out;
}

void GpuParamStore::RefreshBf16(cudaStream_t s) {
  for (const auto& p : params_)
    if (p->trainable && p->matrix) ConvertF32ToBf16(p->value.f32(), p->n, p->bf.bf16(), s);
}

void GpuParamStore::SyncToHost(ParamSet& params, bool moments, cudaStream_t s) const {
  for (const auto& gp : params_) {
    if (!gp->trainable) continue;
    Param& p = params.Get(gp->name);
    RADLADS_CHECK(p.value.dtype() == DType::kF32 && p.value.numel() == gp->n) << gp->name << ": host shape";
    const std::size_t bytes = static_cast<std::size_t>(gp->n) * sizeof(float);
    gp->value.DownloadAsync(p.value.raw(), bytes, s);
    if (moments) {
      if (!p.adam_m.defined()) p.adam_m = Tensor::Zeros(p.value.shape());
      if (!p.adam_v.defined()) p.adam_v = Tensor::Zeros(p.value.shape());
      gp->m.DownloadAsync(p.adam_m.raw(), bytes, s);
      gp->v.DownloadAsync(p.adam_v.raw(), bytes, s);
    }
  }
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(s));
}

// ---- RoPE ------------------------------------------------------------------------------------

void GpuRope::Ensure(std::int64_t needed, std::int64_t head_dim, double theta, std::int64_t max_pos_hint,
                     cudaStream_t s) {
  if (cos_.defined() && positions_ >= needed) return;
  const std::int64_t n = std::max<std::int64_t>(needed, std::min<std::int64_t>(max_pos_hint, 4096));
  const std::vector<float> inv = RopeInvFreq(head_dim, theta);
  DeviceTensor inv_d({static_cast<std::int64_t>(inv.size())}, DeviceDType::kF32, s);
  inv_d.UploadAsync(inv.data(), inv.size() * sizeof(float), s);
  cos_ = DeviceTensor({n * head_dim / 2}, DeviceDType::kF32, s);
  sin_ = DeviceTensor({n * head_dim / 2}, DeviceDType::kF32, s);
  RopeTableBuild(inv_d.f32(), n, head_dim, cos_.f32(), sin_.f32(), s);
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(s));  // inv (host) and inv_d are released next
  positions_ = n;
}

// ---- the teacher's attention (forward only) --------------------------------------------------

namespace {

class GpuAttention : public GpuMixer {
 public:
  GpuAttention(const Qwen2Config& cfg, int layer, const GpuParamStore& store)
      : C_(cfg.hidden_size), H_(cfg.num_attention_heads), KV_(cfg.num_key_value_heads), D_(cfg.head_dim) {
    const std::string p = "model.layers." + std::to_string(layer) + ".self_attn.";
    wq_ = &store.Get(p + "q_proj.weight");
    bq_ = &store.Get(p + "q_proj.bias");
    wk_ = &store.Get(p + "k_proj.weight");
    bk_ = &store.Get(p + "k_proj.bias");
    wv_ = &store.Get(p + "v_proj.weight");
    bv_ = &store.Get(p + "v_proj.bias");
    wo_ = &store.Get(p + "o_proj.weight");
  }
  void Forward(const float* x, GpuMixerCtx& ctx, float* y, bool /*keep*/) override {
    const std::int64_t N = ctx.B * ctx.T, qd = H_ * D_, kvd = KV_ * D_;
    cudaStream_t s = ctx.s;
    DeviceTensor x_bf = ToBf16(x, N * C_, s);
    DeviceTensor q = EmptyF32(N * qd, s), k = EmptyF32(N * kvd, s), v = EmptyF32(N * kvd, s);
    LinearForward(x_bf.bf16(), N, C_, wq_->b(), bq_->f(), qd, q.f32(), s);
    LinearForward(x_bf.bf16(), N, C_, wk_->b(), bk_->f(), kvd, k.f32(), s);
    LinearForward(x_bf.bf16(), N, C_, wv_->b(), bv_->f(), kvd, v.f32(), s);
    RopeForward(q.f32(), ctx.rope->cos(), ctx.rope->sin(), ctx.B, ctx.T, H_, D_, ctx.pos0, q.f32(), s);
    RopeForward(k.f32(), ctx.rope->cos(), ctx.rope->sin(), ctx.B, ctx.T, KV_, D_, ctx.pos0, k.f32(), s);
    DeviceTensor q_bf = ToBf16(q.f32(), N * qd, s), k_bf = ToBf16(k.f32(), N * kvd, s),
                 v_bf = ToBf16(v.f32(), N * kvd, s);
    DeviceTensor o({N * qd}, DeviceDType::kBF16, s);
    const AttentionShape shape{ctx.B, ctx.T, H_, KV_, D_};
    const float scale = 1.0f / std::sqrt(static_cast<float>(D_));
    if (AttentionShapeError(shape, AttentionImpl::kFlash).empty()) {
      AttentionForwardFlash(shape, q_bf.bf16(), k_bf.bf16(), v_bf.bf16(), scale, o.bf16(), nullptr, s);
    } else {
      RADLADS_CHECK(AttentionShapeError(shape, AttentionImpl::kSimple).empty())
          << AttentionShapeError(shape, AttentionImpl::kSimple);
      AttentionForwardSimple(shape, q_bf.bf16(), k_bf.bf16(), v_bf.bf16(), scale, o.bf16(), nullptr, s);
    }
    LinearForward(o.bf16(), N, qd, wo_->b(), nullptr, C_, y, s);
  }
  void Backward(const float*, GpuMixerCtx&, float*) override {
    RADLADS_CHECK(false) << "the CUDA teacher attention is forward only (the teacher is frozen)";
  }

 private:
  std::int64_t C_, H_, KV_, D_;
  const GpuParam *wq_, *bq_, *wk_, *bk_, *wv_, *bv_, *wo_;
};

}  // namespace

std::unique_ptr<GpuMixer> MakeGpuAttention(const Qwen2Config& cfg, int layer, const GpuParamStore& store) {
  return std::make_unique<GpuAttention>(cfg, layer, store);
}

std::unique_ptr<GpuMixer> MakeGpuStudentMixer(const StudentConfig& cfg, int layer, const GpuParamStore& store) {
  return cfg.arch == StudentArch::kRwkv6 ? MakeGpuRwkv6(cfg, layer, store) : MakeGpuRwkv7(cfg, layer, store);
}

// ---- decoder ---------------------------------------------------------------------------------

GpuDecoder::GpuDecoder(const Qwen2Config& cfg, const GpuParamStore& store,
                       std::vector<std::unique_ptr<GpuMixer>> mixers, bool rwkv7_value_residual)
    : cfg_(cfg), mixers_(std::move(mixers)), value_residual_(rwkv7_value_residual) {
  RADLADS_CHECK(static_cast<std::int64_t>(mixers_.size()) == cfg.num_hidden_layers)
      << mixers_.size() << " mixers for " << cfg.num_hidden_layers << " layers";
  embed_ = &store.Get("model.embed_tokens.weight");
  final_norm_ = &store.Get("model.norm.weight");
  head_ = cfg.tie_word_embeddings ? embed_ : &store.Get("lm_head.weight");
  RADLADS_CHECK(head_->b() != nullptr) << "the LM head has no bf16 copy";
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerW w{};
    w.in_norm = &store.Get(p + "input_layernorm.weight");
    w.post_norm = &store.Get(p + "post_attention_layernorm.weight");
    w.gate = &store.Get(p + "mlp.gate_proj.weight");
    w.up = &store.Get(p + "mlp.up_proj.weight");
    w.down = &store.Get(p + "mlp.down_proj.weight");
    layers_.push_back(w);
  }
}

void GpuDecoder::Block(int l, const float* x, GpuMixerCtx& ctx, bool keep, float* out, Saved* sv) {
  const LayerW& w = layers_[static_cast<std::size_t>(l)];
  const std::int64_t N = ctx.B * ctx.T, C = cfg_.hidden_size, F = cfg_.intermediate_size, NC = N * C;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  cudaStream_t s = ctx.s;
  DeviceTensor n1 = EmptyF32(NC, s), rstd1 = EmptyF32(N, s);
  RmsNormForward(x, w.in_norm->f(), eps, N, C, n1.f32(), rstd1.f32(), s);
  DeviceTensor m = EmptyF32(NC, s);
  mixers_[static_cast<std::size_t>(l)]->Forward(n1.f32(), ctx, m.f32(), keep);
  DeviceTensor h = EmptyF32(NC, s);
  AddScaled<float>(x, 1.0f, m.f32(), NC, h.f32(), s);
  m.Reset();
  DeviceTensor n2 = EmptyF32(NC, s), rstd2 = EmptyF32(N, s);
  RmsNormForward(h.f32(), w.post_norm->f(), eps, N, C, n2.f32(), rstd2.f32(), s);
  DeviceTensor n2_bf = ToBf16(n2.f32(), NC, s);
  DeviceTensor g = EmptyF32(N * F, s), u = EmptyF32(N * F, s), a = EmptyF32(N * F, s);
  LinearForward(n2_bf.bf16(), N, C, w.gate->b(), nullptr, F, g.f32(), s);
  LinearForward(n2_bf.bf16(), N, C, w.up->b(), nullptr, F, u.f32(), s);
  SwiGluForward<float>(g.f32(), u.f32(), N * F, a.f32(), s);
  // out = h + a W_down^T: one GEMM accumulating onto a copy of h (as the CPU decoder).
  DeviceTensor a_bf = ToBf16(a.f32(), N * F, s);
  CopyF32(h.f32(), NC, out, s);
  if (N > 0) GemmBf16(false, true, N, C, F, 1.0f, a_bf.bf16(), F, w.down->b(), F, 1.0f, out, C, s);
  if (keep) {
    sv->rstd1 = std::move(rstd1);
    sv->h = std::move(h);
    sv->n2 = std::move(n2);
    sv->rstd2 = std::move(rstd2);
    sv->g = std::move(g);
    sv->u = std::move(u);
    sv->a = std::move(a);
  }
}

void GpuDecoder::BlockBackward(int l, const float* x, const float* dout, GpuMixerCtx& ctx, Saved& sv,
                               float* dx) {
  const LayerW& w = layers_[static_cast<std::size_t>(l)];
  const std::int64_t N = ctx.B * ctx.T, C = cfg_.hidden_size, F = cfg_.intermediate_size, NC = N * C;
  cudaStream_t s = ctx.s;
  DeviceTensor ws = ColSumWs(N, C, s);
  // out = h + a W_down^T.
  DeviceTensor da = EmptyF32(N * F, s);
  {
    DeviceTensor a_bf = ToBf16(sv.a.f32(), N * F, s);
    LinearBackward(a_bf.bf16(), dout, N, F, C, w.down->b(), da.f32(), false, w.down->g(), nullptr, s);
  }
  DeviceTensor dg = ZerosF32(N * F, s), du = ZerosF32(N * F, s);
  SwiGluBackward<float>(sv.g.f32(), sv.u.f32(), da.f32(), N * F, dg.f32(), du.f32(), s);
  da.Reset();
  DeviceTensor dn2 = EmptyF32(NC, s);
  {
    DeviceTensor n2_bf = ToBf16(sv.n2.f32(), NC, s);
    LinearBackward(n2_bf.bf16(), dg.f32(), N, C, F, w.gate->b(), dn2.f32(), false, w.gate->g(), nullptr, s);
    LinearBackward(n2_bf.bf16(), du.f32(), N, C, F, w.up->b(), dn2.f32(), true, w.up->g(), nullptr, s);
  }
  dg.Reset();
  du.Reset();
  DeviceTensor dh = EmptyF32(NC, s);
  CopyF32(dout, NC, dh.f32(), s);
  RmsNormBackward(sv.h.f32(), w.post_norm->f(), sv.rstd2.f32(), dn2.f32(), N, C, dh.f32(), w.post_norm->g(),
                  static_cast<double*>(ws.raw()), s);
  dn2.Reset();
  DeviceTensor dn1 = ZerosF32(NC, s);
  mixers_[static_cast<std::size_t>(l)]->Backward(dh.f32(), ctx, dn1.f32());
  CopyF32(dh.f32(), NC, dx, s);
  RmsNormBackward(x, w.in_norm->f(), sv.rstd1.f32(), dn1.f32(), N, C, dx, w.in_norm->g(),
                  static_cast<double*>(ws.raw()), s);
}

void GpuDecoder::Forward(const std::int32_t* ids, std::int64_t B, std::int64_t T, bool train, float* hidden,
                         cudaStream_t s) {
  const std::int64_t N = B * T, C = cfg_.hidden_size, NC = N * C, L = cfg_.num_hidden_layers;
  rope_.Ensure(T, cfg_.head_dim, cfg_.rope_theta, cfg_.max_position_embeddings, s);
  GpuMixerCtx ctx;
  ctx.B = B;
  ctx.T = T;
  ctx.rope = &rope_;
  ctx.s = s;
  inputs_.clear();
  final_rstd_.Reset();
  v_first_.Reset();
  if (value_residual_) {
    v_first_ = EmptyF32(N * cfg_.num_attention_heads * cfg_.head_dim, s);
    ctx.v_first = v_first_.f32();
  }
  DeviceTensor cur = EmptyF32(NC, s);
  if (embed_->value.defined()) {
    EmbeddingForward(ids, N, embed_->f(), C, cur.f32(), s);
  } else {
    EmbeddingForward(ids, N, embed_->b(), C, cur.f32(), s);
  }
  for (int l = 0; l < L; ++l) {
    DeviceTensor next = EmptyF32(NC, s);
    Block(l, cur.f32(), ctx, false, next.f32(), nullptr);
    if (train) {
      inputs_.push_back(std::move(cur));
    }
    cur = std::move(next);  // frees the previous input when not training
  }
  DeviceTensor rstd = EmptyF32(N, s);
  RmsNormForward(cur.f32(), final_norm_->f(), static_cast<float>(cfg_.rms_norm_eps), N, C, hidden, rstd.f32(), s);
  if (train) {
    inputs_.push_back(std::move(cur));
    final_rstd_ = std::move(rstd);
    B_ = B;
    T_ = T;
  } else {
    v_first_.Reset();
  }
}

void GpuDecoder::Backward(const std::int32_t* ids, const float* dhidden, cudaStream_t s) {
  const std::int64_t L = cfg_.num_hidden_layers;
  RADLADS_CHECK(static_cast<std::int64_t>(inputs_.size()) == L + 1 && final_rstd_.defined())
      << "GpuDecoder::Backward without a training Forward";
  const std::int64_t N = B_ * T_, C = cfg_.hidden_size, NC = N * C;
  GpuMixerCtx ctx;
  ctx.B = B_;
  ctx.T = T_;
  ctx.rope = &rope_;
  ctx.s = s;
  DeviceTensor dv_first;
  if (value_residual_) {
    ctx.v_first = v_first_.f32();
    dv_first = ZerosF32(N * cfg_.num_attention_heads * cfg_.head_dim, s);
    ctx.dv_first = dv_first.f32();
  }
  DeviceTensor dx = ZerosF32(NC, s);
  {
    DeviceTensor ws = ColSumWs(N, C, s);
    RmsNormBackward(inputs_.back().f32(), final_norm_->f(), final_rstd_.f32(), dhidden, N, C, dx.f32(),
                    final_norm_->g(), static_cast<double*>(ws.raw()), s);
  }
  inputs_.back().Reset();
  final_rstd_.Reset();
  for (std::int64_t l = L - 1; l >= 0; --l) {
    const float* x = inputs_[static_cast<std::size_t>(l)].f32();
    Saved sv;
    {
      // Activation recomputation: layer l's forward again from its saved input, keeping what
      // its backward needs (the output itself is not needed).
      DeviceTensor out = EmptyF32(NC, s);
      Block(static_cast<int>(l), x, ctx, true, out.f32(), &sv);
    }
    DeviceTensor dprev = EmptyF32(NC, s);
    BlockBackward(static_cast<int>(l), x, dx.f32(), ctx, sv, dprev.f32());
    dx = std::move(dprev);
    inputs_[static_cast<std::size_t>(l)].Reset();
  }
  if (embed_->g() != nullptr) EmbeddingBackward(ids, N, dx.f32(), C, embed_->grad.f32(), s);
  inputs_.clear();
  v_first_.Reset();
}

// ---- AdamW -----------------------------------------------------------------------------------

GpuAdamW::GpuAdamW(GpuParamStore& store, const OptimizerSettings& opt, cudaStream_t s)
    : store_(store), opt_(opt), params_(store.trainable()) {
  std::vector<MultiTensorEntry> entries;
  for (GpuParam* p : params_) {
    MultiTensorEntry e;
    e.param = p->value.f32();
    e.grad = p->grad.f32();
    e.m = p->m.f32();
    e.v = p->v.f32();
    e.n = p->n;
    e.group = p->group;
    entries.push_back(e);
  }
  const std::vector<MultiTensorChunk> chunks = BuildMultiTensorChunks(entries);
  num_chunks_ = static_cast<std::int64_t>(chunks.size());
  if (!entries.empty()) {
    entries_ = DeviceTensor::Bytes(entries.size() * sizeof(MultiTensorEntry), s);
    entries_.UploadAsync(entries.data(), entries.size() * sizeof(MultiTensorEntry), s);
  }
  if (!chunks.empty()) {
    chunks_ = DeviceTensor::Bytes(chunks.size() * sizeof(MultiTensorChunk), s);
    chunks_.UploadAsync(chunks.data(), chunks.size() * sizeof(MultiTensorChunk), s);
    ws_ = DeviceTensor::Bytes(GradNormWorkspaceBytes(num_chunks_), s);
  }
  sumsq_ = DeviceTensor::Bytes(sizeof(double), s);
  norm_ = DeviceTensor::Bytes(sizeof(double), s);
  scale_ = DeviceTensor::Bytes(sizeof(float), s);
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(s));  // the host tables are released next
}

void GpuAdamW::ZeroGrads(cudaStream_t s) {
  for (GpuParam* p : params_) p->grad.ZeroAsync(s);
}

OptimizerStepResult GpuAdamW::Step(double lr_main, double lr_mixer, cudaStream_t s) {
  OptimizerStepResult r;
  const auto* entries = static_cast<const MultiTensorEntry*>(entries_.raw());
  const auto* chunks = static_cast<const MultiTensorChunk*>(chunks_.raw());
  double norm = 0.0;
  if (num_chunks_ > 0) {
    GradSumSquares(entries, chunks, num_chunks_, static_cast<double*>(ws_.raw()), static_cast<double*>(sumsq_.raw()),
                   s);
    ClipScaleFromSumSquares(static_cast<const double*>(sumsq_.raw()), opt_.grad_clip,
                            static_cast<double*>(norm_.raw()), static_cast<float*>(scale_.raw()), s);
    norm_.DownloadAsync(&norm, sizeof(double), s);
    RADLADS_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  r.grad_norm = norm;
  if (!std::isfinite(norm)) {
    ZeroGrads(s);
    return r;
  }
  ++step_;
  if (num_chunks_ > 0) {
    const double lr[2] = {lr_main, lr_mixer};
    const AdamWScalars sc = MakeAdamWScalars(lr, 2, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay,
                                             opt_.bias_correction, step_);
    AdamWMultiTensor(entries, chunks, num_chunks_, sc,
                     opt_.grad_clip > 0 ? static_cast<const float*>(scale_.raw()) : nullptr, true, s);
    store_.RefreshBf16(s);
  }
  r.applied = true;
  return r;
}

}  // namespace radlads::cuda
