// tokenizer.json / tokenizer_config.json parsing: truncated, corrupted and lying files, the
// added-token flags, and the BPE merge order, on a small hand-made byte-level tokenizer.
#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

#include "storage/bpe.h"
#include "storage/byte_tokenizer.h"
#include "storage/qwen2_pretokenizer.h"
#include "storage/qwen2_tokenizer.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using nlohmann::json;

std::string Sym(char c) { return ByteSymbol(static_cast<std::uint8_t>(c)); }

// 256 byte symbols (Qwen's ids), then "ab" = 256, "abc" = 257, "Ġa" = 258; added "<m>" = 259.
json SmallTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[ByteSymbol(static_cast<std::uint8_t>(b))] = ByteToTokenId(static_cast<std::uint8_t>(b));
  }
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab[Sym(' ') + "a"] = 258;
  json j;
  j["version"] = "1.0";
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", std::string(kQwen2SplitRegex)}}},
         {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
         {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"byte_fallback", false}, {"vocab", vocab},
                {"merges", {"a b", json::array({"ab", "c"}), Sym(' ') + " a"}}};
  j["added_tokens"] = {{{"id", 259}, {"content", "<m>"}, {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", false}, {"special", true}}};
  return j;
}

Result<Qwen2Tokenizer> Parse(const json& j, const std::string& config = "") {
  return Qwen2Tokenizer::Parse(j.dump(), "tok.json", config, "cfg.json");
}

// The error names the file, the field and what was wrong.
void ExpectError(const Result<Qwen2Tokenizer>& r, const std::string& file, const std::string& field,
                 const std::string& what) {
  ASSERT_FALSE(r.ok()) << "accepted a bad file (expected an error about " << field << ")";
  const std::string& m = r.status().message();
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << m;
  EXPECT_EQ(m.rfind(file + ": ", 0), 0u) << m;
  EXPECT_NE(m.find(field), std::string::npos) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

std::vector<std::uint32_t> Ids(std::initializer_list<std::uint32_t> l) { return l; }
std::uint32_t B(char c) { return ByteToTokenId(static_cast<std::uint8_t>(c)); }

TEST(Qwen2TokenizerParse, SmallTokenizerEncodesAndDecodes) {
  auto t = Parse(SmallTokenizer());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->vocab_size(), 260u);
  // "abc" | " ab" | " a" | <m> | "x"; in " ab" the merge "a b" (rank 0) beats "Ġ a" (rank 2).
  EXPECT_EQ(t->Encode("abc ab a<m>x"), Ids({257, B(' '), 256, 258, 259, B('x')}));
  EXPECT_FALSE(t->end_of_text_id().has_value());
  auto back = t->Decode(t->Encode("abc ab a<m>x"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "abc ab a<m>x");
}

TEST(Qwen2TokenizerParse, TruncatedFilesAreRejectedWithTheSource) {
  const std::string text = SmallTokenizer().dump();
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, text.size() / 3, text.size() / 2, text.size() - 1}) {
    auto r = Qwen2Tokenizer::Parse(text.substr(0, len), "tok.json");
    ASSERT_FALSE(r.ok()) << "length " << len;
    EXPECT_EQ(r.status().message().rfind("tok.json: ", 0), 0u) << r.status().ToString();
  }
  ExpectError(Qwen2Tokenizer::Parse("[1, 2]", "tok.json"), "tok.json", "top level", "JSON object");
}

TEST(Qwen2TokenizerParse, CorruptedFilesNeverCrash) {
  const std::string text = SmallTokenizer().dump();
  std::mt19937 rng(20240613);
  int rejected = 0;
  for (int k = 0; k < 300; ++k) {
    std::string s = text;
    for (int f = 0; f < 1 + static_cast<int>(rng() % 4); ++f) {
      s[rng() % s.size()] = static_cast<char>(rng() & 0xFF);
    }
    auto r = Qwen2Tokenizer::Parse(s, "tok.json");
    if (!r.ok()) {
      ++rejected;
      EXPECT_EQ(r.status().message().rfind("tok.json: ", 0), 0u) << r.status().ToString();
    } else {
      (void)r->Encode("some text <m> 123");
    }
  }
  EXPECT_GT(rejected, 150);
}

TEST(Qwen2TokenizerParse, LyingModelSectionsAreRejected) {
  json j = SmallTokenizer();
  j["model"].erase("merges");
  ExpectError(Parse(j), "tok.json", "model.merges", "expected a list of merges");

  j = SmallTokenizer();
  j["model"]["merges"][1] = "ab zz";
  ExpectError(Parse(j), "tok.json", "model.merges[1]", "\"zz\" is not in model.vocab");

  j = SmallTokenizer();
  j["model"]["merges"].push_back("b c");  // "bc" is not a token
  ExpectError(Parse(j), "tok.json", "model.merges[3]", "\"bc\" is not in model.vocab");

  j = SmallTokenizer();
  j["model"]["merges"][2] = "a  b";
  ExpectError(Parse(j), "tok.json", "model.merges[2]", "two tokens, one space");

  j = SmallTokenizer();
  j["model"]["merges"].push_back("a b");
  ExpectError(Parse(j), "tok.json", "model.merges[3]", "repeats an earlier merge");

  j = SmallTokenizer();
  j["model"]["vocab"]["abc"] = 300;
  ExpectError(Parse(j), "tok.json", "model.vocab[\"abc\"]", "in [0, 259)");

  j = SmallTokenizer();
  j["model"]["vocab"]["abc"] = -1;
  ExpectError(Parse(j), "tok.json", "model.vocab[\"abc\"]", "expected an integer id");

  j = SmallTokenizer();
  j["model"]["vocab"]["abc"] = 256;  // the id of "ab"
  j["model"]["vocab"]["xyz"] = 257;
  ExpectError(Parse(j), "tok.json", "model.vocab", "is also the id of");

  j = SmallTokenizer();
  j["model"]["vocab"].erase(Sym(' '));
  j["model"]["vocab"]["zz"] = B(' ');
  ExpectError(Parse(j), "tok.json", "model.vocab", "byte 32) is missing");

  j = SmallTokenizer();
  j["model"]["vocab"] = json::array();
  ExpectError(Parse(j), "tok.json", "model.vocab", "expected a non-empty object");

  j = SmallTokenizer();
  j["model"]["byte_fallback"] = true;
  ExpectError(Parse(j), "tok.json", "model.byte_fallback", "expected false");

  j = SmallTokenizer();
  j["model"]["dropout"] = 0.1;
  ExpectError(Parse(j), "tok.json", "model.dropout", "not supported");

  j = SmallTokenizer();
  j["model"]["type"] = "WordPiece";
  ExpectError(Parse(j), "tok.json", "model.type", "expected \"BPE\"");

  j = SmallTokenizer();
  j.erase("model");
  ExpectError(Parse(j), "tok.json", "model", "expected an object");
}

TEST(Qwen2TokenizerParse, LyingPipelineSectionsAreRejected) {
  json j = SmallTokenizer();
  j["normalizer"] = {{"type", "NFKC"}};
  ExpectError(Parse(j), "tok.json", "normalizer", "expected null or");

  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  ExpectError(Parse(j), "tok.json", "pre_tokenizer.pretokenizers[0].pattern.Regex", "Qwen2's split regex");

  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  ExpectError(Parse(j), "tok.json", "behavior", "\"Isolated\"");

  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
  ExpectError(Parse(j), "tok.json", "pre_tokenizer.pretokenizers[1].use_regex", "expected false");

  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  ExpectError(Parse(j), "tok.json", "add_prefix_space", "expected false");

  j = SmallTokenizer();
  j.erase("pre_tokenizer");
  ExpectError(Parse(j), "tok.json", "pre_tokenizer", "expected the Qwen2 Sequence");

  j = SmallTokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  ExpectError(Parse(j), "tok.json", "decoder", "ByteLevel");
}

TEST(Qwen2TokenizerParse, LyingAddedTokensAreRejected) {
  json j = SmallTokenizer();
  j["added_tokens"][0]["id"] = 257;  // "abc"'s id
  ExpectError(Parse(j), "tok.json", "added_tokens[0].id", "is model.vocab's id of \"abc\"");

  j = SmallTokenizer();
  j["added_tokens"].push_back({{"id", 259}, {"content", "<n>"}});
  ExpectError(Parse(j), "tok.json", "added_tokens[1].id", "repeats an earlier added token's id");

  j = SmallTokenizer();
  j["added_tokens"].push_back({{"id", 260}, {"content", "<m>"}});
  ExpectError(Parse(j), "tok.json", "added_tokens[1].content", "repeats");

  j = SmallTokenizer();
  j["added_tokens"][0]["content"] = "";
  ExpectError(Parse(j), "tok.json", "added_tokens[0].content", "a non-empty string");

  j = SmallTokenizer();
  j["added_tokens"][0]["id"] = -5;
  ExpectError(Parse(j), "tok.json", "added_tokens[0].id", "an integer in [0, 2^31)");

  j = SmallTokenizer();
  j["added_tokens"][0]["id"] = 2000000000;
  ExpectError(Parse(j), "tok.json", "added_tokens", "unused ids");

  j = SmallTokenizer();
  j["added_tokens"][0]["lstrip"] = "yes";
  ExpectError(Parse(j), "tok.json", "added_tokens[0]: lstrip", "expected true or false");

  j = SmallTokenizer();
  j["added_tokens"] = json::array({5});
  ExpectError(Parse(j), "tok.json", "added_tokens[0]", "expected an object");
}

TEST(Qwen2TokenizerParse, ConfigNamesTheEosToken) {
  json j = SmallTokenizer();
  auto t = Parse(j, R"({"eos_token": "<m>"})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->eos_token_id(), std::optional<std::uint32_t>(259u));
  EXPECT_EQ(t->end_of_text_id(), std::optional<std::uint32_t>(259u));  // no <|endoftext|>
  EXPECT_EQ(t->end_of_text_token(), "<m>");
  auto obj = Parse(j, R"({"eos_token": {"content": "abc", "lstrip": false}})");
  ASSERT_TRUE(obj.ok()) << obj.status().ToString();
  EXPECT_EQ(obj->eos_token_id(), std::optional<std::uint32_t>(257u));
  ExpectError(Parse(j, R"({"eos_token": "<|nope|>"})"), "cfg.json", "eos_token", "is not a token of tok.json");
  ExpectError(Parse(j, R"({"eos_token": 5})"), "cfg.json", "eos_token", "expected a string");
  ExpectError(Parse(j, R"({"eos_token": )"), "cfg.json", "", "not valid JSON");
  j["added_tokens"].push_back({{"id", 260}, {"content", "<|endoftext|>"}, {"special", true}});
  auto eot = Parse(j, R"({"eos_token": "<m>"})");
  ASSERT_TRUE(eot.ok());
  EXPECT_EQ(eot->end_of_text_id(), std::optional<std::uint32_t>(260u));
}

TEST(Qwen2TokenizerParse, LoadReadsAModelDirectory) {
  radlads::testing::ScratchDir dir;
  auto missing = Qwen2Tokenizer::Load(dir.path());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  radlads::testing::WriteBytes(dir.File("tokenizer.json"), SmallTokenizer().dump());
  radlads::testing::WriteBytes(dir.File("tokenizer_config.json"), "{\"eos_token\": 7}");
  auto bad = Qwen2Tokenizer::Load(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer_config.json: eos_token"), std::string::npos)
      << bad.status().ToString();
  radlads::testing::WriteBytes(dir.File("tokenizer_config.json"), "{\"eos_token\": \"<m>\"}");
  auto t = Qwen2Tokenizer::Load(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->end_of_text_id(), std::optional<std::uint32_t>(259u));
}

TEST(Qwen2TokenizerParse, TheByteTokenizerJsonLoads) {
  auto t = Qwen2Tokenizer::Parse(ByteTokenizerJson(), "bytes.json");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->end_of_text_id(), std::optional<std::uint32_t>(kByteEndOfText));
  const std::string text = "Hello,  world\n\n<|endoftext|>x";
  std::vector<std::uint32_t> want = EncodeBytes("Hello,  world\n\n");
  want.push_back(kByteEndOfText);
  want.push_back(ByteToTokenId('x'));
  EXPECT_EQ(t->Encode(text), want);
}

TEST(Qwen2TokenizerParse, AddedTokenFlagsFollowHuggingFace) {
  json j = SmallTokenizer();
  auto plain = Parse(j);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->Encode("x <m> y"), Ids({B('x'), B(' '), 259, B(' '), B('y')}));

  j["added_tokens"][0]["lstrip"] = true;
  EXPECT_EQ(Parse(j)->Encode("x \t<m> y"), Ids({B('x'), 259, B(' '), B('y')}));
  j["added_tokens"][0]["lstrip"] = false;
  j["added_tokens"][0]["rstrip"] = true;
  EXPECT_EQ(Parse(j)->Encode("x <m> \n y"), Ids({B('x'), B(' '), 259, B('y')}));
  j["added_tokens"][0]["rstrip"] = false;
  j["added_tokens"][0]["single_word"] = true;
  EXPECT_EQ(Parse(j)->Encode("x<m> <m>"),
            Ids({B('x'), B('<'), B('m'), B('>'), B(' '), 259}));
  // normalized=true: matched on the NFC text (e U+0302 U+0301 is U+1EBF).
  json k = SmallTokenizer();
  k["added_tokens"].push_back({{"id", 260}, {"content", "\xE1\xBA\xBF"}, {"normalized", true}, {"special", false}});
  auto n = Parse(k);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->Encode("xe\xCC\x82\xCC\x81y"), Ids({B('x'), 260, B('y')}));
  // ... and not on the raw text of a normalized=false token.
  k["added_tokens"][1]["normalized"] = false;
  EXPECT_EQ(Parse(k)->Encode("xe\xCC\x82\xCC\x81y").size(), 5u);  // x, then U+1EBF's 3 bytes, y
  // Leftmost-longest: "<m>" inside a longer added token.
  json l = SmallTokenizer();
  l["added_tokens"].push_back({{"id", 260}, {"content", "<m>>"}, {"normalized", false}});
  EXPECT_EQ(Parse(l)->Encode("<m>><m>"), Ids({260, 259}));
}

TEST(Bpe, QueueAndLinearMergesAgree) {
  // Random merges over ids 0..5 producing ids 6..; random words; both algorithms.
  std::mt19937 rng(7);
  BpeMerges merges;
  std::uint32_t next_id = 6;
  for (std::uint32_t rank = 0; rank < 40; ++rank) {
    const std::uint32_t l = rng() % next_id, r = rng() % next_id;
    if (merges.Insert(l, r, {rank, next_id})) ++next_id;
  }
  for (int k = 0; k < 500; ++k) {
    std::vector<std::uint32_t> word(1 + rng() % 120);
    for (auto& s : word) s = rng() % 6;
    std::vector<std::uint32_t> a = word, b = word;
    BpeMergeWord(merges, &a, /*linear_max=*/256);
    BpeMergeWord(merges, &b, /*linear_max=*/0);
    EXPECT_EQ(a, b) << "word " << k;
  }
  // Hand-checked: (a,a)->A rank 0, (A,A)->B rank 1: "aaaaa" -> B a; leftmost pair first.
  BpeMerges m;
  ASSERT_TRUE(m.Insert(0, 0, {0, 10}));
  ASSERT_TRUE(m.Insert(10, 10, {1, 11}));
  EXPECT_FALSE(m.Insert(0, 0, {2, 12}));
  for (std::size_t linear_max : {std::size_t{256}, std::size_t{0}}) {
    std::vector<std::uint32_t> w = {0, 0, 0, 0, 0};
    BpeMergeWord(m, &w, linear_max);
    EXPECT_EQ(w, Ids({11, 0})) << linear_max;
  }
}

TEST(Bpe, WordCacheRoundTrips) {
  BpeWordCache cache;
  std::vector<std::uint32_t> out;
  EXPECT_FALSE(cache.Find("word", &out));
  const std::vector<std::uint32_t> ids = {1, 2, 3};
  cache.Insert("word", ids);
  cache.Insert(std::string(BpeWordCache::kMaxWordBytes + 1, 'x'), ids);  // too long: not kept
  for (int k = 0; k < 5000; ++k) cache.Insert("w" + std::to_string(k), ids);  // grows
  ASSERT_TRUE(cache.Find("word", &out));
  EXPECT_EQ(out, ids);
  EXPECT_FALSE(cache.Find(std::string(BpeWordCache::kMaxWordBytes + 1, 'x'), &out));
  EXPECT_EQ(cache.size(), 5001u);
}

}  // namespace
}  // namespace radlads
