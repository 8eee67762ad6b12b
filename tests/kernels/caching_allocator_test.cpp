// The caching device allocator's bookkeeping (kernels/cuda/caching_allocator.h) over a fake raw
// allocator: rounding, best fit, splitting, merging, per-stream pools, statistics, release of
// the cache, and the release-and-retry on a failed raw allocation. Label cpu: no GPU needed.
#include "kernels/cuda/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <stdexcept>
#include <vector>

namespace radlads::cuda {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Hands out disjoint fake addresses (never dereferenced) up to a capacity.
struct FakeDevice {
  std::size_t capacity = std::size_t{1} << 40;
  std::size_t used = 0;
  std::uintptr_t next = 0x10000000;
  std::map<void*, std::size_t> live;
  int allocs = 0, frees = 0, failures = 0;
  RawAllocBackend Backend() {
    return RawAllocBackend{
        [this](std::size_t n) -> void* {
          if (used + n > capacity) {
            ++failures;
            return nullptr;
          }
          void* p = reinterpret_cast<void*>(next);
          next += n + 4096;
          used += n;
          live[p] = n;
          ++allocs;
          return p;
        },
        [this](void* p) {
          auto it = live.find(p);
          ASSERT_NE(it, live.end()) << "free of an unknown segment";
          used -= it->second;
          live.erase(it);
          ++frees;
        }};
  }
};

TEST(CachingAllocator, RoundsAndSizesSegments) {
  EXPECT_EQ(CachingAllocatorCore::RoundSize(1), 512u);
  EXPECT_EQ(CachingAllocatorCore::RoundSize(512), 512u);
  EXPECT_EQ(CachingAllocatorCore::RoundSize(513), 1024u);
  EXPECT_EQ(CachingAllocatorCore::SegmentSize(512), 2 * kMiB);
  EXPECT_EQ(CachingAllocatorCore::SegmentSize(kMiB), 2 * kMiB);
  EXPECT_EQ(CachingAllocatorCore::SegmentSize(kMiB + 512), 2 * kMiB);
  EXPECT_EQ(CachingAllocatorCore::SegmentSize(5 * kMiB), 6 * kMiB);
}

TEST(CachingAllocator, SmallRequestsShareASegmentAndAreReused) {
  FakeDevice dev;
  CachingAllocatorCore a(dev.Backend());
  EXPECT_EQ(a.Allocate(0, 1), nullptr);
  void* p = a.Allocate(100, 1);
  void* q = a.Allocate(1000, 1);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(dev.allocs, 1);  // both carved from one 2 MiB segment
  EXPECT_EQ(static_cast<char*>(q) - static_cast<char*>(p), 512);
  EXPECT_EQ(a.BlockSize(p), 512u);
  EXPECT_EQ(a.BlockSize(q), 1024u);
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.in_use, 1536);
  EXPECT_EQ(s.reserved, static_cast<std::int64_t>(2 * kMiB));
  EXPECT_EQ(s.cached, static_cast<std::int64_t>(2 * kMiB) - 1536);
  a.Free(p);
  // Best fit: a 512-byte request takes p's block back, not a piece of the big remainder.
  void* r = a.Allocate(300, 1);
  EXPECT_EQ(r, p);
  a.Free(r);
  a.Free(q);
  s = a.stats();
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.peak_in_use, 1536);
  EXPECT_EQ(s.blocks_in_use, 0);
  // Everything merged back into one free segment, which the release returns.
  EXPECT_EQ(a.ReleaseCache(), 2 * kMiB);
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.stats().reserved, 0);
  EXPECT_TRUE(dev.live.empty());
}

TEST(CachingAllocator, LargeBlocksSplitOnlyAboveTheThreshold) {
  FakeDevice dev;
  CachingAllocatorCore a(dev.Backend());
  void* big = a.Allocate(8 * kMiB, 0);
  EXPECT_EQ(dev.allocs, 1);
  a.Free(big);
  // 3 MiB from the cached 8 MiB block: remainder 5 MiB > 1 MiB, split.
  void* p = a.Allocate(3 * kMiB, 0);
  EXPECT_EQ(p, big);
  EXPECT_EQ(a.BlockSize(p), 3 * kMiB);
  void* q = a.Allocate(4 * kMiB + 512 * 1024, 0);  // fits the 5 MiB remainder, rest 0.5 MiB: no split
  EXPECT_EQ(static_cast<char*>(q), static_cast<char*>(big) + 3 * kMiB);
  EXPECT_EQ(a.BlockSize(q), 5 * kMiB);
  EXPECT_EQ(dev.allocs, 1);
  // Small requests never come from large segments.
  void* s = a.Allocate(4096, 0);
  EXPECT_EQ(dev.allocs, 2);
  a.Free(p);
  a.Free(s);
  EXPECT_EQ(a.ReleaseCache(), 2 * kMiB);  // only the small segment is wholly free
  a.Free(q);
  EXPECT_EQ(a.ReleaseCache(), 8 * kMiB);
  EXPECT_TRUE(dev.live.empty());
}

TEST(CachingAllocator, StreamsHaveSeparatePools) {
  FakeDevice dev;
  CachingAllocatorCore a(dev.Backend());
  void* p = a.Allocate(4096, 1);
  a.Free(p);
  void* q = a.Allocate(4096, 2);  // stream 2 must not get stream 1's cached block
  EXPECT_EQ(dev.allocs, 2);
  EXPECT_NE(q, p);
  void* r = a.Allocate(4096, 1);
  EXPECT_EQ(r, p);
  a.Free(q);
  a.Free(r);
}

TEST(CachingAllocator, MergesBothNeighbours) {
  FakeDevice dev;
  CachingAllocatorCore a(dev.Backend());
  void* x = a.Allocate(512, 0);
  void* y = a.Allocate(512, 0);
  void* z = a.Allocate(512, 0);
  a.Free(x);
  a.Free(z);  // merges with the segment's remainder
  a.Free(y);  // merges with both
  // One free block again: a request for the whole segment is served without a raw allocation.
  void* whole = a.Allocate(kMiB, 0);
  EXPECT_EQ(whole, x);
  EXPECT_EQ(dev.allocs, 1);
  a.Free(whole);
}

TEST(CachingAllocator, ReleasesTheCacheAndRetriesWhenTheRawAllocationFails) {
  FakeDevice dev;
  dev.capacity = 10 * kMiB;
  CachingAllocatorCore a(dev.Backend());
  void* p = a.Allocate(6 * kMiB, 0);
  a.Free(p);  // cached, 6 MiB reserved
  void* q = a.Allocate(8 * kMiB, 0);  // needs 8 MiB: fails, releases the 6 MiB, retries
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(dev.failures, 1);
  EXPECT_EQ(a.stats().reserved, static_cast<std::int64_t>(8 * kMiB));
  EXPECT_THROW(a.Allocate(4 * kMiB, 0), std::runtime_error);
  a.Free(q);
}

TEST(CachingAllocator, RandomWorkloadKeepsTheInvariants) {
  FakeDevice dev;
  CachingAllocatorCore a(dev.Backend());
  std::mt19937_64 rng(11);
  std::vector<std::pair<char*, std::size_t>> live;
  std::int64_t expect_in_use = 0, peak = 0;
  for (int it = 0; it < 4000; ++it) {
    if (live.empty() || rng() % 3 != 0) {
      const std::size_t n = (rng() % 4 == 0) ? 1 + rng() % (6 * kMiB) : 1 + rng() % 20000;
      const std::uintptr_t stream = rng() % 2;
      char* p = static_cast<char*>(a.Allocate(n, stream));
      const std::size_t sz = a.BlockSize(p);
      ASSERT_GE(sz, n);
      ASSERT_EQ(sz % CachingAllocatorCore::kRound, 0u);
      // No overlap with any live block.
      for (const auto& [q, qs] : live) ASSERT_TRUE(p + sz <= q || q + qs <= p) << "overlap at " << it;
      live.emplace_back(p, sz);
      expect_in_use += static_cast<std::int64_t>(sz);
      peak = std::max(peak, expect_in_use);
    } else {
      const std::size_t k = rng() % live.size();
      a.Free(live[k].first);
      expect_in_use -= static_cast<std::int64_t>(live[k].second);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    const AllocatorStats s = a.stats();
    ASSERT_EQ(s.in_use, expect_in_use);
    ASSERT_EQ(s.peak_in_use, peak);
    ASSERT_EQ(s.blocks_in_use, static_cast<std::int64_t>(live.size()));
    ASSERT_GE(s.cached, 0);
    if (it % 500 == 0) a.ReleaseCache();
  }
  for (const auto& [p, sz] : live) a.Free(p);
  a.ReleaseCache();
  EXPECT_EQ(a.stats().reserved, 0);
  EXPECT_TRUE(dev.live.empty());
  a.ResetPeak();
  EXPECT_EQ(a.stats().peak_in_use, 0);
}

}  // namespace
}  // namespace radlads::cuda
