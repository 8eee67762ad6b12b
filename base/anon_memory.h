// This process's resident anonymous memory (heap, stacks, private copies): what it holds
// itself, as opposed to file pages it has mapped (a teacher's safetensors, token datasets),
// which the kernel can drop and read back. docs/planner.md §4 compares its peak per task with
// the plan's memory estimate.
//
// Why sampling: Linux keeps a high-water mark only for the whole resident set (VmHWM), which
// counts mapped file pages too (a 7B teacher's 15 GB would swamp the figure), and no
// high-water mark of RssAnon. So a background thread reads RssAnon of /proc/self/status every
// `period` (10 ms by default, ~30 us a read) and keeps the maximum. A buffer that lives less
// than a period can be missed; the buffers that set the peak (weights, moments, a layer's
// activations) live for whole layers or steps.
//
// Contract:
// - AnonRssBytes(): RssAnon now, bytes; nullopt when it cannot be read (not Linux).
// - AnonPeakSampler samples once when constructed and once in Stop() (or the destructor), and
//   every period in between; PeakBytes() is the largest sample so far (0 when unreadable).
// Thread-safety: PeakBytes may be called from any thread; Stop from the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

namespace radlads {

std::optional<std::int64_t> AnonRssBytes();

class AnonPeakSampler {
 public:
  explicit AnonPeakSampler(std::chrono::milliseconds period = std::chrono::milliseconds(10));
  ~AnonPeakSampler();
  AnonPeakSampler(const AnonPeakSampler&) = delete;
  AnonPeakSampler& operator=(const AnonPeakSampler&) = delete;

  void Stop();
  std::int64_t PeakBytes() const { return peak_.load(std::memory_order_relaxed); }
  double PeakMib() const { return static_cast<double>(PeakBytes()) / (1024.0 * 1024.0); }

 private:
  void Sample();

  std::chrono::milliseconds period_;
  std::atomic<std::int64_t> peak_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace radlads
