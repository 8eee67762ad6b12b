// cpu::ParallelFor on its thread pool (kernels/cpu/parallel.h): every index covered once, ranges
// a pure function of (n, threads, grain), no job lost whether the pool's threads are polling or
// asleep (ctest runs this binary twice: with the default spin budget and with
// RADLADS_SPIN_US=0, where every hand-off goes through the futex), concurrent callers, nested
// calls, resizing, fork, and Gemm called from inside a body.
#include "kernels/cpu/parallel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "kernels/gemm.h"

namespace radlads {
namespace {

// Restores the thread count a test changed.
struct ThreadsGuard {
  int saved = cpu::NumThreads();
  ~ThreadsGuard() { cpu::SetNumThreads(saved); }
};

using Ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;

Ranges Record(std::int64_t n, std::int64_t grain) {
  std::mutex mu;
  Ranges got;
  cpu::ParallelFor(n, grain, [&](std::int64_t b, std::int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    got.emplace_back(b, e);
  });
  std::sort(got.begin(), got.end());
  return got;
}

TEST(Parallel, RangesAreTheDocumentedPartition) {
  ThreadsGuard guard;
  for (int threads : {1, 2, 3, 4}) {
    cpu::SetNumThreads(threads);
    for (std::int64_t n : {0, 1, 2, 3, 17, 1000}) {
      for (std::int64_t grain : {1, 5, 400}) {
        const std::int64_t parts = std::min<std::int64_t>(threads, (n + grain - 1) / grain);
        Ranges want;
        for (std::int64_t p = 0; p < parts; ++p) {
          if (n * p / parts < n * (p + 1) / parts) want.emplace_back(n * p / parts, n * (p + 1) / parts);
        }
        if (parts <= 1 && n > 0) want = {{0, n}};
        EXPECT_EQ(Record(n, grain), want) << "threads " << threads << " n " << n << " grain " << grain;
      }
    }
  }
}

TEST(Parallel, ManyBackToBackJobsAndJobsAfterTheWorkersSlept) {
  ThreadsGuard guard;
  cpu::SetNumThreads(3);
  std::vector<std::int64_t> sum(64, 0);
  const int kJobs = 20000;
  for (int j = 0; j < kJobs; ++j) {
    cpu::ParallelFor(64, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) sum[static_cast<std::size_t>(i)] += 1;
    });
  }
  for (std::int64_t s : sum) ASSERT_EQ(s, kJobs);
  // Gaps longer than the default spin budget (200 us): every job wakes sleeping workers.
  std::atomic<int> calls{0};
  for (int j = 0; j < 30; ++j) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    cpu::ParallelFor(3, 1, [&](std::int64_t, std::int64_t) { calls.fetch_add(1); });
  }
  EXPECT_EQ(calls.load(), 90);
}

TEST(Parallel, NestedCallsRunOnTheCallingThread) {
  ThreadsGuard guard;
  cpu::SetNumThreads(2);
  EXPECT_FALSE(cpu::InParallelFor());
  std::atomic<int> inner_ranges{0}, flagged{0};
  cpu::ParallelFor(2, 1, [&](std::int64_t, std::int64_t) {
    if (cpu::InParallelFor()) flagged.fetch_add(1);
    const auto outer = std::this_thread::get_id();
    cpu::ParallelFor(100, 1, [&](std::int64_t b, std::int64_t e) {
      EXPECT_EQ(std::this_thread::get_id(), outer);
      EXPECT_EQ(b, 0);
      EXPECT_EQ(e, 100);
      inner_ranges.fetch_add(1);
    });
  });
  EXPECT_EQ(flagged.load(), 2);
  EXPECT_EQ(inner_ranges.load(), 2);
  EXPECT_FALSE(cpu::InParallelFor());
}

TEST(Parallel, ConcurrentCallersGetTheSameRangesAndResults) {
  ThreadsGuard guard;
  cpu::SetNumThreads(2);
  const Ranges want = Record(1001, 1);
  std::vector<std::thread> callers;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int j = 0; j < 500; ++j) {
        if (Record(1001, 1) != want) bad.fetch_add(1);
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Parallel, ResizingBetweenJobs) {
  ThreadsGuard guard;
  for (int round = 0; round < 20; ++round) {
    const int threads = 1 + round % 4;
    cpu::SetNumThreads(threads);
    std::atomic<int> parts{0};
    cpu::ParallelFor(1000, 1, [&](std::int64_t, std::int64_t) { parts.fetch_add(1); });
    EXPECT_EQ(parts.load(), threads);
  }
}

TEST(Parallel, ForkedChildGetsAPoolOfItsOwn) {
  ThreadsGuard guard;
  cpu::SetNumThreads(2);
  std::atomic<int> n{0};
  cpu::ParallelFor(2, 1, [&](std::int64_t, std::int64_t) { n.fetch_add(1); });  // the parent's pool exists
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);  // a hang fails the test instead of blocking it
    std::atomic<int> m{0};
    for (int j = 0; j < 100; ++j) cpu::ParallelFor(2, 1, [&](std::int64_t, std::int64_t) { m.fetch_add(1); });
    _exit(m.load() == 200 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// Gemm at a shape it hands to OpenBLAS outside a body, called from inside bodies: each body's
// product is right (computed on its own thread), against the fp64 reference.
TEST(Parallel, GemmInsideABodyMatchesTheReference) {
  ThreadsGuard guard;
  cpu::SetNumThreads(2);
  constexpr double kTolRel = 4e-6, kTolAbs = 1e-6;
  const int m = 8, n = 1536, k = 600;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> a(2 * m * k), b(k * n), c(2 * m * n);
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  cpu::ParallelFor(2, 1, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      Gemm(false, false, m, n, k, 1.f, a.data() + p * m * k, k, b.data(), n, 0.f, c.data() + p * m * n, n);
    }
  });
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(2 * m * n), mag(2 * m * n);
  std::vector<double> aa(ad), ba(bd);
  for (auto& x : aa) x = std::fabs(x);
  for (auto& x : ba) x = std::fabs(x);
  GemmRef(false, false, 2 * m, n, k, 1.0, ad.data(), k, bd.data(), n, 0.0, cd.data(), n);
  GemmRef(false, false, 2 * m, n, k, 1.0, aa.data(), k, ba.data(), n, 0.0, mag.data(), n);
  for (std::size_t i = 0; i < c.size(); ++i) {
    ASSERT_NEAR(c[i], cd[i], kTolAbs + kTolRel * mag[i]) << "i=" << i;
  }
}

}  // namespace
}  // namespace radlads
