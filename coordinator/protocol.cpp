#include "coordinator/protocol.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <bit>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <cstring>
#include <type_traits>
#include <utility>

namespace radlads::protocol {
namespace {

// ---------------------------------------------------------------------------------------------
// The body codec: big-endian fixed-width integers, length-prefixed strings and lists.
// ---------------------------------------------------------------------------------------------

class Out {
 public:
  void U8(std::uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void U32(std::uint32_t v) {
    for (int i = 3; i >= 0; --i) U8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void U64(std::uint64_t v) {
    for (int i = 7; i >= 0; --i) U8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void I32(std::int32_t v) { U32(static_cast<std::uint32_t>(v)); }
  void I64(std::int64_t v) { U64(static_cast<std::uint64_t>(v)); }
  void F64(double v) { U64(std::bit_cast<std::uint64_t>(v)); }
  void Bool(bool b) { U8(b ? 1 : 0); }
  // Strings are written whole; the decoder enforces the field's maximum (the client checks its
  // requests by decoding them before sending, the server its replies).
  void Str(std::string_view v) {
    U32(static_cast<std::uint32_t>(v.size()));
    s_.append(v.data(), v.size());
  }
  void Count(std::size_t n) { U32(static_cast<std::uint32_t>(n)); }
  template <std::size_t N>
  void Bytes(const std::array<std::uint8_t, N>& a) {
    s_.append(reinterpret_cast<const char*>(a.data()), N);
  }
  std::string& str() { return s_; }

 private:
  std::string s_;
};

// Bounds-checked reader; the first failure sticks (later reads return zero values).
class In {
 public:
  explicit In(std::string_view b) : rest_(b) {}

  std::uint8_t U8(const char* f) {
    if (!Need(1, f)) return 0;
    const auto v = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return v;
  }
  std::uint32_t U32(const char* f) {
    if (!Need(4, f)) return 0;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | static_cast<std::uint8_t>(rest_[i]);
    rest_.remove_prefix(4);
    return v;
  }
  std::uint64_t U64(const char* f) {
    if (!Need(8, f)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<std::uint8_t>(rest_[i]);
    rest_.remove_prefix(8);
    return v;
  }
  std::int32_t I32(const char* f) { return static_cast<std::int32_t>(U32(f)); }
  std::int64_t I64(const char* f) { return static_cast<std::int64_t>(U64(f)); }
  double F64(const char* f) { return std::bit_cast<double>(U64(f)); }
  bool Bool(const char* f) {
    const std::uint8_t b = U8(f);
    if (b > 1) Fail(std::string("field '") + f + "' is not a bool (" + std::to_string(b) + ")");
    return b == 1;
  }
  std::string Str(const char* f, std::size_t max) {
    const std::uint32_t n = U32(f);
    if (!ok()) return {};
    if (n > max) {
      Fail(std::string("field '") + f + "' is " + std::to_string(n) + " bytes, more than its " +
           std::to_string(max) + "-byte limit");
      return {};
    }
    if (!Need(n, f)) return {};
    std::string s(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return s;
  }
  // A list count: at most `max`, and each item needs at least `min_item` bytes, so a corrupt
  // count can never size an allocation beyond what the frame could hold.
  std::size_t Count(const char* f, std::size_t max, std::size_t min_item) {
    const std::uint32_t n = U32(f);
    if (!ok()) return 0;
    if (n > max) {
      Fail(std::string("list '") + f + "' has " + std::to_string(n) + " items, more than its " +
           std::to_string(max) + "-item limit");
      return 0;
    }
    if (static_cast<std::uint64_t>(n) * min_item > rest_.size()) {
      Fail(std::string("list '") + f + "' claims " + std::to_string(n) + " items but only " +
           std::to_string(rest_.size()) + " bytes are left");
      return 0;
    }
    return n;
  }
  template <std::size_t N>
  void Bytes(std::array<std::uint8_t, N>* a, const char* f) {
    if (!Need(N, f)) return;
    std::memcpy(a->data(), rest_.data(), N);
    rest_.remove_prefix(N);
  }

  void Fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
    rest_ = {};
  }
  bool ok() const { return error_.empty(); }
  // OK when every byte was consumed; otherwise Corruption("<what>: <error>").
  Status Finish(std::string_view what) {
    if (ok() && !rest_.empty()) {
      Fail(std::to_string(rest_.size()) + " trailing bytes");
    }
    if (ok()) return Status::Ok();
    return Status::Corruption(std::string(what) + ": " + error_);
  }

 private:
  bool Need(std::size_t n, const char* f) {
    if (!ok()) return false;
    if (rest_.size() < n) {
      Fail(std::string("truncated at field '") + f + "' (needs " + std::to_string(n) +
           " bytes, " + std::to_string(rest_.size()) + " left)");
      return false;
    }
    return true;
  }
  std::string_view rest_;
  std::string error_;
};

// Minimum encoded sizes, for list counts.
constexpr std::size_t kMinStr = 4;
constexpr std::size_t kMinFile = kMinStr + 8 + kMinStr;
constexpr std::size_t kMinValue = kMinStr + 8;
constexpr std::size_t kMinCheckpointRecord = 8 + 8 + 4;
constexpr std::size_t kMinCommitted = kMinStr + kMinCheckpointRecord + 8 + 4 + 8 + 1;

// ---- shared records ----

void Put(Out& o, const WorkerInfo& w) {
  o.Str(w.id);
  o.Str(w.host);
  o.I64(w.pid);
  o.I32(w.group_size);
  o.Count(w.members.size());
  for (const auto& m : w.members) o.Str(m);
  o.U32(w.capabilities);
}
void Get(In& in, WorkerInfo* w) {
  w->id = in.Str("worker.id", kMaxIdBytes);
  w->host = in.Str("worker.host", kMaxIdBytes);
  w->pid = in.I64("worker.pid");
  w->group_size = in.I32("worker.group_size");
  const std::size_t n = in.Count("worker.members", kMaxListItems, kMinStr);
  w->members.clear();
  w->members.reserve(n);
  for (std::size_t i = 0; i < n && in.ok(); ++i) {
    w->members.push_back(in.Str("worker.members[]", kMaxIdBytes));
  }
  w->capabilities = in.U32("worker.capabilities");
}

void Put(Out& o, const TaskSpec& t) {
  o.Str(t.id);
  o.U8(static_cast<std::uint8_t>(t.type));
  o.I32(t.layer);
  o.I32(t.segment);
  o.I32(t.stage);
  o.I32(t.first_layer);
  o.I32(t.last_layer);
  o.Count(t.deps.size());
  for (const auto& d : t.deps) o.Str(d);
  o.I64(t.tokens);
  o.I64(t.sample_begin);
  o.I64(t.sample_end);
  o.I64(t.optimizer_steps);
  o.I32(t.workers);
}
void Get(In& in, TaskSpec* t) {
  t->id = in.Str("task.id", kMaxIdBytes);
  const std::uint8_t type = in.U8("task.type");
  if (in.ok() && type > static_cast<std::uint8_t>(TaskType::kEval)) {
    in.Fail("unknown task type " + std::to_string(type));
  }
  t->type = static_cast<TaskType>(in.ok() ? type : 0);
  t->layer = in.I32("task.layer");
  t->segment = in.I32("task.segment");
  t->stage = in.I32("task.stage");
  t->first_layer = in.I32("task.first_layer");
  t->last_layer = in.I32("task.last_layer");
  const std::size_t n = in.Count("task.deps", kMaxListItems, kMinStr);
  t->deps.clear();
  t->deps.reserve(n);
  for (std::size_t i = 0; i < n && in.ok(); ++i) t->deps.push_back(in.Str("task.deps[]", kMaxIdBytes));
  t->tokens = in.I64("task.tokens");
  t->sample_begin = in.I64("task.sample_begin");
  t->sample_end = in.I64("task.sample_end");
  t->optimizer_steps = in.I64("task.optimizer_steps");
  t->workers = in.I32("task.workers");
}

void Put(Out& o, const CheckpointRecord& c) {
  o.I64(c.step);
  o.I64(c.tokens_consumed);
  o.Count(c.files.size());
  for (const auto& f : c.files) {
    o.Str(f.path);
    o.I64(f.bytes);
    o.Str(f.checksum);
  }
}
void Get(In& in, CheckpointRecord* c) {
  c->step = in.I64("checkpoint.step");
  c->tokens_consumed = in.I64("checkpoint.tokens_consumed");
  const std::size_t n = in.Count("checkpoint.files", kMaxFiles, kMinFile);
  c->files.clear();
  c->files.reserve(n);
  for (std::size_t i = 0; i < n && in.ok(); ++i) {
    FileRecord f;
    f.path = in.Str("checkpoint.files[].path", kMaxPathBytes);
    f.bytes = in.I64("checkpoint.files[].bytes");
    f.checksum = in.Str("checkpoint.files[].checksum", kMaxChecksumBytes);
    c->files.push_back(std::move(f));
  }
}

void Put(Out& o, const std::vector<NamedValue>& v) {
  o.Count(v.size());
  for (const auto& nv : v) {
    o.Str(nv.name);
    o.F64(nv.value);
  }
}
void Get(In& in, std::vector<NamedValue>* v, const char* field) {
  const std::size_t n = in.Count(field, kMaxValues, kMinValue);
  v->clear();
  v->reserve(n);
  for (std::size_t i = 0; i < n && in.ok(); ++i) {
    NamedValue nv;
    nv.name = in.Str("values[].name", kMaxIdBytes);
    nv.value = in.F64("values[].value");
    v->push_back(std::move(nv));
  }
}

void Put(Out& o, const Progress& p) {
  o.I64(p.tokens);
  o.I64(p.step);
  Put(o, p.losses);
  o.F64(p.throughput);
}
void Get(In& in, Progress* p) {
  p->tokens = in.I64("progress.tokens");
  p->step = in.I64("progress.step");
  Get(in, &p->losses, "progress.losses");
  p->throughput = in.F64("progress.throughput");
}

void Put(Out& o, const FinalRecord& f) {
  Put(o, f.checkpoint);
  Put(o, f.metrics);
}
void Get(In& in, FinalRecord* f) {
  Get(in, &f->checkpoint);
  Get(in, &f->metrics, "final.metrics");
}

void Put(Out& o, const CommittedCheckpoint& c) {
  o.Str(c.task);
  Put(o, c.record);
  o.U64(c.lease);
  o.I32(c.attempt);
  o.I64(c.committed_ms);
  o.Bool(c.final);
}
void Get(In& in, CommittedCheckpoint* c) {
  c->task = in.Str("committed.task", kMaxIdBytes);
  Get(in, &c->record);
  c->lease = in.U64("committed.lease");
  c->attempt = in.I32("committed.attempt");
  c->committed_ms = in.I64("committed.committed_ms");
  c->final = in.Bool("committed.final");
}

void Put(Out& o, const LeaseGrant& g) {
  o.U64(g.lease);
  Put(o, g.task);
  o.I32(g.attempt);
  o.I64(g.deadline_ms);
  o.Bool(g.resume_from.has_value());
  if (g.resume_from) Put(o, *g.resume_from);
  o.Count(g.inputs.size());
  for (const auto& c : g.inputs) Put(o, c);
}
void Get(In& in, LeaseGrant* g) {
  g->lease = in.U64("grant.lease");
  Get(in, &g->task);
  g->attempt = in.I32("grant.attempt");
  g->deadline_ms = in.I64("grant.deadline_ms");
  g->resume_from.reset();
  if (in.Bool("grant.has_resume_from")) {
    CommittedCheckpoint c;
    Get(in, &c);
    g->resume_from = std::move(c);
  }
  const std::size_t n = in.Count("grant.inputs", kMaxListItems, kMinCommitted);
  g->inputs.clear();
  g->inputs.reserve(n);
  for (std::size_t i = 0; i < n && in.ok(); ++i) {
    CommittedCheckpoint c;
    Get(in, &c);
    g->inputs.push_back(std::move(c));
  }
}

// ---- request bodies ----

void PutBody(Out& o, const RegisterWorkerRequest& r) { Put(o, r.worker); }
void GetBody(In& in, RegisterWorkerRequest* r) { Get(in, &r->worker); }
void PutBody(Out& o, const LeaseRequest& r) {
  o.Str(r.worker);
  o.U32(r.task_types);
}
void GetBody(In& in, LeaseRequest* r) {
  r->worker = in.Str("worker", kMaxIdBytes);
  r->task_types = in.U32("task_types");
}
void PutBody(Out& o, const HeartbeatRequest& r) {
  o.U64(r.lease);
  Put(o, r.progress);
}
void GetBody(In& in, HeartbeatRequest* r) {
  r->lease = in.U64("lease");
  Get(in, &r->progress);
}
void PutBody(Out& o, const CommitRequest& r) {
  o.U64(r.lease);
  Put(o, r.checkpoint);
}
void GetBody(In& in, CommitRequest* r) {
  r->lease = in.U64("lease");
  Get(in, &r->checkpoint);
}
void PutBody(Out& o, const CompleteRequest& r) {
  o.U64(r.lease);
  Put(o, r.final_record);
}
void GetBody(In& in, CompleteRequest* r) {
  r->lease = in.U64("lease");
  Get(in, &r->final_record);
}
void PutBody(Out& o, const FailRequest& r) {
  o.U64(r.lease);
  o.Str(r.reason);
  o.Bool(r.retryable);
}
void GetBody(In& in, FailRequest* r) {
  r->lease = in.U64("lease");
  r->reason = in.Str("reason", kMaxTextBytes);
  r->retryable = in.Bool("retryable");
}
void PutBody(Out& o, const ReleaseRequest& r) {
  o.U64(r.lease);
  o.Str(r.reason);
}
void GetBody(In& in, ReleaseRequest* r) {
  r->lease = in.U64("lease");
  r->reason = in.Str("reason", kMaxTextBytes);
}
void PutBody(Out& o, const DrainRequest& r) { o.Str(r.reason); }
void GetBody(In& in, DrainRequest* r) { r->reason = in.Str("reason", kMaxTextBytes); }
void PutBody(Out&, const ExpireLeasesRequest&) {}
void GetBody(In&, ExpireLeasesRequest*) {}
void PutBody(Out&, const GetStatusRequest&) {}
void GetBody(In&, GetStatusRequest*) {}
void PutBody(Out&, const ByeRequest&) {}
void GetBody(In&, ByeRequest*) {}

// ---- reply bodies ----

void PutBody(Out&, const EmptyReply&) {}
void GetBody(In&, EmptyReply*) {}
void PutBody(Out& o, const LeaseReply& r) {
  o.U8(static_cast<std::uint8_t>(r.outcome));
  o.Bool(r.grant.has_value());
  if (r.grant) Put(o, *r.grant);
}
void GetBody(In& in, LeaseReply* r) {
  const std::uint8_t outcome = in.U8("outcome");
  if (in.ok() && outcome > static_cast<std::uint8_t>(LeaseOutcome::kRunOver)) {
    in.Fail("unknown lease outcome " + std::to_string(outcome));
  }
  r->outcome = static_cast<LeaseOutcome>(in.ok() ? outcome : 0);
  r->grant.reset();
  if (in.Bool("has_grant")) {
    LeaseGrant g;
    Get(in, &g);
    r->grant = std::move(g);
  }
}
void PutBody(Out& o, const HeartbeatReply& r) {
  o.I64(r.deadline_ms);
  o.Bool(r.stop);
  o.Str(r.stop_reason);
}
void GetBody(In& in, HeartbeatReply* r) {
  r->deadline_ms = in.I64("deadline_ms");
  r->stop = in.Bool("stop");
  r->stop_reason = in.Str("stop_reason", kMaxTextBytes);
}
void PutBody(Out& o, const CommitReply& r) {
  o.I64(r.tokens_credited);
  o.Bool(r.duplicate);
}
void GetBody(In& in, CommitReply* r) {
  r->tokens_credited = in.I64("tokens_credited");
  r->duplicate = in.Bool("duplicate");
}
void PutBody(Out& o, const ExpireReply& r) { o.I32(r.expired); }
void GetBody(In& in, ExpireReply* r) { r->expired = in.I32("expired"); }
void PutBody(Out& o, const StatusReply& r) { o.Str(r.json); }
void GetBody(In& in, StatusReply* r) { r->json = in.Str("json", kMaxMaxFrame); }

// Request variant index <-> type code.
constexpr MsgType kRequestTypes[] = {
    MsgType::kRegisterWorker, MsgType::kLease,   MsgType::kHeartbeat,    MsgType::kCommitCheckpoint,
    MsgType::kComplete,       MsgType::kFail,    MsgType::kRelease,      MsgType::kDrain,
    MsgType::kExpireLeases,   MsgType::kGetStatus, MsgType::kBye};
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
    case MsgType::kLease: return 1;
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

std::string EncodeChallenge(const Challenge& c) {
  Out o;
  o.U64(c.session);
  o.Bytes(c.server_nonce);
  o.U32(c.max_frame);
  o.Str(c.run_id);
  return std::move(o.str());
}
Result<Challenge> DecodeChallenge(std::string_view body) {
  In in(body);
  Challenge c;
  c.session = in.U64("session");
  in.Bytes(&c.server_nonce, "server_nonce");
  c.max_frame = in.U32("max_frame");
  c.run_id = in.Str("run_id", kMaxIdBytes);
  RADLADS_RETURN_IF_ERROR(in.Finish("challenge"));
  return c;
}
std::string EncodeHello(const Hello& h) {
  Out o;
  o.Bytes(h.client_nonce);
  o.Str(h.client_name);
  o.I64(h.pid);
  return std::move(o.str());
}
Result<Hello> DecodeHello(std::string_view body) {
  In in(body);
  Hello h;
  in.Bytes(&h.client_nonce, "client_nonce");
  h.client_name = in.Str("client_name", kMaxIdBytes);
  h.pid = in.I64("pid");
  RADLADS_RETURN_IF_ERROR(in.Finish("hello"));
  return h;
}
std::string EncodeHelloReply(const HelloReply& h) {
  Out o;
  o.Str(h.run_id);
  o.I64(h.server_time_ms);
  return std::move(o.str());
}
Result<HelloReply> DecodeHelloReply(std::string_view body) {
  In in(body);
  HelloReply h;
  h.run_id = in.Str("run_id", kMaxIdBytes);
  h.server_time_ms = in.I64("server_time_ms");
  RADLADS_RETURN_IF_ERROR(in.Finish("hello_reply"));
  return h;
}

MsgType TypeOf(const Request& r) { return kRequestTypes[r.index()]; }

std::string EncodeRequestBody(const Request& r) {
  Out o;
  std::visit([&](const auto& body) { PutBody(o, body); }, r);
  return std::move(o.str());
}

Result<Request> DecodeRequestBody(std::uint8_t type, std::string_view body) {
  if (!IsRequestType(type)) {
    return Status::Corruption(MsgTypeName(type) + " is not a request type");
  }
  std::size_t index = 0;
  while (static_cast<std::uint8_t>(kRequestTypes[index]) != type) ++index;
  Request r = RequestOfIndex(index);
  In in(body);
  std::visit([&](auto& b) { GetBody(in, &b); }, r);
  RADLADS_RETURN_IF_ERROR(in.Finish(MsgTypeName(type)));
  return r;
}

ReplyBody EmptyReplyBodyFor(MsgType request) { return ReplyOfIndex(ReplyIndexFor(request)); }

std::string EncodeReplyBody(MsgType request, const Reply& reply) {
  Out o;
  if (!reply.status.ok()) {
    o.U8(static_cast<std::uint8_t>(reply.status.code()));
    std::string_view msg = reply.status.message();
    o.Str(msg.substr(0, kMaxTextBytes));
    return std::move(o.str());
  }
  if (reply.body.index() != ReplyIndexFor(request)) {
    return EncodeReplyBody(
        request, Reply{Status::Internal("server bug: the reply to " +
                                        MsgTypeName(static_cast<std::uint8_t>(request)) +
                                        " has the wrong body kind"),
                       EmptyReply{}});
  }
  o.U8(0);
  o.Str("");
  std::visit([&](const auto& body) { PutBody(o, body); }, reply.body);
  return std::move(o.str());
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
Status DecodeOkBody(In& in, const std::string& what, Reply* out) {
  T body{};
  GetBody(in, &body);
  RADLADS_RETURN_IF_ERROR(in.Finish(what));
  out->body.emplace<T>(std::move(body));
  return Status::Ok();
}

}  // namespace

Result<Reply> DecodeReplyBody(MsgType request, std::string_view body) {
  const std::string what = MsgTypeName(ReplyCode(request));
  In in(body);
  const std::uint8_t code = in.U8("status.code");
  if (in.ok() && code > static_cast<std::uint8_t>(Status::Code::kInternal)) {
    in.Fail("unknown status code " + std::to_string(code));
  }
  std::string message = in.Str("status.message", kMaxTextBytes);
  auto out = std::make_unique<Reply>();
  if (in.ok() && code != 0) {
    RADLADS_RETURN_IF_ERROR(in.Finish(what));
    out->status = StatusFromCode(code, std::move(message));
    return std::move(*out);
  }
  if (in.ok() && !message.empty()) in.Fail("an OK status carries no message");
  Status st;
  switch (ReplyIndexFor(request)) {
    case 1: st = DecodeOkBody<LeaseReply>(in, what, out.get()); break;
    case 2: st = DecodeOkBody<HeartbeatReply>(in, what, out.get()); break;
    case 3: st = DecodeOkBody<CommitReply>(in, what, out.get()); break;
    case 4: st = DecodeOkBody<ExpireReply>(in, what, out.get()); break;
    case 5: st = DecodeOkBody<StatusReply>(in, what, out.get()); break;
    default: st = DecodeOkBody<EmptyReply>(in, what, out.get()); break;
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
