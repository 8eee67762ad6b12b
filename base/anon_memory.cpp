#include "base/anon_memory.h"

#include <cstdio>
#include <cstring>

namespace radlads {

std::optional<std::int64_t> AnonRssBytes() {
  // stdio, not iostreams: this runs every 10 ms beside the training threads.
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return std::nullopt;
  char line[256];
  std::optional<std::int64_t> out;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "RssAnon:", 8) == 0) {
      long long kib = 0;
      if (std::sscanf(line + 8, "%lld", &kib) == 1) out = static_cast<std::int64_t>(kib) * 1024;
      break;
    }
  }
  std::fclose(f);
  return out;
}

AnonPeakSampler::AnonPeakSampler(std::chrono::milliseconds period) : period_(period) {
  Sample();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, period_, [this] { return stop_; })) {
      lock.unlock();
      Sample();
      lock.lock();
    }
  });
}

AnonPeakSampler::~AnonPeakSampler() { Stop(); }

void AnonPeakSampler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Sample();
}

void AnonPeakSampler::Sample() {
  const std::int64_t now = AnonRssBytes().value_or(0);
  std::int64_t prev = peak_.load(std::memory_order_relaxed);
  while (now > prev && !peak_.compare_exchange_weak(prev, now, std::memory_order_relaxed)) {
  }
}

}  // namespace radlads
