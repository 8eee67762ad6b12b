#include "rpc/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "base/file.h"
#include "contract/run_layout.h"

namespace radlads {
namespace {

using protocol::MsgType;
using protocol::Reply;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The pause before attempt `attempt` (1-based) of a retried call: none before the first, then
// `first_ms` doubling up to 5 s.
void BackoffBefore(int attempt, std::int64_t first_ms) {
  if (attempt <= 1) return;
  std::int64_t ms = first_ms;
  for (int k = 2; k < attempt && ms < 5'000; ++k) ms *= 2;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::int64_t>(ms, 5'000)));
}

Status Transport(const std::string& address, const std::string& what) {
  return Status::Unavailable("coordinator at " + address + ": " + what);
}

// Waits until `fd` is ready for `events` or the deadline passes.
Status WaitFd(int fd, short events, std::int64_t deadline_ms, const std::string& address,
              const char* what) {
  for (;;) {
    const std::int64_t left = deadline_ms - NowMs();
    if (left <= 0) return Transport(address, std::string(what) + " timed out");
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 1 << 30)));
    if (rc > 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) return Transport(address, std::string("poll: ") + std::strerror(errno));
  }
}

bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find("]:");
    if (close == std::string::npos) return false;
    *host = address.substr(1, close - 1);
    *port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    *host = address.substr(0, colon);
    *port = address.substr(colon + 1);
  }
  return !host->empty() && !port->empty();
}

Result<int> ConnectTcp(const std::string& address, std::int64_t timeout_ms) {
  std::string host;
  std::string port;
  if (!SplitHostPort(address, &host, &port)) {
    return Status::InvalidArgument("coordinator address '" + address + "': expected HOST:PORT");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return Transport(address, std::string("cannot resolve: ") + ::gai_strerror(gai));
  const std::int64_t deadline = NowMs() + timeout_ms;
  Status last = Transport(address, "no address to connect to");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            ai->ai_protocol);
    if (fd < 0) {
      last = Transport(address, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      Status w = WaitFd(fd, POLLOUT, deadline, address, "connect");
      if (!w.ok()) {
        ::close(fd);
        last = w;
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = Transport(address, std::string("connect: ") + std::strerror(errno));
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  return last;
}

bool Retryable(const Status& s) {
  return s.code() == Status::Code::kUnavailable || s.code() == Status::Code::kNotFound;
}

template <typename T>
Result<T> BodyAs(Result<Reply>&& r) {
  if (!r.ok()) return r.status();
  if (!r->status.ok()) return r->status;
  if (auto* b = std::get_if<T>(&r->body)) return std::move(*b);
  return Status::Internal("reply body of the wrong kind");
}

Status StatusOf(Result<Reply>&& r) {
  if (!r.ok()) return r.status();
  return r->status;
}

}  // namespace

std::string CoordinatorAddressPath(const std::string& run_dir) {
  return JoinPath(run_dir, RunLayout::AddressFile());
}

Result<std::string> ReadCoordinatorAddress(const std::string& run_dir) {
  const std::string path = CoordinatorAddressPath(run_dir);
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) {
      return Status::NotFound(path + ": no coordinator address (no `radlads-coord serve` has "
                              "started on this run)");
    }
    return text.status();
  }
  std::string a = std::move(text).value();
  while (!a.empty() && (a.back() == '\n' || a.back() == '\r' || a.back() == ' ')) a.pop_back();
  if (a.empty() || a.size() > 300) return Status::Corruption(path + ": not a HOST:PORT line");
  return a;
}

Client::Client(ClientOptions options, RunSecret secret)
    : options_(std::move(options)), secret_(secret) {}

Client::~Client() { Close(); }

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.max_attempts < 1 || options.connect_timeout_ms <= 0 || options.call_timeout_ms <= 0) {
    return Status::InvalidArgument("client: max_attempts must be >= 1 and timeouts > 0");
  }
  RunSecret secret;
  if (options.secret) {
    secret = *options.secret;
  } else {
    if (options.run_dir.empty()) return Status::InvalidArgument("client: no run directory given");
    RADLADS_ASSIGN_OR_RETURN(secret, LoadRunSecret(options.run_dir));
  }
  std::unique_ptr<Client> c(new Client(options, secret));
  RADLADS_RETURN_IF_ERROR(c->EnsureConnected());
  return c;
}

void Client::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  session_.reset();
  rbuf_.clear();
  rpos_ = 0;
}

Status Client::EnsureConnected() {
  if (fd_ >= 0) return Status::Ok();
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    BackoffBefore(attempt, options_.retry_backoff_ms);
    last = ConnectOnce();
    if (last.ok() || !Retryable(last)) return last;
  }
  return last;
}

Status Client::ConnectOnce() {
  Disconnect();
  if (!options_.address.empty()) {
    address_ = options_.address;
  } else {
    RADLADS_ASSIGN_OR_RETURN(address_, ReadCoordinatorAddress(options_.run_dir));
  }
  RADLADS_ASSIGN_OR_RETURN(fd_, ConnectTcp(address_, options_.connect_timeout_ms));
  auto nonce = protocol::RandomNonce();
  if (!nonce.ok()) {
    Disconnect();
    return nonce.status();
  }
  session_.emplace(secret_, options_.name, static_cast<std::int64_t>(::getpid()), *nonce);
  const std::int64_t deadline = NowMs() + options_.connect_timeout_ms;
  Status st;
  auto challenge = ReadFrame(deadline);
  if (!challenge.ok()) {
    st = challenge.status();
  } else if (auto hello = session_->OnChallenge(*challenge); !hello.ok()) {
    st = hello.status();
  } else if (st = SendAll(*hello, deadline); st.ok()) {
    auto reply = ReadFrame(deadline);
    if (!reply.ok()) {
      // The server closes the connection when our Hello does not verify.
      st = reply.status().code() == Status::Code::kUnavailable
               ? Status::Unavailable(reply.status().message() +
                                     " (during the handshake: if this persists, this RUN/secret "
                                     "is not the coordinator's)")
               : reply.status();
    } else if (auto hr = session_->OnHelloReply(*reply); !hr.ok()) {
      st = hr.status();
    }
  }
  if (!st.ok()) {
    Disconnect();
    return st.code() == Status::Code::kCorruption
               ? Status::Corruption("coordinator at " + address_ + ": " + st.message())
               : st;
  }
  ++sessions_;
  return Status::Ok();
}

Status Client::SendAll(std::string_view bytes, std::int64_t deadline_ms) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      RADLADS_RETURN_IF_ERROR(WaitFd(fd_, POLLOUT, deadline_ms, address_, "send"));
      continue;
    }
    return Transport(address_, std::string("send: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status Client::Fill(std::size_t need, std::int64_t deadline_ms) {
  if (rpos_ > 0 && rpos_ == rbuf_.size()) {
    rbuf_.clear();
    rpos_ = 0;
  }
  while (rbuf_.size() - rpos_ < need) {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      rbuf_.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return Transport(address_, "connection closed by the coordinator");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      RADLADS_RETURN_IF_ERROR(WaitFd(fd_, POLLIN, deadline_ms, address_, "waiting for the reply"));
      continue;
    }
    return Transport(address_, std::string("recv: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Result<std::string> Client::ReadFrame(std::int64_t deadline_ms) {
  RADLADS_RETURN_IF_ERROR(Fill(protocol::kLengthPrefixBytes, deadline_ms));
  auto len = protocol::ParseLengthPrefix(
      std::string_view(rbuf_).substr(rpos_, protocol::kLengthPrefixBytes),
      options_.max_reply_frame);
  if (!len.ok()) return Status::Corruption("coordinator at " + address_ + ": " + len.status().message());
  RADLADS_RETURN_IF_ERROR(Fill(protocol::kLengthPrefixBytes + *len, deadline_ms));
  std::string payload = rbuf_.substr(rpos_ + protocol::kLengthPrefixBytes, *len);
  rpos_ += protocol::kLengthPrefixBytes + *len;
  return payload;
}

Result<std::string> Client::SealChecked(const protocol::Request& request, std::uint64_t* seq) {
  // Check every field limit and the frame cap before a sequence number is used, so a bad
  // request is an error for the caller rather than a protocol violation that costs the
  // connection.
  const std::uint8_t type = static_cast<std::uint8_t>(protocol::TypeOf(request));
  const std::string body = protocol::EncodeRequestBody(request);
  if (auto check = protocol::DecodeRequestBody(type, body); !check.ok()) {
    return Status::InvalidArgument(protocol::MsgTypeName(type) +
                                   " request breaks a protocol limit: " + check.status().message());
  }
  const std::size_t payload = protocol::kHeaderBytes + body.size();
  if (payload > session_->challenge().max_frame) {
    return Status::InvalidArgument(protocol::MsgTypeName(type) + " request of " +
                                   std::to_string(payload) + " bytes exceeds the coordinator's " +
                                   std::to_string(session_->challenge().max_frame) +
                                   "-byte frame cap");
  }
  return session_->SealRequest(request, seq);
}

void Client::DropIfClosedByPeer() {
  if (fd_ < 0) return;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return;  // nothing pending: the connection looks alive
  if ((p.revents & (POLLERR | POLLHUP | POLLRDHUP)) != 0) {
    Disconnect();
    return;
  }
  char c;
  const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) Disconnect();
}

Result<Reply> Client::CallOnce(const protocol::Request& request) {
  DropIfClosedByPeer();  // e.g. the server's idle timeout: reconnect before sending
  if (fd_ < 0) RADLADS_RETURN_IF_ERROR(ConnectOnce());  // Call() does the retrying
  std::uint64_t seq = 0;
  RADLADS_ASSIGN_OR_RETURN(std::string frame, SealChecked(request, &seq));
  const std::int64_t deadline = NowMs() + options_.call_timeout_ms;
  RADLADS_RETURN_IF_ERROR(SendAll(frame, deadline));
  RADLADS_ASSIGN_OR_RETURN(std::string payload, ReadFrame(deadline));
  auto reply = session_->OpenReply(payload, seq, protocol::TypeOf(request));
  if (!reply.ok()) {
    return Status::Corruption("coordinator at " + address_ + ": " + reply.status().message());
  }
  return reply;
}

Result<Reply> Client::Call(const protocol::Request& request) {
  const MsgType type = protocol::TypeOf(request);
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    BackoffBefore(attempt, options_.retry_backoff_ms);
    auto r = CallOnce(request);
    if (r.ok()) {
      if (attempt > 1 && (type == MsgType::kFail || type == MsgType::kRelease) &&
          r->status.code() == Status::Code::kFailedPrecondition &&
          r->status.message().find("not outstanding") != std::string::npos) {
        // The earlier attempt (or an expiry) already ended the lease: the outcome asked for.
        return Reply{Status::Ok(), protocol::EmptyReply{}};
      }
      return r;
    }
    if (r.status().code() != Status::Code::kInvalidArgument) Disconnect();
    if (!Retryable(r.status())) return r.status();
    last = r.status();
  }
  return Status::Unavailable(last.message() + " (after " + std::to_string(options_.max_attempts) +
                             " attempts)");
}

Result<std::vector<Reply>> Client::CallPipelined(const std::vector<protocol::Request>& requests,
                                                 std::size_t window) {
  DropIfClosedByPeer();
  RADLADS_RETURN_IF_ERROR(EnsureConnected());
  window = std::max<std::size_t>(1, window);
  std::vector<Reply> replies;
  replies.reserve(requests.size());
  std::vector<std::uint64_t> seqs(requests.size());
  std::size_t sent = 0;
  std::int64_t deadline = NowMs() + options_.call_timeout_ms;  // renewed by every reply
  auto fail = [this](Status s) {
    Disconnect();
    return s;
  };
  while (replies.size() < requests.size()) {
    // Send whatever the window allows as one write, then read one reply.
    std::string batch;
    while (sent < requests.size() && sent - replies.size() < window) {
      auto frame = SealChecked(requests[sent], &seqs[sent]);
      if (!frame.ok()) return fail(frame.status());
      batch += *frame;
      ++sent;
    }
    if (!batch.empty()) {
      if (Status s = SendAll(batch, deadline); !s.ok()) return fail(s);
    }
    const std::size_t i = replies.size();
    auto payload = ReadFrame(deadline);
    if (!payload.ok()) return fail(payload.status());
    auto reply = session_->OpenReply(*payload, seqs[i], protocol::TypeOf(requests[i]));
    if (!reply.ok()) {
      return fail(Status::Corruption("coordinator at " + address_ + ": " + reply.status().message()));
    }
    replies.push_back(std::move(reply).value());
    deadline = NowMs() + options_.call_timeout_ms;
  }
  return replies;
}

void Client::Close() {
  if (fd_ < 0) return;
  if (session_) {
    std::uint64_t seq = 0;
    const std::string frame = session_->SealRequest(protocol::ByeRequest{}, &seq);
    const std::int64_t deadline = NowMs() + 1'000;
    if (SendAll(frame, deadline).ok()) (void)ReadFrame(deadline);
  }
  Disconnect();
}

Status Client::RegisterWorker(const WorkerInfo& info) {
  return StatusOf(Call(protocol::RegisterWorkerRequest{info}));
}
Result<LeaseReply> Client::Lease(std::string_view worker, const Capabilities& caps) {
  return BodyAs<LeaseReply>(Call(protocol::LeaseRequest{std::string(worker), caps.task_types}));
}
Result<HeartbeatReply> Client::Heartbeat(LeaseId lease, const Progress& progress) {
  return BodyAs<HeartbeatReply>(Call(protocol::HeartbeatRequest{lease, progress}));
}
Result<CommitReply> Client::CommitCheckpoint(LeaseId lease, const CheckpointRecord& checkpoint) {
  return BodyAs<CommitReply>(Call(protocol::CommitRequest{lease, checkpoint}));
}
Result<CommitReply> Client::Complete(LeaseId lease, const FinalRecord& final_record) {
  return BodyAs<CommitReply>(Call(protocol::CompleteRequest{lease, final_record}));
}
Status Client::Fail(LeaseId lease, std::string_view reason, bool retryable) {
  return StatusOf(Call(protocol::FailRequest{lease, std::string(reason), retryable}));
}
Status Client::Release(LeaseId lease, std::string_view reason) {
  return StatusOf(Call(protocol::ReleaseRequest{lease, std::string(reason)}));
}

Status Client::DiscardCheckpoint(LeaseId lease, std::int64_t step, std::string_view reason) {
  return StatusOf(Call(protocol::DiscardCheckpointRequest{lease, step, std::string(reason)}));
}
Status Client::Drain(std::string_view reason) {
  return StatusOf(Call(protocol::DrainRequest{std::string(reason)}));
}
Status Client::Cancel(std::string_view reason, std::string_view job_id) {
  return StatusOf(Call(protocol::CancelRequest{std::string(reason), std::string(job_id)}));
}
Result<LeaseReply> Client::CompleteAndContinue(LeaseId lease, const FinalRecord& final_record) {
  return BodyAs<LeaseReply>(Call(protocol::CompleteAndContinueRequest{lease, final_record}));
}

Status Client::EvictSegment(int segment, int stage) {
  return StatusOf(Call(protocol::EvictSegmentRequest{segment, stage}));
}
Result<int> Client::ExpireLeases() {
  auto r = BodyAs<protocol::ExpireReply>(Call(protocol::ExpireLeasesRequest{}));
  if (!r.ok()) return r.status();
  return r->expired;
}
Result<std::string> Client::GetStatus() {
  auto r = BodyAs<protocol::StatusReply>(Call(protocol::GetStatusRequest{}));
  if (!r.ok()) return r.status();
  return std::move(r->json);
}

Result<std::string> FetchStatusJson(const std::string& run_dir, std::int64_t timeout_ms) {
  ClientOptions o;
  o.run_dir = run_dir;
  o.name = "status";
  o.connect_timeout_ms = std::max<std::int64_t>(1, timeout_ms);
  o.call_timeout_ms = std::max<std::int64_t>(1, timeout_ms);
  o.max_attempts = 1;
  RADLADS_ASSIGN_OR_RETURN(auto client, Client::Connect(o));
  return client->GetStatus();
}

}  // namespace radlads
