#include "kernels/cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace radlads::cuda {

CachingAllocatorCore::CachingAllocatorCore(RawAllocBackend backend) : backend_(std::move(backend)) {}

CachingAllocatorCore::~CachingAllocatorCore() {
  std::lock_guard<std::mutex> lock(mu_);
  // Free every segment: walk each segment from its first block, found through any block.
  std::vector<Block*> blocks;
  for (auto& [key, pool] : pools_) blocks.insert(blocks.end(), pool.begin(), pool.end());
  for (auto& [ptr, b] : allocated_) blocks.push_back(b);
  std::set<Block*> heads;
  for (Block* b : blocks) {
    Block* h = b;
    while (h->prev != nullptr) h = h->prev;
    heads.insert(h);
  }
  for (Block* h : heads) {
    if (backend_.free) backend_.free(h->ptr);
    for (Block* b = h; b != nullptr;) {
      Block* n = b->next;
      delete b;
      b = n;
    }
  }
}

std::size_t CachingAllocatorCore::RoundSize(std::size_t bytes) {
  if (bytes == 0) return kRound;
  return (bytes + kRound - 1) / kRound * kRound;
}

std::size_t CachingAllocatorCore::SegmentSize(std::size_t rounded) {
  if (rounded <= kSmallLimit) return kSmallSegment;
  return (rounded + kLargeRound - 1) / kLargeRound * kLargeRound;
}

void* CachingAllocatorCore::Allocate(std::size_t bytes, std::uintptr_t stream) {
  if (bytes == 0) return nullptr;
  const std::size_t rounded = RoundSize(bytes);
  const bool small = rounded <= kSmallLimit;
  std::lock_guard<std::mutex> lock(mu_);
  Pool& pool = PoolOf(stream, small);
  Block key;
  key.size = rounded;
  key.ptr = nullptr;
  Block* b = nullptr;
  auto it = pool.lower_bound(&key);
  if (it != pool.end()) {
    b = *it;
    pool.erase(it);
  } else {
    const std::size_t seg = SegmentSize(rounded);
    void* p = backend_.alloc(seg);
    if (p == nullptr) {
      ReleaseLocked();
      p = backend_.alloc(seg);
    }
    if (p == nullptr) {
      throw std::runtime_error("out of device memory: a segment of " + std::to_string(seg) +
                               " bytes for a request of " + std::to_string(bytes) + " bytes (" +
                               std::to_string(stats_.in_use) + " bytes in use, " +
                               std::to_string(stats_.reserved) + " reserved)");
    }
    ++stats_.raw_allocs;
    stats_.reserved += static_cast<std::int64_t>(seg);
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
    b = new Block;
    b->stream = stream;
    b->size = seg;
    b->ptr = static_cast<char*>(p);
    b->small = small;
  }
  const std::size_t rest = b->size - rounded;
  if (small ? rest >= kRound : rest > kMinLargeSplit) {
    Block* r = new Block;
    r->stream = stream;
    r->size = rest;
    r->ptr = b->ptr + rounded;
    r->small = small;
    r->prev = b;
    r->next = b->next;
    if (b->next != nullptr) b->next->prev = r;
    b->next = r;
    b->size = rounded;
    pool.insert(r);
  }
  b->allocated = true;
  allocated_[b->ptr] = b;
  stats_.in_use += static_cast<std::int64_t>(b->size);
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  ++stats_.blocks_in_use;
  return b->ptr;
}

void CachingAllocatorCore::Free(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = allocated_.find(ptr);
  if (it == allocated_.end()) {
    std::fprintf(stderr, "CachingAllocatorCore::Free: %p is not an allocated block\n", ptr);
    std::abort();
  }
  Block* b = it->second;
  allocated_.erase(it);
  b->allocated = false;
  stats_.in_use -= static_cast<std::int64_t>(b->size);
  --stats_.blocks_in_use;
  Pool& pool = PoolOf(b->stream, b->small);
  if (b->prev != nullptr && !b->prev->allocated) {
    Block* p = b->prev;
    pool.erase(p);
    p->size += b->size;
    p->next = b->next;
    if (b->next != nullptr) b->next->prev = p;
    delete b;
    b = p;
  }
  if (b->next != nullptr && !b->next->allocated) {
    Block* n = b->next;
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next != nullptr) n->next->prev = b;
    delete n;
  }
  pool.insert(b);
}

std::size_t CachingAllocatorCore::BlockSize(const void* ptr) const {
  if (ptr == nullptr) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = allocated_.find(ptr);
  return it == allocated_.end() ? 0 : it->second->size;
}

std::size_t CachingAllocatorCore::ReleaseLocked() {
  std::size_t released = 0;
  for (auto& [key, pool] : pools_) {
    for (auto it = pool.begin(); it != pool.end();) {
      Block* b = *it;
      if (b->prev == nullptr && b->next == nullptr) {  // a whole segment, free
        backend_.free(b->ptr);
        ++stats_.raw_frees;
        stats_.reserved -= static_cast<std::int64_t>(b->size);
        released += b->size;
        it = pool.erase(it);
        delete b;
      } else {
        ++it;
      }
    }
  }
  return released;
}

std::size_t CachingAllocatorCore::ReleaseCache() {
  std::lock_guard<std::mutex> lock(mu_);
  return ReleaseLocked();
}

AllocatorStats CachingAllocatorCore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  AllocatorStats s = stats_;
  s.cached = s.reserved - s.in_use;
  return s;
}

void CachingAllocatorCore::ResetPeak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_in_use = stats_.in_use;
  stats_.peak_reserved = stats_.reserved;
}

}  // namespace radlads::cuda
