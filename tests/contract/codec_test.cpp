// The codecs derived from the records' field declarations (contract/codec.h,
// contract/json_codec.h): randomised records round-trip through the varint, wire and JSON
// encodings; accepted bytes re-encode to the same bytes; every strict prefix of an encoding is
// refused; a flipped byte never crashes a decoder; the wire limits hold against hostile counts
// and lengths; JSON errors name the field's path; and bytes written by the hand-written codecs
// these replaced (tests/data/contract/, generated before the change) still decode and
// re-encode to the very same bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/file.h"
#include "contract/codec.h"
#include "contract/json_codec.h"
#include "contract/records.h"
#include "contract/task.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

constexpr int kIterations = 300;  // per record type and encoding

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}
  std::int64_t I64() { return static_cast<std::int64_t>(rng_()); }
  std::int32_t I32() { return static_cast<std::int32_t>(rng_()); }
  std::uint32_t U32() { return static_cast<std::uint32_t>(rng_()); }
  std::uint64_t U64() { return rng_(); }
  bool Flag() { return (rng_() & 1) != 0; }
  std::size_t Small(std::size_t n) { return static_cast<std::size_t>(rng_() % (n + 1)); }
  // Finite doubles, including negative zero, subnormals and extremes.
  double Real() {
    switch (rng_() % 6) {
      case 0: return 0.0;
      case 1: return -0.0;
      case 2: return std::numeric_limits<double>::denorm_min() * static_cast<double>(rng_() % 1000);
      case 3: return std::numeric_limits<double>::max() / static_cast<double>(1 + rng_() % 7);
      default: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
    }
  }
  // Any bytes, including NUL, quotes and invalid UTF-8 for the binary encodings; `text` keeps
  // to printable ASCII (JSON carries UTF-8 only).
  std::string Str(std::size_t max_len, bool text = false) {
    std::string s(Small(max_len), '\0');
    for (char& c : s) c = text ? static_cast<char>(' ' + rng_() % 95) : static_cast<char>(rng_());
    return s;
  }
  std::vector<std::string> Strs(std::size_t n, bool text) {
    std::vector<std::string> v(Small(n));
    for (auto& s : v) s = Str(12, text);
    return v;
  }

  TaskSpec Task(bool text) {
    TaskSpec t;
    t.id = Str(20, text);
    t.type = static_cast<TaskType>(rng_() % 7);
    t.layer = I32();
    t.segment = I32();
    t.stage = I32();
    t.first_layer = I32();
    t.last_layer = I32();
    t.deps = Strs(4, text);
    t.tokens = I64();
    t.sample_begin = I64();
    t.sample_end = I64();
    t.optimizer_steps = I64();
    t.workers = I32();
    return t;
  }
  CheckpointRecord Checkpoint(bool text) {
    CheckpointRecord c;
    c.step = I64();
    c.tokens_consumed = I64();
    c.files.resize(Small(3));
    for (auto& f : c.files) f = FileRecord{Str(30, text), I64(), Str(24, text)};
    return c;
  }
  std::vector<NamedValue> Values(bool text) {
    std::vector<NamedValue> v(Small(3));
    for (auto& x : v) x = NamedValue{Str(8, text), Real()};
    return v;
  }
  Progress Prog(bool text) { return Progress{I64(), I64(), Values(text), Real()}; }
  FinalRecord Final(bool text) { return FinalRecord{Checkpoint(text), Values(text)}; }
  WorkerInfo Worker(bool text) {
    WorkerInfo w;
    w.id = Str(16, text);
    w.host = Str(16, text);
    w.pid = I64();
    w.group_size = I32();
    w.members = Strs(3, text);
    w.capabilities = U32();
    return w;
  }
  CommittedCheckpoint Committed(bool text) {
    return CommittedCheckpoint{Str(16, text), Checkpoint(text), U64(), I32(), I64(), Flag()};
  }
  LeaseGrant Grant(bool text) {
    LeaseGrant g;
    g.lease = U64();
    g.task = Task(text);
    g.attempt = I32();
    g.deadline_ms = I64();
    if (Flag()) g.resume_from = Committed(text);
    g.inputs.resize(Small(2));
    for (auto& c : g.inputs) c = Committed(text);
    return g;
  }
  LeaseReply Reply(bool text) {
    LeaseReply r;
    r.outcome = static_cast<LeaseOutcome>(rng_() % 4);
    if (Flag()) r.grant = Grant(text);
    return r;
  }
  HeartbeatReply Heartbeat(bool text) { return HeartbeatReply{I64(), Flag(), Str(20, text)}; }
  CommitReply Commit() { return CommitReply{I64(), Flag()}; }
  Capabilities Caps() { return Capabilities{U32()}; }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// Round-trips `make(gen, text)` through every encoding `kIterations` times.
template <class R, class Make>
void RoundTripEverywhere(const char* name, std::uint64_t seed, Make make) {
  Gen g(seed);
  for (int i = 0; i < kIterations; ++i) {
    const R x = make(g, /*text=*/false);

    const std::string v = codec::EncodeVarint(x);
    R back_v{};
    ASSERT_TRUE(codec::DecodeVarint(v, &back_v, name).ok()) << name << " varint #" << i;
    ASSERT_TRUE(back_v == x) << name << " varint #" << i;
    ASSERT_EQ(codec::EncodeVarint(back_v), v) << name << " varint re-encoding #" << i;

    const std::string w = codec::EncodeWire(x);
    R back_w{};
    ASSERT_TRUE(codec::DecodeWire(w, &back_w, name).ok()) << name << " wire #" << i;
    ASSERT_TRUE(back_w == x) << name << " wire #" << i;
    ASSERT_EQ(codec::EncodeWire(back_w), w) << name << " wire re-encoding #" << i;

    // Every strict prefix is refused (the sizes are all encoded, nothing is optional at the end).
    for (std::size_t n = 0; n < w.size(); n += 1 + w.size() / 16) {
      R t{};
      ASSERT_FALSE(codec::DecodeWire(std::string_view(w).substr(0, n), &t, name).ok())
          << name << " wire prefix " << n << " of " << w.size();
    }
    for (std::size_t n = 0; n < v.size(); n += 1 + v.size() / 16) {
      R t{};
      ASSERT_FALSE(codec::DecodeVarint(std::string_view(v).substr(0, n), &t, name).ok())
          << name << " varint prefix " << n << " of " << v.size();
    }
    // Trailing bytes are refused.
    R t{};
    ASSERT_FALSE(codec::DecodeWire(w + "x", &t, name).ok()) << name;
    ASSERT_FALSE(codec::DecodeVarint(v + "x", &t, name).ok()) << name;
    // A flipped byte decodes or is refused; it never crashes or over-allocates (ASan checks).
    if (!w.empty()) {
      std::string bad = w;
      bad[g.Small(w.size() - 1)] ^= static_cast<char>(1 + g.Small(254));
      R b{};
      (void)codec::DecodeWire(bad, &b, name);
    }

    const R y = make(g, /*text=*/true);
    const std::string text = codec::ToJson(y).dump();
    R back_j{};
    const Status js = codec::FromJson(nlohmann::json::parse(text), &back_j, name);
    ASSERT_TRUE(js.ok()) << name << " json #" << i << ": " << js.ToString() << "\n" << text;
    ASSERT_TRUE(back_j == y) << name << " json #" << i << "\n" << text;
  }
}

TEST(ContractCodecs, EveryRecordRoundTripsThroughEveryEncoding) {
  RoundTripEverywhere<TaskSpec>("task", 11, [](Gen& g, bool t) { return g.Task(t); });
  RoundTripEverywhere<CheckpointRecord>("checkpoint", 12, [](Gen& g, bool t) { return g.Checkpoint(t); });
  RoundTripEverywhere<Progress>("progress", 13, [](Gen& g, bool t) { return g.Prog(t); });
  RoundTripEverywhere<FinalRecord>("final", 14, [](Gen& g, bool t) { return g.Final(t); });
  RoundTripEverywhere<WorkerInfo>("worker", 15, [](Gen& g, bool t) { return g.Worker(t); });
  RoundTripEverywhere<CommittedCheckpoint>("committed", 16, [](Gen& g, bool t) { return g.Committed(t); });
  RoundTripEverywhere<LeaseGrant>("grant", 17, [](Gen& g, bool t) { return g.Grant(t); });
  RoundTripEverywhere<LeaseReply>("lease_reply", 18, [](Gen& g, bool t) { return g.Reply(t); });
  RoundTripEverywhere<HeartbeatReply>("heartbeat_reply", 19, [](Gen& g, bool t) { return g.Heartbeat(t); });
  RoundTripEverywhere<CommitReply>("commit_reply", 20, [](Gen& g, bool) { return g.Commit(); });
  RoundTripEverywhere<Capabilities>("capabilities", 21, [](Gen& g, bool) { return g.Caps(); });
}

TEST(ContractCodecs, WireLimitsRefuseHostileLengthsAndCounts) {
  TaskSpec t;
  t.id = std::string(kMaxIdBytes + 1, 'x');
  TaskSpec back;
  Status st = codec::DecodeWire(codec::EncodeWire(t), &back, "task");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'id' is 257 bytes, more than its 256-byte limit"), std::string::npos) << st.ToString();

  // A checkpoint claiming 2^31 files in a 20-byte body: refused before any allocation.
  codec::WireOut w;
  w.BE(1, 8);
  w.BE(2, 8);
  w.BE(std::uint64_t{1} << 31, 4);
  CheckpointRecord c;
  st = codec::DecodeWire(w.out(), &c, "checkpoint");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("list 'files' has 2147483648 items, more than its 65536-item limit"),
            std::string::npos) << st.ToString();
  // Within the limit but more than the bytes can hold (each file needs at least 16 bytes).
  codec::WireOut w2;
  w2.BE(1, 8);
  w2.BE(2, 8);
  w2.BE(3, 4);
  w2.Raw(std::string(40, '\0'));
  st = codec::DecodeWire(w2.out(), &c, "checkpoint");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("claims 3 items but only 40 bytes are left"), std::string::npos) << st.ToString();

  // An enum code beyond the enum, and a bool that is not 0 or 1, name their fields.
  std::string grant_bytes = codec::EncodeWire(LeaseGrant{});
  grant_bytes[8 + 4] = 9;  // lease (8), task.id length (4), then task.type
  LeaseGrant g;
  st = codec::DecodeWire(grant_bytes, &g, "grant");
  EXPECT_NE(st.message().find("field 'task.type': unknown value 9 (at most 6)"), std::string::npos) << st.ToString();
  std::string reply_bytes = codec::EncodeWire(CommitReply{});
  reply_bytes.back() = 2;
  CommitReply r;
  st = codec::DecodeWire(reply_bytes, &r, "commit_reply");
  EXPECT_NE(st.message().find("field 'duplicate' is not a bool (2)"), std::string::npos) << st.ToString();
}

TEST(ContractCodecs, VarintDecodingIsBoundedByTheBytesGiven) {
  // An int32 field holding a value beyond int32 is refused, not truncated.
  codec::VarintOut w;
  w.Varint(0);                           // id ""
  w.U8(0);                               // type
  w.ZigZag(std::int64_t{1} << 40);       // layer
  TaskSpec t;
  Status st = codec::DecodeVarint(w.out(), &t, "task");
  EXPECT_NE(st.message().find("field 'layer' out of int range"), std::string::npos) << st.ToString();
  // A list longer than the bytes left.
  codec::VarintOut l;
  l.ZigZag(1);
  l.ZigZag(2);
  l.Varint(1000);
  CheckpointRecord c;
  st = codec::DecodeVarint(l.out(), &c, "checkpoint");
  EXPECT_NE(st.message().find("list length 1000 at field 'files' exceeds the 0 bytes left"), std::string::npos)
      << st.ToString();
}

// Found by state_codec_fuzz: an overlong varint (continuation bytes ending in a 0 byte) decoded
// to the same value as the short form, so one value had many encodings. Refused now: every
// value in RUN/state/ has exactly one.
TEST(ContractCodecs, OverlongVarintsAreRefused) {
  const std::string overlong("\x8c\x8c\x8c\x8c\x00", 5);  // the fuzzer's: five bytes ending in 0
  CheckpointRecord c;
  Status st = codec::DecodeVarint(std::string_view("\x80\x00", 2), &c, "checkpoint");
  EXPECT_NE(st.message().find("overlong varint at field 'step'"), std::string::npos) << st.ToString();
  st = codec::DecodeVarint(overlong, &c, "checkpoint");
  EXPECT_NE(st.message().find("overlong varint"), std::string::npos) << st.ToString();
  // The canonical forms still decode: 0, 127, 128 and the largest value.
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{127}, std::uint64_t{128}, ~std::uint64_t{0}}) {
    codec::VarintOut w;
    w.Varint(v);
    codec::ByteReader r(w.out(), 1);
    EXPECT_EQ(r.Varint("v"), v);
    EXPECT_TRUE(r.ok());
  }
}

TEST(ContractCodecs, JsonErrorsNameThePath) {
  Gen g(31);
  nlohmann::json j = codec::ToJson(g.Grant(true));
  j["task"]["layer"] = "three";
  LeaseGrant out;
  Status st = codec::FromJson(j, &out, "grant.json");
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("grant.json: task.layer: expected an integer, got \"three\""), std::string::npos)
      << st.ToString();

  j = codec::ToJson(g.Grant(true));
  j["task"].erase("deps");
  st = codec::FromJson(j, &out, "grant.json");
  EXPECT_NE(st.message().find("task.deps: missing"), std::string::npos) << st.ToString();

  j = codec::ToJson(g.Grant(true));
  j["task"]["type"] = "distil";
  st = codec::FromJson(j, &out, "grant.json");
  EXPECT_NE(st.message().find("task.type: unknown name, got \"distil\""), std::string::npos) << st.ToString();

  j = codec::ToJson(g.Grant(true));
  j["task"]["workers"] = std::int64_t{1} << 40;
  st = codec::FromJson(j, &out, "grant.json");
  EXPECT_NE(st.message().find("task.workers: out of range"), std::string::npos) << st.ToString();

  // Keys the record does not declare are ignored (plan.json carries per-task estimates).
  j = codec::ToJson(g.Grant(true));
  j["task"]["est_seconds"] = 1.5;
  EXPECT_TRUE(codec::FromJson(j, &out, "grant.json").ok());
}

}  // namespace
}  // namespace radlads
