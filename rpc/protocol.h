// The coordinator's wire protocol (docs/design.md §4; the full specification is docs/protocol.md).
// Everything here is pure: bytes in, values or errors out, no sockets, no clock, no globals
// except OpenSSL's HMAC and CSPRNG. The server (rpc/server.h), the blocking client
// (rpc/client.h), the tests and the fuzz target all go through these functions.
//
// Frames on a TCP stream: u32 payload length, big-endian, then the payload:
//     u8 version | u8 type | u64 session | u64 sequence | 32-byte HMAC-SHA256 | body
// All integers are big-endian. The length is checked against the receiver's cap (1 MiB by default
// on the server) BEFORE any buffer is sized from it, and must be at least the 50-byte header.
// The MAC covers version, type, session, sequence and body (every payload byte but the MAC),
// keyed by the session key of the frame's direction.
//
// Handshake (per connection):
//   server -> client  Challenge (seq 0, MAC all zero: unauthenticated) with a fresh random
//                     session id and 32-byte server nonce, the server's frame cap and run id;
//   client -> server  Hello (seq 1) with a fresh 32-byte client nonce, MAC'd with the session's
//                     client->server key;
//   server -> client  HelloReply (seq 1), MAC'd with the server->client key (authenticates the
//                     server to the client).
//   master = HMAC(secret, "radlads-coord/1 session" | session | server nonce | client nonce),
//   key_c2s = HMAC(master, "radlads-coord/1 c2s"), key_s2c = HMAC(master, "radlads-coord/1 s2c").
// Because the key depends on this connection's server nonce, a frame captured on one
// connection fails the MAC on any other; separate direction keys stop reflection.
//
// Sequence numbers: each request carries exactly the previous request's sequence + 1 (Hello is
// 1), so a replayed, reordered or dropped frame is refused. Each reply carries the sequence of
// the request it answers; replies come in request order.
//
// Bodies are the messages' fields (VisitFields below; the shared records' in contract/records.h)
// in the wire encoding of contract/codec.h: fixed-width big-endian integers, doubles as their
// IEEE-754 bit pattern, bools as one byte 0/1, strings as u32 length + bytes with a per-field
// maximum, lists as u32 count (bounded per field and by the bytes left) + items, optionals as a
// 0/1 byte. Decoding is strict and canonical: every field is bounds-checked, unknown enum values
// and trailing bytes are refused, so re-encoding an accepted body gives back the same bytes.
//
// Errors: decoding failures are Corruption statuses naming the field; the session objects also
// classify each refusal as a Violation (for the server's log and metrics).
// Thread-safety: functions are thread-safe; FrameSplitter and the sessions are not (one per
// connection).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/clock.h"
#include "base/status.h"
#include "contract/fields.h"
#include "contract/records.h"
#include "rpc/secret.h"

namespace radlads::protocol {

// 2: WorkerInfo gained rank, device, memory_bytes and gang; LeaseReply carries evictions; the
//    EvictSegment request. A peer of another version is refused (bad_version) naming both.
// 3: the Cancel request (`radlads-coord cancel`).
// 4: the DiscardCheckpoint request (checkpoint fallback).
inline constexpr std::uint8_t kProtocolVersion = 4;
inline constexpr std::size_t kLengthPrefixBytes = 4;
inline constexpr std::size_t kMacBytes = 32;
inline constexpr std::size_t kNonceBytes = 32;
inline constexpr std::size_t kSignedHeaderBytes = 1 + 1 + 8 + 8;  // version, type, session, seq
inline constexpr std::size_t kHeaderBytes = kSignedHeaderBytes + kMacBytes;  // 50

// Frame caps (payload bytes, the length prefix excluded).
inline constexpr std::uint32_t kDefaultMaxFrame = 1u << 20;    // server: client -> server frames
inline constexpr std::uint32_t kMinMaxFrame = 4096;            // the smallest cap allowed
inline constexpr std::uint32_t kMaxMaxFrame = 256u << 20;      // the largest cap allowed
inline constexpr std::uint32_t kClientMaxFrame = 64u << 20;    // client: server -> client frames
// Before the handshake completes the only acceptable frame is a Hello (at most ~350 bytes), so
// the server caps unauthenticated frames at this: a connection that has not proven it holds the
// secret can make the server buffer no more than this plus one read chunk.
inline constexpr std::uint32_t kHandshakeMaxFrame = 1024;

// Per-field limits: contract/fields.h (kMaxIdBytes, kMaxTextBytes, ...).

enum class MsgType : std::uint8_t {
  kChallenge = 1,   // s2c, unauthenticated
  kHello = 2,       // c2s
  kHelloReply = 3,  // s2c
  // Requests (c2s); the reply to each is the same code | kReplyBit (s2c).
  kRegisterWorker = 16,
  kLease = 17,
  kHeartbeat = 18,
  kCommitCheckpoint = 19,
  kComplete = 20,
  kFail = 21,
  kRelease = 22,
  kDrain = 23,
  kExpireLeases = 24,
  kGetStatus = 25,
  kBye = 26,
  kEvictSegment = 27,         // since version 2
  kCompleteAndContinue = 28,  // since version 2
  kCancel = 29,               // since version 3
  kDiscardCheckpoint = 30,    // since version 4
};
inline constexpr std::uint8_t kReplyBit = 0x80;
inline constexpr std::uint8_t kFirstRequestType = 16;
inline constexpr std::uint8_t kLastRequestType = 30;

bool IsRequestType(std::uint8_t type);
// "lease", "lease_reply", "challenge", ..., or "unknown(0x7f)".
std::string MsgTypeName(std::uint8_t type);
inline std::uint8_t ReplyCode(MsgType request) {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(request) | kReplyBit);
}

// Why a connection was refused (server log lines and metrics, docs/protocol.md §6).
enum class Violation : std::uint8_t {
  kNone = 0,
  kOversized,        // length prefix above the cap
  kUndersized,       // length prefix below the header size
  kBadVersion,       // unknown protocol version byte
  kUnauthenticated,  // a request before a valid Hello
  kBadMac,           // MAC does not verify (wrong secret, corrupted or forged frame)
  kBadSequence,      // replayed, reordered or skipped sequence number
  kWrongSession,     // session id of another connection
  kUnexpectedType,   // unknown type, a reply or Challenge from a client, a second Hello
  kMalformedBody,    // the body does not decode
  kTimeout,          // handshake or frame not completed in time (slow peer), or stalled write
  kTruncated,        // the peer closed in the middle of a frame
  kCount,
};
std::string_view ViolationName(Violation v);  // "oversized", "bad_mac", ...

using Key = std::array<std::uint8_t, 32>;
using Nonce = std::array<std::uint8_t, kNonceBytes>;
using Mac = std::array<std::uint8_t, kMacBytes>;

// ---- frames ----

struct FrameView {
  std::uint8_t version = 0;
  std::uint8_t type = 0;
  std::uint64_t session = 0;
  std::uint64_t seq = 0;
  Mac mac{};
  std::string_view signed_header;  // the first 18 payload bytes (covered by the MAC)
  std::string_view body;
};

// The 4-byte big-endian length prefix, checked: Corruption when above `max_frame` (oversized)
// or below kHeaderBytes (undersized). `*violation` (optional) says which.
Result<std::uint32_t> ParseLengthPrefix(std::string_view four_bytes, std::uint32_t max_frame,
                                        Violation* violation = nullptr);
// Splits a payload (prefix removed) into header fields and body. Refuses a short payload and a
// version other than kProtocolVersion. Does not check the MAC.
Result<FrameView> ParseFrame(std::string_view payload, Violation* violation = nullptr);
// Length prefix + payload, MAC'd with `key` (null: an all-zero MAC, for Challenge only).
std::string SealFrame(std::uint8_t type, std::uint64_t session, std::uint64_t seq,
                      std::string_view body, const Key* key);
Result<Mac> ComputeMac(const Key& key, std::string_view signed_header, std::string_view body);
// Constant-time comparison (CRYPTO_memcmp).
bool VerifyMac(const FrameView& frame, const Key& key);

struct SessionKeys {
  Key client_to_server{};
  Key server_to_client{};
};
SessionKeys DeriveSessionKeys(const RunSecret& secret, std::uint64_t session,
                              const Nonce& server_nonce, const Nonce& client_nonce);

// ---- handshake messages ----

struct Challenge {
  std::uint64_t session = 0;  // also in the frame header; must match
  Nonce server_nonce{};
  std::uint32_t max_frame = kDefaultMaxFrame;  // the server's cap on client frames
  std::string run_id;
};
template <class V>
void VisitFields(V& v, Challenge& c) {
  v.Int("session", c.session);
  v.Fixed("server_nonce", c.server_nonce);
  v.Int("max_frame", c.max_frame);
  v.Str("run_id", c.run_id, kMaxIdBytes);
}
struct Hello {
  Nonce client_nonce{};
  std::string client_name;  // for logs: a worker id, "status", ...
  std::int64_t pid = 0;
};
template <class V>
void VisitFields(V& v, Hello& h) {
  v.Fixed("client_nonce", h.client_nonce);
  v.Str("client_name", h.client_name, kMaxIdBytes);
  v.Int("pid", h.pid);
}
struct HelloReply {
  std::string run_id;
  TimeMs server_time_ms = 0;
};
template <class V>
void VisitFields(V& v, HelloReply& h) {
  v.Str("run_id", h.run_id, kMaxIdBytes);
  v.Int("server_time_ms", h.server_time_ms);
}

std::string EncodeChallenge(const Challenge& c);
Result<Challenge> DecodeChallenge(std::string_view body);
std::string EncodeHello(const Hello& h);
Result<Hello> DecodeHello(std::string_view body);
std::string EncodeHelloReply(const HelloReply& h);
Result<HelloReply> DecodeHelloReply(std::string_view body);

// ---- requests: one per scheduler operation, plus GetStatus and Bye ----

struct RegisterWorkerRequest { WorkerInfo worker; };
struct LeaseRequest {
  std::string worker;
  std::uint32_t task_types = kAllTaskTypes;  // Capabilities::task_types
};
struct HeartbeatRequest {
  LeaseId lease = 0;
  Progress progress;
};
struct CommitRequest {
  LeaseId lease = 0;
  CheckpointRecord checkpoint;
};
struct CompleteRequest {
  LeaseId lease = 0;
  FinalRecord final_record;
};
struct FailRequest {
  LeaseId lease = 0;
  std::string reason;
  bool retryable = true;
};
struct ReleaseRequest {
  LeaseId lease = 0;
  std::string reason;
};
struct DrainRequest { std::string reason; };
// The user's cancel: Scheduler::Cancel (RunCancelled, then a drain); the coordinator then exits
// with kExitCancelled instead of kExitRequeue.
struct CancelRequest {
  std::string reason;
  std::string job_id;  // the batch job the coordinator runs in, as the canceller saw it ("" none)
};
// The lease's resume point could not be read: Scheduler::DiscardCheckpoint.
struct DiscardCheckpointRequest {
  LeaseId lease = 0;
  std::int64_t step = 0;
  std::string reason;
};
struct ExpireLeasesRequest {};
struct GetStatusRequest {};
struct ByeRequest {};

template <class V>
void VisitFields(V& v, RegisterWorkerRequest& r) { v.Rec("worker", r.worker); }
template <class V>
void VisitFields(V& v, LeaseRequest& r) {
  v.Str("worker", r.worker, kMaxIdBytes);
  v.Int("task_types", r.task_types);
}
template <class V>
void VisitFields(V& v, HeartbeatRequest& r) {
  v.Int("lease", r.lease);
  v.Rec("progress", r.progress);
}
template <class V>
void VisitFields(V& v, CommitRequest& r) {
  v.Int("lease", r.lease);
  v.Rec("checkpoint", r.checkpoint);
}
template <class V>
void VisitFields(V& v, CompleteRequest& r) {
  v.Int("lease", r.lease);
  v.Rec("final", r.final_record);
}
template <class V>
void VisitFields(V& v, FailRequest& r) {
  v.Int("lease", r.lease);
  v.Str("reason", r.reason, kMaxTextBytes);
  v.Flag("retryable", r.retryable);
}
template <class V>
void VisitFields(V& v, ReleaseRequest& r) {
  v.Int("lease", r.lease);
  v.Str("reason", r.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V& v, DrainRequest& r) { v.Str("reason", r.reason, kMaxTextBytes); }
template <class V>
void VisitFields(V& v, CancelRequest& r) {
  v.Str("reason", r.reason, kMaxTextBytes);
  v.Str("job_id", r.job_id, kMaxIdBytes);
}
template <class V>
void VisitFields(V& v, DiscardCheckpointRequest& r) {
  v.Int("lease", r.lease);
  v.Int("step", r.step);
  v.Str("reason", r.reason, kMaxTextBytes);
}
template <class V>
void VisitFields(V&, ExpireLeasesRequest&) {}
template <class V>
void VisitFields(V&, GetStatusRequest&) {}
template <class V>
void VisitFields(V&, ByeRequest&) {}
struct EvictSegmentRequest {
  int segment = 0;
  int stage = 0;
};
template <class V>
void VisitFields(V& v, EvictSegmentRequest& r) {
  v.Int("segment", r.segment);
  v.Int("stage", r.stage);
}

// CompleteAndContinue carries the same fields as Complete.
struct CompleteAndContinueRequest {
  LeaseId lease = 0;
  FinalRecord final_record;
};
template <class V>
void VisitFields(V& v, CompleteAndContinueRequest& r) {
  v.Int("lease", r.lease);
  v.Rec("final", r.final_record);
}

using Request = std::variant<RegisterWorkerRequest, LeaseRequest, HeartbeatRequest, CommitRequest,
                             CompleteRequest, FailRequest, ReleaseRequest, DrainRequest,
                             ExpireLeasesRequest, GetStatusRequest, ByeRequest, EvictSegmentRequest,
                             CompleteAndContinueRequest, CancelRequest, DiscardCheckpointRequest>;

MsgType TypeOf(const Request& r);
// `version`: the protocol version of the layout (the current one on the wire; older ones for
// compatibility tests).
std::string EncodeRequestBody(const Request& r, int version = kProtocolVersion);
// `type` is the frame's type byte; Corruption (kMalformedBody) for a bad body, and for a type
// that is not a request.
Result<Request> DecodeRequestBody(std::uint8_t type, std::string_view body,
                                  int version = kProtocolVersion);

// ---- replies ----

struct EmptyReply {};
struct ExpireReply { int expired = 0; };
struct StatusReply { std::string json; };
template <class V>
void VisitFields(V&, EmptyReply&) {}
template <class V>
void VisitFields(V& v, ExpireReply& r) { v.Int("expired", r.expired); }
template <class V>
void VisitFields(V& v, StatusReply& r) { v.Str("json", r.json, kMaxMaxFrame); }

using ReplyBody =
    std::variant<EmptyReply, LeaseReply, HeartbeatReply, CommitReply, ExpireReply, StatusReply>;

// A reply: the operation's Status (a scheduler error such as FailedPrecondition travels here; it
// is not a protocol violation) and, when OK, the body of the request's kind:
//   RegisterWorker, Fail, Release, DiscardCheckpoint, Drain, Cancel, Bye, EvictSegment -> EmptyReply;
//   Lease, CompleteAndContinue -> LeaseReply;
//   Heartbeat -> HeartbeatReply;  CommitCheckpoint, Complete -> CommitReply;
//   ExpireLeases -> ExpireReply;  GetStatus -> StatusReply.
struct Reply {
  Status status;
  ReplyBody body;
};
// The body variant a request type's OK reply holds (EmptyReply for most).
ReplyBody EmptyReplyBodyFor(MsgType request);
// Encodes `reply` as the answer to a request of type `request`. An OK reply whose body is not
// the request's kind is encoded as an Internal error instead (a server bug, never a bad frame).
// Error messages are clipped to kMaxTextBytes.
std::string EncodeReplyBody(MsgType request, const Reply& reply, int version = kProtocolVersion);
Result<Reply> DecodeReplyBody(MsgType request, std::string_view body, int version = kProtocolVersion);

// ---- stream splitting and the two ends of a session (pure state machines) ----

// Cuts a byte stream into frame payloads. Holds at most one partial frame: the length prefix is
// checked against the cap as soon as its 4 bytes are in, so no more than cap + one read chunk is
// ever buffered.
class FrameSplitter {
 public:
  explicit FrameSplitter(std::uint32_t max_frame) : max_frame_(max_frame) {}
  void Append(std::string_view bytes) { buf_.append(bytes.data(), bytes.size()); }
  // The next complete payload (nullopt: need more bytes); Corruption on a bad length prefix,
  // with violation() saying which. After an error the splitter stays failed.
  Result<std::optional<std::string>> Next();
  // Changes the cap for the frames not yet started (the server raises it after the Hello).
  void set_max_frame(std::uint32_t max_frame) { max_frame_ = max_frame; }
  // Bytes of an incomplete frame (0 between frames).
  std::size_t buffered() const { return buf_.size() - pos_; }
  Violation violation() const { return violation_; }

 private:
  std::uint32_t max_frame_;
  std::string buf_;
  std::size_t pos_ = 0;
  Violation violation_ = Violation::kNone;
};

// The server's end: verifies every frame a client sends.
class ServerSession {
 public:
  ServerSession(const RunSecret& secret, std::uint64_t session_id, const Nonce& server_nonce,
                std::uint32_t max_frame, std::string run_id);

  // The Challenge frame (length prefix included) to send first.
  std::string ChallengeFrame() const;

  struct Incoming {
    bool hello = false;  // true: the handshake completed (answer with SealHelloReply)
    Hello hello_body;
    std::uint64_t seq = 0;
    Request request;     // when !hello
  };
  // Verifies one payload. Any error is a protocol violation: close the connection; violation()
  // classifies it and the status message says what was wrong. After an error every further
  // call fails.
  Result<Incoming> Receive(std::string_view payload);

  std::string SealHelloReply(const HelloReply& reply) const;
  // The reply (length prefix included) to the request with sequence `seq` and type `request`.
  std::string SealReply(std::uint64_t seq, MsgType request, const Reply& reply) const;

  bool authenticated() const { return authenticated_; }
  std::uint64_t session_id() const { return session_; }
  std::uint64_t last_seq() const { return last_seq_; }
  Violation violation() const { return violation_; }
  const std::string& client_name() const { return client_name_; }

 private:
  Status Refuse(Violation v, std::string msg);

  RunSecret secret_;
  std::uint64_t session_;
  Nonce server_nonce_;
  std::uint32_t max_frame_;
  std::string run_id_;
  SessionKeys keys_;
  bool authenticated_ = false;
  std::uint64_t last_seq_ = 0;
  Violation violation_ = Violation::kNone;
  std::string client_name_;
};

// The client's end: answers the Challenge, seals requests, verifies replies.
class ClientSession {
 public:
  ClientSession(const RunSecret& secret, std::string client_name, std::int64_t pid,
                const Nonce& client_nonce);

  // The server's first payload; returns the Hello frame to send. Corruption if it is not a
  // well-formed Challenge of this protocol version.
  Result<std::string> OnChallenge(std::string_view payload);
  // The HelloReply payload; Corruption if its MAC or sequence is wrong (wrong secret on one end,
  // or not our coordinator).
  Result<HelloReply> OnHelloReply(std::string_view payload);

  // Seals `request` with the next sequence number (written to *seq).
  std::string SealRequest(const Request& request, std::uint64_t* seq);
  // Verifies and decodes the reply to request `seq` of type `request`.
  Result<Reply> OpenReply(std::string_view payload, std::uint64_t seq, MsgType request);

  // For tests and fuzzing: a frame of any type/sequence/body under this session's c2s key.
  std::string SealRaw(std::uint8_t type, std::uint64_t seq, std::string_view body) const;

  const Challenge& challenge() const { return challenge_; }
  std::uint64_t next_seq() const { return next_seq_; }

 private:
  RunSecret secret_;
  std::string client_name_;
  std::int64_t pid_;
  Nonce client_nonce_;
  Challenge challenge_;
  SessionKeys keys_;
  bool challenged_ = false;
  bool authenticated_ = false;
  std::uint64_t next_seq_ = 1;
};

// Fresh randomness for sessions (RAND_bytes); Internal if the CSPRNG fails.
Result<Nonce> RandomNonce();
Result<std::uint64_t> RandomSessionId();

}  // namespace radlads::protocol
