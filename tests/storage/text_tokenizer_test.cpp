// TextTokenizer (storage/text_tokenizer.h): which tokenizer a run uses for its text, and that the
// tiny teacher's byte vocabulary keeps the byte tokens' behaviour.
#include "storage/text_tokenizer.h"

#include <gtest/gtest.h>

#include "storage/byte_tokenizer.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

const std::string kRoot = RADLADS_SOURCE_DIR;

TEST(TextTokenizer, QwenTokenizerOfAModelDirectory) {
  auto t = TextTokenizer::ForModel(kRoot + "/data/qwen2.5-tokenizer");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE(t->is_bytes());
  EXPECT_EQ(t->vocab_size(), 151665u);
  EXPECT_EQ(t->end_of_text_id(), 151643u) << "<|endoftext|>, as radlads-data tokenize appends";
  EXPECT_EQ(t->stop_ids(), (std::vector<std::uint32_t>{151643, 151645})) << "and <|im_end|>, the Instruct eos";
  const std::string text = "It is a truth universally acknowledged";
  const std::vector<std::uint32_t> ids = t->Encode(text);
  EXPECT_LT(ids.size(), text.size()) << "merges apply";
  EXPECT_EQ(t->Decode(ids), text);
  // Each id's byte length: the ids of a text add up to its bytes.
  const std::vector<std::uint32_t> lengths = t->TokenByteLengths();
  ASSERT_EQ(lengths.size(), t->vocab_size());
  std::size_t bytes = 0;
  for (std::uint32_t id : ids) bytes += lengths[id];
  EXPECT_EQ(bytes, text.size());
  EXPECT_EQ(lengths[151643], std::string("<|endoftext|>").size());
  // Ids the tokenizer does not define (the embedding's padding rows) are skipped.
  std::vector<std::uint32_t> padded = ids;
  padded.push_back(151900);
  EXPECT_EQ(t->Decode(padded), text);
}

TEST(TextTokenizer, TheTinyTeachersByteVocabularyIsTheByteTokenizer) {
  auto t = TextTokenizer::ForModel(kRoot + "/data/tiny-teacher");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->is_bytes());
  EXPECT_EQ(t->vocab_size(), kByteVocabSize);
  EXPECT_EQ(t->end_of_text_id(), kByteEndOfText);
  EXPECT_TRUE(t->stop_ids().empty());
  EXPECT_TRUE(t->TokenByteLengths().empty()) << "one byte per token";
  EXPECT_EQ(t->Encode("Anne"), EncodeBytes("Anne"));
  const std::vector<std::uint32_t> ids = {ByteToTokenId('a'), kByteEndOfText, ByteToTokenId('b')};
  EXPECT_EQ(t->Decode(ids), DecodeTokens(ids));
}

TEST(TextTokenizer, RunSettingChoosesAndFallsBackToBytes) {
  testing::ScratchDir empty;
  auto none = TextTokenizer::ForRun("teacher", empty.path());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->is_bytes()) << "a teacher without tokenizer.json keeps byte tokens";
  auto forced = TextTokenizer::ForRun("bytes", kRoot + "/data/qwen2.5-tokenizer");
  ASSERT_TRUE(forced.ok());
  EXPECT_TRUE(forced->is_bytes());
  auto qwen = TextTokenizer::ForRun("teacher", kRoot + "/data/qwen2.5-tokenizer");
  ASSERT_TRUE(qwen.ok());
  EXPECT_FALSE(qwen->is_bytes());
  auto bad = TextTokenizer::ForRun("sentencepiece", empty.path());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("data.tokenizer"), std::string::npos) << bad.status().message();
  EXPECT_EQ(TextTokenizer::ForModel(empty.path()).status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace radlads
