// The blocking client of the coordinator's protocol (docs/protocol.md), used by workers and by
// `radlads-coord status`. Plain POSIX sockets (no Asio here): connect with a timeout, the
// authenticated handshake, then one typed call at a time (or a pipelined batch).
//
// Finding the coordinator: ClientOptions::address ("HOST:PORT"), or else RUN/coordinator.addr,
// which the server writes atomically once it listens (re-read on every reconnect, so a
// requeued coordinator on another node or port is found). The secret comes from RUN/secret
// (LoadRunSecret: mode 0600 required).
//
// Retries: a call that loses its connection (refused, reset, closed, timed out) reconnects with
// a new session and sends the call again, up to max_attempts in all, with exponential backoff.
// Every operation is safe to repeat by the Scheduler's contract: RegisterWorker with the same
// info, Lease (the same lease comes back), Heartbeat, CommitCheckpoint and Complete (duplicates
// are acknowledged with duplicate = true), Drain, ExpireLeases and GetStatus. Fail and Release
// end the lease; when a repeated Fail/Release is answered "not outstanding", the first attempt
// (or an expiry) already ended it, and the client reports OK. Protocol errors (a reply that
// does not verify: a different RUN/secret, not our coordinator) are never retried.
//
// Errors: scheduler errors come back with their own code and message (FailedPrecondition for a
// stale lease: stop working on it). Transport errors are Unavailable naming the address;
// NotFound when RUN/coordinator.addr does not exist (no server has started); Corruption for
// protocol errors; InvalidArgument for a request that breaks a field limit (never sent).
// Thread-safety: none; use one Client per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "rpc/protocol.h"
#include "rpc/secret.h"
#include "contract/coordinator_port.h"
#include "contract/records.h"

namespace radlads {

struct ClientOptions {
  std::string run_dir;        // RUN/: secret and coordinator.addr
  std::string address;        // "HOST:PORT" or "[v6]:PORT"; "" = RUN/coordinator.addr
  std::optional<RunSecret> secret;  // default: LoadRunSecret(run_dir)
  std::string name = "client";      // shown in the coordinator's log (a worker id, "status")
  std::int64_t connect_timeout_ms = 5'000;
  std::int64_t call_timeout_ms = 60'000;  // one attempt: send + the reply
  int max_attempts = 4;                   // per call (and for Connect), >= 1
  std::int64_t retry_backoff_ms = 200;    // doubled after each failed attempt, capped at 5 s
  std::uint32_t max_reply_frame = protocol::kClientMaxFrame;
};

// RUN/coordinator.addr, and its content without the newline (NotFound if missing).
std::string CoordinatorAddressPath(const std::string& run_dir);
Result<std::string> ReadCoordinatorAddress(const std::string& run_dir);

class Client final : public CoordinatorPort {
 public:
  // Loads the secret and connects (with the retry policy).
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();  // Close()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The coordinator port (contract/coordinator_port.h), over the wire.
  Status RegisterWorker(const WorkerInfo& info) override;
  Result<LeaseReply> Lease(std::string_view worker, const Capabilities& caps) override;
  Result<LeaseReply> Lease(std::string_view worker) { return Lease(worker, Capabilities{}); }
  Result<HeartbeatReply> Heartbeat(LeaseId lease, const Progress& progress) override;
  Result<CommitReply> CommitCheckpoint(LeaseId lease, const CheckpointRecord& checkpoint) override;
  Result<CommitReply> Complete(LeaseId lease, const FinalRecord& final_record) override;
  Result<LeaseReply> CompleteAndContinue(LeaseId lease, const FinalRecord& final_record) override;
  Status Fail(LeaseId lease, std::string_view reason, bool retryable) override;
  Status Fail(LeaseId lease, std::string_view reason) { return Fail(lease, reason, true); }
  Status Release(LeaseId lease, std::string_view reason) override;
  Status DiscardCheckpoint(LeaseId lease, std::int64_t step, std::string_view reason) override;
  Status Drain(std::string_view reason) override;
  // The user's cancel (protocol::CancelRequest): the run drains and its coordinator exits with
  // kExitCancelled.
  Status Cancel(std::string_view reason, std::string_view job_id);
  Status EvictSegment(int segment, int stage) override;
  Result<int> ExpireLeases();
  // The coordinator's status document (status/status_report.h).
  Result<std::string> GetStatus();

  // Any request, with the retry policy. The Reply carries the operation's status.
  Result<protocol::Reply> Call(const protocol::Request& request);
  // Sends `requests` keeping up to `window` unanswered on the connection (the server answers in
  // order) and returns every reply. No retries: a lost connection fails the whole batch with
  // Unavailable (some of the requests may have taken effect).
  Result<std::vector<protocol::Reply>> CallPipelined(const std::vector<protocol::Request>& requests,
                                                     std::size_t window = 128);

  // Says Bye (best effort, up to 1 s) and closes. A later call reconnects.
  void Close();

  // "HOST:PORT" of the current (or last) connection.
  const std::string& address() const { return address_; }
  // Handshakes completed so far (1 + reconnects).
  std::uint64_t sessions() const { return sessions_; }

 private:
  explicit Client(ClientOptions options, RunSecret secret);
  Status EnsureConnected();
  Status ConnectOnce();
  void Disconnect();
  // Closes our end if the server already closed the connection (idle timeout, restart), so the
  // next call reconnects instead of sending into a dead socket.
  void DropIfClosedByPeer();
  Result<protocol::Reply> CallOnce(const protocol::Request& request);
  Result<std::string> SealChecked(const protocol::Request& request, std::uint64_t* seq);
  Status SendAll(std::string_view bytes, std::int64_t deadline_ms);
  Result<std::string> ReadFrame(std::int64_t deadline_ms);
  Status Fill(std::size_t need, std::int64_t deadline_ms);

  ClientOptions options_;
  RunSecret secret_;
  int fd_ = -1;
  std::optional<protocol::ClientSession> session_;
  std::string address_;
  std::string rbuf_;
  std::size_t rpos_ = 0;
  std::uint64_t sessions_ = 0;
};

// Asks the live coordinator of RUN for its status document, with one connection attempt and
// `timeout_ms` for connect and call. NotFound when no RUN/coordinator.addr exists, Unavailable
// when nothing answers there: the caller then reads the state read-only instead.
Result<std::string> FetchStatusJson(const std::string& run_dir, std::int64_t timeout_ms);

}  // namespace radlads
