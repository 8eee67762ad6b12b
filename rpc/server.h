// The coordinator's network server (docs/design.md §4; protocol in docs/protocol.md): a Boost.Asio TCP
// server on one event-loop thread that exposes the Scheduler to workers and to
// `radlads-coord status`.
//
// Per connection it sends a Challenge, requires an authenticated Hello, then answers requests in
// order. Requests may be pipelined (up to max_inflight per connection; reading pauses beyond
// that). Heartbeat, CommitCheckpoint, Lease and Complete go through the Scheduler's *Async forms,
// so concurrent calls from many connections are group-committed by the store; the other
// operations (RegisterWorker, Fail, Release, Drain, ExpireLeases) and GetStatus run on a small
// blocking pool, and a connection reads no further request until such a call is answered, so a
// connection's requests take effect in the order it sent them.
//
// Hostile input: a frame over the cap (checked from the length prefix, before buffering), a
// truncated or malformed frame, anything before a valid Hello, a wrong MAC, a replayed, reordered
// or skipped sequence number, a handshake or frame that does not complete within frame_timeout
// (slow peer), or a reply the peer does not read within frame_timeout: the server logs the peer
// address and the reason (rate-limited), counts it in metrics().violations, closes THAT
// connection, and keeps serving everyone else. Nothing a peer sends can change the run state
// unless it is an authenticated, well-formed request. A connection with no frame for
// idle_timeout is closed quietly (clients reconnect on their next call).
//
// Timers: every expiry_period the server calls Scheduler::ExpireLeases.
//
// Drain (signals are handled only when ServerOptions::handle_signals): SIGTERM or SIGUSR1, or an
// authenticated Drain request, calls Scheduler::Drain. Leases are no longer granted and every
// heartbeat reply says stop; workers commit their checkpoint and Release. When no lease is
// outstanding (phase drained) and every worker process still registered has been told (a lease
// answered kDraining; exit_after_run_over_ms at most), the server stops, waits for every
// in-flight store write, and Run() returns kExitRequeue (3). A second SIGTERM/SIGUSR1 during the drain stops at once: Run()
// returns kExitRequeue without waiting for workers; their leases stay outstanding in the state
// and the next coordinator's Scheduler::Resume ends them without counting a failure.
// When the run reaches a terminal phase (completed or failed) the server keeps answering (workers
// learn kRunOver) until every worker process still registered has been told (a lease answered
// kRunOver, on any of its identities) or for exit_after_run_over_ms at most, then Run() returns 0 (completed) or 1
// (failed).
// A store write error (the store is poisoned) makes Run() return 1 at once.
//
// Thread-safety: Start, Run and the destructor from one thread; RequestDrain, Shutdown,
// address and metrics from any thread. The Scheduler, its store and `clock` must outlive the
// Server. Asio stays inside server.cpp (pimpl).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "rpc/protocol.h"
#include "rpc/secret.h"
#include "state/scheduler.h"

namespace radlads {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";    // ADDR:PORT ([v6]:PORT); port 0 = ephemeral
  std::int64_t expiry_period_ms = 1000;  // how often ExpireLeases runs
  std::int64_t idle_timeout_ms = 300'000;  // no frame for this long: close (quietly)
  std::int64_t frame_timeout_ms = 10'000;  // handshake, one frame's bytes, one reply's write
  std::uint32_t max_frame = protocol::kDefaultMaxFrame;  // cap on client frames (payload bytes)
  int max_connections = 4096;            // beyond: accepted and closed at once
  int max_inflight = 256;                // pipelined requests per connection
  int blocking_threads = 4;              // pool for the operations without an Async form
  std::int64_t exit_after_run_over_ms = 30'000;  // < 0: never exit on a terminal phase
  bool handle_signals = true;            // SIGTERM/SIGUSR1 drain (false for in-process tests)
};

struct ServerMetrics {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t connections_open = 0;
  std::uint64_t sessions = 0;             // completed handshakes
  std::uint64_t requests = 0;             // authenticated requests dispatched
  std::uint64_t error_replies = 0;        // replies with a non-OK status (not violations)
  std::uint64_t idle_closed = 0;
  std::uint64_t violations_total = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(protocol::Violation::kCount)> violations{};
  std::uint64_t leases_expired = 0;       // by the expiry timer
  std::uint64_t Violations(protocol::Violation v) const {
    return violations[static_cast<std::size_t>(v)];
  }
};

class Server {
 public:
  // Binds and listens (the loop does not run yet). InvalidArgument for a bad listen address or
  // option; Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Scheduler* scheduler,
                                               const Clock* clock, const RunSecret& secret);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, "127.0.0.1:41234" ("[::1]:41234" for IPv6).
  std::string address() const;
  // Runs the event loop on the calling thread until the server exits; returns the exit code
  // (see the header comment). Call once.
  int Run();
  // Starts a drain as a signal would (idempotent).
  void RequestDrain(std::string reason);
  // Stops at once (in-flight store writes are still awaited); Run() returns `exit_code`.
  void Shutdown(int exit_code);
  ServerMetrics metrics() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace radlads
