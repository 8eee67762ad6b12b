#include "base/profile.h"

#include <atomic>
#include <chrono>

namespace radlads::profile {
namespace {

std::array<std::atomic<std::int64_t>, kFamilies> g_ns{};
std::array<std::atomic<std::int64_t>, kFamilies> g_calls{};

thread_local Scope* t_innermost = nullptr;
thread_local int t_suppressed = 0;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string_view FamilyName(Family f) {
  switch (f) {
    case Family::kGemm: return "gemm";
    case Family::kRecurrence: return "recurrence";
    case Family::kAttention: return "attention";
    case Family::kHeadLoss: return "head_loss";
    case Family::kOptimizer: return "optimizer";
    case Family::kIo: return "io";
    case Family::kScheduling: return "scheduling";
    case Family::kCount: break;
  }
  return "?";
}

Counters Counters::operator-(const Counters& o) const {
  Counters d;
  for (int i = 0; i < kFamilies; ++i) {
    d.ns[i] = ns[i] - o.ns[i];
    d.calls[i] = calls[i] - o.calls[i];
  }
  return d;
}

Counters& Counters::operator+=(const Counters& o) {
  for (int i = 0; i < kFamilies; ++i) {
    ns[i] += o.ns[i];
    calls[i] += o.calls[i];
  }
  return *this;
}

std::int64_t Counters::TotalNs() const {
  std::int64_t t = 0;
  for (std::int64_t v : ns) t += v;
  return t;
}

Counters Snapshot() {
  Counters c;
  for (int i = 0; i < kFamilies; ++i) {
    c.ns[i] = g_ns[i].load(std::memory_order_relaxed);
    c.calls[i] = g_calls[i].load(std::memory_order_relaxed);
  }
  return c;
}

Scope::Scope(Family f) noexcept : family_(f), active_(t_suppressed == 0) {
  if (!active_) return;
  parent_ = t_innermost;
  t_innermost = this;
  start_ns_ = NowNs();
}

Scope::~Scope() {
  if (!active_) return;
  const std::int64_t elapsed = NowNs() - start_ns_;
  const int i = static_cast<int>(family_);
  g_ns[i].fetch_add(elapsed - child_ns_, std::memory_order_relaxed);
  g_calls[i].fetch_add(1, std::memory_order_relaxed);
  if (parent_ != nullptr) parent_->child_ns_ += elapsed;
  t_innermost = parent_;
}

Suppress::Suppress() noexcept { ++t_suppressed; }
Suppress::~Suppress() { --t_suppressed; }

}  // namespace radlads::profile
