#include "pipeline/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/gemm.h"
#include "kernels/ops/activation.h"
#include "kernels/ops/elementwise.h"
#include "kernels/ops/embedding.h"
#include "kernels/ops/linear.h"
#include "kernels/ops/rmsnorm.h"
#include "pipeline/frozen_weights.h"

namespace radlads {
namespace {

Tensor* Opt(Tensor& t) { return t.defined() ? &t : nullptr; }

// FrozenWeightScratch slots of the MLP matrices (0-3 are the attention mixer's).
constexpr int kSlotGate = 4, kSlotUp = 5, kSlotDown = 6;

// Embedding rows of `ids` from `table` [V, C] (F32, or a frozen BF16/F16 view converted row by
// row: the same values ops::EmbeddingForward copies from a converted table).
void EmbedRows(const Tensor& ids, const Tensor& table, Tensor& out) {
  if (table.dtype() == DType::kF32) {
    ops::EmbeddingForward(ids, table, out);
    return;
  }
  const std::int64_t V = table.dim(0), C = table.dim(1);
  const std::size_t row_bytes = static_cast<std::size_t>(C) * DTypeSize(table.dtype());
  const auto* base = static_cast<const std::byte*>(table.raw());
  const std::int32_t* id = ids.data<std::int32_t>();
  float* o = out.f32();
  for (std::int64_t i = 0; i < ids.numel(); ++i) {
    RADLADS_CHECK(id[i] >= 0 && id[i] < V) << "embedding: id " << id[i] << " outside [0, " << V << ")";
    RADLADS_CHECK(ConvertToF32(table.dtype(), base + static_cast<std::size_t>(id[i]) * row_bytes, o + i * C,
                               static_cast<std::size_t>(C)))
        << "embedding table " << table.DebugString();
  }
}

}  // namespace

std::string LayerPrefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

DecoderModel::DecoderModel(const Qwen2Config& cfg, ParamSet& params, const MixerFactory& make_mixer,
                           const DecoderShard& shard)
    : cfg_(cfg), shard_(shard) {
  if (shard_.last_layer < 0) shard_.last_layer = cfg.num_hidden_layers;
  RADLADS_CHECK(0 <= shard_.first_layer && shard_.first_layer <= shard_.last_layer &&
                shard_.last_layer <= cfg.num_hidden_layers)
      << "decoder shard: layers [" << shard_.first_layer << ", " << shard_.last_layer << ") of "
      << cfg.num_hidden_layers;
  const std::int64_t C = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size;
  auto bind = [&](const std::string& name, const Shape& shape, Tensor& value, Tensor& grad) {
    Param& p = params.Get(name);
    RADLADS_CHECK(p.value.shape() == shape) << name << ": shape " << ShapeToString(p.value.shape())
                                            << ", expected " << ShapeToString(shape);
    RADLADS_CHECK(!p.trainable || p.value.dtype() == DType::kF32)
        << name << ": a trainable parameter must be F32, got " << p.value.DebugString();
    value = p.value;
    grad = p.trainable ? p.grad : Tensor();
  };
  if (shard_.first_stage || (shard_.last_stage && cfg.tie_word_embeddings)) {
    bind("model.embed_tokens.weight", {V, C}, embed_, d_embed_);
  }
  if (shard_.last_stage) {
    bind("model.norm.weight", {C}, final_norm_, d_final_norm_);
    final_norm_ = ResidentF32(final_norm_);
    if (cfg.tie_word_embeddings) {
      embed_ = ResidentF32(embed_);  // the head needs it whole in fp32: converted once, for both
      head_w_ = embed_;
      head_dw_ = d_embed_;
    } else {
      bind("lm_head.weight", {V, C}, head_w_, head_dw_);
      head_w_ = ResidentF32(head_w_);
    }
  }
  layers_.resize(static_cast<std::size_t>(cfg.num_hidden_layers));
  mixers_.resize(layers_.size());
  for (int l = first(); l < last(); ++l) {
    Layer& L = layers_[static_cast<std::size_t>(l)];
    const std::string p = LayerPrefix(l);
    bind(p + "input_layernorm.weight", {C}, L.in_norm, L.d_in_norm);
    bind(p + "post_attention_layernorm.weight", {C}, L.post_norm, L.d_post_norm);
    bind(p + "mlp.gate_proj.weight", {F, C}, L.w_gate, L.dw_gate);
    bind(p + "mlp.up_proj.weight", {F, C}, L.w_up, L.dw_up);
    bind(p + "mlp.down_proj.weight", {C, F}, L.w_down, L.dw_down);
    L.in_norm = ResidentF32(L.in_norm);
    L.post_norm = ResidentF32(L.post_norm);
    mixers_[static_cast<std::size_t>(l)] = make_mixer(l);
    RADLADS_CHECK(mixers_[static_cast<std::size_t>(l)] != nullptr) << "no mixer for layer " << l;
  }
}

const ops::RopeTable& DecoderModel::Rope(std::int64_t needed) {
  if (!rope_.cos.defined() || rope_.max_positions() < needed) {
    std::int64_t n = std::max<std::int64_t>(needed, std::min<std::int64_t>(cfg_.max_position_embeddings, 4096));
    rope_ = ops::MakeRopeTable(n, cfg_.head_dim, cfg_.rope_theta);
  }
  return rope_;
}

void DecoderModel::TpSum(Tensor& t) {
  if (shard_.tp != nullptr) shard_.tp->AllReduceSum(t.f32(), static_cast<std::size_t>(t.numel()));
}

namespace {

// The positions whose id is in [begin, begin + rows): their local ids, in position order.
struct VocabRows {
  Tensor local_ids;                 // I32 [n_in]
  std::vector<std::int64_t> where;  // positions
};
VocabRows RowsInRange(const Tensor& ids, std::int64_t begin, std::int64_t rows) {
  VocabRows r;
  const std::int32_t* p = ids.data<std::int32_t>();
  std::vector<std::int32_t> local;
  for (std::int64_t i = 0; i < ids.numel(); ++i) {
    if (p[i] >= begin && p[i] < begin + rows) {
      local.push_back(static_cast<std::int32_t>(p[i] - begin));
      r.where.push_back(i);
    }
  }
  r.local_ids = Tensor::Empty({static_cast<std::int64_t>(local.size())}, DType::kI32);
  if (!local.empty()) std::memcpy(r.local_ids.raw(), local.data(), local.size() * sizeof(std::int32_t));
  return r;
}

}  // namespace

Tensor DecoderModel::Embed(const Tensor& ids) {
  RADLADS_CHECK(ids.rank() == 2 && ids.dtype() == DType::kI32) << "ids must be [B,T] I32, got "
                                                               << ids.DebugString();
  RADLADS_CHECK(embed_.defined()) << "Embed on a pipeline stage without the embedding";
  const std::int64_t C = cfg_.hidden_size;
  Tensor x = Tensor::Empty({ids.dim(0), ids.dim(1), C});
  if (shard_.tp == nullptr && shard_.vocab_begin == 0) {
    EmbedRows(ids, embed_, x);
    return x;
  }
  // Vocabulary-parallel: this shard's rows for the ids it holds, zeros elsewhere, summed over
  // the group (each id is held by exactly one rank, so the sum is the row).
  std::memset(x.raw(), 0, static_cast<std::size_t>(x.nbytes()));
  VocabRows in = RowsInRange(ids, shard_.vocab_begin, cfg_.vocab_size);
  if (!in.where.empty()) {
    Tensor rows = Tensor::Empty({static_cast<std::int64_t>(in.where.size()), C});
    EmbedRows(in.local_ids, embed_, rows);
    for (std::size_t k = 0; k < in.where.size(); ++k) {
      std::memcpy(x.f32() + in.where[k] * C, rows.f32() + static_cast<std::int64_t>(k) * C,
                  static_cast<std::size_t>(C) * sizeof(float));
    }
  }
  TpSum(x);
  return x;
}

// Inference MLP, out = h + (silu(n2 W_gate^T) * (n2 W_up^T)) W_down^T, by blocks of kMlpRows
// rows: each thread runs the three GEMMs (single-threaded inside the parallel region) and the
// SwiGLU on its own rows, so the [rows, F] intermediates stay in its cache instead of three
// [B*T, F] buffers going to memory and back (at K = C = 128 the unblocked GEMMs are bound by
// those writes). Block boundaries do not depend on the thread count, so results are identical
// for any number of threads; nothing is kept for a backward.
constexpr std::int64_t kMlpRows = 64;
constexpr std::int64_t kMlpPackMaxFloats = std::int64_t{8} << 20;  // 32 MiB per weight

void DecoderModel::MlpRowBlocks(const Tensor& w_gate, const Tensor& w_up, const Tensor& w_down, const Tensor& n2,
                                const Tensor& h, Tensor& out) {
  const std::int64_t C = cfg_.hidden_size, F = cfg_.intermediate_size, N = n2.numel() / C;
  const std::int64_t blocks = (N + kMlpRows - 1) / kMlpRows;
  const float* np = n2.f32();
  const float* hp = h.f32();
  float* op = out.f32();
  const float* wg = w_gate.f32();
  const float* wu = w_up.f32();
  const float* wd = w_down.f32();
  // The three weights packed once for all blocks (cpu::PackedB; the same bits as packing per
  // block) when they are small enough to copy: the tiny model's 3 x 192 KiB, not a 7B's
  // 3 x 270 MiB, whose blocks go through Gemm and pack per block.
  const profile::Scope profile_scope(profile::Family::kGemm);
  std::unique_ptr<cpu::PackedB> pg, pu, pd;
  if (C * F <= kMlpPackMaxFloats) {
    pg = std::make_unique<cpu::PackedB>(true, C, F, wg, C);
    pu = std::make_unique<cpu::PackedB>(true, C, F, wu, C);
    pd = std::make_unique<cpu::PackedB>(true, F, C, wd, F);
  }
  cpu::ParallelFor(blocks, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<float> gbuf(static_cast<std::size_t>(kMlpRows * F));
    std::vector<float> ubuf(static_cast<std::size_t>(kMlpRows * F));
    float* g = gbuf.data();
    float* u = ubuf.data();
    for (std::int64_t blk = b0; blk < b1; ++blk) {
      const std::int64_t r0 = blk * kMlpRows, nr = std::min(kMlpRows, N - r0);
      if (pg) {
        cpu::TileGemmPacked(false, nr, 1.0f, np + r0 * C, C, *pg, 0.0f, g, F);
        cpu::TileGemmPacked(false, nr, 1.0f, np + r0 * C, C, *pu, 0.0f, u, F);
      } else {
        Gemm(false, true, nr, F, C, 1.0f, np + r0 * C, C, wg, C, 0.0f, g, F);
        Gemm(false, true, nr, F, C, 1.0f, np + r0 * C, C, wu, C, 0.0f, u, F);
      }
#pragma omp simd
      for (std::int64_t i = 0; i < nr * F; ++i) g[i] = ops::SiluScalar(g[i]) * u[i];
      std::memcpy(op + r0 * C, hp + r0 * C, static_cast<std::size_t>(nr * C) * sizeof(float));
      if (pd) {
        cpu::TileGemmPacked(false, nr, 1.0f, g, F, *pd, 1.0f, op + r0 * C, C);
      } else {
        Gemm(false, true, nr, C, F, 1.0f, g, F, wd, F, 1.0f, op + r0 * C, C);
      }
    }
  });
}

void DecoderModel::BlockForward(int l, const Tensor& x, MixerContext& ctx, bool keep,
                                const LayerHook& hook, Tensor& out) {
  Layer& L = layers_[static_cast<std::size_t>(l)];
  const std::int64_t B = x.dim(0), T = x.dim(1), C = cfg_.hidden_size, F = cfg_.intermediate_size;
  Tensor n1 = Tensor::Empty({B, T, C}), rstd1 = Tensor::Empty({B * T});
  ops::RmsNormForward(x, L.in_norm, static_cast<float>(cfg_.rms_norm_eps), n1, rstd1);
  Tensor m = Tensor::Empty({B, T, C});
  ctx.frozen_scratch = &scratch_;
  mixers_[static_cast<std::size_t>(l)]->Forward(n1, ctx, m);
  TpSum(m);  // row-parallel o_proj: each rank holds a partial sum
  // h = x + m and n2 = RMSNorm(h) in one pass (the arithmetic of ops::Add and
  // ops::RmsNormForward, unchanged).
  Tensor h = Tensor::Empty({B, T, C});
  Tensor n2 = Tensor::Empty({B, T, C}), rstd2 = Tensor::Empty({B * T});
  {
    RADLADS_CHECK(m.shape() == x.shape() && L.post_norm.numel() == C)
        << "layer " << l << ": mixer output " << m.DebugString() << " for x " << x.DebugString();
    const float* xp = x.f32();
    const float* mp = m.f32();
    const float* wp = std::as_const(L.post_norm).f32();  // may be a read-only view
    float* hp = h.f32();
    float* np = n2.f32();
    float* rp = rstd2.f32();
    const float eps = static_cast<float>(cfg_.rms_norm_eps);
    cpu::ParallelFor(B * T, ops::RowGrain(C), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const float* __restrict xr = xp + r * C;
        const float* __restrict mr = mp + r * C;
        float* __restrict hr = hp + r * C;
        float* __restrict nr = np + r * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (std::int64_t j = 0; j < C; ++j) {
          const float hj = xr[j] + mr[j];
          hr[j] = hj;
          ss += static_cast<double>(hj) * hj;
        }
        const float mean_sq = C > 0 ? static_cast<float>(ss / static_cast<double>(C)) : 0.0f;
        const float rs = 1.0f / std::sqrt(mean_sq + eps);
        rp[r] = rs;
#pragma omp simd
        for (std::int64_t j = 0; j < C; ++j) nr[j] = wp[j] * (hr[j] * rs);
      }
    });
  }
  RADLADS_CHECK(out.shape() == h.shape() && out.raw() != h.raw() && L.w_down.numel() == C * F)
      << "layer " << l << ": block output " << out.DebugString();
  // This layer's MLP matrices in fp32: the parameters themselves, or (a frozen model over
  // bf16/f16 views) converted into the scratch the previous layer used.
  const Tensor& w_gate = scratch_.AsF32(kSlotGate, L.w_gate);
  const Tensor& w_up = scratch_.AsF32(kSlotUp, L.w_up);
  const Tensor& w_down = scratch_.AsF32(kSlotDown, L.w_down);
  Tensor g, u, a;
  if (keep) {
    g = Tensor::Empty({B, T, F});
    u = Tensor::Empty({B, T, F});
    a = Tensor::Empty({B, T, F});
    ops::LinearForward(n2, w_gate, Tensor(), g);
    ops::LinearForward(n2, w_up, Tensor(), u);
    ops::SwiGluForward(g, u, a);
    if (shard_.tp == nullptr) {
      // out = h + a W_down^T as one GEMM accumulating onto a copy of h (beta = 1) instead of a
      // GEMM into a zeroed buffer and a separate add: two passes over [B,T,C] fewer. The same
      // sum to fp32 rounding (OpenBLAS may add h before the last K-block instead of after).
      std::memcpy(out.raw(), h.raw(), h.nbytes());
      Gemm(false, true, B * T, C, F, 1.0f, a.f32(), F, w_down.f32(), F, 1.0f, out.f32(), C);
    } else {  // row-parallel down_proj: sum the partial products, then add h once
      Gemm(false, true, B * T, C, F, 1.0f, a.f32(), F, w_down.f32(), F, 0.0f, out.f32(), C);
      TpSum(out);
      ops::Add(out, h, out);
    }
  } else if (shard_.tp == nullptr) {
    MlpRowBlocks(w_gate, w_up, w_down, n2, h, out);
  } else {
    MlpRowBlocks(w_gate, w_up, w_down, n2, Tensor::Zeros(h.shape()), out);
    TpSum(out);
    ops::Add(out, h, out);
  }
  if (hook) hook(l, n1, m, out);
  if (keep) {
    L.x = x; L.n1 = n1; L.rstd1 = rstd1; L.h = h; L.n2 = n2; L.rstd2 = rstd2;
    L.g = g; L.u = u; L.a = a;
  } else {
    L.x = L.n1 = L.rstd1 = L.h = L.n2 = L.rstd2 = L.g = L.u = L.a = Tensor();
  }
}

void DecoderModel::BlockBackward(int l, const Tensor& dout, MixerContext& ctx, Tensor& dx) {
  Layer& L = layers_[static_cast<std::size_t>(l)];
  RADLADS_CHECK(L.x.defined()) << "layer " << l << ": Backward without a training Forward";
  const std::int64_t B = dout.dim(0), T = dout.dim(1), C = cfg_.hidden_size, F = cfg_.intermediate_size;
  // out = h + f: both receive dout.
  Tensor da = Tensor::Zeros({B, T, F});
  ops::LinearBackward(L.a, scratch_.AsF32(kSlotDown, L.w_down), dout, &da, Opt(L.dw_down), nullptr);
  Tensor dg = Tensor::Zeros({B, T, F}), du = Tensor::Zeros({B, T, F});
  ops::SwiGluBackward(L.g, L.u, da, &dg, &du);
  Tensor dn2 = Tensor::Zeros({B, T, C});
  ops::LinearBackward(L.n2, scratch_.AsF32(kSlotGate, L.w_gate), dg, &dn2, Opt(L.dw_gate), nullptr);
  ops::LinearBackward(L.n2, scratch_.AsF32(kSlotUp, L.w_up), du, &dn2, Opt(L.dw_up), nullptr);
  TpSum(dn2);  // column-parallel gate/up: each rank's input gradient is partial
  Tensor dh = dout.Clone();
  ops::RmsNormBackward(L.h, L.post_norm, L.rstd2, dn2, &dh, Opt(L.d_post_norm));
  // h = x + m: dx gets dh directly and through the mixer and norm.
  Tensor dn1 = Tensor::Zeros({B, T, C});
  ctx.frozen_scratch = &scratch_;
  mixers_[static_cast<std::size_t>(l)]->Backward(dh, ctx, &dn1);
  TpSum(dn1);  // the mixer's heads are split: its input gradient is partial
  ops::RmsNormBackward(L.x, L.in_norm, L.rstd1, dn1, &dx, Opt(L.d_in_norm));
  ops::Add(dx, dh, dx);
  L.x = L.n1 = L.rstd1 = L.h = L.n2 = L.rstd2 = L.g = L.u = L.a = Tensor();
}

Tensor DecoderModel::RunLayers(const Tensor& x, int first, int last, const DecoderForwardOptions& opts) {
  RADLADS_CHECK(shard_.first_layer <= first && first <= last && last <= shard_.last_layer)
      << "layer range [" << first << ", " << last << ") outside this shard's [" << shard_.first_layer
      << ", " << shard_.last_layer << ")";
  const std::int64_t B = x.dim(0), T = x.dim(1);
  MixerContext ctx;
  ctx.batch = B;
  ctx.time = T;
  ctx.pos0 = opts.pos0;
  ctx.rope = &Rope(opts.pos0 + T);
  ctx.need_backward = opts.need_backward;
  Tensor cur = x;
  for (int l = first; l < last; ++l) {
    Tensor next = Tensor::Empty({B, T, cfg_.hidden_size});
    BlockForward(l, cur, ctx, opts.need_backward, opts.hook, next);
    cur = next;
  }
  if (opts.need_backward) ctx_ = ctx;
  return cur;
}

Tensor DecoderModel::FinalNorm(const Tensor& x) {
  Tensor y = Tensor::Empty(x.shape()), rstd = Tensor::Empty({x.numel() / cfg_.hidden_size});
  ops::RmsNormForward(x, final_norm_, static_cast<float>(cfg_.rms_norm_eps), y, rstd);
  return y;
}

Tensor DecoderModel::Forward(const Tensor& ids, const DecoderForwardOptions& opts) {
  RADLADS_CHECK(shard_.first_stage && shard_.last_stage) << "Forward of the whole model on a pipeline stage";
  Tensor x0 = Embed(ids);
  Tensor xl = RunLayers(x0, first(), last(), opts);
  Tensor y = Tensor::Empty(xl.shape()), rstd = Tensor::Empty({xl.numel() / cfg_.hidden_size});
  ops::RmsNormForward(xl, final_norm_, static_cast<float>(cfg_.rms_norm_eps), y, rstd);
  trained_forward_ = opts.need_backward;
  if (opts.need_backward) {
    ids_ = ids;
    x_last_ = xl;
    final_rstd_ = rstd;
  }
  return y;
}

void DecoderModel::Backward(const Tensor& dhidden) {
  RADLADS_CHECK(shard_.first_stage && shard_.last_stage) << "Backward of the whole model on a pipeline stage";
  StageBackward(StageActivations{dhidden, Tensor()});
}

StageActivations DecoderModel::StageForward(const StageActivations& in, const Tensor& ids, bool need_backward,
                                            std::int64_t pos0) {
  Tensor x = shard_.first_stage ? Embed(ids) : in.hidden;
  RADLADS_CHECK(x.defined() && x.rank() == 3) << "stage input " << (x.defined() ? x.DebugString() : "undefined");
  const std::int64_t B = x.dim(0), T = x.dim(1);
  MixerContext ctx;
  ctx.batch = B;
  ctx.time = T;
  ctx.pos0 = pos0;
  ctx.rope = &Rope(pos0 + T);
  ctx.need_backward = need_backward;
  ctx.v_first = in.v_first;
  Tensor cur = x;
  for (int l = first(); l < last(); ++l) {
    Tensor next = Tensor::Empty({B, T, cfg_.hidden_size});
    BlockForward(l, cur, ctx, need_backward, LayerHook(), next);
    cur = next;
  }
  StageActivations out;
  out.v_first = ctx.v_first;
  if (shard_.last_stage) {
    Tensor y = Tensor::Empty(cur.shape()), rstd = Tensor::Empty({cur.numel() / cfg_.hidden_size});
    ops::RmsNormForward(cur, final_norm_, static_cast<float>(cfg_.rms_norm_eps), y, rstd);
    out.hidden = y;
    if (need_backward) {
      x_last_ = cur;
      final_rstd_ = rstd;
    }
  } else {
    out.hidden = cur;
  }
  trained_forward_ = need_backward;
  if (need_backward) {
    ctx_ = ctx;
    ids_ = shard_.first_stage ? ids : Tensor();
  }
  return out;
}

StageActivations DecoderModel::StageBackward(const StageActivations& dout) {
  RADLADS_CHECK(trained_forward_) << "Backward without a training Forward";
  trained_forward_ = false;
  Tensor dx;
  if (shard_.last_stage) {
    dx = Tensor::Zeros(x_last_.shape());
    ops::RmsNormBackward(x_last_, final_norm_, final_rstd_, dout.hidden, &dx, Opt(d_final_norm_));
  } else {
    dx = dout.hidden.Clone();
  }
  MixerContext& ctx = ctx_;
  if (ctx.v_first.defined()) {
    ctx.dv_first = dout.v_first.defined() ? dout.v_first.Clone() : Tensor::Zeros(ctx.v_first.shape());
  }
  for (int l = last() - 1; l >= first(); --l) {
    Tensor dprev = Tensor::Zeros(dx.shape());
    BlockBackward(l, dx, ctx, dprev);
    dx = dprev;
  }
  if (shard_.first_stage && d_embed_.defined()) {
    if (shard_.tp == nullptr && shard_.vocab_begin == 0) {
      ops::EmbeddingBackward(ids_, dx, d_embed_);
    } else {  // the rows this shard holds, from the (summed, complete) input gradient
      VocabRows in = RowsInRange(ids_, shard_.vocab_begin, cfg_.vocab_size);
      if (!in.where.empty()) {
        const std::int64_t C = cfg_.hidden_size;
        Tensor rows = Tensor::Empty({static_cast<std::int64_t>(in.where.size()), C});
        for (std::size_t k = 0; k < in.where.size(); ++k) {
          std::memcpy(rows.f32() + static_cast<std::int64_t>(k) * C, dx.f32() + in.where[k] * C,
                      static_cast<std::size_t>(C) * sizeof(float));
        }
        ops::EmbeddingBackward(in.local_ids, rows, d_embed_);
      }
    }
  }
  StageActivations din{dx, ctx.dv_first};
  ctx_ = MixerContext();
  x_last_ = final_rstd_ = ids_ = Tensor();
  return din;
}

Tensor DecoderModel::Logits(const Tensor& hidden) const {
  const std::int64_t N = hidden.numel() / cfg_.hidden_size;
  Tensor logits = Tensor::Empty({N, cfg_.vocab_size});
  ops::LinearForward(hidden.View({N, cfg_.hidden_size}), head_w_, Tensor(), logits);
  return logits;
}

}  // namespace radlads
