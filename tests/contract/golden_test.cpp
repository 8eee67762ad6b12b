// The formats did not move when the codecs were derived from the field declarations: every
// wire body and event value in tests/data/contract/codecs_v1.txt, written by the hand-written
// codecs they replaced (version 1 of both formats), decodes with today's code and re-encodes,
// in version 1, to exactly the same bytes; and a version-1 event still decodes into today's
// records, the fields added later at their defaults.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "rpc/protocol.h"
#include "state/events.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

std::string Unhex(const std::string& h) {
  auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(nib(h[i]) << 4 | nib(h[i + 1])));
  return out;
}

// The bytes are version 1 of both formats; today's code reads them with that version's layout
// and writes them back in it.
constexpr int kWireVersion1 = 1;

TEST(GoldenCodecs, BytesOfTheHandWrittenCodecsRoundTripUnchanged) {
  std::ifstream f(testing::TestDataPath("contract/codecs_v1.txt"));
  ASSERT_TRUE(f.good());
  int requests = 0, replies = 0, events = 0, handshakes = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string name, hex;
    in >> name >> hex;
    const std::string bytes = Unhex(hex);
    const std::string kind = name.substr(0, name.find(':'));
    const std::string arg = name.substr(name.find(':') + 1);
    if (kind == "request") {
      const auto type = static_cast<std::uint8_t>(std::stoi(arg));
      auto r = protocol::DecodeRequestBody(type, bytes, kWireVersion1);
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
      EXPECT_EQ(protocol::EncodeRequestBody(*r, kWireVersion1), bytes) << name;
      ++requests;
    } else if (kind == "reply") {
      const auto type = static_cast<protocol::MsgType>(std::stoi(arg));
      auto r = protocol::DecodeReplyBody(type, bytes, kWireVersion1);
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
      EXPECT_EQ(protocol::EncodeReplyBody(type, *r, kWireVersion1), bytes) << name;
      ++replies;
    } else if (kind == "event") {
      Event e;
      Status st = DecodeEvent(bytes, "e/golden", &e);
      ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
      EXPECT_EQ(EventKindName(KindOf(e.body)), arg);
      EXPECT_EQ(EncodeEvent(e, /*version=*/1), bytes) << name;
      ++events;
    } else if (name == "challenge") {
      auto c = protocol::DecodeChallenge(bytes);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_EQ(protocol::EncodeChallenge(*c), bytes);
      ++handshakes;
    } else if (name == "hello") {
      auto h = protocol::DecodeHello(bytes);
      ASSERT_TRUE(h.ok()) << h.status().ToString();
      EXPECT_EQ(protocol::EncodeHello(*h), bytes);
      ++handshakes;
    } else if (name == "hello_reply") {
      auto h = protocol::DecodeHelloReply(bytes);
      ASSERT_TRUE(h.ok()) << h.status().ToString();
      EXPECT_EQ(protocol::EncodeHelloReply(*h), bytes);
      ++handshakes;
    } else {
      ADD_FAILURE() << "unknown entry " << name;
    }
  }
  // Every request type, the non-empty replies and an error reply, every event kind.
  EXPECT_EQ(requests, 11);
  EXPECT_EQ(replies, 8);
  EXPECT_EQ(events, 17);
  EXPECT_EQ(handshakes, 3);
}

}  // namespace
}  // namespace radlads
