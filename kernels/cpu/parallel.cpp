#include "kernels/cpu/parallel.h"

#include <cblas.h>
#include <omp.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "base/profile.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace radlads::cpu {
namespace {

int DefaultThreads() {
  if (const char* env = std::getenv("RADLADS_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

// How long an idle thread of the pool keeps polling for the next job before it sleeps.
std::chrono::nanoseconds SpinBudget() {
  static const std::chrono::nanoseconds budget = [] {
    long us = 200;
    if (const char* env = std::getenv("RADLADS_SPIN_US")) us = std::max(0L, std::atol(env));
    return std::chrono::nanoseconds(us * 1000);
  }();
  return budget;
}

inline void Pause() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// Polls `ready` for up to the spin budget: pause instructions, and every 64 polls a look at the
// clock and a sched_yield (which returns at once when nothing else wants this core, and hands it
// over when something does, so an oversubscribed machine loses little to the polling).
template <typename Ready>
bool Spin(Ready ready) {
  const std::chrono::nanoseconds budget = SpinBudget();
  if (budget.count() == 0) return ready();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (ready()) return true;
    Pause();
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() - start > budget) return ready();
      sched_yield();
    }
  }
}

// Sleeping and waking on a 32-bit atomic, with the futex system call itself (libstdc++ 12's
// std::atomic::wait lost wake-ups here).
void FutexWait(std::atomic<std::uint32_t>& a, std::uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void FutexWakeAll(std::atomic<std::uint32_t>& a) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&a), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free);

thread_local bool tls_in_job = false;

// Part p of `parts` of [0, n): the one partition every path uses (the pool's threads, and a
// caller that finds the pool busy), so they compute the same bits.
void RunPart(const std::function<void(std::int64_t, std::int64_t)>& fn, std::int64_t n, int parts, int p) {
  const std::int64_t begin = n * p / parts, end = n * (p + 1) / parts;
  profile::Suppress quiet;
  tls_in_job = true;
  if (begin < end) fn(begin, end);
  tls_in_job = false;
}

// A fork-join pool of NumThreads() - 1 workers; the calling thread runs part 0 of each job.
// A job is published by bumping `generation_`; every worker acknowledges every job (those with
// no part too) by decrementing `pending_`, so the next job cannot be published before each
// worker has seen this one. Idle workers poll `generation_` for the spin budget, then sleep on it
// (futex); the caller polls `pending_` likewise.
class Pool {
 public:
  explicit Pool(int threads) : workers_(static_cast<std::size_t>(threads - 1)) {
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      workers_[w] = std::thread([this, w] { WorkerLoop(static_cast<int>(w) + 1); });
    }
  }
  ~Pool() {
    stop_.store(true, std::memory_order_relaxed);
    Publish();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void Run(std::int64_t n, int parts, const std::function<void(std::int64_t, std::int64_t)>& fn) {
    fn_ = &fn;
    n_ = n;
    parts_ = parts;
    pending_.store(static_cast<std::uint32_t>(workers_.size()), std::memory_order_relaxed);
    Publish();
    RunPart(*fn_, n_, parts_, 0);
    if (!Spin([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      caller_sleeping_.store(1, std::memory_order_seq_cst);
      for (std::uint32_t p = pending_.load(std::memory_order_seq_cst); p != 0; p = pending_.load(std::memory_order_seq_cst)) {
        FutexWait(pending_, p);
      }
      caller_sleeping_.store(0, std::memory_order_relaxed);
    }
  }

 private:
  // seq_cst on both sides (here and the sleeper's increment before its last look): either the
  // sleeper sees the new generation or this sees the sleeper.
  void Publish() {
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(generation_);
  }

  void WorkerLoop(int index) {
    std::uint32_t seen = 0;  // the generation at construction (not a load: the first job may be out already)
    for (;;) {
      if (!Spin([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while (generation_.load(std::memory_order_seq_cst) == seen) FutexWait(generation_, seen);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      ++seen;  // exactly one job ahead: the caller waits for every acknowledgement
      if (stop_.load(std::memory_order_relaxed)) return;
      if (index < parts_) RunPart(*fn_, n_, parts_, index);
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
        FutexWakeAll(pending_);
      }
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::uint32_t> pending_{0};
  std::atomic<int> caller_sleeping_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0;
  int parts_ = 0;
};

int& ThreadCount() {
  static int n = [] {
    int d = DefaultThreads();
    omp_set_num_threads(d);
    openblas_set_num_threads(d);
    return d;
  }();
  return n;
}

std::unique_ptr<Pool>& ThePool() {
  // Never destroyed: workers may still be polling while the process exits. A forked child has
  // none of the parent's threads, so it forgets (leaks) the parent's pool and starts its own.
  static auto* pool = [] {
    pthread_atfork(nullptr, nullptr, [] { (void)ThePool().release(); });
    return new std::unique_ptr<Pool>();
  }();
  return *pool;
}

}  // namespace

void SetNumThreads(int n) {
  n = std::max(1, n);
  ThreadCount() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int NumThreads() { return ThreadCount(); }

bool InParallelFor() { return tls_in_job; }

void ParallelFor(std::int64_t n, std::int64_t grain,
                 const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  const std::int64_t parts = std::min<std::int64_t>(NumThreads(), (n + grain - 1) / grain);
  // The bodies are charged to the op that called ParallelFor (base/profile.h), on any thread
  // and whatever the thread count.
  if (parts <= 1 || tls_in_job) {
    profile::Suppress quiet;
    fn(0, n);
    return;
  }
  // One caller at a time uses the pool; another thread calling meanwhile (in-process ranks in
  // tests) runs the same ranges itself, one after another, so its results are the same bits.
  static std::atomic<bool> busy{false};
  if (busy.exchange(true, std::memory_order_acquire)) {
    for (int p = 0; p < static_cast<int>(parts); ++p) RunPart(fn, n, static_cast<int>(parts), p);
    return;
  }
  std::unique_ptr<Pool>& pool = ThePool();
  if (!pool || pool->size() != NumThreads()) {
    pool.reset();
    pool = std::make_unique<Pool>(NumThreads());
  }
  pool->Run(n, static_cast<int>(parts), fn);
  busy.store(false, std::memory_order_release);
}

}  // namespace radlads::cpu
