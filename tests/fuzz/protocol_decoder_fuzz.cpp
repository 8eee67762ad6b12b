// libFuzzer target for the coordinator's wire protocol (rpc/protocol.h,
// docs/protocol.md). The first input byte picks a mode; the rest is the attacker's bytes:
//   0  one frame payload: ParseFrame, then every body decoder (requests, replies, handshake)
//      on its body;
//   1  a raw byte stream into FrameSplitter + ServerSession, as the server sees a connection
//      (fed in uneven chunks); almost everything dies at the MAC, which is the point;
//   2  after a real handshake, records [type u8][len u16 BE][body] sealed with the right session
//      key and sequence, so the request decoders run behind a valid MAC;
//   3  the client's view: after a real handshake, records [type u8][len u16 BE][body] sealed
//      as server replies, opened by ClientSession::OpenReply.
// Properties: no crash or sanitizer report; every decoder is canonical (an accepted body
// re-encodes to exactly the same bytes); a session that refused a frame stays failed and names
// a violation.
// Seeds: tests/fuzz/corpus/protocol_decoder_fuzz/ (valid frames and record streams).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rpc/protocol.h"

namespace {

using namespace radlads::protocol;
using radlads::RunSecret;

[[noreturn]] void Die(const char* what, std::uint8_t type) {
  std::fprintf(stderr, "protocol_decoder_fuzz: %s (type %s)\n", what, MsgTypeName(type).c_str());
  std::abort();
}

RunSecret FuzzSecret() {
  RunSecret s;
  for (std::size_t i = 0; i < s.bytes.size(); ++i) s.bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return s;
}

Nonce Fill(std::uint8_t v) {
  Nonce n;
  n.fill(v);
  return n;
}

constexpr std::uint64_t kSession = 0x0102030405060708ULL;
constexpr std::uint32_t kMaxFrame = 1 << 16;

void CheckRequestBody(std::uint8_t type, std::string_view body) {
  auto r = DecodeRequestBody(type, body);
  if (!r.ok()) return;
  if (static_cast<std::uint8_t>(TypeOf(*r)) != type) Die("decoded request has another type", type);
  if (EncodeRequestBody(*r) != body) Die("request body is not canonical", type);
}

void CheckReplyBody(MsgType request, std::string_view body) {
  auto r = DecodeReplyBody(request, body);
  if (!r.ok()) return;
  if (EncodeReplyBody(request, *r) != body) Die("reply body is not canonical", ReplyCode(request));
}

void CheckAllBodies(std::string_view body) {
  for (std::uint8_t t = kFirstRequestType; t <= kLastRequestType; ++t) {
    CheckRequestBody(t, body);
    CheckReplyBody(static_cast<MsgType>(t), body);
  }
  if (auto c = DecodeChallenge(body); c.ok() && EncodeChallenge(*c) != body) Die("challenge", 1);
  if (auto h = DecodeHello(body); h.ok() && EncodeHello(*h) != body) Die("hello", 2);
  if (auto h = DecodeHelloReply(body); h.ok() && EncodeHelloReply(*h) != body) Die("hello_reply", 3);
}

std::string Payload(const std::string& frame) { return frame.substr(kLengthPrefixBytes); }

// A server and client session that completed the handshake.
struct Connected {
  ServerSession server{FuzzSecret(), kSession, Fill(0x11), kMaxFrame, "fuzz-run"};
  ClientSession client{FuzzSecret(), "fuzz", 1, Fill(0x22)};
  bool ok = false;
  Connected() {
    auto hello = client.OnChallenge(Payload(server.ChallengeFrame()));
    if (!hello.ok()) return;
    if (!server.Receive(Payload(*hello)).ok()) return;
    ok = client.OnHelloReply(Payload(server.SealHelloReply({"fuzz-run", 1}))).ok();
  }
};

// Splits `in` into [type][len u16][body] records.
template <typename F>
void ForEachRecord(std::string_view in, F&& f) {
  while (in.size() >= 3) {
    const std::uint8_t type = static_cast<std::uint8_t>(in[0]);
    std::size_t len = static_cast<std::uint8_t>(in[1]) << 8 | static_cast<std::uint8_t>(in[2]);
    in.remove_prefix(3);
    len = len < in.size() ? len : in.size();
    if (!f(type, in.substr(0, len))) return;
    in.remove_prefix(len);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 4;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  if (mode == 0) {
    auto f = ParseFrame(in);
    if (f.ok()) CheckAllBodies(f->body);
    CheckAllBodies(in);
    return 0;
  }

  if (mode == 1) {
    ServerSession server(FuzzSecret(), kSession, Fill(0x11), kMaxFrame, "fuzz-run");
    FrameSplitter splitter(kMaxFrame);
    std::size_t pos = 0;
    std::size_t chunk = 1;
    while (pos < in.size()) {
      const std::size_t n = chunk < in.size() - pos ? chunk : in.size() - pos;
      splitter.Append(in.substr(pos, n));
      pos += n;
      chunk = chunk * 3 % 251 + 1;
      for (;;) {
        auto next = splitter.Next();
        if (!next.ok()) {
          if (splitter.violation() == Violation::kNone) Die("splitter error without a violation", 0);
          return 0;
        }
        if (!next->has_value()) break;
        auto r = server.Receive(**next);
        if (!r.ok()) {
          if (server.violation() == Violation::kNone) Die("refusal without a violation", 0);
          if (server.Receive(**next).ok()) Die("a failed session accepted a frame", 0);
          return 0;
        }
      }
      if (splitter.buffered() > kMaxFrame + kLengthPrefixBytes) Die("splitter over-buffered", 0);
    }
    return 0;
  }

  Connected c;
  if (!c.ok) std::abort();
  if (mode == 2) {
    std::uint64_t seq = 2;
    ForEachRecord(in, [&](std::uint8_t type, std::string_view body) {
      auto r = c.server.Receive(Payload(c.client.SealRaw(type, seq, body)));
      if (!r.ok()) return false;
      if (r->hello || r->seq != seq) Die("unexpected incoming", type);
      if (EncodeRequestBody(r->request) != body) Die("accepted request is not canonical", type);
      // Answer it; the client must accept the server's own reply.
      const MsgType t = TypeOf(r->request);
      const std::string reply =
          Payload(c.server.SealReply(seq, t, Reply{radlads::Status::Ok(), EmptyReplyBodyFor(t)}));
      if (!c.client.OpenReply(reply, seq, t).ok()) Die("client refused a valid reply", type);
      ++seq;
      return true;
    });
    return 0;
  }

  // mode 3: hostile replies under a valid MAC.
  const SessionKeys keys = DeriveSessionKeys(FuzzSecret(), kSession, Fill(0x11), Fill(0x22));
  std::uint64_t seq = 2;
  ForEachRecord(in, [&](std::uint8_t type, std::string_view body) {
    const std::uint8_t req = static_cast<std::uint8_t>(type % (kLastRequestType - kFirstRequestType + 1) +
                                                       kFirstRequestType);
    const std::string frame = Payload(SealFrame(ReplyCode(static_cast<MsgType>(req)), kSession, seq,
                                                body, &keys.server_to_client));
    auto r = c.client.OpenReply(frame, seq, static_cast<MsgType>(req));
    if (r.ok() && EncodeReplyBody(static_cast<MsgType>(req), *r) != body) {
      Die("accepted reply is not canonical", req);
    }
    ++seq;
    return true;
  });
  return 0;
}
