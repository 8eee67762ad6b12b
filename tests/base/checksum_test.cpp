#include "base/checksum.h"

#include <gtest/gtest.h>

#include <string>

namespace radlads {
namespace {

TEST(Checksum, StreamEqualsOneShotAndDetectsFlips) {
  std::string data(100000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  std::uint64_t whole = Checksum64(data);
  Checksum64Stream s;
  for (std::size_t off = 0; off < data.size(); off += 777) {
    std::size_t n = std::min<std::size_t>(777, data.size() - off);
    s.Update(std::as_bytes(std::span<const char>(data.data() + off, n)));
  }
  EXPECT_EQ(s.Digest(), whole);
  for (std::size_t pos : {0u, 5000u, 99999u}) {
    std::string flipped = data;
    flipped[pos] ^= 1;
    EXPECT_NE(Checksum64(flipped), whole) << "bit flip at " << pos;
  }
  // XXH3-64 of the empty input is a published constant.
  EXPECT_EQ(Checksum64(std::string_view()), 0x2D06800538D394C2ull);
  EXPECT_EQ(FormatChecksum(0x2D06800538D394C2ull), "xxh3:2d06800538d394c2");
  EXPECT_EQ(*ParseChecksum("xxh3:2d06800538d394c2"), 0x2D06800538D394C2ull);
  EXPECT_FALSE(ParseChecksum("xxh3:2D06800538D394C2").ok());
  EXPECT_FALSE(ParseChecksum("crc:1").ok());
}

}  // namespace
}  // namespace radlads
