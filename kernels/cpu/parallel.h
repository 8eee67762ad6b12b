// Threading for the CPU backend. One process-wide thread count drives both OpenMP (our own
// loops) and OpenBLAS (GEMM). Work is split statically into contiguous ranges, so every
// element is always computed by the same code path in the same order: results are identical
// run to run and independent of timing. Reductions never use atomics: each range reduces into
// its own slot and the slots are combined in range order.
#pragma once

#include <cstdint>
#include <functional>

namespace radlads::cpu {

// Sets the number of threads for OpenMP and OpenBLAS (default: RADLADS_THREADS or the number
// of cores). Call from the main thread, outside parallel regions.
void SetNumThreads(int n);
int NumThreads();

// Calls fn(begin, end) on contiguous, disjoint ranges covering [0, n), in parallel. Ranges are
// a pure function of (n, NumThreads(), grain). `grain` is the smallest range worth a thread.
void ParallelFor(std::int64_t n, std::int64_t grain,
                 const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace radlads::cpu
