#include "plan/gpu_memory.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace radlads {
namespace {

std::string Num(double v) {
  char buf[64];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.3gG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.3gM", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(buf, sizeof(buf), "%.3gK", v / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.4g", v);
  }
  return buf;
}

constexpr double kBf16 = 2.0, kF32 = 4.0;
// Parameter tensors of one student mixer at most (RAD-RWKV7 with every option: projections and
// biases, LoRA pairs, per-channel vectors, GroupNorm).
constexpr double kMixerTensors = 28.0;

// fp32 master + bf16 copy + fp32 gradient + AdamW m and v: 18 bytes per trainable parameter.
void AddTrainable(MemoryBreakdown& b, double params, const std::string& P) {
  b.Add("fp32 master weights", kF32 * params, "4 B x " + P);
  b.Add("bf16 weights (GEMM operands)", kBf16 * params, "2 B x " + P);
  b.Add("gradients (fp32)", kF32 * params, "4 B x " + P);
  b.Add("AdamW m, v (fp32)", 2.0 * kF32 * params, "8 B x " + P);
}

// The fused head + loss (kernels/cuda/head_loss_plan.h): per row of a block, fp32 student
// logits, fp32 teacher logits (KL), bf16 dz, over one vocabulary chunk; 48 B of row statistics.
void AddHeadLoss(MemoryBreakdown& b, const ModelSizes& s, const OneGpuQuery& q, double tok, bool kl) {
  const double rows = static_cast<double>(std::min<std::int64_t>(std::max<std::int64_t>(1, q.loss_rows),
                                                                 q.micro_batch * q.seq_len));
  const double vc = static_cast<double>(std::min<std::int64_t>(std::max<std::int64_t>(1, q.vocab_chunk), s.vocab));
  const double per = (kl ? 2.0 * kF32 : kF32) + kBf16;
  b.Add("head loss workspace [rows, vocabulary chunk]", rows * (vc * per + 48.0),
        Num(rows) + " rows x (" + Num(vc) + " x " + Num(per) + " B + 48 B)");
  // Final hidden states fp32 and their bf16 GEMM copy (student; teacher too for KL), and the
  // student's fp32 gradient.
  const double hidden = (kl ? 2.0 : 1.0) * (kF32 + kBf16) + kF32;
  b.Add(kl ? "final hidden states (student, teacher; fp32 + bf16) and their gradient"
           : "final hidden states (fp32 + bf16) and their gradient",
        tok * hidden * static_cast<double>(s.hidden), "tokens " + Num(tok) + " x " + Num(hidden) + " B x D");
}

}  // namespace

double GpuMixerBytesPerToken(const ModelSizes& s) {
  const double D = static_cast<double>(s.hidden), A = static_cast<double>(s.q_dim), K = static_cast<double>(s.kv_dim);
  const double R = static_cast<double>(s.lora_width);
  const double state = 2.0 * 4.0 * static_cast<double>(s.heads) * s.head_dim * s.head_dim /
                       static_cast<double>(s.recurrence_chunk);
  // pipeline/cuda/gpu_rwkv6.cpp / gpu_rwkv7.cpp: the bf16 input (2D); RAD-RWKV6's tokenshift
  // keeps delta (4D), the five LoRA mixes (20D) and their bf16 copies (10D), and its backward
  // the five input gradients (20D); the A-wide fp32 streams kept by the forward and the fp32
  // gradients alive in the backward (RAD-RWKV6 ~17 x 4 B, RAD-RWKV7 ~32 x 4 B + bf16 copies);
  // the K-wide projections and their gradients (16K); the LoRA hidden states and gradients (8R);
  // the recurrence's fp32 chunk states, forward and backward.
  const double d_part = 2.0 + (s.tokenshift ? 54.0 : 0.0);
  const double a_part = s.arch == StudentArch::kRwkv7 ? 130.0 : 68.0;
  return d_part * D + a_part * A + 16.0 * K + 8.0 * R + state;
}

MemoryBreakdown OneGpuTrainingMemory(const ModelSizes& s, const OneGpuQuery& q) {
  MemoryBreakdown b;
  const double tok = static_cast<double>(q.micro_batch * q.seq_len);
  const double D = static_cast<double>(s.hidden), A = static_cast<double>(s.q_dim), F = static_cast<double>(s.ffn);
  const bool v7 = s.arch == StudentArch::kRwkv7;
  const std::string tok_s = "tokens " + Num(tok);
  b.detail = "micro-batch " + std::to_string(q.micro_batch) + " x " + std::to_string(q.seq_len);
  const double mixer = GpuMixerBytesPerToken(s);
  double tensors = 0;  // device tensors of the parameters, for the allocator's rounding
  if (q.step == OneGpuStep::kAlign) {
    b.what = "align task (one GPU)";
    const double m = static_cast<double>(s.mixer);
    AddTrainable(b, m, "P_mixer " + Num(m));
    tensors = 5.0 * kMixerTensors;
    // Mixer input, target, and RAD-RWKV7's v_first (layers >= 1), uploaded in fp32; the output,
    // its gradient and the (unused) input gradient.
    b.Add("micro-batch, output and their gradients (fp32)", tok * kF32 * (5.0 * D + (v7 ? A : 0.0)),
          tok_s + " x 4 B x " + (v7 ? "(5D + A)" : "5D"));
    b.Add("mixer activations and backward buffers", tok * mixer, tok_s + " x " + Num(mixer) + " B/token");
    b.Add("align loss per-row sums", tok * (8.0 + 4.0), tok_s + " x (8 + 4) B");
  } else {
    const bool kl = q.step == OneGpuStep::kDistill;
    b.what = kl ? "distill (one GPU)" : "finetune (one GPU)";
    const double ps = static_cast<double>(s.StudentTotal());
    AddTrainable(b, ps, "P_student " + Num(ps));
    const double layer_tensors = kMixerTensors + 5.0;  // + 2 norms, gate, up, down
    tensors = 5.0 * (static_cast<double>(s.layers) * layer_tensors + 3.0);
    if (kl) {
      // Matrices in bf16, vectors (norms, biases) in fp32: 2 B each, 2 B more for the vectors.
      const double pt = static_cast<double>(s.TeacherTotal());
      const double vec = static_cast<double>(s.layers * (s.layer_norms + s.q_dim + 2 * s.kv_dim) + s.final_norm);
      b.Add("teacher weights (frozen: matrices bf16, vectors fp32)", kBf16 * (pt + vec),
            "2 B x (P_teacher " + Num(pt) + " + vectors " + Num(vec) + ")");
      tensors += 2.0 * (static_cast<double>(s.layers) * 12.0 + 3.0);
    }
    b.Add("token ids and targets (int32)", tok * 8.0, tok_s + " x 8 B");
    const double L = static_cast<double>(s.layers);
    b.Add("every layer's saved input x_0..x_L (fp32)", (L + 1.0) * tok * kF32 * D,
          std::to_string(s.layers + 1) + " x " + tok_s + " x 4 B x D");
    if (v7) b.Add("v_first and its gradient (fp32)", 2.0 * tok * kF32 * A, tok_s + " x 2 x 4 B x A");
    // pipeline/cuda/gpu_model.h Saved (normed inputs, attention output, gate, up, activation;
    // fp32) and the block's backward buffers, beside the mixer's.
    const double block = 24.0 * D + 20.0 * F;
    b.Add("one layer's activations and backward buffers (recomputed)", tok * (block + mixer),
          tok_s + " x (24D + 20F " + Num(block) + " + mixer " + Num(mixer) + ") B/token");
    if (kl) {
      const double ws = kF32 * (3.0 * D + 2.0 * A + 2.0 * s.kv_dim + 3.0 * F);
      b.Add("teacher forward working set (one layer, fp32)", tok * ws, tok_s + " x " + Num(ws) + " B/token");
    }
    AddHeadLoss(b, s, q, tok, kl);
  }
  b.Add("allocator rounding (512 B per parameter tensor)", tensors * 512.0, Num(tensors) + " tensors x 512 B");
  b.Add("cuBLASLt workspace (cudaMalloc, outside the allocator: not counted)", 0.0, "32 MiB per stream");
  return b;
}

std::vector<MemoryBreakdown> OneGpuPlanMemory(const Plan& plan) {
  std::vector<MemoryBreakdown> out;
  for (const StepPlan& sp : plan.steps) {
    OneGpuQuery q;
    q.micro_batch = sp.micro_batch;
    q.seq_len = sp.seq_len;
    switch (sp.kind) {
      case RecipeStepKind::kAlign: q.step = OneGpuStep::kAlign; break;
      case RecipeStepKind::kDistill:
        q.step = OneGpuStep::kDistill;
        q.loss_rows = plan.recipe.steps.distill.loss.kl_chunk_tokens;
        break;
      case RecipeStepKind::kFinetune: q.step = OneGpuStep::kFinetune; break;
    }
    out.push_back(OneGpuTrainingMemory(plan.sizes, q));
  }
  return out;
}

}  // namespace radlads
