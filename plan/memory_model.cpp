#include "plan/memory_model.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace radlads {
namespace {

// pipeline/decoder.cpp's kMlpPackMaxFloats: a CPU inference MLP packs W_gate, W_up and W_down
// when D x F is at most this (Qwen2.5-0.5B's 896 x 4864 is; 7B's 3584 x 18944 is not).
constexpr std::int64_t kCpuMlpPackMaxElements = std::int64_t{8} << 20;

// Bytes of one activation element: bf16 on GPUs, fp32 on CPUs.
double ActBytes(bool gpu) { return gpu ? 2.0 : 4.0; }

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

// Parameters of pipeline stage `p`: its layers plus the embedding (first stage) and the final
// norm + LM head (last stage).
double StageParams(const ModelSizes& s, std::int64_t layer_params, std::int64_t layers, int p,
                   int pp) {
  double n = static_cast<double>(layers) * static_cast<double>(layer_params);
  if (p == 0) n += static_cast<double>(s.embed);
  if (p == pp - 1) n += static_cast<double>(s.head + s.final_norm);
  return n;
}

MemoryBreakdown NewBreakdown(std::string what, const WorkerMemory& w, const MemoryModelOptions& o) {
  MemoryBreakdown b;
  b.what = std::move(what);
  b.capacity_bytes = w.capacity_bytes;
  b.usable_bytes = w.capacity_bytes * (1.0 - o.margin);
  return b;
}

// CPU workers: every worker process holds the whole teacher (cli/run_setup.h) mapped from its
// files; what is anonymous memory is the part converted to fp32 once (a bf16/f16 file) and, when
// the task runs the teacher, one layer's matrices converted into the model's scratch.
void AddCpuTeacherTerms(MemoryBreakdown& b, const ModelSizes& s, bool runs_teacher) {
  const double file_bytes = s.teacher_file_f32 ? 4.0 : 2.0;
  b.Add("teacher weights, mapped (file pages, not counted)", 0.0,
        Num(file_bytes) + " B x P_teacher " + Num(static_cast<double>(s.TeacherTotal())) + " in the page cache");
  if (s.teacher_file_f32) return;
  b.Add("teacher head, norms, biases (fp32, converted once)", 4.0 * static_cast<double>(s.TeacherResidentF32()),
        "4 B x (V x D + L x (2D + A + 2K) + D) " + Num(static_cast<double>(s.TeacherResidentF32())));
  if (runs_teacher) {
    const double layer = static_cast<double>(s.teacher_attention_matmul + s.mlp);
    b.Add("teacher layer converted for its forward (fp32 scratch)", 4.0 * layer,
          "4 B x (attention + MLP matrices) " + Num(layer));
  }
}

void AddWorkspace(MemoryBreakdown& b, const WorkerMemory& w, const MemoryModelOptions& o) {
  const double gib = w.gpu ? o.gpu_workspace_gib : o.cpu_workspace_gib;
  b.Add("workspace", gib * kGiB, Num(gib) + " GiB fixed");
}

}  // namespace

void MemoryBreakdown::Add(std::string name, double bytes, std::string formula) {
  terms.push_back({std::move(name), bytes, std::move(formula)});
  total_bytes += bytes;
}

ModelSizes ComputeModelSizes(const Qwen2Config& t, const StudentConfig& st) {
  ModelSizes s;
  s.arch = st.arch;
  s.layers = t.num_hidden_layers;
  s.hidden = t.hidden_size;
  s.heads = t.num_attention_heads;
  s.kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim;
  s.ffn = t.intermediate_size;
  s.vocab = t.vocab_size;
  s.q_dim = t.q_dim();
  s.kv_dim = t.kv_dim();
  s.tied = t.tie_word_embeddings;
  s.tokenshift = st.arch == StudentArch::kRwkv6 && st.use_tokenshift;
  s.teacher_file_f32 = t.torch_dtype == "float32";
  const std::int64_t D = s.hidden, A = s.q_dim, K = s.kv_dim;
  s.embed = s.vocab * D;
  s.head = s.tied ? 0 : s.vocab * D;
  s.final_norm = D;
  s.layer_norms = 2 * D;
  s.mlp = 3 * D * s.ffn;
  s.teacher_attention_matmul = D * A + 2 * D * K + A * D;
  s.teacher_attention = s.teacher_attention_matmul + A + 2 * K;  // q/k/v biases (Qwen2)

  // The student mixer keeps Qwen's projections (biases per attention_bias, o_proj bias per
  // attention_output_bias) and adds the architecture's parameters.
  std::int64_t matmul = s.teacher_attention_matmul;
  std::int64_t other = (st.attention_bias ? A + 2 * K : 0) + (st.attention_output_bias ? D : 0);
  std::int64_t lora = 0;
  if (st.gate_rank_type == 1) {
    matmul += A * D;
  } else if (st.gate_rank_type == 2) {
    matmul += D * st.lora_rank_gate + st.lora_rank_gate * A;
    lora += st.lora_rank_gate;
  }
  if (st.groupnorm_att) other += 2 * A;
  if (st.arch == StudentArch::kRwkv6) {
    if (s.tokenshift) {
      other += 6 * D;  // time_maa_x and time_maa_{r,k,v,w,g}
      matmul += 2 * D * 5 * st.lora_rank_tokenshift;  // time_maa_w1 [D,5r], time_maa_w2 [5,r,D]
      lora += 5 * st.lora_rank_tokenshift;
    }
    other += A;  // time_decay
    matmul += D * st.lora_rank_decay + st.lora_rank_decay * A;
    lora += st.lora_rank_decay;
    s.recurrence_chunk = 64;  // GLA chunked form (docs/kernels.md §4)
  } else {
    other += 5 * A + s.heads * s.head_dim;  // w0, a0, v0, k_k, k_a; r_k [H, N]
    matmul += D * st.lora_rank_decay + st.lora_rank_decay * A;
    matmul += D * st.lora_rank_iclr + st.lora_rank_iclr * A;
    matmul += D * st.lora_rank_value_residual_mix + st.lora_rank_value_residual_mix * A;
    lora += st.lora_rank_decay + st.lora_rank_iclr + st.lora_rank_value_residual_mix;
    s.recurrence_chunk = 16;  // DPLR chunked form (docs/kernels.md §2.3, §4)
  }
  s.mixer_matmul = matmul;
  s.mixer = matmul + other;
  s.lora_width = lora;
  return s;
}

double StudentLayerActivationBytesPerToken(const ModelSizes& s, std::int64_t tp, bool gpu) {
  const double bw = ActBytes(gpu);
  const double kD = 4.0 + (s.tokenshift ? 5.0 : 0.0);
  const double kA = s.arch == StudentArch::kRwkv6 ? 8.0 : 12.0;
  const double t = static_cast<double>(tp);
  const double state = 4.0 * static_cast<double>(s.heads) * s.head_dim * s.head_dim /
                       static_cast<double>(s.recurrence_chunk);
  return bw * (kD * s.hidden + (kA * s.q_dim + 4.0 * s.ffn + s.lora_width) / t) + state / t;
}

double MixerActivationBytesPerToken(const ModelSizes& s, bool gpu) {
  const double bw = ActBytes(gpu);
  const double kD = 3.0 + (s.tokenshift ? 5.0 : 0.0);
  const double kA = s.arch == StudentArch::kRwkv6 ? 8.0 : 12.0;
  const double state = 4.0 * static_cast<double>(s.heads) * s.head_dim * s.head_dim /
                       static_cast<double>(s.recurrence_chunk);
  return bw * (kD * s.hidden + kA * s.q_dim + static_cast<double>(s.lora_width)) + state;
}

std::int64_t CacheBytesPerToken(const ModelSizes& s, std::int64_t pp, std::int64_t elem_bytes) {
  return elem_bytes * s.hidden * (2 * s.layers + pp) + 4 * pp;
}

MemoryBreakdown GangMemory(const ModelSizes& s, const GangQuery& q, const WorkerMemory& w,
                           const MemoryModelOptions& o) {
  const int pp = static_cast<int>(q.pp);
  const double tp = static_cast<double>(q.tp);
  const double bw = ActBytes(w.gpu);
  const double tok = static_cast<double>(q.micro_batch * q.seq_len);
  const double opt_div = o.shard_optimizer_over_dp ? static_cast<double>(q.dp) : 1.0;
  const std::string tp_s = "/tp " + std::to_string(q.tp);
  const std::string opt_s = o.shard_optimizer_over_dp ? tp_s + "/dp " + std::to_string(q.dp) : tp_s;
  const char* what = q.with_teacher ? "distill rank" : "finetune rank";

  MemoryBreakdown worst;
  for (int p = 0; p < pp; ++p) {
    const std::int64_t n = q.layers_per_stage[static_cast<std::size_t>(p)];
    const double ps = StageParams(s, s.StudentLayer(), n, p, pp);
    const double pt = StageParams(s, s.TeacherLayer(), n, p, pp);
    MemoryBreakdown b = NewBreakdown(what, w, o);
    char detail[160];
    std::snprintf(detail, sizeof(detail), "stage %d of %d (%lld layers), micro-batch %lld x %lld",
                  p, pp, static_cast<long long>(n), static_cast<long long>(q.micro_batch),
                  static_cast<long long>(q.seq_len));
    b.detail = detail;
    const std::string P = "P_stage " + Num(ps);
    if (w.gpu) {
      b.Add("student fp32 master weights", 4.0 * ps / tp / opt_div, "4 B x " + P + opt_s);
      if (o.persistent_bf16_weights) {
        b.Add("student bf16 weights", 2.0 * ps / tp, "2 B x " + P + tp_s);
      } else {
        double unit = static_cast<double>(s.StudentLayer());
        if (p == pp - 1) unit = std::max(unit, static_cast<double>(s.head));
        b.Add("student bf16 weights (one layer, cast from master)", 2.0 * unit / tp,
              "2 B x largest layer " + Num(unit) + tp_s);
      }
    } else {
      b.Add("student fp32 weights", 4.0 * ps / tp / opt_div, "4 B x " + P + opt_s);
    }
    b.Add("student gradients (fp32)", 4.0 * ps / tp, "4 B x " + P + tp_s);
    b.Add("Adam m, v (fp32)", 8.0 * ps / tp / opt_div, "8 B x " + P + opt_s);
    if (q.with_teacher && w.gpu) {
      b.Add("teacher weights (bf16)", 2.0 * pt / tp, "2 B x P_teacher_stage " + Num(pt) + tp_s);
    } else if (!w.gpu) {  // the process holds the teacher for every task (finetune too)
      AddCpuTeacherTerms(b, s, q.with_teacher);
    }
    // 1F1B: stage p holds the activations of up to pp - p micro-batches in flight.
    const double inflight =
        static_cast<double>(std::max<std::int64_t>(1, std::min<std::int64_t>(q.pp - p, q.grad_accum)));
    const double layer_act = StudentLayerActivationBytesPerToken(s, q.tp, w.gpu);
    const std::string tok_s = "tokens " + Num(tok);
    if (!w.gpu) {
      // What the CPU gang trainer keeps (pipeline/gang_trainer.h, GPipe with recomputation):
      // the last stage runs each micro-batch forward and backward at once, so it holds one
      // micro-batch's activations of all its layers; an earlier stage keeps the inputs of
      // every micro-batch of the step and recomputes one at a time in the backward.
      const double acc = static_cast<double>(std::max<std::int64_t>(1, q.grad_accum));
      if (p != pp - 1) {
        b.Add("stage inputs kept for the recompute", acc * tok * bw * s.hidden,
              Num(acc) + " micro-batches x " + tok_s + " x " + Num(bw) + " B x D");
      }
      b.Add("activations of the stage's layers (one micro-batch)", static_cast<double>(n) * tok * layer_act,
            std::to_string(n) + " layers x " + tok_s + " x " + Num(layer_act) + " B/token");
    } else if (o.activation_checkpointing) {
      b.Add("checkpointed layer inputs", inflight * static_cast<double>(n) * tok * bw * s.hidden,
            Num(inflight) + " in flight x " + std::to_string(n) + " layers x " + tok_s + " x " +
                Num(bw) + " B x D");
      b.Add("activations of one layer (recompute)", tok * layer_act,
            tok_s + " x " + Num(layer_act) + " B/token");
    } else {
      b.Add("activations (no checkpointing)", inflight * static_cast<double>(n) * tok * layer_act,
            Num(inflight) + " in flight x " + std::to_string(n) + " layers x " + tok_s + " x " +
                Num(layer_act) + " B/token");
    }
    if (q.with_teacher) {
      const double ws = bw * (2.0 * s.hidden +
                              (2.0 * s.q_dim + 2.0 * s.kv_dim + 3.0 * s.ffn) / tp);
      b.Add("teacher forward working set", tok * ws, tok_s + " x " + Num(ws) + " B/token");
    }
    if (p == pp - 1) {
      const double per = bw + (q.with_teacher ? 12.0 : 8.0);
      const double chunk = static_cast<double>(std::min<std::int64_t>(
          q.loss_chunk_tokens, q.micro_batch * q.seq_len));
      b.Add(q.with_teacher ? "logits chunk (KL)" : "logits chunk (CE)",
            chunk * static_cast<double>(s.vocab) / tp * per,
            Num(chunk) + " tokens x V " + std::to_string(s.vocab) + tp_s + " x " + Num(per) + " B");
    }
    AddWorkspace(b, w, o);
    if (p == 0 || b.total_bytes > worst.total_bytes) worst = std::move(b);
  }
  return worst;
}

MemoryBreakdown AlignTaskMemory(const ModelSizes& s, std::int64_t micro_batch,
                                std::int64_t seq_len, const WorkerMemory& w,
                                const MemoryModelOptions& o) {
  MemoryBreakdown b = NewBreakdown("align task", w, o);
  const double m = static_cast<double>(s.mixer);
  const double tok = static_cast<double>(micro_batch * seq_len);
  const double bw = ActBytes(w.gpu);
  b.detail = "one layer's mixer, micro-batch " + std::to_string(micro_batch) + " x " +
             std::to_string(seq_len);
  const std::string M = "P_mixer " + Num(m);
  if (w.gpu) {
    b.Add("mixer weights (fp32 master + bf16)", 6.0 * m, "6 B x " + M);
  } else {
    b.Add("mixer weights (fp32)", 4.0 * m, "4 B x " + M);
  }
  b.Add("mixer gradients (fp32)", 4.0 * m, "4 B x " + M);
  b.Add("mixer Adam m, v (fp32)", 8.0 * m, "8 B x " + M);
  b.Add("cached pairs (double-buffered)", 2.0 * tok * 2.0 * s.hidden * bw,
        "2 x tokens " + Num(tok) + " x 2D x " + Num(bw) + " B");
  const double act = MixerActivationBytesPerToken(s, w.gpu);
  b.Add("mixer activations", tok * act, "tokens " + Num(tok) + " x " + Num(act) + " B/token");
  if (!w.gpu) AddCpuTeacherTerms(b, s, false);
  AddWorkspace(b, w, o);
  return b;
}

MemoryBreakdown CacheTaskMemory(const ModelSizes& s, std::int64_t stage_layers, int stage, int /*pp*/,
                                std::int64_t micro_batch, std::int64_t seq_len,
                                const WorkerMemory& w, const MemoryModelOptions& o) {
  const double wb = w.gpu ? 2.0 : 4.0;
  const double bw = ActBytes(w.gpu);
  const double tok = static_cast<double>(micro_batch * seq_len);
  const double emb = stage == 0 ? static_cast<double>(s.embed) : 0.0;
  const double layer = static_cast<double>(s.TeacherLayer());

  auto build = [&](bool streamed) {
    MemoryBreakdown b = NewBreakdown("cache task", w, o);
    char detail[160];
    std::snprintf(detail, sizeof(detail), "stage %d (%lld layers), micro-batch %lld x %lld%s",
                  stage, static_cast<long long>(stage_layers), static_cast<long long>(micro_batch),
                  static_cast<long long>(seq_len),
                  streamed ? ", teacher layers streamed 2 at a time" : "");
    b.detail = detail;
    const double resident = streamed ? 2.0 : static_cast<double>(stage_layers);
    if (w.gpu) {
      b.Add("teacher weights", wb * (resident * layer + emb),
            Num(wb) + " B x (" + Num(resident) + " layers x " + Num(layer) +
                (stage == 0 ? " + embedding " + Num(emb) + ")" : ")"));
    } else {
      AddCpuTeacherTerms(b, s, true);
      // The inference MLP packs its three weights once per call when they are small
      // (pipeline/decoder.cpp kMlpPackMaxFloats, 8M elements): fp32 copies for the call.
      if (s.hidden * s.ffn <= kCpuMlpPackMaxElements) {
        b.Add("MLP weights packed for the inference GEMM", 4.0 * static_cast<double>(s.mlp),
              "4 B x 3DF " + Num(static_cast<double>(s.mlp)) + " (D x F <= 8M)");
      }
    }
    const double ws = bw * (3.0 * s.hidden + 2.0 * s.q_dim + 2.0 * s.kv_dim + 3.0 * s.ffn);
    b.Add("forward working set", tok * ws, "tokens " + Num(tok) + " x " + Num(ws) + " B/token");
    // One stage file's rows: mixer in/out per layer, stage output, token id.
    const double rows =
        wb * static_cast<double>(s.hidden) * (2.0 * static_cast<double>(stage_layers) + 1.0) + 4.0;
    b.Add("cache rows of one micro-batch", tok * rows,
          "tokens " + Num(tok) + " x " + Num(rows) + " B/token");
    AddWorkspace(b, w, o);
    return b;
  };
  MemoryBreakdown resident = build(false);
  // A CPU worker holds one converted teacher layer at a time anyway: nothing to stream.
  if (!w.gpu || resident.fits() || stage_layers <= 2) return resident;
  return build(true);
}

}  // namespace radlads
