// The only translation unit that includes Boost.Asio (it compiles slowly): the event loop,
// connections, timers and signals. The protocol logic itself is in protocol.cpp.
#include "rpc/server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "base/log.h"
#include "state/state_store.h"
#include "status/status_report.h"

namespace radlads {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using protocol::MsgType;
using protocol::Reply;
using protocol::Violation;

namespace {

constexpr auto kNever = SteadyClock::time_point::max();
constexpr std::int64_t kTickMs = 100;  // phase / health / expiry checks

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) {
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find("]:");
    if (close == std::string::npos) {
      return Status::InvalidArgument("listen address '" + listen + "': expected [IPv6]:PORT");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("listen address '" + listen + "': expected ADDR:PORT");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(port) > 65535) {
    return Status::InvalidArgument("listen address '" + listen + "': port must be 0-65535");
  }
  boost::system::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) {
    return Status::InvalidArgument("listen address '" + listen +
                                   "': not a numeric IPv4/IPv6 address (" + ec.message() + ")");
  }
  return tcp::endpoint(addr, static_cast<unsigned short>(std::stoul(port)));
}

Reply ToReply(const Status& s) { return Reply{s, protocol::EmptyReply{}}; }
template <typename T>
Reply ToReply(Result<T>&& r) {
  if (!r.ok()) return Reply{r.status(), protocol::EmptyReply{}};
  return Reply{Status::Ok(), std::move(r).value()};
}

// The document GetStatus returns (the same JSON as `radlads-coord status --json`).
// Built from a copy, so the state mutex is held only for the copy, not for the rendering.
std::string StatusText(const StateStore& store, TimeMs now) {
  const RunState snapshot = store.Snapshot();
  return StatusJson(snapshot, now);
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Impl
// ---------------------------------------------------------------------------------------------

struct Server::Impl {
  class Connection;

  Impl(const ServerOptions& o, Scheduler* s, const Clock* c, const RunSecret& sec)
      : opt(o),
        sched(s),
        store(s->store()),
        clock(c),
        secret(sec),
        pool(static_cast<std::size_t>(std::max(1, o.blocking_threads))) {}

  // ---- lifecycle (io thread) ----
  void DoAccept();
  void ArmTick();
  void OnTick();
  void WaitSignal();
  void OnSignal(int sig);
  void StartDrain(const std::string& reason);
  void CheckPhase();
  void BeginExit(int code, const std::string& why);

  // ---- operations ----
  // Counts an operation whose completion will be posted back to the loop; while any is
  // outstanding the loop keeps running (so nothing posts into a destroyed io_context).
  void BeginOp() {
    if (ops_in_flight++ == 0) work.emplace(io.get_executor());
  }
  void EndOp() {
    if (--ops_in_flight == 0) work.reset();
  }
  // Runs `fn` on the blocking pool and `then(result)` back on the loop.
  void RunBlocking(std::function<Reply()> fn, std::function<void(Reply)> then) {
    BeginOp();
    asio::post(pool, [this, fn = std::move(fn), then = std::move(then)]() mutable {
      Reply r = fn();
      asio::post(io, [this, r = std::move(r), then = std::move(then)]() mutable {
        EndOp();
        AfterOp(r.status);
        then(std::move(r));
      });
    });
  }
  void AfterOp(const Status& s) {
    if (s.code() == Status::Code::kIOError) CheckPhase();  // a poisoned store exits
  }

  // ---- metrics and logs (io thread, except metrics() readers) ----
  template <typename F>
  void Count(F&& f) {
    std::lock_guard<std::mutex> lock(metrics_mu);
    f(m);
  }
  void LogLimited(const std::string& line);

  ServerOptions opt;
  Scheduler* sched;
  StateStore* store;
  const Clock* clock;
  RunSecret secret;
  std::string run_id;

  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  asio::signal_set signals{io};
  asio::steady_timer tick{io};
  asio::steady_timer accept_retry{io};
  asio::steady_timer exit_grace{io};
  asio::thread_pool pool;
  std::string bound;
  std::uint16_t port = 0;

  std::set<std::shared_ptr<Connection>> conns;
  int ops_in_flight = 0;
  bool draining = false;
  int signals_received = 0;
  bool exiting = false;
  int exit_code = kExitOk;
  bool expire_running = false;
  SteadyClock::time_point next_expire{};
  std::optional<SteadyClock::time_point> run_over_since;
  std::set<std::string> told_to_stop;  // workers whose lease was answered kRunOver or kDraining
  std::optional<SteadyClock::time_point> drained_since;
  bool ran = false;

  mutable std::mutex metrics_mu;
  ServerMetrics m;

  SteadyClock::time_point log_window{};
  int logs_in_window = 0;
  std::uint64_t logs_suppressed = 0;
};

void Server::Impl::LogLimited(const std::string& line) {
  // At most 20 lines per 10 s, so a flood of bad connections cannot flood the log.
  const auto now = SteadyClock::now();
  if (now - log_window >= std::chrono::seconds(10)) {
    if (logs_suppressed > 0) {
      log::Warn("coordinator: " + std::to_string(logs_suppressed) +
                " more connection errors were not logged");
    }
    log_window = now;
    logs_in_window = 0;
    logs_suppressed = 0;
  }
  if (logs_in_window < 20) {
    ++logs_in_window;
    log::Warn(line);
  } else {
    ++logs_suppressed;
  }
}

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

class Server::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* srv, tcp::socket sock, std::string peer, std::uint64_t session,
             const protocol::Nonce& nonce)
      : srv_(srv),
        sock_(std::move(sock)),
        timer_(srv->io),
        peer_(std::move(peer)),
        session_(srv->secret, session, nonce, srv->opt.max_frame, srv->run_id),
        splitter_(std::min(srv->opt.max_frame, protocol::kHandshakeMaxFrame)) {}

  void Start() {
    opened_at_ = last_frame_at_ = SteadyClock::now();
    Slot challenge;
    challenge.frame = session_.ChallengeFrame();
    slots_.push_back(std::move(challenge));
    Flush();
    Process();
  }

  // Stop reading, deliver the replies already due, then close (server exit).
  void Finish() {
    if (closed_) return;
    bye_ = true;
    if (!writing_) Flush();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
    timer_.cancel();
    srv_->Count([](ServerMetrics& m) { --m.connections_open; });
    srv_->conns.erase(shared_from_this());
    if (srv_->exiting && srv_->conns.empty()) srv_->exit_grace.cancel();
  }

 private:
  struct Slot {
    std::uint64_t seq = 0;
    MsgType type = MsgType::kChallenge;
    std::optional<std::string> frame;  // sealed reply, once ready
  };

  std::int64_t Ms(SteadyClock::duration d) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }
  SteadyClock::duration FrameTimeout() const {
    return std::chrono::milliseconds(srv_->opt.frame_timeout_ms);
  }
  std::size_t Outstanding() const { return slots_.size() + wframes_; }
  bool Paused() const {
    return barrier_ || bye_ || Outstanding() >= static_cast<std::size_t>(srv_->opt.max_inflight);
  }

  void Violate(Violation v, const std::string& detail) {
    if (closed_) return;
    srv_->Count([v](ServerMetrics& m) {
      ++m.violations_total;
      ++m.violations[static_cast<std::size_t>(v)];
    });
    srv_->LogLimited("coordinator: closing connection from " + peer_ +
                     (session_.client_name().empty() ? "" : " ('" + session_.client_name() + "')") +
                     ": protocol violation (" + std::string(protocol::ViolationName(v)) +
                     "): " + detail);
    Close();
  }

  // ---- reading ----
  void DoRead() {
    if (closed_ || reading_ || Paused()) return;
    reading_ = true;
    sock_.async_read_some(asio::buffer(rbuf_),
                          [self = shared_from_this()](const boost::system::error_code& ec,
                                                      std::size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      if (splitter_.buffered() > 0) {
        Violate(Violation::kTruncated, "connection ended in the middle of a frame (" +
                                           std::to_string(splitter_.buffered()) +
                                           " bytes buffered): " + ec.message());
      } else {
        Close();  // an orderly close between frames (or before any: a port probe)
      }
      return;
    }
    read_at_ = SteadyClock::now();
    if (splitter_.buffered() == 0) partial_since_ = read_at_;
    splitter_.Append(std::string_view(rbuf_.data(), n));
    Process();
  }

  void Process() {
    while (!closed_ && !Paused()) {
      auto next = splitter_.Next();
      if (!next.ok()) {
        Violate(splitter_.violation(), next.status().message());
        return;
      }
      if (!next->has_value()) break;
      partial_since_ = read_at_;
      last_frame_at_ = SteadyClock::now();
      Handle(std::move(**next));
    }
    if (closed_) return;
    ArmTimer();
    DoRead();
  }

  // Called when a pause may have ended (a reply was written, a blocking call answered).
  void Resume() {
    if (closed_ || Paused()) return;
    if (splitter_.buffered() > 0) partial_since_ = SteadyClock::now();  // not the peer's delay
    last_frame_at_ = std::max(last_frame_at_, SteadyClock::now());
    Process();
  }

  void Handle(std::string payload) {
    auto in = session_.Receive(payload);
    if (!in.ok()) {
      Violate(session_.violation(), in.status().message());
      return;
    }
    if (in->hello) {
      splitter_.set_max_frame(srv_->opt.max_frame);  // authenticated: the full cap from now on
      srv_->Count([](ServerMetrics& m) { ++m.sessions; });
      log::Debug("coordinator: session from " + peer_ + " ('" + in->hello_body.client_name +
                 "', pid " + std::to_string(in->hello_body.pid) + ")");
      Slot s;
      s.seq = 1;
      s.type = MsgType::kHelloReply;
      s.frame = session_.SealHelloReply(
          protocol::HelloReply{srv_->run_id, srv_->clock->NowMs()});
      slots_.push_back(std::move(s));
      Flush();
      return;
    }
    srv_->Count([](ServerMetrics& m) { ++m.requests; });
    Dispatch(in->seq, std::move(in->request));
  }

  // ---- dispatch ----
  // Completion of an Async scheduler call, on the committer (or calling) thread: post it back.
  template <typename T>
  std::function<void(Result<T>)> AsyncDone(std::uint64_t seq, std::string worker = {}) {
    srv_->BeginOp();
    return [self = shared_from_this(), seq, worker = std::move(worker)](Result<T> r) {
      bool run_over = false;  // a lease answered "the run is over" or "draining": this worker knows
      if constexpr (std::is_same_v<T, LeaseReply>) {
        run_over = r.ok() && (r->outcome == LeaseOutcome::kRunOver || r->outcome == LeaseOutcome::kDraining);
      }
      Reply reply = ToReply(std::move(r));
      asio::post(self->srv_->io, [self, seq, run_over, worker, reply = std::move(reply)]() mutable {
        if (run_over) self->srv_->told_to_stop.insert(worker);
        self->srv_->EndOp();
        self->srv_->AfterOp(reply.status);
        self->OnReplyReady(seq, std::move(reply));
      });
    };
  }

  // A call without an Async form: on the pool; this connection reads nothing further until it
  // is answered, so its requests keep their order.
  void Blocking(std::uint64_t seq, std::function<Reply()> fn,
                std::function<void(const Reply&)> after = nullptr) {
    barrier_ = true;
    srv_->RunBlocking(std::move(fn), [self = shared_from_this(), seq,
                                      after = std::move(after)](Reply r) {
      self->barrier_ = false;
      if (after) after(r);
      self->OnReplyReady(seq, std::move(r));
      self->Resume();
    });
  }

  void Dispatch(std::uint64_t seq, protocol::Request req) {
    Slot slot;
    slot.seq = seq;
    slot.type = protocol::TypeOf(req);
    slots_.push_back(std::move(slot));
    Scheduler* sched = srv_->sched;
    Impl* srv = srv_;
    if (auto* r = std::get_if<protocol::HeartbeatRequest>(&req)) {
      sched->HeartbeatAsync(r->lease, r->progress, AsyncDone<HeartbeatReply>(seq));
    } else if (auto* r = std::get_if<protocol::CommitRequest>(&req)) {
      sched->CommitCheckpointAsync(r->lease, r->checkpoint, AsyncDone<CommitReply>(seq));
    } else if (auto* r = std::get_if<protocol::LeaseRequest>(&req)) {
      sched->LeaseAsync(r->worker, Capabilities{r->task_types}, AsyncDone<LeaseReply>(seq, r->worker));
    } else if (auto* r = std::get_if<protocol::CompleteRequest>(&req)) {
      sched->CompleteAsync(r->lease, r->final_record, AsyncDone<CommitReply>(seq));
    } else if (auto* r = std::get_if<protocol::RegisterWorkerRequest>(&req)) {
      Blocking(seq, [sched, w = std::move(r->worker)] { return ToReply(sched->RegisterWorker(w)); });
    } else if (auto* r = std::get_if<protocol::FailRequest>(&req)) {
      Blocking(seq, [sched, r = std::move(*r)] {
        return ToReply(sched->Fail(r.lease, r.reason, r.retryable));
      });
    } else if (auto* r = std::get_if<protocol::ReleaseRequest>(&req)) {
      Blocking(seq, [sched, r = std::move(*r)] { return ToReply(sched->Release(r.lease, r.reason)); });
    } else if (auto* r = std::get_if<protocol::DiscardCheckpointRequest>(&req)) {
      Blocking(seq, [sched, r = std::move(*r)] {
        return ToReply(sched->DiscardCheckpoint(r.lease, r.step, r.reason));
      });
    } else if (auto* r = std::get_if<protocol::DrainRequest>(&req)) {
      const std::string who = "drain requested by " + peer_ + " ('" + session_.client_name() +
                              "'): " + r->reason;
      Blocking(
          seq, [sched, who] { return ToReply(sched->Drain(who)); },
          [srv, who](const Reply& rep) {
            if (rep.status.ok() && !srv->draining) {
              srv->draining = true;
              log::Info("coordinator: " + who);
            }
            srv->CheckPhase();
          });
    } else if (auto* r = std::get_if<protocol::CancelRequest>(&req)) {
      const std::string who = "cancel requested by " + peer_ + " ('" + session_.client_name() +
                              "'): " + r->reason;
      Blocking(
          seq, [sched, who, job = r->job_id] { return ToReply(sched->Cancel(who, job)); },
          [srv, who](const Reply& rep) {
            if (rep.status.ok() && !srv->draining) {
              srv->draining = true;
              log::Info("coordinator: " + who);
            }
            srv->CheckPhase();
          });
    } else if (auto* r = std::get_if<protocol::CompleteAndContinueRequest>(&req)) {
      Blocking(seq, [sched, r = std::move(*r)] {
        return ToReply(sched->CompleteAndContinue(r.lease, r.final_record));
      });
    } else if (auto* r = std::get_if<protocol::EvictSegmentRequest>(&req)) {
      Blocking(seq, [sched, r = *r] { return ToReply(sched->EvictSegment(r.segment, r.stage)); });
    } else if (std::holds_alternative<protocol::ExpireLeasesRequest>(req)) {
      Blocking(seq, [sched] {
        auto r = sched->ExpireLeases();
        if (!r.ok()) return ToReply(r.status());
        return Reply{Status::Ok(), protocol::ExpireReply{*r}};
      });
    } else if (std::holds_alternative<protocol::GetStatusRequest>(req)) {
      srv->RunBlocking(
          [srv] {
            return Reply{Status::Ok(),
                         protocol::StatusReply{StatusText(*srv->store, srv->clock->NowMs())}};
          },
          [self = shared_from_this(), seq](Reply r) { self->OnReplyReady(seq, std::move(r)); });
    } else {  // Bye: answer, then close once every reply is out
      bye_ = true;
      OnReplyReady(seq, Reply{Status::Ok(), protocol::EmptyReply{}});
    }
  }

  void OnReplyReady(std::uint64_t seq, Reply reply) {
    if (closed_) return;
    if (!reply.status.ok()) srv_->Count([](ServerMetrics& m) { ++m.error_replies; });
    for (Slot& s : slots_) {
      if (s.seq == seq && !s.frame) {
        s.frame = session_.SealReply(seq, s.type, reply);
        break;
      }
    }
    Flush();
  }

  // ---- writing ----
  void Flush() {
    if (writing_ || closed_) return;
    wbuf_.clear();
    while (!slots_.empty() && slots_.front().frame) {
      wbuf_ += *slots_.front().frame;
      slots_.pop_front();
      ++wframes_;
    }
    if (wframes_ == 0) {
      if (bye_ && slots_.empty()) Close();
      return;
    }
    writing_ = true;
    write_since_ = SteadyClock::now();
    ArmTimer();
    asio::async_write(sock_, asio::buffer(wbuf_),
                      [self = shared_from_this()](const boost::system::error_code& ec,
                                                  std::size_t) { self->OnWrite(ec); });
  }

  void OnWrite(const boost::system::error_code& ec) {
    writing_ = false;
    wframes_ = 0;
    if (closed_) return;
    if (ec) {
      log::Debug("coordinator: write to " + peer_ + " failed: " + ec.message());
      Close();
      return;
    }
    Flush();
    Resume();
  }

  // ---- deadlines ----
  SteadyClock::time_point Deadline() const {
    SteadyClock::time_point d = kNever;
    if (!session_.authenticated()) {
      d = opened_at_ + FrameTimeout();  // the whole handshake
    } else if (!Paused()) {
      if (splitter_.buffered() > 0) {
        d = partial_since_ + FrameTimeout();  // slow peer: not extended by trickled bytes
      } else if (Outstanding() == 0) {
        d = last_frame_at_ + std::chrono::milliseconds(srv_->opt.idle_timeout_ms);
      }
    }
    if (writing_) d = std::min(d, write_since_ + FrameTimeout());
    return d;
  }

  void ArmTimer() {
    if (closed_) return;
    const auto d = Deadline();
    if (d == kNever) return;
    if (timer_armed_ && timer_at_ <= d) return;  // fires first and re-checks
    timer_armed_ = true;
    timer_at_ = d;
    const std::uint64_t gen = ++timer_gen_;
    timer_.expires_at(d);
    timer_.async_wait([self = shared_from_this(), gen](const boost::system::error_code&) {
      self->OnTimer(gen);
    });
  }

  void OnTimer(std::uint64_t gen) {
    if (closed_ || gen != timer_gen_) return;
    timer_armed_ = false;
    const auto now = SteadyClock::now();
    const auto d = Deadline();
    if (d == kNever || now < d) {
      ArmTimer();
      return;
    }
    const std::string ft = std::to_string(srv_->opt.frame_timeout_ms) + " ms";
    if (writing_ && now >= write_since_ + FrameTimeout()) {
      Violate(Violation::kTimeout, "the peer did not read a " + std::to_string(wbuf_.size()) +
                                       "-byte reply within " + ft);
    } else if (!session_.authenticated()) {
      Violate(Violation::kTimeout, "no valid hello within " + ft + " of connecting (" +
                                       std::to_string(splitter_.buffered()) + " bytes received)");
    } else if (splitter_.buffered() > 0) {
      Violate(Violation::kTimeout, "a frame was still incomplete " + ft + " after its first " +
                                       "bytes (" + std::to_string(splitter_.buffered()) +
                                       " bytes buffered): slow or stalled peer");
    } else {
      srv_->Count([](ServerMetrics& m) { ++m.idle_closed; });
      log::Debug("coordinator: closing idle connection from " + peer_ + " after " +
                 std::to_string(Ms(now - last_frame_at_)) + " ms");
      Close();
    }
  }

  Impl* srv_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  std::string peer_;
  protocol::ServerSession session_;
  protocol::FrameSplitter splitter_;
  std::array<char, 16384> rbuf_{};
  std::deque<Slot> slots_;
  std::string wbuf_;
  std::size_t wframes_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool barrier_ = false;
  bool bye_ = false;
  bool timer_armed_ = false;
  std::uint64_t timer_gen_ = 0;
  SteadyClock::time_point timer_at_{};
  SteadyClock::time_point opened_at_{};
  SteadyClock::time_point last_frame_at_{};
  SteadyClock::time_point read_at_{};
  SteadyClock::time_point partial_since_{};
  SteadyClock::time_point write_since_{};
};

// ---------------------------------------------------------------------------------------------
// Accepting, timers, signals, drain and exit
// ---------------------------------------------------------------------------------------------

void Server::Impl::DoAccept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket sock) {
    if (exiting || ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: retry shortly instead of spinning.
      LogLimited("coordinator: accept failed: " + ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](const boost::system::error_code& e) {
        if (!e && !exiting) DoAccept();
      });
      return;
    }
    boost::system::error_code pe;
    const tcp::endpoint remote = sock.remote_endpoint(pe);
    const std::string peer = pe ? std::string("(unknown peer)") : FormatEndpoint(remote);
    Count([](ServerMetrics& m) { ++m.connections_accepted; });
    if (conns.size() >= static_cast<std::size_t>(opt.max_connections)) {
      Count([](ServerMetrics& m) { ++m.connections_refused; });
      LogLimited("coordinator: refusing connection from " + peer + ": " +
                 std::to_string(conns.size()) + " connections open (the limit)");
      boost::system::error_code ignored;
      sock.close(ignored);
      DoAccept();
      return;
    }
    auto session = protocol::RandomSessionId();
    auto nonce = protocol::RandomNonce();
    if (!session.ok() || !nonce.ok()) {
      log::Error("coordinator: " + (session.ok() ? nonce.status() : session.status()).ToString());
      boost::system::error_code ignored;
      sock.close(ignored);
      DoAccept();
      return;
    }
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    auto c = std::make_shared<Connection>(this, std::move(sock), peer, *session, *nonce);
    conns.insert(c);
    Count([](ServerMetrics& m) { ++m.connections_open; });
    c->Start();
    DoAccept();
  });
}

void Server::Impl::ArmTick() {
  tick.expires_after(std::chrono::milliseconds(std::min(kTickMs, opt.expiry_period_ms)));
  tick.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !exiting) OnTick();
  });
}

void Server::Impl::OnTick() {
  const auto now = SteadyClock::now();
  if (now >= next_expire && !expire_running) {
    expire_running = true;
    next_expire = now + std::chrono::milliseconds(opt.expiry_period_ms);
    RunBlocking(
        [this] {
          auto r = sched->ExpireLeases();
          if (!r.ok()) return ToReply(r.status());
          return Reply{Status::Ok(), protocol::ExpireReply{*r}};
        },
        [this](Reply r) {
          expire_running = false;
          if (!r.status.ok()) {
            LogLimited("coordinator: ExpireLeases failed: " + r.status.ToString());
          } else if (const auto* e = std::get_if<protocol::ExpireReply>(&r.body); e && e->expired > 0) {
            Count([e](ServerMetrics& m) { m.leases_expired += static_cast<std::uint64_t>(e->expired); });
            log::Info("coordinator: " + std::to_string(e->expired) +
                      " lease(s) expired; their tasks are ready again");
          }
          CheckPhase();
        });
  }
  CheckPhase();
  if (!exiting) ArmTick();
}

void Server::Impl::WaitSignal() {
  signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    OnSignal(sig);
    if (!exiting) WaitSignal();
  });
}

void Server::Impl::OnSignal(int sig) {
  if (exiting) return;
  if (++signals_received >= 2) {
    log::Warn(std::string("coordinator: ") + SignalName(sig) +
              " during the drain: exiting at once with code " + std::to_string(kExitRequeue) +
              " (outstanding leases end at the next start)");
    BeginExit(kExitRequeue, "second signal");
    return;
  }
  if (draining) {  // a Drain request came first: this signal is Slurm's warning, keep draining
    log::Info(std::string("coordinator: ") + SignalName(sig) + " received while draining");
    return;
  }
  StartDrain(std::string(SignalName(sig)) + " received");
}

void Server::Impl::StartDrain(const std::string& reason) {
  if (exiting || draining) return;
  draining = true;
  log::Info("coordinator: draining (" + reason + "): workers checkpoint and release; a second "
            "SIGTERM/SIGUSR1 exits at once");
  RunBlocking([this, reason] { return ToReply(sched->Drain(reason)); },
              [this](Reply r) {
                if (!r.status.ok()) log::Error("coordinator: drain failed: " + r.status.ToString());
                CheckPhase();
              });
}

void Server::Impl::CheckPhase() {
  if (exiting) return;
  if (Status h = store->health(); !h.ok()) {
    log::Error("coordinator: the state store failed (" + h.ToString() +
               "); exiting so the coordinator restarts from the last durable state");
    BeginExit(kExitFailure, "store failure");
    return;
  }
  const RunPhase phase = store->Read([](const RunState& s) { return s.phase(); });
  // Every worker process still registered has heard that it must stop (on any of its
  // identities: a gang leader registers two): nobody is left to tell.
  auto all_told = [&] {
    return store->Read([this](const RunState& s) {
      std::set<std::pair<std::string, std::int64_t>> told;  // (host, pid)
      for (const std::string& id : told_to_stop) {
        auto it = s.workers().find(id);
        if (it != s.workers().end()) told.insert({it->second.info.host, it->second.info.pid});
      }
      for (const auto& [id, w] : s.workers()) {
        if (w.state != WorkerState::kLost && told.count({w.info.host, w.info.pid}) == 0) return false;
      }
      return true;
    });
  };
  if (phase == RunPhase::kDrained) {
    // The workers learn it from their next lease (they poll while idle); then exit for requeue.
    const auto now = SteadyClock::now();
    if (!drained_since) drained_since = now;
    if (!all_told() && opt.exit_after_run_over_ms >= 0 &&
        now - *drained_since < std::chrono::milliseconds(opt.exit_after_run_over_ms)) {
      return;
    }
    const bool cancelled = store->Read([](const RunState& s) { return !s.status().cancelled.empty(); });
    const int code = cancelled ? kExitCancelled : kExitRequeue;
    log::Info("coordinator: drain complete (no lease outstanding); exiting with code " + std::to_string(code) +
              (cancelled ? " (cancelled: no requeue)" : " for requeue"));
    BeginExit(code, "drained");
    return;
  }
  if (phase == RunPhase::kCompleted || phase == RunPhase::kFailed) {
    const int code = phase == RunPhase::kCompleted ? kExitOk : kExitFailure;
    if (draining) {  // nothing to wait for
      BeginExit(code, "run over");
      return;
    }
    if (opt.exit_after_run_over_ms < 0) return;
    if (all_told()) {
      BeginExit(code, "run over; every worker told");
      return;
    }
    const auto now = SteadyClock::now();
    if (!run_over_since) {
      run_over_since = now;
      log::Info(std::string("coordinator: the run is ") + std::string(RunPhaseName(phase)) +
                "; serving " + std::to_string(opt.exit_after_run_over_ms) +
                " ms more so workers learn it, then exiting with code " + std::to_string(code));
    }
    if (now - *run_over_since >= std::chrono::milliseconds(opt.exit_after_run_over_ms)) {
      BeginExit(code, "run over");
    }
  }
}

void Server::Impl::BeginExit(int code, const std::string& why) {
  if (exiting) return;
  exiting = true;
  exit_code = code;
  log::Debug("coordinator: stopping (" + why + ")");
  boost::system::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  tick.cancel();
  accept_retry.cancel();
  // Replies already due still go out; whatever is still open after frame_timeout is cut.
  const auto snapshot = conns;
  for (const auto& c : snapshot) c->Finish();
  if (conns.empty()) return;
  exit_grace.expires_after(std::chrono::milliseconds(opt.frame_timeout_ms));
  exit_grace.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const auto left = conns;
    for (const auto& c : left) c->Close();
  });
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (!impl_) return;
  Impl& s = *impl_;
  if (!s.ran) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
  }
  s.pool.join();
}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Scheduler* scheduler,
                                              const Clock* clock, const RunSecret& secret) {
  if (options.max_frame < protocol::kMinMaxFrame || options.max_frame > protocol::kMaxMaxFrame) {
    return Status::InvalidArgument("max frame " + std::to_string(options.max_frame) +
                                   " bytes: must be within [" +
                                   std::to_string(protocol::kMinMaxFrame) + ", " +
                                   std::to_string(protocol::kMaxMaxFrame) + "]");
  }
  if (options.expiry_period_ms <= 0 || options.idle_timeout_ms <= 0 ||
      options.frame_timeout_ms <= 0) {
    return Status::InvalidArgument("expiry period, idle timeout and frame timeout must be > 0 ms");
  }
  if (options.max_connections < 1 || options.max_inflight < 1) {
    return Status::InvalidArgument("max connections and max in-flight requests must be >= 1");
  }
  RADLADS_ASSIGN_OR_RETURN(const tcp::endpoint ep, ParseListen(options.listen));
  auto impl = std::make_unique<Impl>(options, scheduler, clock, secret);
  impl->run_id = scheduler->store()->Read([](const RunState& s) { return s.config().run_id; });
  boost::system::error_code ec;
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + options.listen + ": " + ec.message());
  }
  const tcp::endpoint local = impl->acceptor.local_endpoint(ec);
  if (ec) return Status::Unavailable("listening socket: " + ec.message());
  impl->bound = FormatEndpoint(local);
  impl->port = local.port();
  if (options.handle_signals) {
    impl->signals.add(SIGTERM, ec);
    if (!ec) impl->signals.add(SIGUSR1, ec);
    if (ec) return Status::Internal("cannot handle SIGTERM/SIGUSR1: " + ec.message());
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::string Server::address() const { return impl_->bound; }

int Server::Run() {
  Impl& s = *impl_;
  s.ran = true;
  s.next_expire = SteadyClock::now() + std::chrono::milliseconds(s.opt.expiry_period_ms);
  asio::post(s.io, [&s] {
    s.DoAccept();
    if (s.opt.handle_signals) s.WaitSignal();
    s.ArmTick();
    s.CheckPhase();
  });
  // Returns once exiting, with every connection closed and every operation posted back.
  s.io.run();
  s.pool.join();
  return s.exit_code;
}

void Server::RequestDrain(std::string reason) {
  asio::post(impl_->io, [s = impl_.get(), reason = std::move(reason)] { s->StartDrain(reason); });
}

void Server::Shutdown(int exit_code) {
  asio::post(impl_->io, [s = impl_.get(), exit_code] { s->BeginExit(exit_code, "shutdown"); });
}

ServerMetrics Server::metrics() const {
  std::lock_guard<std::mutex> lock(impl_->metrics_mu);
  return impl_->m;
}

}  // namespace radlads
