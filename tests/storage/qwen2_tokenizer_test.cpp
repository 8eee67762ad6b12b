// The Qwen2.5 tokenizer against Hugging Face `tokenizers`: committed fixtures written by
// tools/gen_tokenizer_fixtures.py (tests/data/tokenizer/, docs/tokenizer.md "Fixtures").
#include "storage/qwen2_tokenizer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include "base/gzip.h"
#include "storage/unicode_text.h"

namespace radlads {
namespace {

const std::string kRoot = RADLADS_SOURCE_DIR;

class Qwen2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Qwen2Tokenizer::Load(kRoot + "/data/qwen2.5-tokenizer");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tok_ = new Qwen2Tokenizer(std::move(t).value());
  }
  static void TearDownTestSuite() { delete tok_; tok_ = nullptr; }
  static Qwen2Tokenizer* tok_;
};
Qwen2Tokenizer* Qwen2TokenizerTest::tok_ = nullptr;

struct FixtureCase {
  std::string name;
  std::string text;
  std::vector<std::uint32_t> ids;
};

std::vector<FixtureCase> ReadCases() {
  auto blob = ReadMaybeGzipFile(kRoot + "/tests/data/tokenizer/cases.bin.gz");
  EXPECT_TRUE(blob.ok()) << blob.status().ToString();
  std::vector<FixtureCase> cases;
  if (!blob.ok()) return cases;
  const std::string& b = *blob;
  std::size_t pos = 0;
  auto u32 = [&]() {
    std::uint32_t v = 0;
    if (pos + 4 <= b.size()) std::memcpy(&v, b.data() + pos, 4);
    pos += 4;
    return v;
  };
  auto bytes = [&](std::size_t n) {
    std::string s = pos + n <= b.size() ? b.substr(pos, n) : std::string();
    pos += n;
    return s;
  };
  EXPECT_EQ(bytes(8), "RLTOKFX1");
  const std::uint32_t count = u32();
  for (std::uint32_t k = 0; k < count && pos <= b.size(); ++k) {
    FixtureCase c;
    c.name = bytes(u32());
    c.text = bytes(u32());
    c.ids.resize(u32());
    for (auto& id : c.ids) id = u32();
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(pos, b.size()) << "cases.bin.gz is truncated or has trailing bytes";
  return cases;
}

std::string FirstDifference(const std::vector<std::uint32_t>& got,
                            const std::vector<std::uint32_t>& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto at = [&](const std::vector<std::uint32_t>& v) {
    return i < v.size() ? std::to_string(v[i]) : std::string("end");
  };
  return "first difference at " + std::to_string(i) + ": got " + at(got) + ", want " + at(want) +
         " (lengths " + std::to_string(got.size()) + " and " + std::to_string(want.size()) + ")";
}

TEST_F(Qwen2TokenizerTest, MatchesHuggingFaceOnEveryFixtureCase) {
  const std::vector<FixtureCase> cases = ReadCases();
  ASSERT_GE(cases.size(), 600u);
  int round_trips = 0;
  Qwen2Encoder encoder(*tok_);  // one cache across all cases, as radlads-data uses it
  for (const FixtureCase& c : cases) {
    std::vector<std::uint32_t> ids;
    encoder.Encode(c.text, &ids);
    EXPECT_EQ(ids, c.ids) << c.name << ": " << FirstDifference(ids, c.ids);
    EXPECT_EQ(tok_->Encode(c.text), c.ids) << c.name << " (fresh cache)";
    if (IsValidUtf8(c.text) && NfcNormalize(c.text) == c.text) {
      auto back = tok_->Decode(ids);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(*back, c.text) << c.name << ": decode(encode(x)) != x";
      ++round_trips;
    }
  }
  EXPECT_GE(round_trips, 400);  // the rest hold NFD text or invalid UTF-8
}

std::uint64_t Fnv1a64(const std::vector<std::uint32_t>& ids) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint32_t id : ids) {
    for (int k = 0; k < 4; ++k) {
      h ^= (id >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

TEST_F(Qwen2TokenizerTest, MatchesHuggingFaceOnTheSixAustenNovels) {
  auto doc = ReadMaybeGzipFile(kRoot + "/tests/data/tokenizer/austen.json");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const auto j = nlohmann::json::parse(*doc);
  ASSERT_EQ(j["novels"].size(), 6u);
  Qwen2Encoder encoder(*tok_);
  for (const auto& novel : j["novels"]) {
    const std::string file = novel["file"].get<std::string>();
    auto text = ReadMaybeGzipFile(kRoot + "/" + file);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    ASSERT_EQ(text->size(), novel["bytes"].get<std::size_t>()) << file;
    std::vector<std::uint32_t> ids;
    encoder.Encode(*text, &ids);
    const auto head = novel["head_ids"].get<std::vector<std::uint32_t>>();
    ASSERT_GE(ids.size(), head.size()) << file;
    const std::vector<std::uint32_t> got_head(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(head.size()));
    EXPECT_EQ(got_head, head) << file << ": " << FirstDifference(got_head, head);
    EXPECT_EQ(ids.size(), novel["token_count"].get<std::size_t>()) << file;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a64(ids)));
    EXPECT_EQ(std::string(hex), novel["fnv1a64"].get<std::string>()) << file << ": some id differs";
    auto back = tok_->Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(*back == *text) << file << ": decode(encode(x)) != x";
  }
}

TEST_F(Qwen2TokenizerTest, KnowsItsSpecialTokensAndEndOfText) {
  EXPECT_EQ(tok_->vocab_size(), 151665u);
  ASSERT_TRUE(tok_->end_of_text_id().has_value());
  EXPECT_EQ(*tok_->end_of_text_id(), 151643u);
  EXPECT_EQ(tok_->end_of_text_token(), "<|endoftext|>");
  EXPECT_EQ(tok_->eos_token_id(), std::optional<std::uint32_t>(151645u));  // <|im_end|>
  EXPECT_EQ(tok_->TokenId("<|im_start|>"), std::optional<std::uint32_t>(151644u));
  EXPECT_EQ(tok_->TokenId("\xC4\xA0"), std::optional<std::uint32_t>(220u));  // "Ġ"
  EXPECT_FALSE(tok_->TokenId("no such token").has_value());
  EXPECT_EQ(tok_->Encode("<|endoftext|>"), std::vector<std::uint32_t>{151643u});
  Qwen2Tokenizer copy = *tok_;
  ASSERT_TRUE(copy.SetEndOfText("<|im_end|>").ok());
  EXPECT_EQ(copy.end_of_text_id(), std::optional<std::uint32_t>(151645u));
  EXPECT_EQ(copy.SetEndOfText("<|nope|>").code(), Status::Code::kInvalidArgument);
}

TEST_F(Qwen2TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  std::vector<std::uint32_t> ids = {9707, 151665};
  auto r = tok_->Decode(ids);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ids[1] = 151665"), std::string::npos) << r.status().ToString();
  auto ok = tok_->Decode(std::vector<std::uint32_t>{151644, 151643});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "<|im_start|><|endoftext|>");
}

TEST_F(Qwen2TokenizerTest, InvalidUtf8IsEncodedAsItsReplacement) {
  // Policy (storage/qwen2_tokenizer.h): each maximal invalid subpart becomes U+FFFD.
  const std::string raw = "a\x80" "b\xE2\x82" "c\xF0\x9F\x98";
  EXPECT_EQ(tok_->Encode(raw), tok_->Encode("a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD"));
  // Random bytes: always the ids of the replaced text, and every id decodes.
  std::mt19937 rng(1234);
  Qwen2Encoder encoder(*tok_);
  for (int k = 0; k < 300; ++k) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    std::vector<std::uint32_t> ids;
    encoder.Encode(s, &ids);
    EXPECT_EQ(ids, tok_->Encode(ReplaceInvalidUtf8(s))) << "case " << k;
    auto back = tok_->Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(IsValidUtf8(*back)) << "case " << k;
  }
}

TEST(Utf8Policy, ReplacesMaximalSubpartsLikePython) {
  // Expected strings are Python's bytes.decode("utf-8", errors="replace").
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ReplaceInvalidUtf8("ok"), "ok");
  EXPECT_EQ(ReplaceInvalidUtf8("\x80"), r);
  EXPECT_EQ(ReplaceInvalidUtf8("\xC0\xAF"), r + r);          // overlong lead C0: two
  EXPECT_EQ(ReplaceInvalidUtf8("\xE0\x80\xAF"), r + r + r);  // E0 needs A0..BF next
  EXPECT_EQ(ReplaceInvalidUtf8("\xE2\x82"), r);              // truncated: one
  EXPECT_EQ(ReplaceInvalidUtf8("\xE2\x82x"), r + "x");
  EXPECT_EQ(ReplaceInvalidUtf8("\xED\xA0\x80"), r + r + r);  // surrogate
  EXPECT_EQ(ReplaceInvalidUtf8("\xF4\x90\x80\x80"), r + r + r + r);  // > U+10FFFF
  EXPECT_EQ(ReplaceInvalidUtf8("\xF0\x9F\x98"), r);
  EXPECT_EQ(ReplaceInvalidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80 caf\xC3\xA9"));
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xFF"));
}

}  // namespace
}  // namespace radlads
