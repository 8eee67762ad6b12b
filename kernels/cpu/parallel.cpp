#include "kernels/cpu/parallel.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "base/profile.h"

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

int& ThreadCount() {
  static int n = [] {
    int d = DefaultThreads();
    omp_set_num_threads(d);
    openblas_set_num_threads(d);
    return d;
  }();
  return n;
}

}  // namespace

void SetNumThreads(int n) {
  n = std::max(1, n);
  ThreadCount() = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int NumThreads() { return ThreadCount(); }

void ParallelFor(std::int64_t n, std::int64_t grain,
                 const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  std::int64_t parts = std::min<std::int64_t>(NumThreads(), (n + grain - 1) / grain);
  // The bodies are charged to the op that called ParallelFor (base/profile.h), on any thread
  // and whatever the thread count.
  if (parts <= 1 || omp_in_parallel()) {
    profile::Suppress quiet;
    fn(0, n);
    return;
  }
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(parts))
  for (std::int64_t p = 0; p < parts; ++p) {
    profile::Suppress quiet;
    std::int64_t begin = n * p / parts;
    std::int64_t end = n * (p + 1) / parts;
    if (begin < end) fn(begin, end);
  }
}

}  // namespace radlads::cpu
