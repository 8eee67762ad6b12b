#include "storage/byte_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/gzip.h"

namespace radlads {
namespace {

TEST(ByteTokenizer, IdsAreQwen25ByteTokenIds) {
  // The real Qwen2.5 tokenizer.json, vendored in data/ (see data/NOTICE.md).
  auto text = ReadMaybeGzipFile(std::string(RADLADS_SOURCE_DIR) + "/data/qwen2.5-tokenizer/tokenizer.json.gz");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto j = nlohmann::json::parse(*text);
  const auto& vocab = j["model"]["vocab"];
  ASSERT_EQ(vocab.size(), 151643u);
  for (int b = 0; b < 256; ++b) {
    std::string sym = ByteSymbol(static_cast<std::uint8_t>(b));
    ASSERT_TRUE(vocab.contains(sym)) << "byte " << b;
    EXPECT_EQ(vocab[sym].get<std::uint32_t>(), ByteToTokenId(static_cast<std::uint8_t>(b))) << "byte " << b;
  }
  EXPECT_EQ(ByteToTokenId('!'), 0u);
  EXPECT_EQ(ByteToTokenId('\n'), 198u);
  EXPECT_EQ(ByteToTokenId(' '), 220u);
  bool found_eot = false;
  for (const auto& t : j["added_tokens"])
    if (t["content"] == "<|endoftext|>") found_eot = t["id"] == 151643;
  EXPECT_TRUE(found_eot);
}

TEST(ByteTokenizer, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  auto ids = EncodeBytes(all);
  ASSERT_EQ(ids.size(), 256u);
  for (auto id : ids) EXPECT_LT(id, 256u);
  EXPECT_EQ(DecodeTokens(ids), all);
  std::vector<std::uint32_t> with_eot = EncodeBytes("ab");
  with_eot.push_back(kByteEndOfText);
  with_eot.push_back(300);  // padding id: skipped
  EXPECT_EQ(DecodeTokens(with_eot), "ab\n");
}

TEST(ByteTokenizer, TokenizerJsonIsValidAndComplete) {
  auto j = nlohmann::json::parse(ByteTokenizerJson());
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), 256u);
  EXPECT_TRUE(j["model"]["merges"].empty());
  EXPECT_EQ(j["added_tokens"][0]["id"], 256);
}

}  // namespace
}  // namespace radlads
