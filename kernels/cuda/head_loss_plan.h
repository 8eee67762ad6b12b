// Host-side planning of the CUDA fused LM head + loss (kernels/cuda/head_loss.h): argument
// checks, the row-block x vocabulary-chunk tiling and the workspace layout. Plain C++, tested on
// machines without a GPU (tests/kernels/cuda_head_plan_test.cpp, label cpu).
//
// Tiling: the N rows are processed in blocks of `rows` rows (0 = all N at once), and each row
// block sweeps the vocabulary in chunks of `vocab` entries (the last chunk may be shorter). Only
// [rows, vocab] logits exist at a time: never a full-vocabulary fp32 row.
//
// Workspace (one caller-provided device buffer, each region 256-byte aligned):
//   zs    fp32 [rows, vocab]  student logits of one chunk
//   zt    fp32 [rows, vocab]  teacher logits of one chunk (KL with the teacher head only)
//   dz    bf16 [rows, vocab]  d(objective)/d(student logits) of one chunk (gradients only)
//   stats kHeadRowStatsBytes per row: running maxima, sums of exponentials, argmax, target
//         logit, KL of each row of the block
// E.g. rows = 4096, vocab = 8192 with the teacher head and gradients: 320 MiB + 192 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace radlads::cuda {

enum class HeadLossKind {
  kKl,               // KL(teacher || student), teacher logits from the teacher's head (GEMM)
  kKlTeacherLogits,  // KL with the teacher logits given as fp32 [N, V]
  kCrossEntropy,     // next-token cross-entropy of the student
};

// The problem: N rows, vocabulary V, student width c_s, teacher width c_t (kKl only), and
// whether any gradient (dx or dW) is requested.
struct HeadLossShape {
  HeadLossKind kind = HeadLossKind::kKl;
  std::int64_t n = 0, v = 0, c_s = 0, c_t = 0;
  bool grad = false;
};

// Tiling requested by the caller. rows: 0 = all N; vocab: >= 1 (chunks larger than V are V).
// Multiples of 64 keep the GEMM operands 16-byte aligned; any value is correct.
struct HeadLossChunks {
  std::int64_t rows = 0;
  std::int64_t vocab = 8192;
};

// Bytes of per-row statistics in the workspace (the device struct in head_loss.cu asserts it).
inline constexpr std::size_t kHeadRowStatsBytes = 48;
inline constexpr std::size_t kHeadWorkspaceAlign = 256;

struct HeadLossPlan {
  std::int64_t rows = 0;          // effective rows per block, in [1, N] (0 when N == 0)
  std::int64_t vocab = 0;         // effective vocabulary chunk, in [1, V]; also the ld of zs/zt/dz
  std::int64_t row_blocks = 0;    // ceil(N / rows)
  std::int64_t vocab_chunks = 0;  // ceil(V / vocab)
  bool teacher_gemm = false;      // kKl: teacher logits computed here
  bool grad = false;
  bool second_pass = false;       // a gradient or a KL is computed (the CE forward needs none)
  bool recompute = false;         // second pass recomputes the logits (vocab_chunks > 1)
  std::size_t zs_offset = 0, zt_offset = 0, dz_offset = 0, stats_offset = 0;
  std::size_t bytes = 0;          // the workspace size to pass; 0 when N == 0
};

// "" when the problem and chunking are valid, else a one-line description: negative N, V < 1,
// widths < 1 (c_t only for kKl), rows < 0, vocab < 1, V beyond int32 (targets are int32).
std::string CheckHeadLoss(const HeadLossShape& shape, const HeadLossChunks& chunks);

// The plan for a valid problem (check with CheckHeadLoss first; an invalid one aborts).
HeadLossPlan PlanHeadLoss(const HeadLossShape& shape, const HeadLossChunks& chunks);

}  // namespace radlads::cuda
