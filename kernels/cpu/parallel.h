// Threading for the CPU backend. One process-wide thread count drives both our own pool (our
// loops) and OpenBLAS (GEMM). Work is split statically into contiguous ranges, so every
// element is always computed by the same code path in the same order: results are identical
// run to run and independent of timing. Reductions never use atomics: each range reduces into
// its own slot and the slots are combined in range order.
#pragma once

#include <cstdint>
#include <functional>

namespace radlads::cpu {

// Sets the number of threads for our pool and OpenBLAS (default: RADLADS_THREADS or the number
// of cores). Call from the main thread, outside parallel regions.
void SetNumThreads(int n);
int NumThreads();

// Calls fn(begin, end) on contiguous, disjoint ranges covering [0, n), in parallel. Ranges are
// a pure function of (n, NumThreads(), grain). `grain` is the smallest range worth a thread.
// Runs on a pool of NumThreads() - 1 persistent threads plus the caller. A ParallelFor inside
// a body runs serially on that thread. Between jobs the pool's threads poll for the next one
// for RADLADS_SPIN_US microseconds (default 200; 0: sleep at once), yielding the core whenever
// another thread wants it, then sleep: most ops here take tens of microseconds, and waking a
// sleeping thread (a futex, and on a VM an interrupt to another virtual CPU) costs as much.
// Several threads may call it at once: one at a time gets the pool, the others run the same
// ranges one after another themselves (the same results).
void ParallelFor(std::int64_t n, std::int64_t grain,
                 const std::function<void(std::int64_t, std::int64_t)>& fn);

// True on a thread that is running a ParallelFor body (so kernels/gemm.cpp keeps OpenBLAS,
// which has threads of its own, out of it).
bool InParallelFor();

}  // namespace radlads::cpu
