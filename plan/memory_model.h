// The planner's memory model (docs/planner.md, "Memory model"): parameter counts of teacher and
// student from their shapes, and the bytes one worker needs for each kind of task:
//   - a step-1 `cache` task (teacher forward over one pipeline stage, writing the cache),
//   - a step-1 `align` task (train one layer's student mixer on cached pairs),
//   - a step-2 `distill` / step-3 `finetune` gang rank (TP x PP x DP; the worst stage).
// Every term is a named formula so the plan can print a breakdown and docs/planner.md can list
// it. Capacities: GPU memory from the cluster file; CPU workers share the node's RAM.
//
// Precision (docs/design.md §7): on GPUs bf16 weights and activations with fp32 master weights,
// fp32 gradient accumulation and fp32 Adam moments; on CPUs everything fp32.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/hf_config.h"
#include "storage/student_config.h"

namespace radlads {

// Shapes and parameter counts (elements) of a teacher / student pair.
struct ModelSizes {
  StudentArch arch = StudentArch::kRwkv7;
  std::int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  std::int64_t q_dim = 0, kv_dim = 0;  // heads * head_dim, kv_heads * head_dim
  bool tied = false;
  bool tokenshift = false;  // RAD-RWKV6 data-dependent tokenshift
  std::int64_t embed = 0;       // V x D
  std::int64_t head = 0;        // V x D; 0 when tied
  std::int64_t final_norm = 0;  // D
  std::int64_t layer_norms = 0; // two RMSNorm weights per layer: 2D
  std::int64_t mlp = 0;         // SwiGLU: 3 D F
  std::int64_t teacher_attention = 0;  // q, k, v (+ biases), o of one teacher layer
  std::int64_t mixer = 0;              // one student mixer, every tensor (pipeline/rwkv*_mixer)
  std::int64_t mixer_matmul = 0;       // its matrix elements only (projections, gate, LoRAs)
  std::int64_t teacher_attention_matmul = 0;  // q, k, v, o matrices
  std::int64_t lora_width = 0;  // LoRA hidden activations per token (decay + iclr + ... + 5 ts)
  std::int64_t recurrence_chunk = 64;  // chunk length C of the training kernel (64 v6, 16 v7)
  // The teacher's weights in their files: fp32 (used in place from the map) or bf16/f16
  // (converted one layer at a time; head, norms and biases once), from config.json's
  // torch_dtype (pipeline/frozen_weights.h).
  bool teacher_file_f32 = false;
  // Elements a CPU worker converts to resident fp32 when the teacher file is not fp32: the
  // LM head (the embedding when tied) and every norm and bias.
  std::int64_t TeacherResidentF32() const {
    return vocab * hidden + layers * (layer_norms + q_dim + 2 * kv_dim) + final_norm;
  }

  std::int64_t TeacherLayer() const { return teacher_attention + mlp + layer_norms; }
  std::int64_t StudentLayer() const { return mixer + mlp + layer_norms; }
  std::int64_t TeacherTotal() const { return embed + head + final_norm + layers * TeacherLayer(); }
  std::int64_t StudentTotal() const { return embed + head + final_norm + layers * StudentLayer(); }
};

// Counts as the pipeline declares the tensors (pipeline/rwkv6_mixer.cpp, rwkv7_mixer.cpp);
// TeacherTotal() equals Qwen2Config::ParameterCount().
ModelSizes ComputeModelSizes(const Qwen2Config& teacher, const StudentConfig& student);

struct MemoryModelOptions {
  double margin = 0.10;  // fraction of capacity kept free (allocator fragmentation, spikes)
  double gpu_workspace_gib = 2.0;  // cuBLAS/cuDNN workspaces, NCCL buffers, CUDA context
  double cpu_workspace_gib = 0.25; // thread stacks, BLAS buffers, the process itself
  // Gang tasks recompute each layer in backward from its saved input (the reference ran steps
  // 2 and 3 with grad_cp 1, docs/spec.md §2.2, §2.4).
  bool activation_checkpointing = true;
  // Keep a bf16 copy of all the rank's student weights (Megatron-style, +2 B/param) instead of
  // casting one layer at a time from the fp32 master as it is used (FSDP-style; the default).
  bool persistent_bf16_weights = false;
  // Shard the fp32 master weights and Adam moments over the DP ranks (ZeRO-1 / Megatron's
  // distributed optimizer). Off by default: a plain DP worker replicates them.
  bool shard_optimizer_over_dp = false;
};

// One named term of a breakdown: bytes and the formula that gave them.
struct MemoryTerm {
  std::string name;
  double bytes = 0.0;
  std::string formula;
};

struct MemoryBreakdown {
  std::string what;  // "align task", "cache task", "distill rank", "finetune rank"
  std::string detail;  // e.g. "stage 0 of 4, micro-batch 12 x 512" or "teacher layers streamed"
  std::vector<MemoryTerm> terms;
  double total_bytes = 0.0;
  double capacity_bytes = 0.0;  // what one worker has
  double usable_bytes = 0.0;    // capacity * (1 - margin)

  bool fits() const { return total_bytes <= usable_bytes; }
  void Add(std::string name, double bytes, std::string formula);
};

// The worker a task runs on.
struct WorkerMemory {
  bool gpu = true;
  double capacity_bytes = 0.0;
};

// A gang rank of step 2 (with_teacher) or step 3; evaluated for every pipeline stage, the
// worst stage is returned. `layers_per_stage` from the layout (balanced).
struct GangQuery {
  std::int64_t tp = 1, pp = 1, dp = 1;
  std::vector<std::int64_t> layers_per_stage;  // size pp
  std::int64_t micro_batch = 1, seq_len = 0;
  std::int64_t grad_accum = 1;        // micro-batches per optimizer step per DP replica
  std::int64_t loss_chunk_tokens = 512;
  bool with_teacher = true;           // distill: teacher co-resident, KL over teacher logits
};
MemoryBreakdown GangMemory(const ModelSizes& s, const GangQuery& q, const WorkerMemory& w,
                           const MemoryModelOptions& o);

// A step-1 align task on one worker: one layer's mixer with its optimizer state and the
// cached pairs of one micro-batch.
MemoryBreakdown AlignTaskMemory(const ModelSizes& s, std::int64_t micro_batch,
                                std::int64_t seq_len, const WorkerMemory& w,
                                const MemoryModelOptions& o);

// A step-1 cache task on one worker: the teacher's layers of one stage (resident when they
// fit, else streamed two layers at a time), a forward working set and the cache rows of one
// micro-batch. `stage`/`pp` decide the embedding (stage 0) and the stage-output rows.
MemoryBreakdown CacheTaskMemory(const ModelSizes& s, std::int64_t stage_layers, int stage, int pp,
                                std::int64_t micro_batch, std::int64_t seq_len,
                                const WorkerMemory& w, const MemoryModelOptions& o);

// Bytes the step-1 activation cache holds per token, as storage/activation_cache.h lays it out:
// each stage's file holds the mixer input and the teacher attention output of each of its
// layers, its output hidden states, and the token ids (int32). Over all pp stages:
// elem * D * (2L + pp) + 4 * pp, with elem = 2 (bf16) on GPU clusters and 4 (fp32) on CPU ones.
std::int64_t CacheBytesPerToken(const ModelSizes& s, std::int64_t pp, std::int64_t elem_bytes);

// Per-token activation bytes of one student layer kept for backward (full, not checkpointed),
// with A- and F-wide tensors split over tp: bw*(kD*D + (kA*A + 4F + R)/tp) + 4*H*N^2/(C*tp).
double StudentLayerActivationBytesPerToken(const ModelSizes& s, std::int64_t tp, bool gpu);
// The mixer alone, on one worker (align tasks): bw*(kDm*D + kA*A + R) + 4*H*N^2/C.
double MixerActivationBytesPerToken(const ModelSizes& s, bool gpu);

inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace radlads
