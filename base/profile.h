// Where a process's time goes, by op family, at a cost of two clock reads per measured call, so
// that a slow run can be located without perf (docs/design.md §7.1, RUN/output/profile.json).
//
// Contract:
// - A Scope on the stack charges the wall time between its construction and destruction to its
//   family, exclusively: time spent in a nested Scope is charged to the nested one's family
//   (a GEMM inside the chunked recurrence counts as GEMM, the rest as recurrence).
// - Only the thread that opens a Scope is measured, and only outside cpu::ParallelFor bodies
//   (which hold a Suppress): the parallel workers of one op are inside that op's Scope already,
//   so the totals are wall-clock seconds of the calling thread, never a sum over threads.
// - Counters are process-wide totals since the start (Snapshot); callers take differences.
//   Time not inside any Scope is the caller's "other" (norms, LoRA, elementwise ops, ...).
// Thread-safety: any thread; counters are relaxed atomics, the nesting is per thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace radlads::profile {

enum class Family : int {
  kGemm,        // kernels/gemm.h (OpenBLAS SGEMM)
  kRecurrence,  // the GLA and DPLR recurrences, forward and backward
  kAttention,   // the teacher's attention, forward and backward
  kHeadLoss,    // LM head + KL / CE, the step-1 alignment loss
  kOptimizer,   // AdamW, gradient norm and clipping
  kIo,          // checkpoints, caches, model and dataset files
  kScheduling,  // coordinator calls: lease, heartbeat, commit, complete; idle waits
  kCount,
};
inline constexpr int kFamilies = static_cast<int>(Family::kCount);

// "gemm", "recurrence", "attention", "head_loss", "optimizer", "io", "scheduling".
std::string_view FamilyName(Family f);

struct Counters {
  std::array<std::int64_t, kFamilies> ns{};     // exclusive nanoseconds per family
  std::array<std::int64_t, kFamilies> calls{};  // Scopes closed per family
  Counters operator-(const Counters& o) const;
  Counters& operator+=(const Counters& o);
  std::int64_t TotalNs() const;
};

// The process's totals so far.
Counters Snapshot();

class Scope {
 public:
  explicit Scope(Family f) noexcept;
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Family family_;
  bool active_;
  std::int64_t start_ns_ = 0;
  std::int64_t child_ns_ = 0;  // wall time of the Scopes nested directly inside
  Scope* parent_ = nullptr;
};

// While one is alive on a thread, that thread's Scopes measure nothing (cpu::ParallelFor bodies).
class Suppress {
 public:
  Suppress() noexcept;
  ~Suppress();
  Suppress(const Suppress&) = delete;
  Suppress& operator=(const Suppress&) = delete;
};

}  // namespace radlads::profile
