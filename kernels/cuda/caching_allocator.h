// The bookkeeping of the CUDA caching device allocator, in plain C++ over an injected raw
// alloc/free (cudaMalloc / cudaFree in kernels/cuda/device_tensor.cu; a fake in
// tests/kernels/caching_allocator_test.cpp, label cpu), so that it is tested without a GPU.
//
// Policy (PyTorch's caching allocator in miniature):
//  - Requests are rounded up to kRound (512) bytes. "Small" requests (<= kSmallLimit, 1 MiB)
//    are carved from kSmallSegment (2 MiB) segments; larger ones get a segment of their size
//    rounded up to kLargeRound (2 MiB). Small and large blocks never share a segment.
//  - Free blocks are kept per (stream, small/large) pool, ordered by (size, address); a request
//    takes the smallest block that fits (best fit). A block larger than the request is split
//    when the remainder is >= kRound (small) or > kMinLargeSplit (large); the remainder goes
//    back to the pool. A freed block merges with its free neighbours in the same segment.
//  - A block freed on stream S is reused only by requests on S: work queued on S after the
//    free is ordered after the work that used it. Using a block on another stream is the
//    caller's business (wait on an event recorded on S first).
//  - When the raw allocation fails, every wholly free segment is released and the allocation
//    retried once; a second failure throws std::runtime_error (out of device memory).
//  - ReleaseCache() returns every wholly free segment to the raw allocator.
// Statistics: in_use (bytes of allocated blocks, rounded sizes), reserved (bytes of segments
// held from the raw allocator), cached = reserved - in_use (free for reuse), and the peaks of
// in_use and reserved since construction or ResetPeak().
// Thread-safe (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

namespace radlads::cuda {

struct RawAllocBackend {
  std::function<void*(std::size_t)> alloc;  // nullptr on failure (out of memory)
  std::function<void(void*)> free;
};

struct AllocatorStats {
  std::int64_t in_use = 0;
  std::int64_t peak_in_use = 0;
  std::int64_t reserved = 0;
  std::int64_t peak_reserved = 0;
  std::int64_t cached = 0;  // reserved - in_use
  std::int64_t raw_allocs = 0;
  std::int64_t raw_frees = 0;
  std::int64_t blocks_in_use = 0;
};

class CachingAllocatorCore {
 public:
  static constexpr std::size_t kRound = 512;
  static constexpr std::size_t kSmallLimit = std::size_t{1} << 20;
  static constexpr std::size_t kSmallSegment = std::size_t{2} << 20;
  static constexpr std::size_t kLargeRound = std::size_t{2} << 20;
  static constexpr std::size_t kMinLargeSplit = std::size_t{1} << 20;

  explicit CachingAllocatorCore(RawAllocBackend backend);
  // Returns every segment to the raw allocator (blocks still allocated are lost with them).
  ~CachingAllocatorCore();
  CachingAllocatorCore(const CachingAllocatorCore&) = delete;
  CachingAllocatorCore& operator=(const CachingAllocatorCore&) = delete;

  // A block of at least `bytes` bytes (nullptr for 0 bytes) for use on `stream` (an opaque
  // stream id). Throws std::runtime_error when the raw allocator fails even after the cache is
  // released.
  void* Allocate(std::size_t bytes, std::uintptr_t stream);
  // Returns a block from Allocate to its stream's pool (nullptr: nothing). Aborts on a pointer
  // that is not an allocated block (double free, foreign pointer).
  void Free(void* ptr);
  // The rounded size of an allocated block (0 for nullptr).
  std::size_t BlockSize(const void* ptr) const;
  // Frees every wholly free segment; returns the bytes released.
  std::size_t ReleaseCache();

  AllocatorStats stats() const;
  void ResetPeak();

  static std::size_t RoundSize(std::size_t bytes);
  // The segment a request of `rounded` bytes gets when no cached block fits.
  static std::size_t SegmentSize(std::size_t rounded);

 private:
  struct Block {
    std::uintptr_t stream = 0;
    std::size_t size = 0;
    char* ptr = nullptr;
    bool allocated = false;
    bool small = false;
    Block* prev = nullptr;  // neighbours in the same segment, by address
    Block* next = nullptr;
  };
  struct BySizeAddr {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using Pool = std::set<Block*, BySizeAddr>;
  Pool& PoolOf(std::uintptr_t stream, bool small) { return pools_[{stream, small}]; }
  std::size_t ReleaseLocked();

  RawAllocBackend backend_;
  mutable std::mutex mu_;
  std::map<std::pair<std::uintptr_t, bool>, Pool> pools_;
  std::unordered_map<const void*, Block*> allocated_;
  AllocatorStats stats_;
};

}  // namespace radlads::cuda
