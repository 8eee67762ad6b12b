// The coordinator's server over real loopback TCP (rpc/server.h, client.h,
// serve_command.h): a client drives a small plan to completion; hostile clients (garbage,
// oversized and undersized length prefixes, truncated frames then a stall, no Hello, a wrong
// secret, wrong MACs, replayed, reordered and cross-connection frames, reflected frames, peers
// that never read) are cut off one by one while the server keeps serving and the state does not
// change; a drain by request; and `radlads-coord serve` in a child process drained by SIGTERM
// (exit code 3, phase drained on reopen), restarted, and stopped at once by a second signal.
// Everything binds 127.0.0.1 on ephemeral ports; servers are stopped through their handles or
// their pids.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <functional>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "cli/serve_command.h"
#include "contract/json_codec.h"
#include "contract/run_layout.h"
#include "plan/plan_report.h"
#include "rpc/client.h"
#include "rpc/protocol.h"
#include "rpc/secret.h"
#include "rpc/server.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace radlads {
namespace {

using protocol::MsgType;
using protocol::Violation;
using testing::Ckpt;
using testing::MakePlan;
using testing::PlanShape;
using testing::ScratchDir;

// Hostile clients are expected to produce warnings; keep passing runs quiet.
class QuietLogs : public ::testing::Environment {
 public:
  void SetUp() override { log::SetLevel("error"); }
};
[[maybe_unused]] ::testing::Environment* const kQuietLogs =
    ::testing::AddGlobalTestEnvironment(new QuietLogs);

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---------------------------------------------------------------------------------------------
// A raw TCP peer that can send anything.
// ---------------------------------------------------------------------------------------------
class Raw {
 public:
  // `rcvbuf` > 0 fixes the receive buffer (before connecting, so the window stays small).
  explicit Raw(const std::string& address, int rcvbuf = 0) {
    const auto colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << std::strerror(errno);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One frame's payload, or nullopt on close or timeout.
  std::optional<std::string> ReadFrame(int timeout_ms = 2000) {
    const std::int64_t deadline = Now() + timeout_ms;
    for (;;) {
      if (buf_.size() >= 4) {
        const std::uint32_t len = static_cast<std::uint32_t>(static_cast<std::uint8_t>(buf_[0])) << 24 |
                                  static_cast<std::uint32_t>(static_cast<std::uint8_t>(buf_[1])) << 16 |
                                  static_cast<std::uint32_t>(static_cast<std::uint8_t>(buf_[2])) << 8 |
                                  static_cast<std::uint32_t>(static_cast<std::uint8_t>(buf_[3]));
        if (buf_.size() >= 4 + static_cast<std::size_t>(len)) {
          std::string payload = buf_.substr(4, len);
          buf_.erase(0, 4 + len);
          return payload;
        }
      }
      if (!Recv(deadline)) return std::nullopt;
    }
  }

  // True once the server has closed the connection (EOF or reset) within `timeout_ms`.
  bool WaitClosed(int timeout_ms) {
    const std::int64_t deadline = Now() + timeout_ms;
    while (Recv(deadline)) buf_.clear();
    return closed_;
  }

  int fd() const { return fd_; }

 private:
  // Appends what arrives; false on close (closed_ = true) or on timeout.
  bool Recv(std::int64_t deadline) {
    const std::int64_t left = deadline - Now();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

std::string BE32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

// ---------------------------------------------------------------------------------------------
// An in-process server over a fresh run.
// ---------------------------------------------------------------------------------------------
class ServerTest : public ::testing::Test {
 protected:
  static ServerOptions Options() {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.expiry_period_ms = 100;
    o.idle_timeout_ms = 5'000;
    o.frame_timeout_ms = 300;
    o.max_frame = 64 * 1024;
    o.exit_after_run_over_ms = -1;
    o.handle_signals = false;
    return o;
  }

  void StartServer(const ServerOptions& o = Options(), const PlanShape& shape = PlanShape{}) {
    auto opened = StateStore::Open(dir_.File("state"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
    sched_ = std::make_unique<Scheduler>(store_.get(), SystemClock::Default());
    RunConfig c;
    c.run_id = "server-test";
    c.lease_ttl_ms = 60'000;
    ASSERT_TRUE(sched_->CreateRun(c, MakePlan(shape)).ok());
    auto secret = EnsureRunSecret(dir_.path());
    ASSERT_TRUE(secret.ok()) << secret.status().ToString();
    secret_ = *secret;
    auto server = Server::Start(o, sched_.get(), SystemClock::Default(), secret_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    thread_ = std::thread([this] { exit_code_ = server_->Run(); });
  }

  int StopServer(int code = 0) {
    if (!thread_.joinable()) return exit_code_;
    server_->Shutdown(code);
    thread_.join();
    return exit_code_;
  }

  void TearDown() override {
    StopServer();
    server_.reset();
    sched_.reset();
    store_.reset();
  }

  ClientOptions ClientOpts(const std::string& name = "w0") const {
    ClientOptions o;
    o.run_dir = dir_.path();
    o.address = server_->address();
    o.name = name;
    o.connect_timeout_ms = 2'000;
    o.call_timeout_ms = 10'000;
    o.max_attempts = 1;
    return o;
  }

  std::unique_ptr<Client> MustConnect(const std::string& name = "w0") {
    auto c = Client::Connect(ClientOpts(name));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  std::string Dump() const { return store_->Snapshot().CanonicalDump(); }

  // A worker holds a lease; `stop` (a Drain or a Cancel from another client) makes its next
  // heartbeat say stop and refuses new leases; the release of that last lease ends the drain,
  // and the server's loop returns.
  void HoldALeaseThenStop(const std::function<Status(Client&)>& stop) {
    StartServer();
    auto c = MustConnect("w0");
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->RegisterWorker(testing::Worker("w0")).ok());
    auto l = c->Lease("w0");
    ASSERT_TRUE(l.ok() && l->grant.has_value());
    const LeaseGrant g = *l->grant;
    auto admin = MustConnect("admin");
    ASSERT_NE(admin, nullptr);
    ASSERT_TRUE(stop(*admin).ok());
    auto hb = c->Heartbeat(g.lease, Progress{});
    ASSERT_TRUE(hb.ok()) << hb.status().ToString();
    EXPECT_TRUE(hb->stop);
    ASSERT_TRUE(c->RegisterWorker(testing::Worker("w1")).ok());
    auto refused = c->Lease("w1");
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->outcome, LeaseOutcome::kDraining);
    ASSERT_TRUE(c->CommitCheckpoint(g.lease, Ckpt(g.task.id, 1, g.task.tokens / 2)).ok());
    ASSERT_TRUE(c->Release(g.lease, "drain").ok());  // the last lease: the drain completes
    thread_.join();
  }

  ScratchDir dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Scheduler> sched_;
  RunSecret secret_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int exit_code_ = -1;
};

// Runs one granted task through the client: heartbeat, a checkpoint halfway, a duplicate of it,
// heartbeat, completion.
void RunTask(Client& c, const LeaseGrant& g) {
  Progress p;
  p.step = 1;
  p.tokens = g.task.tokens / 2;
  p.losses = {{"l2", 0.25}};
  auto hb = c.Heartbeat(g.lease, p);
  ASSERT_TRUE(hb.ok()) << hb.status().ToString();
  EXPECT_FALSE(hb->stop);
  EXPECT_GE(hb->deadline_ms, g.deadline_ms);
  const CheckpointRecord half = Ckpt(g.task.id, 1, g.task.tokens / 2);
  auto commit = c.CommitCheckpoint(g.lease, half);
  ASSERT_TRUE(commit.ok()) << commit.status().ToString();
  EXPECT_EQ(commit->tokens_credited, g.task.tokens / 2);
  auto dup = c.CommitCheckpoint(g.lease, half);
  ASSERT_TRUE(dup.ok()) << dup.status().ToString();
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->tokens_credited, 0);
  FinalRecord f;
  f.checkpoint = Ckpt(g.task.id, 2, g.task.tokens);
  f.metrics = {{"final_loss", 0.125}};
  auto done = c.Complete(g.lease, f);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->tokens_credited, g.task.tokens - g.task.tokens / 2);
}

TEST_F(ServerTest, AClientDrivesASmallPlanToCompletion) {
  StartServer();
  auto c = MustConnect("w0");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->RegisterWorker(testing::Worker("w0")).ok());
  ASSERT_TRUE(c->RegisterWorker(testing::Worker("w0")).ok());  // idempotent
  const std::size_t total = store_->Snapshot().tasks().size();
  std::size_t done = 0;
  for (int guard = 0; guard < 200; ++guard) {
    auto l = c->Lease("w0");
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    if (l->outcome == LeaseOutcome::kRunOver) break;
    ASSERT_EQ(l->outcome, LeaseOutcome::kGranted);
    ASSERT_TRUE(l->grant.has_value());
    auto again = c->Lease("w0");  // a lost reply: the same lease comes back
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE(again->grant.has_value());
    EXPECT_EQ(again->grant->lease, l->grant->lease);
    RunTask(*c, *l->grant);
    if (HasFatalFailure()) return;
    ++done;
    // A finished lease is stale: the scheduler's refusal travels as a status, and the
    // connection stays usable.
    auto stale = c->Heartbeat(l->grant->lease, Progress{});
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.status().code(), Status::Code::kFailedPrecondition);
  }
  EXPECT_EQ(done, total);
  const RunState s = store_->Snapshot();
  EXPECT_EQ(s.phase(), RunPhase::kCompleted);
  EXPECT_EQ(s.TasksIn(TaskState::kDone), static_cast<int>(total));
  EXPECT_EQ(s.metrics().tasks_completed, static_cast<std::int64_t>(total));
  EXPECT_EQ(s.ledger().AlignMinTokens(), s.ledger().AlignBudget());
  EXPECT_EQ(c->sessions(), 1u);  // one connection did it all

  auto status = c->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_NE(status->find("server-test"), std::string::npos);
  EXPECT_NE(status->find("completed"), std::string::npos);
  const ServerMetrics m = server_->metrics();
  EXPECT_EQ(m.violations_total, 0u);
  EXPECT_EQ(m.sessions, 1u);
  EXPECT_GE(m.error_replies, total);  // the stale heartbeats
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  auto c = MustConnect("w0");
  ASSERT_NE(c, nullptr);
  std::vector<protocol::Request> reqs;
  for (int i = 0; i < 40; ++i) {
    reqs.push_back(protocol::RegisterWorkerRequest{testing::Worker("p" + std::to_string(i))});
    reqs.push_back(protocol::LeaseRequest{"p" + std::to_string(i), kAllTaskTypes});
  }
  reqs.push_back(protocol::GetStatusRequest{});
  reqs.push_back(protocol::LeaseRequest{"nobody", kAllTaskTypes});
  auto replies = c->CallPipelined(reqs, 16);
  ASSERT_TRUE(replies.ok()) << replies.status().ToString();
  ASSERT_EQ(replies->size(), reqs.size());
  int granted = 0;
  for (std::size_t i = 0; i + 2 < reqs.size(); i += 2) {
    EXPECT_TRUE((*replies)[i].status.ok()) << (*replies)[i].status.ToString();
    ASSERT_TRUE((*replies)[i + 1].status.ok()) << i << ": " << (*replies)[i + 1].status.ToString();
    const auto& lr = std::get<LeaseReply>((*replies)[i + 1].body);
    if (lr.outcome == LeaseOutcome::kGranted) ++granted;
  }
  // Registration was ordered before each lease; the first wave of tasks (transfers, caches) went out.
  EXPECT_EQ(granted, store_->Snapshot().TasksIn(TaskState::kLeased));
  EXPECT_GT(granted, 0);
  EXPECT_TRUE(std::holds_alternative<protocol::StatusReply>((*replies)[reqs.size() - 2].body));
  EXPECT_EQ(replies->back().status.code(), Status::Code::kNotFound);
}

TEST_F(ServerTest, ClientReconnectsAfterAnIdleClose) {
  ServerOptions o = Options();
  o.idle_timeout_ms = 200;
  StartServer(o);
  ClientOptions co = ClientOpts("w0");
  co.max_attempts = 3;
  co.retry_backoff_ms = 20;
  auto c = Client::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE((*c)->GetStatus().ok());
  SleepMs(500);  // the server closes the idle connection
  auto again = (*c)->GetStatus();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*c)->sessions(), 2u);
  SleepMs(500);  // closed again; a pipelined batch (never retried) reconnects before sending
  auto batch = (*c)->CallPipelined({protocol::GetStatusRequest{}, protocol::GetStatusRequest{}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ((*c)->sessions(), 3u);
  EXPECT_GE(server_->metrics().idle_closed, 1u);
  EXPECT_EQ(server_->metrics().violations_total, 0u);
}

TEST_F(ServerTest, AClientWithAnotherSecretIsRefused) {
  StartServer();
  const std::string before = Dump();
  ClientOptions o = ClientOpts("intruder");
  RunSecret wrong = secret_;
  wrong.bytes[0] ^= 1;
  o.secret = wrong;
  auto c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("secret"), std::string::npos) << c.status().ToString();
  EXPECT_EQ(server_->metrics().Violations(Violation::kBadMac), 1u);
  EXPECT_EQ(Dump(), before);
  // A client whose RUN/secret is readable by others is refused locally.
  ASSERT_EQ(::chmod(RunSecretPath(dir_.path()).c_str(), 0644), 0);
  auto loose = Client::Connect(ClientOpts("loose"));
  ASSERT_FALSE(loose.ok());
  EXPECT_NE(loose.status().message().find("chmod 600"), std::string::npos);
}

TEST_F(ServerTest, FetchStatusJsonAsksTheLiveServerOrSaysWhyNot) {
  ScratchDir empty;
  auto none = FetchStatusJson(empty.path(), 500);
  ASSERT_FALSE(none.ok());  // no secret, no address
  StartServer();
  ASSERT_TRUE(AtomicWriteFile(CoordinatorAddressPath(dir_.path()), server_->address() + "\n").ok());
  auto live = FetchStatusJson(dir_.path(), 2'000);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_NE(live->find("server-test"), std::string::npos);
  EXPECT_EQ(StopServer(), 0);
  const std::int64_t t0 = Now();
  auto dead = FetchStatusJson(dir_.path(), 2'000);
  ASSERT_FALSE(dead.ok());
  EXPECT_EQ(dead.status().code(), Status::Code::kUnavailable) << dead.status().ToString();
  EXPECT_LT(Now() - t0, 1'500);  // refused at once, not after the timeout
  ::unlink(CoordinatorAddressPath(dir_.path()).c_str());
  auto gone = FetchStatusJson(dir_.path(), 500);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
}

// After each attack: the server closed that connection, counted the violation, a good client
// still works, and the run state is exactly what it was.
class HostileTest : public ServerTest {
 protected:
  void SetUp() override {
    StartServer();
    good_ = MustConnect("good");
    ASSERT_NE(good_, nullptr);
    ASSERT_TRUE(good_->RegisterWorker(testing::Worker("good")).ok());
    auto l = good_->Lease("good");
    ASSERT_TRUE(l.ok() && l->grant.has_value());
    grant_ = *l->grant;
    before_ = Dump();
  }

  // Reads the Challenge and returns a client session that answered it (not sent).
  protocol::ClientSession Challenged(Raw& raw, std::string* hello_frame,
                                     const RunSecret* secret = nullptr) {
    protocol::Nonce n;
    n.fill(0x5c);
    protocol::ClientSession s(secret ? *secret : secret_, "hostile", 1, n);
    auto challenge = raw.ReadFrame();
    EXPECT_TRUE(challenge.has_value());
    auto hello = s.OnChallenge(challenge.value_or(""));
    EXPECT_TRUE(hello.ok()) << hello.status().ToString();
    *hello_frame = hello.ok() ? *hello : "";
    return s;
  }

  // A full handshake on `raw`.
  protocol::ClientSession Authenticated(Raw& raw) {
    std::string hello;
    protocol::ClientSession s = Challenged(raw, &hello);
    EXPECT_TRUE(raw.Send(hello));
    auto reply = raw.ReadFrame();
    EXPECT_TRUE(reply.has_value());
    EXPECT_TRUE(s.OnHelloReply(reply.value_or("")).ok());
    return s;
  }

  void ExpectCutOff(Raw& raw, Violation v, const char* what, int within_ms = 2'000) {
    EXPECT_TRUE(raw.WaitClosed(within_ms)) << what << ": the server did not close the connection";
    // The violation is counted (on the loop thread) by the time the socket is closed.
    const std::uint64_t got = server_->metrics().Violations(v);
    EXPECT_EQ(got, ++expected_[static_cast<std::size_t>(v)])
        << what << ": expected a " << protocol::ViolationName(v) << " violation";
    ExpectServing(what);
  }

  void ExpectServing(const char* what) {
    auto st = good_->GetStatus();
    EXPECT_TRUE(st.ok()) << what << ": the good client failed: " << st.status().ToString();
    auto fresh = Client::Connect(ClientOpts("fresh"));
    EXPECT_TRUE(fresh.ok()) << what << ": a new client failed: " << fresh.status().ToString();
    EXPECT_EQ(Dump(), before_) << what << " changed the run state";
  }

  std::unique_ptr<Client> good_;
  LeaseGrant grant_;
  std::string before_;
  std::array<std::uint64_t, static_cast<std::size_t>(Violation::kCount)> expected_{};
};

TEST_F(HostileTest, GarbageAndBadLengthPrefixes) {
  {
    Raw raw(server_->address());
    raw.Send("GET / HTTP/1.1\r\nHost: coordinator\r\n\r\n");  // "GET " = a 1.2 GB length
    ExpectCutOff(raw, Violation::kOversized, "HTTP request");
  }
  {
    Raw raw(server_->address());
    raw.Send(BE32(0xFFFFFFFFu));  // refused from the prefix alone (a stall would be a timeout)
    ExpectCutOff(raw, Violation::kOversized, "0xFFFFFFFF length prefix");
  }
  {
    Raw raw(server_->address());
    raw.Send(BE32(protocol::kHandshakeMaxFrame + 1) + std::string(100, 'x'));
    ExpectCutOff(raw, Violation::kOversized, "over the cap before the handshake");
  }
  {
    Raw raw(server_->address());
    (void)Authenticated(raw);
    raw.Send(BE32(64 * 1024 + 1) + std::string(100, 'x'));
    ExpectCutOff(raw, Violation::kOversized, "one byte over the cap");
  }
  {  // the full cap applies once authenticated: a 4 KiB request is served (a refused Fail)
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    std::uint64_t seq = 0;
    const std::string big = s.SealRequest(
        protocol::FailRequest{999'999, std::string(kMaxTextBytes, 'r'), true}, &seq);
    ASSERT_GT(big.size(), protocol::kHandshakeMaxFrame);
    raw.Send(big);
    auto reply = raw.ReadFrame();
    ASSERT_TRUE(reply.has_value());
    auto r = s.OpenReply(*reply, seq, MsgType::kFail);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status.code(), Status::Code::kFailedPrecondition);
    ExpectServing("a large authenticated request");
  }
  {
    Raw raw(server_->address());
    raw.Send(BE32(10) + std::string(10, '\0'));
    ExpectCutOff(raw, Violation::kUndersized, "frame shorter than the header");
  }
  {
    Raw raw(server_->address());
    std::string junk = BE32(200);
    testing::Rng rng(7);
    for (int i = 0; i < 200; ++i) junk.push_back(static_cast<char>(rng() & 0xff));
    junk[4] = static_cast<char>(protocol::kProtocolVersion);  // the right version, then random bytes
    raw.Send(junk);
    ExpectCutOff(raw, Violation::kWrongSession, "random frame");
  }
  {
    Raw raw(server_->address());
    std::string hello;
    (void)Challenged(raw, &hello);
    hello[4] = 9;  // version byte
    raw.Send(hello);
    ExpectCutOff(raw, Violation::kBadVersion, "protocol version 9");
  }
}

TEST_F(HostileTest, TruncatedFramesAndStalls) {
  {  // a truncated frame, then a stall: the slow-peer deadline cuts it
    Raw raw(server_->address());
    (void)Authenticated(raw);
    const std::int64_t t0 = Now();
    raw.Send(BE32(100) + std::string(20, 'x'));
    ExpectCutOff(raw, Violation::kTimeout, "truncated frame then stall", 3'000);
    EXPECT_GE(Now() - t0, 250);
  }
  {  // a trickle of one byte every 100 ms does not extend the frame's deadline
    Raw raw(server_->address());
    (void)Authenticated(raw);
    const std::int64_t t0 = Now();
    raw.Send(BE32(100));
    bool cut = false;
    for (int i = 0; i < 30 && !cut; ++i) {
      SleepMs(100);
      cut = !raw.Send("x");
    }
    ExpectCutOff(raw, Violation::kTimeout, "trickling peer", 3'000);
    EXPECT_LT(Now() - t0, 2'500) << "each trickled byte must not extend the frame's deadline";
  }
  {  // connect and say nothing: the handshake deadline
    Raw raw(server_->address());
    ExpectCutOff(raw, Violation::kTimeout, "silent peer", 3'000);
  }
  {  // half a Hello, then a stall
    Raw raw(server_->address());
    std::string hello;
    (void)Challenged(raw, &hello);
    raw.Send(hello.substr(0, hello.size() / 2));
    ExpectCutOff(raw, Violation::kTimeout, "half a hello", 3'000);
  }
  {  // a frame cut short by closing the connection
    Raw raw(server_->address());
    (void)Authenticated(raw);
    raw.Send(BE32(100) + std::string(10, 'x'));
    ::shutdown(raw.fd(), SHUT_WR);
    ExpectCutOff(raw, Violation::kTruncated, "peer closed mid-frame");
  }
}

TEST_F(HostileTest, UnauthenticatedForgedReplayedAndReorderedFrames) {
  {  // a request before Hello (sealed with the right session key, even)
    Raw raw(server_->address());
    std::string hello;
    protocol::ClientSession s = Challenged(raw, &hello);
    raw.Send(s.SealRaw(static_cast<std::uint8_t>(MsgType::kRelease), 1,
                       protocol::EncodeRequestBody(protocol::ReleaseRequest{grant_.lease, "x"})));
    ExpectCutOff(raw, Violation::kUnauthenticated, "release before hello");
  }
  {  // Hello under another secret
    Raw raw(server_->address());
    RunSecret wrong = secret_;
    wrong.bytes[31] ^= 0x80;
    std::string hello;
    (void)Challenged(raw, &hello, &wrong);
    raw.Send(hello);
    ExpectCutOff(raw, Violation::kBadMac, "hello with a wrong secret");
  }
  {  // a flipped MAC bit on a state-changing request
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    std::uint64_t seq = 0;
    std::string f = s.SealRequest(protocol::FailRequest{grant_.lease, "forged", false}, &seq);
    f[4 + protocol::kSignedHeaderBytes] ^= 1;
    raw.Send(f);
    ExpectCutOff(raw, Violation::kBadMac, "flipped MAC bit");
  }
  {  // a flipped body bit (the lease id) under the original MAC
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    std::uint64_t seq = 0;
    std::string f = s.SealRequest(protocol::ReleaseRequest{grant_.lease + 1, "forged"}, &seq);
    f[4 + protocol::kHeaderBytes + 7] ^= 1;  // a bit of the lease id
    raw.Send(f);
    ExpectCutOff(raw, Violation::kBadMac, "flipped body bit");
  }
  {  // a replayed frame (a read-only request, so the first copy changes nothing)
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    std::uint64_t seq = 0;
    const std::string f = s.SealRequest(protocol::GetStatusRequest{}, &seq);
    raw.Send(f);
    ASSERT_TRUE(raw.ReadFrame().has_value());
    raw.Send(f);
    ExpectCutOff(raw, Violation::kBadSequence, "replayed frame");
  }
  {  // out of order: sequence 3 before 2
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    std::uint64_t s2 = 0, s3 = 0;
    const std::string f2 = s.SealRequest(protocol::GetStatusRequest{}, &s2);
    const std::string f3 = s.SealRequest(protocol::GetStatusRequest{}, &s3);
    raw.Send(f3 + f2);
    ExpectCutOff(raw, Violation::kBadSequence, "reordered frames");
  }
  {  // a valid MAC over a malformed body, and over a type that is not a request
    Raw raw(server_->address());
    protocol::ClientSession s = Authenticated(raw);
    raw.Send(s.SealRaw(static_cast<std::uint8_t>(MsgType::kCommitCheckpoint), 2, "\x01\x02"));
    ExpectCutOff(raw, Violation::kMalformedBody, "malformed body");
    Raw raw2(server_->address());
    protocol::ClientSession s2 = Authenticated(raw2);
    raw2.Send(s2.SealRaw(protocol::ReplyCode(MsgType::kLease), 2, ""));
    ExpectCutOff(raw2, Violation::kUnexpectedType, "a reply sent to the server");
  }
}

TEST_F(HostileTest, FramesCapturedOnOneConnectionFailOnAnother) {
  // Capture a good session's Hello and a state-changing request (a Release of the good lease)
  // without letting the server see the request; replay both on a new connection.
  Raw a(server_->address());
  std::string hello;
  protocol::ClientSession sa = Challenged(a, &hello);
  std::uint64_t seq = 0;
  const std::string release = sa.SealRequest(protocol::ReleaseRequest{grant_.lease, "replayed"}, &seq);
  {
    Raw b(server_->address());
    ASSERT_TRUE(b.ReadFrame().has_value());  // b's own challenge: another session and nonce
    b.Send(hello + release);
    ExpectCutOff(b, Violation::kWrongSession, "hello replayed on another connection");
  }
  {
    Raw b(server_->address());
    ASSERT_TRUE(b.ReadFrame().has_value());
    b.Send(release);
    ExpectCutOff(b, Violation::kWrongSession, "request replayed on another connection");
  }
  {  // reflection: the server's HelloReply sent back to it
    Raw c(server_->address());
    std::string h;
    protocol::ClientSession sc = Challenged(c, &h);
    c.Send(h);
    auto reply = c.ReadFrame();
    ASSERT_TRUE(reply.has_value());
    c.Send(BE32(static_cast<std::uint32_t>(reply->size())) + *reply);
    ExpectCutOff(c, Violation::kBadMac, "reflected hello_reply");
  }
}

TEST_F(HostileTest, APeerThatNeverReadsItsRepliesIsCut) {
  // Pipeline far more status requests than the socket buffers can hold replies for, and never
  // read: the server's writes stall, its reading pauses at max_inflight, and the write deadline
  // cuts the connection.
  auto status = good_->GetStatus();
  ASSERT_TRUE(status.ok());
  const std::size_t count = (32u << 20) / (status->size() + 64) + 512;
  Raw raw(server_->address(), /*rcvbuf=*/4096);
  protocol::ClientSession s = Authenticated(raw);
  std::string burst;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t seq = 0;
    burst += s.SealRequest(protocol::GetStatusRequest{}, &seq);
  }
  std::thread sender([&] { raw.Send(burst); });  // blocks once the server stops reading
  const std::int64_t deadline = Now() + 10'000;
  while (server_->metrics().Violations(Violation::kTimeout) == 0 && Now() < deadline) SleepMs(20);
  EXPECT_EQ(server_->metrics().Violations(Violation::kTimeout), 1u);
  ::shutdown(raw.fd(), SHUT_RDWR);
  sender.join();
  ++expected_[static_cast<std::size_t>(Violation::kTimeout)];
  ExpectServing("non-reading peer");
}

TEST_F(ServerTest, ADrainRequestStopsWorkersAndExitsWithTheRequeueCode) {
  HoldALeaseThenStop([](Client& admin) { return admin.Drain("test drain"); });
  EXPECT_EQ(exit_code_, kExitRequeue);
  EXPECT_EQ(store_->Snapshot().phase(), RunPhase::kDrained);
  EXPECT_TRUE(store_->Snapshot().status().cancelled.empty());
}

TEST_F(ServerTest, ACancelDrainsRecordsTheCancelAndExitsWithTheCancelCode) {
  HoldALeaseThenStop([](Client& admin) { return admin.Cancel("by the test", "77"); });
  EXPECT_EQ(exit_code_, kExitCancelled);
  const RunState s = store_->Snapshot();
  EXPECT_EQ(s.phase(), RunPhase::kDrained);
  EXPECT_NE(s.status().cancelled.find("by the test"), std::string::npos) << s.status().cancelled;
  EXPECT_EQ(s.status().cancelled_job, "77");
}

TEST_F(ServerTest, ASecondCoordinatorOnTheSameRunIsRefused) {
  StartServer();
  std::ostringstream err;
  ServeArgs a;
  a.run_dir = dir_.path();
  a.err = &err;
  EXPECT_EQ(RunServeCommand(a), kExitFailure);
  EXPECT_NE(err.str().find("held by another process"), std::string::npos) << err.str();
  EXPECT_EQ(server_->metrics().connections_accepted, 0u);
}

// ---------------------------------------------------------------------------------------------
// `radlads-coord serve` in a child process: signals and exit codes.
// ---------------------------------------------------------------------------------------------

// The child: this test binary re-executed with a filter selecting this test.
TEST(ServeChild, DISABLED_Serve) {
  const char* run = std::getenv("RADLADS_SERVE_CHILD_RUN");
  if (run == nullptr) GTEST_SKIP() << "only runs as the child of ServeProcess tests";
  log::SetLevel("info");
  ServeArgs a;
  a.run_dir = run;
  a.listen = "127.0.0.1:0";
  a.lease_ttl_ms = 60'000;
  a.expiry_period_ms = 100;
  a.frame_timeout_ms = 2'000;
  const int rc = RunServeCommand(a);
  std::fflush(nullptr);
  std::_Exit(rc);
}

void WritePlanJson(const std::string& run_dir, const std::vector<TaskSpec>& tasks) {
  nlohmann::json j;
  j["schema"] = kPlanSchema;
  j["version"] = kPlanSchemaVersion;
  j["tasks"] = nlohmann::json::array();
  for (const TaskSpec& t : tasks) j["tasks"].push_back(codec::ToJson(t));
  ASSERT_TRUE(WriteRunFormat(run_dir).ok());
  ASSERT_TRUE(AtomicWriteFile(JoinPath(run_dir, RunLayout::PlanFile()), j.dump(2) + "\n").ok());
}

class ServeProcess : public ::testing::Test {
 protected:
  void SetUp() override { WritePlanJson(dir_.path(), MakePlan(PlanShape{})); }
  void TearDown() override {
    if (pid_ > 0) {  // a failed test: never leave the child behind
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Starts the child and waits for RUN/coordinator.addr.
  void Spawn() {
    ::unlink(CoordinatorAddressPath(dir_.path()).c_str());
    char exe[4096] = {};
    ASSERT_GT(::readlink("/proc/self/exe", exe, sizeof(exe) - 1), 0);
    std::vector<std::string> args = {exe, "--gtest_also_run_disabled_tests",
                                     "--gtest_filter=ServeChild.DISABLED_Serve"};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    env.push_back("RADLADS_SERVE_CHILD_RUN=" + dir_.path());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = ::posix_spawn(&pid_, exe, &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(rc, 0) << std::strerror(rc);
    const std::int64_t deadline = Now() + 20'000;
    while (!PathExists(CoordinatorAddressPath(dir_.path()))) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid_, &status, WNOHANG), 0) << "the server exited early:\n" << Log();
      ASSERT_LT(Now(), deadline) << "no coordinator.addr after 20 s:\n" << Log();
      SleepMs(20);
    }
  }

  // The child's exit code, or -1 if it is still running after `timeout_ms`.
  int WaitExit(int timeout_ms) {
    const std::int64_t deadline = Now() + timeout_ms;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (Now() > deadline) return -1;
      SleepMs(10);
    }
  }

  std::string Log() const {
    auto t = ReadFileToString(log_);
    return t.ok() ? *t : "(no log)";
  }

  std::unique_ptr<Client> MustConnect(const std::string& name) {
    ClientOptions o;
    o.run_dir = dir_.path();
    o.name = name;
    o.max_attempts = 1;
    o.call_timeout_ms = 10'000;
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString() << "\n" << Log();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Heartbeats until the reply says stop.
  void WaitForStop(Client& c, LeaseId lease) {
    const std::int64_t deadline = Now() + 10'000;
    for (;;) {
      auto hb = c.Heartbeat(lease, Progress{});
      ASSERT_TRUE(hb.ok()) << hb.status().ToString() << "\n" << Log();
      if (hb->stop) return;
      ASSERT_LT(Now(), deadline) << "no stop in heartbeat replies:\n" << Log();
      SleepMs(20);
    }
  }

  ScratchDir dir_;
  std::string log_ = dir_.File("serve.log");
  pid_t pid_ = -1;
};

TEST_F(ServeProcess, SigtermDrainsWorkersThenExitsWithTheRequeueCode) {
  Spawn();
  ASSERT_FALSE(HasFatalFailure());
  auto c = MustConnect("w0");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->RegisterWorker(testing::Worker("w0")).ok());
  auto l = c->Lease("w0");
  ASSERT_TRUE(l.ok() && l->grant.has_value()) << Log();
  const LeaseGrant g = *l->grant;
  auto hb = c->Heartbeat(g.lease, Progress{});
  ASSERT_TRUE(hb.ok());
  EXPECT_FALSE(hb->stop);

  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  WaitForStop(*c, g.lease);
  ASSERT_FALSE(HasFatalFailure());
  // The worker checkpoints at its step boundary and releases.
  ASSERT_TRUE(c->CommitCheckpoint(g.lease, Ckpt(g.task.id, 1, g.task.tokens)).ok());
  ASSERT_TRUE(c->Release(g.lease, "drain").ok());
  // Its next lease says the run is draining; every worker told, the server exits by itself.
  auto after = c->Lease("w0");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->outcome, LeaseOutcome::kDraining);
  EXPECT_EQ(WaitExit(10'000), kExitRequeue) << Log();
  EXPECT_FALSE(PathExists(CoordinatorAddressPath(dir_.path())));

  auto snap = StateStore::ReadSnapshot(JoinPath(dir_.path(), "state"), /*verify_replay=*/true);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->phase(), RunPhase::kDrained);
  EXPECT_TRUE(snap->leases().empty());
  EXPECT_EQ(snap->metrics().leases_released, 1);
  EXPECT_EQ(snap->metrics().checkpoints_committed, 1);
  const CommittedCheckpoint* ck = snap->LastCheckpoint(g.task.id);
  ASSERT_NE(ck, nullptr);
  EXPECT_EQ(ck->record.step, 1);

  // The requeued job: a new coordinator resumes the run, and the task resumes from its checkpoint.
  Spawn();
  ASSERT_FALSE(HasFatalFailure());
  auto status = FetchStatusJson(dir_.path(), 5'000);
  ASSERT_TRUE(status.ok()) << status.status().ToString() << "\n" << Log();
  auto c2 = MustConnect("w0");
  ASSERT_NE(c2, nullptr);
  ASSERT_TRUE(c2->RegisterWorker(testing::Worker("w0")).ok());
  auto l2 = c2->Lease("w0");
  ASSERT_TRUE(l2.ok() && l2->grant.has_value()) << Log();
  EXPECT_EQ(l2->grant->task.id, g.task.id);
  ASSERT_TRUE(l2->grant->resume_from.has_value());
  EXPECT_EQ(l2->grant->resume_from->record.step, 1);
  ASSERT_TRUE(c2->Release(l2->grant->lease, "test done").ok());
  ASSERT_EQ(::kill(pid_, SIGUSR1), 0);  // nothing outstanding: drained at once
  // The worker hears it on its next lease; then nobody is left to tell.
  const std::int64_t deadline = Now() + 5'000;
  for (;;) {
    auto r = c2->Lease("w0");
    ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << Log();
    if (r->outcome == LeaseOutcome::kDraining) break;
    if (r->grant.has_value()) {  // asked before the signal took effect: give it back
      ASSERT_TRUE(c2->Release(r->grant->lease, "test done").ok());
    }
    ASSERT_LT(Now(), deadline) << "no drain in lease replies:\n" << Log();
    SleepMs(20);
  }
  EXPECT_EQ(WaitExit(10'000), kExitRequeue) << Log();
}

TEST_F(ServeProcess, ASecondSignalDuringTheDrainExitsAtOnce) {
  Spawn();
  ASSERT_FALSE(HasFatalFailure());
  auto c = MustConnect("w0");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->RegisterWorker(testing::Worker("w0")).ok());
  auto l = c->Lease("w0");
  ASSERT_TRUE(l.ok() && l->grant.has_value()) << Log();
  ASSERT_EQ(::kill(pid_, SIGUSR1), 0);
  WaitForStop(*c, l->grant->lease);
  ASSERT_FALSE(HasFatalFailure());
  const std::int64_t t0 = Now();
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitExit(10'000), kExitRequeue) << Log();
  EXPECT_LT(Now() - t0, 5'000);
  auto snap = StateStore::ReadSnapshot(JoinPath(dir_.path(), "state"));
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->phase(), RunPhase::kDraining);  // the worker never released
  EXPECT_EQ(snap->leases().size(), 1u);
  // Its lease ends without a failure when the next coordinator starts.
  Spawn();
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(FetchStatusJson(dir_.path(), 5'000).ok()) << Log();
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitExit(10'000), kExitRequeue) << Log();
  auto after = StateStore::ReadSnapshot(JoinPath(dir_.path(), "state"));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->metrics().leases_abandoned, 1);
  EXPECT_EQ(after->metrics().leases_failed + after->metrics().leases_expired, 0);
}

// ---------------------------------------------------------------------------------------------
// Throughput of a local client loop (run by hand:
//   coordinator_server_test --gtest_also_run_disabled_tests --gtest_filter='*Throughput*').
// ---------------------------------------------------------------------------------------------
TEST_F(ServerTest, DISABLED_Throughput) {
  PlanShape shape;
  shape.layers = 600;
  shape.segments = 1;
  shape.segment_tokens = 1'000'000'000;
  ServerOptions o = Options();
  o.frame_timeout_ms = 10'000;
  o.idle_timeout_ms = 300'000;
  o.max_frame = protocol::kDefaultMaxFrame;
  StartServer(o, shape);
  std::uint64_t writes0 = store_->writes_issued();
  std::uint64_t trans0 = store_->transitions_durable();
  auto report = [&](const char* what, double calls, double seconds) {
    const std::uint64_t w = store_->writes_issued() - writes0;
    const std::uint64_t t = store_->transitions_durable() - trans0;
    std::printf("[throughput] %-58s %8.0f calls/s  (%.0f calls, %.1f transitions per synced write)\n",
                what, calls / seconds, calls, w ? static_cast<double>(t) / w : 0.0);
    writes0 = store_->writes_issued();
    trans0 = store_->transitions_durable();
  };

  // 1. Full lease cycles (register once; lease -> heartbeat -> commit -> complete), each worker a
  //    blocking client on its own thread.
  for (int workers : {1, 16}) {
    std::atomic<int> calls{0};
    std::vector<std::thread> ts;
    const std::int64_t t0 = Now();
    for (int t = 0; t < workers; ++t) {
      ts.emplace_back([&, t, workers] {
        auto cc = Client::Connect(ClientOpts("cycle" + std::to_string(t)));
        if (!cc.ok()) return;
        const std::string id = "cyc" + std::to_string(workers) + "_" + std::to_string(t);
        if (!(*cc)->RegisterWorker(testing::Worker(id)).ok()) return;
        for (int k = 0; k < (workers == 1 ? 40 : 15); ++k) {
          auto l = (*cc)->Lease(id);
          calls++;
          if (!l.ok() || !l->grant) break;
          const LeaseGrant& g = *l->grant;
          (void)(*cc)->Heartbeat(g.lease, Progress{});
          (void)(*cc)->CommitCheckpoint(g.lease, Ckpt(g.task.id, 1, g.task.tokens / 2));
          FinalRecord f;
          f.checkpoint = Ckpt(g.task.id, 2, g.task.tokens);
          (void)(*cc)->Complete(g.lease, f);
          calls += 3;
        }
      });
    }
    for (auto& t : ts) t.join();
    report(workers == 1 ? "1 worker, lease+heartbeat+commit+complete cycles"
                        : "16 workers (threads), lease+heartbeat+commit+complete cycles",
           calls.load(), (Now() - t0) / 1000.0);
  }

  // Leases held for the heartbeat/commit loops.
  auto c = MustConnect("bench");
  ASSERT_NE(c, nullptr);
  std::vector<LeaseGrant> grants;
  for (int w = 0; w < 64; ++w) {
    const std::string id = "b" + std::to_string(w);
    ASSERT_TRUE(c->RegisterWorker(testing::Worker(id)).ok());
    auto l = c->Lease(id);
    ASSERT_TRUE(l.ok());
    if (l->grant) grants.push_back(*l->grant);
  }
  ASSERT_EQ(grants.size(), 64u);
  writes0 = store_->writes_issued();
  trans0 = store_->transitions_durable();

  // 2. One blocking client, one call at a time (bound by one fsync per call).
  {
    const int n = 2000;
    const std::int64_t t0 = Now();
    for (int i = 0; i < n; ++i) ASSERT_TRUE(c->Heartbeat(grants[0].lease, Progress{}).ok());
    report("1 blocking client, heartbeats", n, (Now() - t0) / 1000.0);
  }
  // 3. Blocking clients on threads, heartbeats.
  for (int threads : {16, 64}) {
    const int per = threads == 16 ? 400 : 150;
    std::vector<std::thread> ts;
    const std::int64_t t0 = Now();
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        auto cc = Client::Connect(ClientOpts("t" + std::to_string(t)));
        if (!cc.ok()) return;
        const LeaseGrant& g = grants[static_cast<std::size_t>(t) % grants.size()];
        for (int i = 0; i < per; ++i) (void)(*cc)->Heartbeat(g.lease, Progress{});
      });
    }
    for (auto& t : ts) t.join();
    report(threads == 16 ? "16 blocking clients (threads), heartbeats"
                         : "64 blocking clients (threads), heartbeats",
           threads * per, (Now() - t0) / 1000.0);
  }
  // 4. One pipelined connection, 128 in flight: heartbeats and checkpoint commits, alternating.
  {
    std::vector<protocol::Request> reqs;
    std::vector<std::int64_t> step(grants.size(), 0);
    for (int r = 0; r < 100; ++r) {
      for (std::size_t i = 0; i < grants.size(); ++i) {
        reqs.push_back(protocol::HeartbeatRequest{grants[i].lease, Progress{}});
        ++step[i];
        reqs.push_back(protocol::CommitRequest{
            grants[i].lease, Ckpt(grants[i].task.id, step[i],
                                  std::min(grants[i].task.tokens, step[i] * 1000))});
      }
    }
    const std::int64_t t0 = Now();
    auto replies = c->CallPipelined(reqs, 128);
    const double secs = (Now() - t0) / 1000.0;
    ASSERT_TRUE(replies.ok()) << replies.status().ToString();
    int errors = 0;
    for (const auto& r : *replies) errors += r.status.ok() ? 0 : 1;
    EXPECT_EQ(errors, 0);
    report("1 pipelined connection (128 in flight), heartbeats+commits", reqs.size(), secs);
  }
  EXPECT_EQ(server_->metrics().violations_total, 0u);
}

}  // namespace
}  // namespace radlads
