#include "rpc/protocol.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <bit>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>

#include "contract/codec.h"

namespace radlads::protocol {
namespace {

// Request variant index <-> type code.
constexpr MsgType kRequestTypes[] = {
    MsgType::kRegisterWorker, MsgType::kLease,   MsgType::kHeartbeat,    MsgType::kCommitCheckpoint,
    MsgType::kComplete,       MsgType::kFail,    MsgType::kRelease,      MsgType::kDrain,
    MsgType::kExpireLeases,   MsgType::kGetStatus, MsgType::kBye,          MsgType::kEvictSegment,
    MsgType::kCompleteAndContinue, MsgType::kCancel, MsgType::kDiscardCheckpoint};
static_assert(std::size(kRequestTypes) == std::variant_size_v<Request>);

template <std::size_t I = 0>
Request RequestOfIndex(std::size_t index) {
  if constexpr (I < std::variant_size_v<Request>) {
    if (index == I) return Request(std::in_place_index<I>);
    return RequestOfIndex<I + 1>(index);
  } else {
    return Request{};
  }
}

std::size_t ReplyIndexFor(MsgType request) {
  switch (request) {
    case MsgType::kLease:
    case MsgType::kCompleteAndContinue: return 1;
    case MsgType::kHeartbeat: return 2;
    case MsgType::kCommitCheckpoint:
    case MsgType::kComplete: return 3;
    case MsgType::kExpireLeases: return 4;
    case MsgType::kGetStatus: return 5;
    default: return 0;
  }
}

template <std::size_t I = 0>
ReplyBody ReplyOfIndex(std::size_t index) {
  if constexpr (I < std::variant_size_v<ReplyBody>) {
    if (index == I) return ReplyBody(std::in_place_index<I>);
    return ReplyOfIndex<I + 1>(index);
  } else {
    return ReplyBody{};
  }
}

void PutBE(char* p, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[bytes - 1 - i] = static_cast<char>(static_cast<std::uint8_t>(v >> (8 * i)));
  }
}

std::uint64_t GetBE(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<std::uint8_t>(p[i]);
  return v;
}

// HMAC-SHA256 over the concatenation of `parts`. False only if OpenSSL fails.
bool Hmac(const std::uint8_t* key, std::size_t key_len, std::initializer_list<std::string_view> parts,
          Mac* out) {
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (kHmac == nullptr) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(kHmac);
  if (ctx == nullptr) return false;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  bool ok = EVP_MAC_init(ctx, key, key_len, params) == 1;
  for (std::string_view p : parts) {
    ok = ok && EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(p.data()), p.size()) == 1;
  }
  std::size_t len = 0;
  ok = ok && EVP_MAC_final(ctx, out->data(), &len, out->size()) == 1 && len == out->size();
  EVP_MAC_CTX_free(ctx);
  return ok;
}

std::string_view AsView(const std::array<std::uint8_t, 32>& a) {
  return {reinterpret_cast<const char*>(a.data()), a.size()};
}

std::string Hex64(std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 15; i >= 0; --i) s.push_back(kHex[(v >> (4 * i)) & 15]);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

bool IsRequestType(std::uint8_t type) {
  return type >= kFirstRequestType && type <= kLastRequestType;
}

std::string MsgTypeName(std::uint8_t type) {
  const bool reply = (type & kReplyBit) != 0 && IsRequestType(type & ~kReplyBit);
  const std::uint8_t base = reply ? static_cast<std::uint8_t>(type & ~kReplyBit) : type;
  std::string name;
  switch (static_cast<MsgType>(base)) {
    case MsgType::kChallenge: name = "challenge"; break;
    case MsgType::kHello: name = "hello"; break;
    case MsgType::kHelloReply: name = "hello_reply"; break;
    case MsgType::kRegisterWorker: name = "register_worker"; break;
    case MsgType::kLease: name = "lease"; break;
    case MsgType::kHeartbeat: name = "heartbeat"; break;
    case MsgType::kCommitCheckpoint: name = "commit_checkpoint"; break;
    case MsgType::kComplete: name = "complete"; break;
    case MsgType::kFail: name = "fail"; break;
    case MsgType::kRelease: name = "release"; break;
    case MsgType::kDrain: name = "drain"; break;
    case MsgType::kExpireLeases: name = "expire_leases"; break;
    case MsgType::kGetStatus: name = "get_status"; break;
    case MsgType::kBye: name = "bye"; break;
    case MsgType::kEvictSegment: name = "evict_segment"; break;
    case MsgType::kCompleteAndContinue: name = "complete_and_continue"; break;
    case MsgType::kCancel: name = "cancel"; break;
    case MsgType::kDiscardCheckpoint: name = "discard_checkpoint"; break;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      return std::string("unknown(0x") + kHex[type >> 4] + kHex[type & 15] + ")";
    }
  }
  return reply ? name + "_reply" : name;
}

std::string_view ViolationName(Violation v) {
  switch (v) {
    case Violation::kNone: return "none";
    case Violation::kOversized: return "oversized";
    case Violation::kUndersized: return "undersized";
    case Violation::kBadVersion: return "bad_version";
    case Violation::kUnauthenticated: return "unauthenticated";
    case Violation::kBadMac: return "bad_mac";
    case Violation::kBadSequence: return "bad_sequence";
    case Violation::kWrongSession: return "wrong_session";
    case Violation::kUnexpectedType: return "unexpected_type";
    case Violation::kMalformedBody: return "malformed_body";
    case Violation::kTimeout: return "timeout";
    case Violation::kTruncated: return "truncated";
    case Violation::kCount: break;
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Frames and keys
// ---------------------------------------------------------------------------------------------

Result<std::uint32_t> ParseLengthPrefix(std::string_view four_bytes, std::uint32_t max_frame,
                                        Violation* violation) {
  Violation v = Violation::kNone;
  Status st;
  std::uint32_t len = 0;
  if (four_bytes.size() != kLengthPrefixBytes) {
    v = Violation::kTruncated;
    st = Status::Corruption("length prefix needs 4 bytes, got " + std::to_string(four_bytes.size()));
  } else {
    len = static_cast<std::uint32_t>(GetBE(four_bytes.data(), 4));
    if (len > max_frame) {
      v = Violation::kOversized;
      st = Status::Corruption("frame of " + std::to_string(len) + " bytes exceeds the " +
                              std::to_string(max_frame) + "-byte cap");
    } else if (len < kHeaderBytes) {
      v = Violation::kUndersized;
      st = Status::Corruption("frame of " + std::to_string(len) + " bytes is shorter than the " +
                              std::to_string(kHeaderBytes) + "-byte header");
    }
  }
  if (violation != nullptr) *violation = v;
  if (!st.ok()) return st;
  return len;
}

Result<FrameView> ParseFrame(std::string_view payload, Violation* violation) {
  if (violation != nullptr) *violation = Violation::kNone;
  if (payload.size() < kHeaderBytes) {
    if (violation != nullptr) *violation = Violation::kUndersized;
    return Status::Corruption("frame of " + std::to_string(payload.size()) +
                              " bytes is shorter than the " + std::to_string(kHeaderBytes) +
                              "-byte header");
  }
  FrameView f;
  f.version = static_cast<std::uint8_t>(payload[0]);
  if (f.version != kProtocolVersion) {
    if (violation != nullptr) *violation = Violation::kBadVersion;
    return Status::Corruption("protocol version " + std::to_string(f.version) +
                              ", this build speaks version " + std::to_string(kProtocolVersion));
  }
  f.type = static_cast<std::uint8_t>(payload[1]);
  f.session = GetBE(payload.data() + 2, 8);
  f.seq = GetBE(payload.data() + 10, 8);
  std::memcpy(f.mac.data(), payload.data() + kSignedHeaderBytes, kMacBytes);
  f.signed_header = payload.substr(0, kSignedHeaderBytes);
  f.body = payload.substr(kHeaderBytes);
  return f;
}

Result<Mac> ComputeMac(const Key& key, std::string_view signed_header, std::string_view body) {
  Mac m{};
  if (!Hmac(key.data(), key.size(), {signed_header, body}, &m)) {
    return Status::Internal("OpenSSL HMAC-SHA256 failed");
  }
  return m;
}

std::string SealFrame(std::uint8_t type, std::uint64_t session, std::uint64_t seq,
                      std::string_view body, const Key* key) {
  const std::size_t payload = kHeaderBytes + body.size();
  std::string out(kLengthPrefixBytes + payload, '\0');
  char* p = out.data();
  PutBE(p, payload, 4);
  p[4] = static_cast<char>(kProtocolVersion);
  p[5] = static_cast<char>(type);
  PutBE(p + 6, session, 8);
  PutBE(p + 14, seq, 8);
  std::memcpy(p + kLengthPrefixBytes + kHeaderBytes, body.data(), body.size());
  if (key != nullptr) {
    Mac m{};
    // On an OpenSSL failure the MAC stays zero and the peer refuses the frame.
    if (Hmac(key->data(), key->size(),
             {std::string_view(p + kLengthPrefixBytes, kSignedHeaderBytes), body}, &m)) {
      std::memcpy(p + kLengthPrefixBytes + kSignedHeaderBytes, m.data(), kMacBytes);
    }
  }
  return out;
}

bool VerifyMac(const FrameView& frame, const Key& key) {
  Mac expected{};
  if (!Hmac(key.data(), key.size(), {frame.signed_header, frame.body}, &expected)) return false;
  return CRYPTO_memcmp(expected.data(), frame.mac.data(), kMacBytes) == 0;
}

SessionKeys DeriveSessionKeys(const RunSecret& secret, std::uint64_t session,
                              const Nonce& server_nonce, const Nonce& client_nonce) {
  char sess[8];
  PutBE(sess, session, 8);
  Mac master{};
  SessionKeys k;
  const bool ok =
      Hmac(secret.bytes.data(), secret.bytes.size(),
           {"radlads-coord/1 session", std::string_view(sess, 8), AsView(server_nonce),
            AsView(client_nonce)},
           &master) &&
      Hmac(master.data(), master.size(), {"radlads-coord/1 c2s"}, &k.client_to_server) &&
      Hmac(master.data(), master.size(), {"radlads-coord/1 s2c"}, &k.server_to_client);
  if (!ok) {
    // Unusable keys that differ on both ends' directions: every MAC check fails safely.
    k.client_to_server.fill(0x5a);
    k.server_to_client.fill(0xa5);
  }
  return k;
}

Result<Nonce> RandomNonce() {
  Nonce n{};
  RADLADS_RETURN_IF_ERROR(RandomBytes(n.data(), n.size()));
  return n;
}

Result<std::uint64_t> RandomSessionId() {
  std::uint8_t b[8];
  RADLADS_RETURN_IF_ERROR(RandomBytes(b, sizeof(b)));
  return GetBE(reinterpret_cast<const char*>(b), 8);
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

std::string EncodeChallenge(const Challenge& c) { return codec::EncodeWire(c); }
Result<Challenge> DecodeChallenge(std::string_view body) {
  Challenge c;
  RADLADS_RETURN_IF_ERROR(codec::DecodeWire(body, &c, "challenge"));
  return c;
}
std::string EncodeHello(const Hello& h) { return codec::EncodeWire(h); }
Result<Hello> DecodeHello(std::string_view body) {
  Hello h;
  RADLADS_RETURN_IF_ERROR(codec::DecodeWire(body, &h, "hello"));
  return h;
}
std::string EncodeHelloReply(const HelloReply& h) { return codec::EncodeWire(h); }
Result<HelloReply> DecodeHelloReply(std::string_view body) {
  HelloReply h;
  RADLADS_RETURN_IF_ERROR(codec::DecodeWire(body, &h, "hello_reply"));
  return h;
}

MsgType TypeOf(const Request& r) { return kRequestTypes[r.index()]; }

std::string EncodeRequestBody(const Request& r, int version) {
  return std::visit([&](const auto& body) { return codec::EncodeWire(body, version); }, r);
}

Result<Request> DecodeRequestBody(std::uint8_t type, std::string_view body, int version) {
  if (!IsRequestType(type)) {
    return Status::Corruption(MsgTypeName(type) + " is not a request type");
  }
  std::size_t index = 0;
  while (static_cast<std::uint8_t>(kRequestTypes[index]) != type) ++index;
  Request r = RequestOfIndex(index);
  RADLADS_RETURN_IF_ERROR(
      std::visit([&](auto& b) { return codec::DecodeWire(body, &b, MsgTypeName(type), version); }, r));
  return r;
}

ReplyBody EmptyReplyBodyFor(MsgType request) { return ReplyOfIndex(ReplyIndexFor(request)); }

std::string EncodeReplyBody(MsgType request, const Reply& reply, int version) {
  codec::WireOut o(version);
  if (!reply.status.ok()) {
    o.U8(static_cast<std::uint8_t>(reply.status.code()));
    o.Str("status.message", std::string(reply.status.message().substr(0, kMaxTextBytes)), kMaxTextBytes);
    return std::move(o.out());
  }
  if (reply.body.index() != ReplyIndexFor(request)) {
    return EncodeReplyBody(
        request, Reply{Status::Internal("server bug: the reply to " +
                                        MsgTypeName(static_cast<std::uint8_t>(request)) +
                                        " has the wrong body kind"),
                       EmptyReply{}},
        version);
  }
  o.U8(0);
  o.Str("status.message", "", kMaxTextBytes);
  std::visit([&](const auto& body) { o.Rec("", body); }, reply.body);
  return std::move(o.out());
}

namespace {

Status StatusFromCode(std::uint8_t code, std::string message) {
  switch (static_cast<Status::Code>(code)) {
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(std::move(message));
    case Status::Code::kNotFound: return Status::NotFound(std::move(message));
    case Status::Code::kCorruption: return Status::Corruption(std::move(message));
    case Status::Code::kIOError: return Status::IOError(std::move(message));
    case Status::Code::kUnavailable: return Status::Unavailable(std::move(message));
    case Status::Code::kFailedPrecondition: return Status::FailedPrecondition(std::move(message));
    case Status::Code::kResourceExhausted: return Status::ResourceExhausted(std::move(message));
    default: return Status::Internal(std::move(message));
  }
}

// Decodes an OK reply's body of kind T into `out`.
template <typename T>
Status DecodeOkBody(codec::ByteReader& r, const std::string& what, Reply* out) {
  T body{};
  codec::WireIn in(r);
  VisitFields(in, body);
  RADLADS_RETURN_IF_ERROR(codec::FinishRead(r, what));
  out->body.emplace<T>(std::move(body));
  return Status::Ok();
}

}  // namespace

Result<Reply> DecodeReplyBody(MsgType request, std::string_view body, int version) {
  const std::string what = MsgTypeName(ReplyCode(request));
  codec::ByteReader r(body, version);
  codec::WireIn in(r);
  const std::uint8_t code = r.U8("status.code");
  if (r.ok() && code > static_cast<std::uint8_t>(Status::Code::kInternal)) {
    r.Fail("unknown status code " + std::to_string(code));
  }
  std::string message;
  in.Str("status.message", message, kMaxTextBytes);
  auto out = std::make_unique<Reply>();
  if (r.ok() && code != 0) {
    RADLADS_RETURN_IF_ERROR(codec::FinishRead(r, what));
    out->status = StatusFromCode(code, std::move(message));
    return std::move(*out);
  }
  if (r.ok() && !message.empty()) r.Fail("an OK status carries no message");
  Status st;
  switch (ReplyIndexFor(request)) {
    case 1: st = DecodeOkBody<LeaseReply>(r, what, out.get()); break;
    case 2: st = DecodeOkBody<HeartbeatReply>(r, what, out.get()); break;
    case 3: st = DecodeOkBody<CommitReply>(r, what, out.get()); break;
    case 4: st = DecodeOkBody<ExpireReply>(r, what, out.get()); break;
    case 5: st = DecodeOkBody<StatusReply>(r, what, out.get()); break;
    default: st = DecodeOkBody<EmptyReply>(r, what, out.get()); break;
  }
  if (!st.ok()) return st;
  return std::move(*out);
}

// ---------------------------------------------------------------------------------------------
// FrameSplitter
// ---------------------------------------------------------------------------------------------

Result<std::optional<std::string>> FrameSplitter::Next() {
  if (violation_ != Violation::kNone) {
    return Status::Corruption("the stream already failed (" +
                              std::string(ViolationName(violation_)) + ")");
  }
  const std::size_t avail = buf_.size() - pos_;
  if (avail >= kLengthPrefixBytes) {
    auto len = ParseLengthPrefix(std::string_view(buf_).substr(pos_, kLengthPrefixBytes),
                                 max_frame_, &violation_);
    if (!len.ok()) return len.status();
    if (avail >= kLengthPrefixBytes + *len) {
      std::string payload = buf_.substr(pos_ + kLengthPrefixBytes, *len);
      pos_ += kLengthPrefixBytes + *len;
      if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
      }
      return std::optional<std::string>(std::move(payload));
    }
  }
  if (pos_ > 0) {  // keep only the partial frame
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return std::optional<std::string>();
}

// ---------------------------------------------------------------------------------------------
// ServerSession
// ---------------------------------------------------------------------------------------------

ServerSession::ServerSession(const RunSecret& secret, std::uint64_t session_id,
                             const Nonce& server_nonce, std::uint32_t max_frame, std::string run_id)
    : secret_(secret),
      session_(session_id),
      server_nonce_(server_nonce),
      max_frame_(max_frame),
      run_id_(std::move(run_id)) {}

std::string ServerSession::ChallengeFrame() const {
  Challenge c;
  c.session = session_;
  c.server_nonce = server_nonce_;
  c.max_frame = max_frame_;
  c.run_id = run_id_.substr(0, kMaxIdBytes);
  return SealFrame(static_cast<std::uint8_t>(MsgType::kChallenge), session_, 0, EncodeChallenge(c),
                   nullptr);
}

Status ServerSession::Refuse(Violation v, std::string msg) {
  if (violation_ == Violation::kNone) violation_ = v;
  return Status::Corruption(std::move(msg));
}

Result<ServerSession::Incoming> ServerSession::Receive(std::string_view payload) {
  if (violation_ != Violation::kNone) {
    return Status::Corruption("the session already failed (" +
                              std::string(ViolationName(violation_)) + ")");
  }
  Violation v = Violation::kNone;
  auto parsed = ParseFrame(payload, &v);
  if (!parsed.ok()) return Refuse(v, parsed.status().message());
  const FrameView& f = *parsed;
  const std::string type = MsgTypeName(f.type);
  if (f.session != session_) {
    return Refuse(Violation::kWrongSession, type + " frame for session " + Hex64(f.session) +
                                                ", this connection's session is " + Hex64(session_));
  }
  if (!authenticated_) {
    if (f.type != static_cast<std::uint8_t>(MsgType::kHello)) {
      return Refuse(Violation::kUnauthenticated, type + " frame before a valid hello");
    }
    auto hello = DecodeHello(f.body);
    if (!hello.ok()) return Refuse(Violation::kMalformedBody, hello.status().message());
    keys_ = DeriveSessionKeys(secret_, session_, server_nonce_, hello->client_nonce);
    if (!VerifyMac(f, keys_.client_to_server)) {
      return Refuse(Violation::kBadMac,
                    "hello from '" + hello->client_name +
                        "' does not verify: the client's RUN/secret differs from this "
                        "coordinator's, or the frame was altered or replayed from another "
                        "connection");
    }
    if (f.seq != 1) {
      return Refuse(Violation::kBadSequence,
                    "hello has sequence " + std::to_string(f.seq) + ", expected 1");
    }
    authenticated_ = true;
    last_seq_ = 1;
    client_name_ = hello->client_name;
    Incoming in;
    in.hello = true;
    in.hello_body = std::move(hello).value();
    in.seq = 1;
    return in;
  }
  if (!VerifyMac(f, keys_.client_to_server)) {
    return Refuse(Violation::kBadMac, type + " frame (sequence " + std::to_string(f.seq) +
                                          ") does not verify: corrupted or forged");
  }
  if (f.seq != last_seq_ + 1) {
    return Refuse(Violation::kBadSequence,
                  type + " frame has sequence " + std::to_string(f.seq) + ", expected " +
                      std::to_string(last_seq_ + 1) +
                      (f.seq <= last_seq_ ? ": replayed or reordered" : ": frames skipped"));
  }
  if (!IsRequestType(f.type)) {
    return Refuse(Violation::kUnexpectedType, type + " is not a request");
  }
  auto req = DecodeRequestBody(f.type, f.body);
  if (!req.ok()) return Refuse(Violation::kMalformedBody, req.status().message());
  last_seq_ = f.seq;
  Incoming in;
  in.seq = f.seq;
  in.request = std::move(req).value();
  return in;
}

std::string ServerSession::SealHelloReply(const HelloReply& reply) const {
  return SealFrame(static_cast<std::uint8_t>(MsgType::kHelloReply), session_, 1,
                   EncodeHelloReply(reply), &keys_.server_to_client);
}

std::string ServerSession::SealReply(std::uint64_t seq, MsgType request, const Reply& reply) const {
  std::string body = EncodeReplyBody(request, reply);
  // The client refuses a reply that breaks a field limit; send an error it can read instead.
  if (auto check = DecodeReplyBody(request, body); !check.ok()) {
    body = EncodeReplyBody(
        request, Reply{Status::ResourceExhausted("the reply does not fit the protocol's limits: " +
                                                 check.status().message()),
                       EmptyReply{}});
  }
  return SealFrame(ReplyCode(request), session_, seq, body, &keys_.server_to_client);
}

// ---------------------------------------------------------------------------------------------
// ClientSession
// ---------------------------------------------------------------------------------------------

ClientSession::ClientSession(const RunSecret& secret, std::string client_name, std::int64_t pid,
                             const Nonce& client_nonce)
    : secret_(secret), client_name_(std::move(client_name)), pid_(pid), client_nonce_(client_nonce) {}

Result<std::string> ClientSession::OnChallenge(std::string_view payload) {
  auto f = ParseFrame(payload);
  if (!f.ok()) return f.status();
  if (f->type != static_cast<std::uint8_t>(MsgType::kChallenge) || f->seq != 0) {
    return Status::Corruption("expected the server's challenge, got " + MsgTypeName(f->type) +
                              " (sequence " + std::to_string(f->seq) + ")");
  }
  auto c = DecodeChallenge(f->body);
  if (!c.ok()) return c.status();
  if (c->session != f->session) {
    return Status::Corruption("challenge body and header name different sessions");
  }
  challenge_ = std::move(c).value();
  keys_ = DeriveSessionKeys(secret_, challenge_.session, challenge_.server_nonce, client_nonce_);
  challenged_ = true;
  Hello h;
  h.client_nonce = client_nonce_;
  h.client_name = client_name_.substr(0, kMaxIdBytes);
  h.pid = pid_;
  next_seq_ = 2;
  return SealFrame(static_cast<std::uint8_t>(MsgType::kHello), challenge_.session, 1,
                   EncodeHello(h), &keys_.client_to_server);
}

Result<HelloReply> ClientSession::OnHelloReply(std::string_view payload) {
  if (!challenged_) return Status::Internal("OnHelloReply before OnChallenge");
  auto f = ParseFrame(payload);
  if (!f.ok()) return f.status();
  if (f->type != static_cast<std::uint8_t>(MsgType::kHelloReply) || f->seq != 1 ||
      f->session != challenge_.session) {
    return Status::Corruption("expected hello_reply (sequence 1), got " + MsgTypeName(f->type) +
                              " (sequence " + std::to_string(f->seq) + ")");
  }
  if (!VerifyMac(*f, keys_.server_to_client)) {
    return Status::Corruption("the coordinator's hello_reply does not verify: it does not hold "
                              "this run's RUN/secret");
  }
  auto h = DecodeHelloReply(f->body);
  if (!h.ok()) return h.status();
  authenticated_ = true;
  return h;
}

std::string ClientSession::SealRequest(const Request& request, std::uint64_t* seq) {
  *seq = next_seq_++;
  return SealFrame(static_cast<std::uint8_t>(TypeOf(request)), challenge_.session, *seq,
                   EncodeRequestBody(request), &keys_.client_to_server);
}

std::string ClientSession::SealRaw(std::uint8_t type, std::uint64_t seq,
                                   std::string_view body) const {
  return SealFrame(type, challenge_.session, seq, body, &keys_.client_to_server);
}

Result<Reply> ClientSession::OpenReply(std::string_view payload, std::uint64_t seq,
                                       MsgType request) {
  if (!authenticated_) return Status::Internal("OpenReply before the handshake completed");
  auto f = ParseFrame(payload);
  if (!f.ok()) return f.status();
  if (f->session != challenge_.session) {
    return Status::Corruption("reply for session " + Hex64(f->session) + ", expected " +
                              Hex64(challenge_.session));
  }
  if (!VerifyMac(*f, keys_.server_to_client)) {
    return Status::Corruption(MsgTypeName(f->type) + " (sequence " + std::to_string(f->seq) +
                              ") from the coordinator does not verify");
  }
  if (f->seq != seq || f->type != ReplyCode(request)) {
    return Status::Corruption("expected " + MsgTypeName(ReplyCode(request)) + " to sequence " +
                              std::to_string(seq) + ", got " + MsgTypeName(f->type) +
                              " to sequence " + std::to_string(f->seq));
  }
  return DecodeReplyBody(request, f->body);
}

}  // namespace radlads::protocol
