// The wire protocol without sockets (rpc/protocol.h, docs/protocol.md): every message
// round-trips bit-exactly; the decoders refuse truncated, oversized, corrupted, out-of-range and
// wrong-version input; the handshake and the HMAC refuse a wrong secret, a flipped bit anywhere,
// a replayed, reordered or skipped frame, a frame from another connection and a reflected one.
// Also the run secret file (rpc/secret.h).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "base/file.h"
#include "rpc/protocol.h"
#include "rpc/secret.h"
#include "tests/testing/test_util.h"

namespace radlads::protocol {
namespace {

using radlads::testing::ScratchDir;

RunSecret SecretOf(std::uint8_t fill) {
  RunSecret s;
  for (std::size_t i = 0; i < s.bytes.size(); ++i) s.bytes[i] = static_cast<std::uint8_t>(fill + i);
  return s;
}

Nonce NonceOf(std::uint8_t fill) {
  Nonce n;
  n.fill(fill);
  return n;
}

CheckpointRecord SampleCheckpoint() {
  CheckpointRecord c;
  c.step = 42;
  c.tokens_consumed = 123'456'789'012;
  c.files = {{"ckpt/align/L003/S00001/state.safetensors", 1 << 30, "xxh3:0123456789abcdef"},
             {"ckpt/align/L003/S00001/optim.safetensors", 7, "xxh3:fedcba9876543210"}};
  return c;
}

CommittedCheckpoint SampleCommitted(const std::string& task, bool final) {
  CommittedCheckpoint c;
  c.task = task;
  c.record = SampleCheckpoint();
  c.lease = 77;
  c.attempt = 2;
  c.committed_ms = 1'700'000'000'123;
  c.final = final;
  return c;
}

std::vector<Request> SampleRequests() {
  WorkerInfo w;
  w.id = "node07/rank3";
  w.host = "node07";
  w.pid = 4242;
  w.group_size = 8;
  w.members = {"node07/rank0", "node07/rank1"};
  w.capabilities = TaskTypeBit(TaskType::kAlign) | TaskTypeBit(TaskType::kDistill);
  Progress p;
  p.tokens = -5;  // any value travels; the scheduler judges it
  p.step = std::numeric_limits<std::int64_t>::max();
  p.losses = {{"l2", 0.031}, {"kl", -0.0}, {"nan", std::nan("")}};
  p.throughput = 1.5e6;
  FinalRecord f;
  f.checkpoint = SampleCheckpoint();
  f.metrics = {{"final_loss", 0.5}, {"inf", std::numeric_limits<double>::infinity()}};
  return {RegisterWorkerRequest{w},
          LeaseRequest{"node07/rank3", TaskTypeBit(TaskType::kCache)},
          HeartbeatRequest{9, p},
          CommitRequest{9, SampleCheckpoint()},
          CompleteRequest{std::numeric_limits<LeaseId>::max(), f},
          FailRequest{9, "CUDA error: an illegal memory access", false},
          ReleaseRequest{9, "drain"},
          DrainRequest{"SIGUSR1 from Slurm"},
          CancelRequest{"radlads-coord cancel by root@login1", "4242"},
          DiscardCheckpointRequest{9, 6, "checkpoints/distill/step-000006.safetensors: checksum mismatch"},
          ExpireLeasesRequest{},
          GetStatusRequest{},
          ByeRequest{}};
}

// (request type, OK reply) pairs covering every reply body.
std::vector<std::pair<MsgType, Reply>> SampleReplies() {
  LeaseGrant g;
  g.lease = 12;
  g.task.id = "align/L003/S00001";
  g.task.type = TaskType::kAlign;
  g.task.layer = 3;
  g.task.segment = 1;
  g.task.stage = 0;
  g.task.deps = {"cache/S00001/P00", "align/L003/S00000"};
  g.task.tokens = 1'000'000;
  g.task.sample_begin = 10;
  g.task.sample_end = 20;
  g.task.optimizer_steps = 5;
  g.task.workers = 1;
  g.attempt = 2;
  g.deadline_ms = 1'700'000'300'000;
  g.resume_from = SampleCommitted("align/L003/S00001", false);
  g.inputs = {SampleCommitted("cache/S00001/P00", true), SampleCommitted("align/L003/S00000", true)};
  LeaseReply granted{LeaseOutcome::kGranted, g};
  LeaseReply none{LeaseOutcome::kDraining, std::nullopt};
  return {{MsgType::kLease, Reply{Status::Ok(), granted}},
          {MsgType::kLease, Reply{Status::Ok(), none}},
          {MsgType::kHeartbeat, Reply{Status::Ok(), HeartbeatReply{123, true, "drain: SIGTERM"}}},
          {MsgType::kCommitCheckpoint, Reply{Status::Ok(), CommitReply{500, false}}},
          {MsgType::kComplete, Reply{Status::Ok(), CommitReply{0, true}}},
          {MsgType::kExpireLeases, Reply{Status::Ok(), ExpireReply{3}}},
          {MsgType::kGetStatus, Reply{Status::Ok(), StatusReply{"{\"schema\":1}\n"}}},
          {MsgType::kRegisterWorker, Reply{Status::Ok(), EmptyReply{}}},
          {MsgType::kFail, Reply{Status::Ok(), EmptyReply{}}},
          {MsgType::kRelease, Reply{Status::Ok(), EmptyReply{}}},
          {MsgType::kDrain, Reply{Status::Ok(), EmptyReply{}}},
          {MsgType::kBye, Reply{Status::Ok(), EmptyReply{}}},
          {MsgType::kHeartbeat,
           Reply{Status::FailedPrecondition("heartbeat: lease 9 is not outstanding"), EmptyReply{}}},
          {MsgType::kLease, Reply{Status::NotFound("unknown worker 'w9'"), EmptyReply{}}},
          {MsgType::kCommitCheckpoint, Reply{Status::IOError("fsync failed"), EmptyReply{}}}};
}

// ---- round trips ----

TEST(ProtocolCodec, EveryRequestRoundTripsBitExactly) {
  for (const Request& r : SampleRequests()) {
    const std::string body = EncodeRequestBody(r);
    auto back = DecodeRequestBody(static_cast<std::uint8_t>(TypeOf(r)), body);
    ASSERT_TRUE(back.ok()) << MsgTypeName(static_cast<std::uint8_t>(TypeOf(r))) << ": "
                           << back.status().ToString();
    EXPECT_EQ(back->index(), r.index());
    EXPECT_EQ(EncodeRequestBody(*back), body) << MsgTypeName(static_cast<std::uint8_t>(TypeOf(r)));
  }
  // A few fields by name, NaN payload and -0.0 included.
  const auto reqs = SampleRequests();
  auto hb = DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kHeartbeat),
                              EncodeRequestBody(reqs[2]));
  ASSERT_TRUE(hb.ok());
  const auto& p = std::get<HeartbeatRequest>(*hb).progress;
  EXPECT_EQ(p.step, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(p.tokens, -5);
  ASSERT_EQ(p.losses.size(), 3u);
  EXPECT_TRUE(std::signbit(p.losses[1].value));
  EXPECT_TRUE(std::isnan(p.losses[2].value));
  auto reg = DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kRegisterWorker),
                               EncodeRequestBody(reqs[0]));
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(std::get<RegisterWorkerRequest>(*reg).worker.members.size(), 2u);
  EXPECT_EQ(std::get<RegisterWorkerRequest>(*reg).worker.group_size, 8);
}

TEST(ProtocolCodec, EveryReplyRoundTripsBitExactly) {
  for (const auto& [type, reply] : SampleReplies()) {
    const std::string body = EncodeReplyBody(type, reply);
    auto back = DecodeReplyBody(type, body);
    ASSERT_TRUE(back.ok()) << MsgTypeName(ReplyCode(type)) << ": " << back.status().ToString();
    EXPECT_EQ(back->status.code(), reply.status.code());
    EXPECT_EQ(back->status.message(), reply.status.message());
    EXPECT_EQ(EncodeReplyBody(type, *back), body) << MsgTypeName(ReplyCode(type));
  }
  const auto replies = SampleReplies();
  auto lease = DecodeReplyBody(MsgType::kLease, EncodeReplyBody(MsgType::kLease, replies[0].second));
  ASSERT_TRUE(lease.ok());
  const auto& lr = std::get<LeaseReply>(lease->body);
  ASSERT_TRUE(lr.grant.has_value());
  EXPECT_EQ(lr.grant->task.deps.size(), 2u);
  ASSERT_TRUE(lr.grant->resume_from.has_value());
  EXPECT_EQ(lr.grant->resume_from->record.files[0].bytes, 1 << 30);
  EXPECT_EQ(lr.grant->inputs.size(), 2u);
  EXPECT_TRUE(lr.grant->inputs[1].final);
}

TEST(ProtocolCodec, HandshakeMessagesRoundTrip) {
  Challenge c{0x0123456789abcdefULL, NonceOf(7), 65536, "run-a"};
  auto c2 = DecodeChallenge(EncodeChallenge(c));
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->session, c.session);
  EXPECT_EQ(c2->server_nonce, c.server_nonce);
  EXPECT_EQ(c2->max_frame, 65536u);
  EXPECT_EQ(c2->run_id, "run-a");
  Hello h{NonceOf(9), "node1/rank0", 77};
  auto h2 = DecodeHello(EncodeHello(h));
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(EncodeHello(*h2), EncodeHello(h));
  HelloReply r{"run-a", 1'700'000'000'000};
  auto r2 = DecodeHelloReply(EncodeHelloReply(r));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->server_time_ms, r.server_time_ms);
}

TEST(ProtocolCodec, AnOkReplyWithTheWrongBodyKindBecomesAnInternalError) {
  auto r = DecodeReplyBody(MsgType::kLease,
                           EncodeReplyBody(MsgType::kLease, Reply{Status::Ok(), ExpireReply{1}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status.code(), Status::Code::kInternal);
}

// ---- decoders on bad input ----

TEST(ProtocolCodec, TruncatedOrExtendedBodiesAreRefused) {
  for (const Request& r : SampleRequests()) {
    const auto type = static_cast<std::uint8_t>(TypeOf(r));
    const std::string body = EncodeRequestBody(r);
    for (std::size_t n = 0; n < body.size(); ++n) {
      auto d = DecodeRequestBody(type, body.substr(0, n));
      EXPECT_FALSE(d.ok()) << MsgTypeName(type) << " truncated to " << n << " bytes";
      if (!d.ok()) {
        EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
      }
    }
    auto longer = DecodeRequestBody(type, body + '\0');
    ASSERT_FALSE(longer.ok()) << MsgTypeName(type);
    EXPECT_NE(longer.status().message().find("trailing"), std::string::npos);
  }
  for (const auto& [type, reply] : SampleReplies()) {
    const std::string body = EncodeReplyBody(type, reply);
    for (std::size_t n = 0; n < body.size(); ++n) {
      EXPECT_FALSE(DecodeReplyBody(type, body.substr(0, n)).ok())
          << MsgTypeName(ReplyCode(type)) << " truncated to " << n;
    }
    EXPECT_FALSE(DecodeReplyBody(type, body + 'x').ok());
  }
  Challenge c{1, NonceOf(1), 4096, "r"};
  const std::string cb = EncodeChallenge(c);
  for (std::size_t n = 0; n < cb.size(); ++n) EXPECT_FALSE(DecodeChallenge(cb.substr(0, n)).ok());
}

std::string BE32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

TEST(ProtocolCodec, FieldLimitsAndEnumsAreEnforced) {
  // A worker id over kMaxIdBytes.
  RegisterWorkerRequest big;
  big.worker.id = std::string(kMaxIdBytes + 1, 'w');
  auto d = DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kRegisterWorker),
                             EncodeRequestBody(big));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("worker.id"), std::string::npos) << d.status().message();
  // A string length far beyond the bytes present.
  std::string lease_body = BE32(0xFFFFFFF0u) + "abc";
  EXPECT_FALSE(DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kLease), lease_body).ok());
  // A list count that claims more items than bytes left (no allocation from it).
  std::string hb(16, '\0');           // lease + tokens... (lease u64, tokens i64)
  hb += std::string(8, '\0');         // step
  hb += BE32(1000);                   // 1000 losses, but no bytes for them
  auto h = DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kHeartbeat), hb);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("progress.losses"), std::string::npos) << h.status().message();
  // More values than kMaxValues, even if the bytes were there.
  std::string hb2 = std::string(24, '\0') + BE32(kMaxValues + 1) +
                    std::string((kMaxValues + 1) * 12 + 8, '\0');
  EXPECT_FALSE(DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kHeartbeat), hb2).ok());
  // A bool that is neither 0 nor 1.
  FailRequest f{1, "x", true};
  std::string fb = EncodeRequestBody(f);
  fb.back() = 2;
  EXPECT_FALSE(DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kFail), fb).ok());
  // An unknown lease outcome, an unknown status code, an OK status with a message.
  std::string lr = EncodeReplyBody(MsgType::kLease, Reply{Status::Ok(), LeaseReply{}});
  lr[5] = 9;  // code 0, message length 0 (4 bytes), then the outcome byte
  EXPECT_FALSE(DecodeReplyBody(MsgType::kLease, lr).ok());
  std::string bad_code = EncodeReplyBody(MsgType::kBye, Reply{Status::Internal("x"), EmptyReply{}});
  bad_code[0] = 42;
  EXPECT_FALSE(DecodeReplyBody(MsgType::kBye, bad_code).ok());
  std::string ok_msg = std::string(1, '\0') + BE32(1) + "m";
  EXPECT_FALSE(DecodeReplyBody(MsgType::kBye, ok_msg).ok());
  // An unknown task type inside a grant.
  LeaseGrant g;
  g.task.id = "t";
  std::string gb = EncodeReplyBody(MsgType::kLease, Reply{Status::Ok(), LeaseReply{LeaseOutcome::kGranted, g}});
  // code(1) + msg len(4) + outcome(1) + has_grant(1) + lease(8) + id len(4) + "t"(1) = type at 20
  gb[20] = 7;
  EXPECT_FALSE(DecodeReplyBody(MsgType::kLease, gb).ok());
  // Not a request type.
  EXPECT_FALSE(DecodeRequestBody(static_cast<std::uint8_t>(MsgType::kHello), "").ok());
  EXPECT_FALSE(DecodeRequestBody(ReplyCode(MsgType::kLease), "").ok());
  EXPECT_FALSE(DecodeRequestBody(27, "").ok());
  // Error messages are clipped to the limit when encoded, so they still decode.
  auto clipped = DecodeReplyBody(
      MsgType::kFail, EncodeReplyBody(MsgType::kFail, Reply{Status::FailedPrecondition(
                                                                 std::string(10000, 'e')),
                                                             EmptyReply{}}));
  ASSERT_TRUE(clipped.ok());
  EXPECT_EQ(clipped->status.message().size(), kMaxTextBytes);
}

TEST(ProtocolFrames, LengthPrefixIsCheckedAgainstTheCap) {
  Violation v = Violation::kNone;
  auto huge = ParseLengthPrefix(BE32(0xFFFFFFFFu), kDefaultMaxFrame, &v);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(v, Violation::kOversized);
  EXPECT_FALSE(ParseLengthPrefix(BE32(kDefaultMaxFrame + 1), kDefaultMaxFrame, &v).ok());
  auto exact = ParseLengthPrefix(BE32(kDefaultMaxFrame), kDefaultMaxFrame, &v);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(*exact, kDefaultMaxFrame);
  EXPECT_FALSE(ParseLengthPrefix(BE32(kHeaderBytes - 1), kDefaultMaxFrame, &v).ok());
  EXPECT_EQ(v, Violation::kUndersized);
  EXPECT_TRUE(ParseLengthPrefix(BE32(kHeaderBytes), kDefaultMaxFrame, &v).ok());
  EXPECT_FALSE(ParseLengthPrefix("abc", kDefaultMaxFrame, &v).ok());
}

TEST(ProtocolFrames, WrongVersionAndShortPayloadsAreRefused) {
  Key k{};
  std::string frame = SealFrame(static_cast<std::uint8_t>(MsgType::kGetStatus), 1, 2, "", &k);
  std::string payload = frame.substr(kLengthPrefixBytes);
  ASSERT_TRUE(ParseFrame(payload).ok());
  payload[0] = static_cast<char>(kProtocolVersion - 1);  // a peer of the previous version
  Violation v = Violation::kNone;
  auto f = ParseFrame(payload, &v);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(v, Violation::kBadVersion);
  EXPECT_NE(f.status().message().find("protocol version " + std::to_string(kProtocolVersion - 1) +
                                      ", this build speaks version " + std::to_string(kProtocolVersion)),
            std::string::npos)
      << f.status().ToString();
  EXPECT_FALSE(ParseFrame(payload.substr(0, kHeaderBytes - 1), &v).ok());
  EXPECT_EQ(v, Violation::kUndersized);
}

TEST(ProtocolFrames, SplitterReassemblesAByteStreamAndRefusesOversizeEarly) {
  Key k{};
  std::string stream;
  std::vector<std::string> bodies = {"", "a", std::string(5000, 'b'), "ccc"};
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    stream += SealFrame(static_cast<std::uint8_t>(MsgType::kGetStatus), 1, i + 1, bodies[i], &k);
  }
  FrameSplitter s(kDefaultMaxFrame);
  std::vector<std::string> got;
  for (char c : stream) {  // one byte at a time
    s.Append(std::string_view(&c, 1));
    auto next = s.Next();
    ASSERT_TRUE(next.ok());
    if (next->has_value()) got.push_back(**next);
  }
  ASSERT_EQ(got.size(), bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto f = ParseFrame(got[i]);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->body, bodies[i]);
    EXPECT_EQ(f->seq, i + 1);
  }
  EXPECT_EQ(s.buffered(), 0u);

  // All frames in one chunk.
  FrameSplitter all(kDefaultMaxFrame);
  all.Append(stream);
  int n = 0;
  for (;;) {
    auto next = all.Next();
    ASSERT_TRUE(next.ok());
    if (!next->has_value()) break;
    ++n;
  }
  EXPECT_EQ(n, 4);

  // The cap is enforced from the 4 prefix bytes alone, before any body arrives.
  FrameSplitter small(kMinMaxFrame);
  small.Append(BE32(kMinMaxFrame + 1));
  auto over = small.Next();
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(small.violation(), Violation::kOversized);
  EXPECT_FALSE(small.Next().ok());  // stays failed
}

// ---- sessions: handshake, HMAC, sequence numbers ----

struct Pair {
  ServerSession server;
  ClientSession client;
  Pair(const RunSecret& server_secret, const RunSecret& client_secret, std::uint64_t session = 0x1122)
      : server(server_secret, session, NonceOf(0x33), kDefaultMaxFrame, "run-x"),
        client(client_secret, "w0", 100, NonceOf(0x44)) {}

  // Runs the handshake; returns the server's verdict on the Hello.
  Result<ServerSession::Incoming> Handshake() {
    const std::string challenge = server.ChallengeFrame().substr(kLengthPrefixBytes);
    auto hello = client.OnChallenge(challenge);
    EXPECT_TRUE(hello.ok()) << hello.status().ToString();
    return server.Receive(hello->substr(kLengthPrefixBytes));
  }
};

std::string Payload(const std::string& frame) { return frame.substr(kLengthPrefixBytes); }

TEST(ProtocolSession, HandshakeThenRequestsAndReplies) {
  Pair p(SecretOf(1), SecretOf(1));
  auto hello = p.Handshake();
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_TRUE(hello->hello);
  EXPECT_EQ(hello->hello_body.client_name, "w0");
  EXPECT_TRUE(p.server.authenticated());
  auto hr = p.client.OnHelloReply(Payload(p.server.SealHelloReply({"run-x", 5})));
  ASSERT_TRUE(hr.ok()) << hr.status().ToString();
  EXPECT_EQ(hr->run_id, "run-x");

  for (const Request& r : SampleRequests()) {
    std::uint64_t seq = 0;
    const std::string frame = p.client.SealRequest(r, &seq);
    auto in = p.server.Receive(Payload(frame));
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_FALSE(in->hello);
    EXPECT_EQ(in->seq, seq);
    EXPECT_EQ(in->request.index(), r.index());
    const Reply reply{Status::Ok(), EmptyReplyBodyFor(TypeOf(r))};
    auto back = p.client.OpenReply(Payload(p.server.SealReply(seq, TypeOf(r), reply)), seq, TypeOf(r));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(back->status.ok());
  }
  EXPECT_EQ(p.server.last_seq(), SampleRequests().size() + 1);
}

TEST(ProtocolSession, WrongSecretFailsTheHelloAndTheServerIsAuthenticatedToo) {
  Pair p(SecretOf(1), SecretOf(2));
  auto hello = p.Handshake();
  ASSERT_FALSE(hello.ok());
  EXPECT_EQ(p.server.violation(), Violation::kBadMac);
  EXPECT_NE(hello.status().message().find("RUN/secret"), std::string::npos);
  EXPECT_FALSE(p.server.authenticated());

  // The client refuses a HelloReply from a server with another secret.
  Pair q(SecretOf(1), SecretOf(1));
  ASSERT_TRUE(q.Handshake().ok());
  ServerSession impostor(SecretOf(3), 0x1122, NonceOf(0x33), kDefaultMaxFrame, "run-x");
  auto hr = q.client.OnHelloReply(Payload(impostor.SealHelloReply({"run-x", 5})));
  EXPECT_FALSE(hr.ok());
}

TEST(ProtocolSession, EveryFlippedBitIsRefused) {
  // Flip each bit of a valid request frame in turn: some header or MAC or body bit always
  // changes, and the server must refuse every variant.
  Pair base(SecretOf(1), SecretOf(1));
  ASSERT_TRUE(base.Handshake().ok());
  std::uint64_t seq = 0;
  const std::string payload =
      Payload(base.client.SealRequest(LeaseRequest{"w0", kAllTaskTypes}, &seq));
  for (std::size_t byte = 0; byte < payload.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Pair p(SecretOf(1), SecretOf(1));
      ASSERT_TRUE(p.Handshake().ok());
      std::string bad = payload;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      auto in = p.server.Receive(bad);
      EXPECT_FALSE(in.ok()) << "flipped byte " << byte << " bit " << bit;
      EXPECT_NE(p.server.violation(), Violation::kNone);
    }
  }
}

TEST(ProtocolSession, ReplayReorderSkipAndFramesBeforeHelloAreRefused) {
  {  // replay
    Pair p(SecretOf(1), SecretOf(1));
    ASSERT_TRUE(p.Handshake().ok());
    std::uint64_t seq = 0;
    const std::string f = Payload(p.client.SealRequest(GetStatusRequest{}, &seq));
    ASSERT_TRUE(p.server.Receive(f).ok());
    auto again = p.server.Receive(f);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(p.server.violation(), Violation::kBadSequence);
    EXPECT_NE(again.status().message().find("replayed"), std::string::npos);
    // The session stays failed, even for a good next frame.
    EXPECT_FALSE(p.server.Receive(Payload(p.client.SealRequest(GetStatusRequest{}, &seq))).ok());
  }
  {  // reorder: 3 before 2
    Pair p(SecretOf(1), SecretOf(1));
    ASSERT_TRUE(p.Handshake().ok());
    std::uint64_t s2 = 0, s3 = 0;
    const std::string f2 = Payload(p.client.SealRequest(GetStatusRequest{}, &s2));
    const std::string f3 = Payload(p.client.SealRequest(GetStatusRequest{}, &s3));
    EXPECT_FALSE(p.server.Receive(f3).ok());
    EXPECT_EQ(p.server.violation(), Violation::kBadSequence);
  }
  {  // a replayed Hello (sequence 1 again) after the handshake
    Pair p(SecretOf(1), SecretOf(1));
    const std::string challenge = Payload(p.server.ChallengeFrame());
    auto hello = p.client.OnChallenge(challenge);
    ASSERT_TRUE(hello.ok());
    ASSERT_TRUE(p.server.Receive(Payload(*hello)).ok());
    EXPECT_FALSE(p.server.Receive(Payload(*hello)).ok());
  }
  {  // a request before the Hello, even one sealed with the right session key
    Pair p(SecretOf(1), SecretOf(1));
    ASSERT_TRUE(p.client.OnChallenge(Payload(p.server.ChallengeFrame())).ok());
    const std::string early = Payload(
        p.client.SealRaw(static_cast<std::uint8_t>(MsgType::kLease), 1,
                         EncodeRequestBody(LeaseRequest{"w0", kAllTaskTypes})));
    EXPECT_FALSE(p.server.Receive(early).ok());
    EXPECT_EQ(p.server.violation(), Violation::kUnauthenticated);
  }
  {  // a valid MAC on a type that is not a request, and a malformed body under a valid MAC
    Pair p(SecretOf(1), SecretOf(1));
    ASSERT_TRUE(p.Handshake().ok());
    EXPECT_FALSE(p.server.Receive(Payload(p.client.SealRaw(
                                       static_cast<std::uint8_t>(MsgType::kChallenge), 2, "")))
                     .ok());
    EXPECT_EQ(p.server.violation(), Violation::kUnexpectedType);
    Pair q(SecretOf(1), SecretOf(1));
    ASSERT_TRUE(q.Handshake().ok());
    EXPECT_FALSE(q.server.Receive(Payload(q.client.SealRaw(
                                       static_cast<std::uint8_t>(MsgType::kLease), 2, "junk")))
                     .ok());
    EXPECT_EQ(q.server.violation(), Violation::kMalformedBody);
  }
}

TEST(ProtocolSession, FramesFromAnotherConnectionOrReflectedAreRefused) {
  // Capture a Hello and a request on connection A; replay them on connection B (same secret,
  // same session id even, but a fresh server nonce).
  Pair a(SecretOf(1), SecretOf(1), 0x77);
  const std::string a_hello = Payload(*a.client.OnChallenge(Payload(a.server.ChallengeFrame())));
  ASSERT_TRUE(a.server.Receive(a_hello).ok());
  std::uint64_t seq = 0;
  const std::string a_req = Payload(a.client.SealRequest(GetStatusRequest{}, &seq));
  ServerSession b(SecretOf(1), 0x77, NonceOf(0x99), kDefaultMaxFrame, "run-x");
  EXPECT_FALSE(b.Receive(a_hello).ok());
  EXPECT_EQ(b.violation(), Violation::kBadMac);
  ServerSession b2(SecretOf(1), 0x77, NonceOf(0x99), kDefaultMaxFrame, "run-x");
  EXPECT_FALSE(b2.Receive(a_req).ok());
  EXPECT_EQ(b2.violation(), Violation::kUnauthenticated);
  // Another session id: refused before anything else.
  ServerSession c(SecretOf(1), 0x78, NonceOf(0x33), kDefaultMaxFrame, "run-x");
  EXPECT_FALSE(c.Receive(a_hello).ok());
  EXPECT_EQ(c.violation(), Violation::kWrongSession);

  // Reflection: the server's own HelloReply sent back to it (direction keys differ).
  Pair r(SecretOf(1), SecretOf(1));
  ASSERT_TRUE(r.Handshake().ok());
  EXPECT_FALSE(r.server.Receive(Payload(r.server.SealHelloReply({"run-x", 1}))).ok());
  EXPECT_EQ(r.server.violation(), Violation::kBadMac);
  // And a client refuses its own request reflected as a reply.
  Pair q(SecretOf(1), SecretOf(1));
  ASSERT_TRUE(q.Handshake().ok());
  ASSERT_TRUE(q.client.OnHelloReply(Payload(q.server.SealHelloReply({"run-x", 1}))).ok());
  std::uint64_t s = 0;
  const std::string req = Payload(q.client.SealRequest(GetStatusRequest{}, &s));
  EXPECT_FALSE(q.client.OpenReply(req, s, MsgType::kGetStatus).ok());
}

TEST(ProtocolSession, ClientRefusesRepliesOutOfSequenceOrOfTheWrongKind) {
  Pair p(SecretOf(1), SecretOf(1));
  ASSERT_TRUE(p.Handshake().ok());
  ASSERT_TRUE(p.client.OnHelloReply(Payload(p.server.SealHelloReply({"run-x", 1}))).ok());
  std::uint64_t s = 0;
  (void)p.client.SealRequest(GetStatusRequest{}, &s);
  const Reply ok{Status::Ok(), StatusReply{"{}"}};
  EXPECT_FALSE(p.client.OpenReply(Payload(p.server.SealReply(s + 1, MsgType::kGetStatus, ok)), s,
                                  MsgType::kGetStatus)
                   .ok());
  EXPECT_FALSE(p.client.OpenReply(Payload(p.server.SealReply(s, MsgType::kExpireLeases,
                                                             Reply{Status::Ok(), ExpireReply{}})),
                                  s, MsgType::kGetStatus)
                   .ok());
  EXPECT_TRUE(p.client.OpenReply(Payload(p.server.SealReply(s, MsgType::kGetStatus, ok)), s,
                                 MsgType::kGetStatus)
                  .ok());
}

TEST(ProtocolSession, MacComparisonUsesTheWholeTag) {
  Key k{};
  k.fill(3);
  const std::string payload =
      Payload(SealFrame(static_cast<std::uint8_t>(MsgType::kGetStatus), 1, 2, "b", &k));
  auto f = ParseFrame(payload);  // views into `payload`
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(VerifyMac(*f, k));
  for (std::size_t i = 0; i < kMacBytes; ++i) {
    FrameView g = *f;
    g.mac[i] ^= 0x80;
    EXPECT_FALSE(VerifyMac(g, k)) << "MAC byte " << i;
  }
  Key other = k;
  other[31] ^= 1;
  EXPECT_FALSE(VerifyMac(*f, other));
  // An all-zero MAC (as on the unauthenticated Challenge) never verifies under a real key.
  FrameView z = *f;
  z.mac.fill(0);
  EXPECT_FALSE(VerifyMac(z, k));
}

TEST(ProtocolSession, SessionKeysDependOnEveryInput) {
  const SessionKeys k = DeriveSessionKeys(SecretOf(1), 5, NonceOf(1), NonceOf(2));
  EXPECT_NE(k.client_to_server, k.server_to_client);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys(SecretOf(2), 5, NonceOf(1), NonceOf(2)).client_to_server);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys(SecretOf(1), 6, NonceOf(1), NonceOf(2)).client_to_server);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys(SecretOf(1), 5, NonceOf(3), NonceOf(2)).client_to_server);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys(SecretOf(1), 5, NonceOf(1), NonceOf(3)).client_to_server);
  EXPECT_EQ(k.client_to_server, DeriveSessionKeys(SecretOf(1), 5, NonceOf(1), NonceOf(2)).client_to_server);
}

// ---- the run secret file ----

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(RunSecretFile, CreatedOnceWithMode0600AndLoadedBack) {
  ScratchDir dir;
  auto a = EnsureRunSecret(dir.path());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const std::string path = RunSecretPath(dir.path());
  EXPECT_EQ(ModeOf(path), 0600u);
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->size(), 65u);
  EXPECT_EQ(text->back(), '\n');
  auto b = EnsureRunSecret(dir.path());  // existing: kept
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->bytes, b->bytes);
  auto c = LoadRunSecret(dir.path());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(a->bytes, c->bytes);
  // No temp files left behind.
  EXPECT_FALSE(PathExists(path + ".new." + std::to_string(::getpid())));
  // Two runs get different secrets.
  ScratchDir other;
  auto d = EnsureRunSecret(other.path());
  ASSERT_TRUE(d.ok());
  EXPECT_NE(a->bytes, d->bytes);
}

TEST(RunSecretFile, RefusesGroupOrOtherAccessAndBadContent) {
  ScratchDir dir;
  ASSERT_TRUE(EnsureRunSecret(dir.path()).ok());
  const std::string path = RunSecretPath(dir.path());
  for (unsigned mode : {0640u, 0604u, 0660u, 0644u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = LoadRunSecret(dir.path());
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_NE(r.status().message().find(path), std::string::npos);
    EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos) << r.status().message();
    EXPECT_FALSE(EnsureRunSecret(dir.path()).ok()) << "must not silently replace it";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(LoadRunSecret(dir.path()).ok());

  auto write = [&](const std::string& content) {
    ::unlink(path.c_str());
    radlads::testing::WriteBytes(path, content);
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  };
  write("abc\n");
  auto short_r = LoadRunSecret(dir.path());
  ASSERT_FALSE(short_r.ok());
  EXPECT_EQ(short_r.status().code(), Status::Code::kCorruption);
  EXPECT_NE(short_r.status().message().find(path), std::string::npos);
  write(std::string(63, 'a') + "g\n");
  auto hex_r = LoadRunSecret(dir.path());
  ASSERT_FALSE(hex_r.ok());
  EXPECT_NE(hex_r.status().message().find("non-hex"), std::string::npos);
  write(std::string(64, 'A'));  // upper case, no newline: accepted
  EXPECT_TRUE(LoadRunSecret(dir.path()).ok());
  write(std::string(64, 'a') + "\n\n");
  EXPECT_FALSE(LoadRunSecret(dir.path()).ok());

  // A symlink is refused even if it points at a good file.
  ScratchDir other;
  ASSERT_TRUE(EnsureRunSecret(other.path()).ok());
  ::unlink(path.c_str());
  ASSERT_EQ(::symlink(RunSecretPath(other.path()).c_str(), path.c_str()), 0);
  auto link_r = LoadRunSecret(dir.path());
  ASSERT_FALSE(link_r.ok());
  EXPECT_NE(link_r.status().message().find("symlink"), std::string::npos);
}

TEST(RunSecretFile, MissingIsNotFound) {
  ScratchDir dir;
  auto r = LoadRunSecret(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace radlads::protocol
