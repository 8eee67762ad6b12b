#include "base/clock.h"

#include <chrono>

#include "base/check.h"

namespace radlads {

TimeMs SystemClock::NowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

SystemClock* SystemClock::Default() {
  static SystemClock clock;
  return &clock;
}

TimeMs FakeClock::Advance(TimeMs delta_ms) {
  RADLADS_CHECK(delta_ms >= 0) << "FakeClock::Advance by a negative delta " << delta_ms;
  return now_ms_.fetch_add(delta_ms, std::memory_order_acq_rel) + delta_ms;
}

}  // namespace radlads
