// Time for the coordinator, injected (docs/style.md §10): every lease deadline, heartbeat and event
// timestamp comes from a Clock passed in by the caller, never from a global.
//
// - Time is wall-clock milliseconds since the Unix epoch (TimeMs). It is persisted in events and
//   shown by `status`, so it must mean the same thing after a restart; a monotonic clock would
//   not. A wall clock that steps backwards only makes leases last longer, never shorter.
// - SystemClock reads std::chrono::system_clock.
// - FakeClock moves only when the test says so (Advance/Set), like Ray's FakeClock.
// Thread-safety: both implementations are safe to call from many threads.
#pragma once

#include <atomic>
#include <cstdint>

namespace radlads {

using TimeMs = std::int64_t;  // milliseconds since 1970-01-01T00:00:00Z

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override;
  // A process-wide instance (stateless, so sharing it is harmless).
  static SystemClock* Default();
};

class FakeClock final : public Clock {
 public:
  // 2023-11-14T22:13:20Z: a fixed, realistic default so formatted times look plausible.
  static constexpr TimeMs kDefaultStartMs = 1'700'000'000'000;

  explicit FakeClock(TimeMs start_ms = kDefaultStartMs) : now_ms_(start_ms) {}
  TimeMs NowMs() const override { return now_ms_.load(std::memory_order_acquire); }
  // Moves the clock forward by `delta_ms` (>= 0) and returns the new time.
  TimeMs Advance(TimeMs delta_ms);
  // Sets the clock to an absolute time (may go backwards: tests of clock steps).
  void Set(TimeMs now_ms) { now_ms_.store(now_ms, std::memory_order_release); }

 private:
  std::atomic<TimeMs> now_ms_;
};

}  // namespace radlads
