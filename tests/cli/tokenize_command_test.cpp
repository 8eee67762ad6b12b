// radlads-data tokenize (cli/tokenize_command.h): the Qwen2 tokenizer path, JSONL input and its
// errors, and identical output for every thread count.
#include "cli/tokenize_command.h"

#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "storage/binidx.h"
#include "storage/byte_tokenizer.h"
#include "storage/qwen2_tokenizer.h"
#include "tests/testing/test_util.h"

namespace radlads::cli {
namespace {

const std::string kQwenDir = std::string(RADLADS_SOURCE_DIR) + "/data/qwen2.5-tokenizer";

// The documents of a dataset written by RunTokenize (int32 or uint16 tokens).
std::vector<std::vector<std::uint32_t>> ReadDocs(const std::string& prefix) {
  auto index = ReadBinidxIndex(prefix);
  EXPECT_TRUE(index.ok()) << index.status().ToString();
  auto bin = ReadFileToString(prefix + ".bin");
  EXPECT_TRUE(bin.ok());
  std::vector<std::vector<std::uint32_t>> docs;
  if (!index.ok() || !bin.ok()) return docs;
  for (std::size_t s = 0; s < index->sizes.size(); ++s) {
    std::vector<std::uint32_t> d;
    for (std::int32_t k = 0; k < index->sizes[s]; ++k) {
      const std::size_t at = static_cast<std::size_t>(index->pointers[s]) + k * index->item_size;
      std::uint32_t v = 0;
      std::memcpy(&v, bin->data() + at, index->item_size);
      d.push_back(v);
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

TEST(TokenizeCommand, JsonlWithTheQwenTokenizerIsTheSameForEveryThreadCount) {
  testing::ScratchDir dir;
  const std::vector<std::string> texts = {"Hello world!", "", "caf\xC3\xA9 <|im_start|>x\n\n  y",
                                          "\xE4\xBB\x8A\xE5\xA4\xA9 123", "bad \xFF utf8"};
  std::string jsonl;
  for (const std::string& t : texts) {
    nlohmann::json j = {{"id", 1}, {"text", t}};
    jsonl += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::ignore) + "\n\n";
  }
  testing::WriteBytes(dir.File("a.jsonl"), jsonl);
  auto tok = Qwen2Tokenizer::Load(kQwenDir);
  ASSERT_TRUE(tok.ok());
  std::vector<std::vector<std::vector<std::uint32_t>>> runs;
  for (int threads : {1, 2, 3}) {
    TokenizeOptions o;
    o.inputs = {dir.File("a.jsonl"), dir.File("a.jsonl")};
    o.out = dir.File("ds" + std::to_string(threads));
    o.tokenizer = kQwenDir;
    o.jsonl_field = "text";
    o.threads = threads;
    o.progress = false;
  o.report = nullptr;
    o.report = nullptr;
    ASSERT_TRUE(RunTokenize(o).ok());
    runs.push_back(ReadDocs(o.out));
    auto a = ReadFileToString(dir.File("ds1.bin"));
    auto b = ReadFileToString(o.out + ".bin");
    EXPECT_TRUE(a.ok() && b.ok() && *a == *b) << threads << " threads";
  }
  ASSERT_EQ(runs[0].size(), 2 * texts.size());
  for (std::size_t d = 0; d < runs[0].size(); ++d) {
    // error_handler ignore dropped the invalid byte from the JSON text.
    std::string t = texts[d % texts.size()];
    if (auto p = t.find('\xFF'); p != std::string::npos) t.erase(p, 1);
    std::vector<std::uint32_t> want = tok->Encode(t);
    want.push_back(151643u);  // <|endoftext|>
    EXPECT_EQ(runs[0][d], want) << "document " << d;
  }
}

TEST(TokenizeCommand, PlainFilesAndTheBytesDefault) {
  testing::ScratchDir dir;
  testing::WriteBytes(dir.File("a.txt"), "ab");
  testing::WriteBytes(dir.File("b.txt"), "It's");
  TokenizeOptions o;
  o.inputs = {dir.File("a.txt"), dir.File("b.txt")};
  o.out = dir.File("bytes");
  o.progress = false;
  o.report = nullptr;
  ASSERT_TRUE(RunTokenize(o).ok());
  auto docs = ReadDocs(o.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], (std::vector<std::uint32_t>{ByteToTokenId('a'), ByteToTokenId('b'), kByteEndOfText}));
  o.out = dir.File("qwen");
  o.tokenizer = kQwenDir;
  o.threads = 2;
  o.end_of_text = "<|im_end|>";
  ASSERT_TRUE(RunTokenize(o).ok());
  docs = ReadDocs(o.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1], (std::vector<std::uint32_t>{2132, 594, 151645u}));  // "It", "'s", <|im_end|>
}

TEST(TokenizeCommand, BadInputIsNamed) {
  testing::ScratchDir dir;
  testing::WriteBytes(dir.File("x.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \n");
  testing::WriteBytes(dir.File("y.jsonl"), "{\"text\": \"ok\"}\n\n{\"body\": \"no text\"}\n");
  testing::WriteBytes(dir.File("z.jsonl"), "{\"text\": 5}\n");
  testing::WriteBytes(dir.File("w.jsonl"), "[\"text\"]\n");
  TokenizeOptions o;
  o.out = dir.File("ds");
  o.tokenizer = kQwenDir;
  o.jsonl_field = "text";
  o.progress = false;
  o.report = nullptr;
  struct Case { const char* file; const char* want; };
  for (Case c : {Case{"x.jsonl", "x.jsonl:2: not valid JSON"}, Case{"y.jsonl", "y.jsonl:3: no field \"text\""},
                 Case{"z.jsonl", "z.jsonl:1: field \"text\": expected a string"},
                 Case{"w.jsonl", "w.jsonl:1: expected a JSON object"}}) {
    o.inputs = {dir.File(c.file)};
    Status st = RunTokenize(o);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << c.file;
    EXPECT_NE(st.message().find(c.want), std::string::npos) << st.ToString();
    EXPECT_FALSE(PathExists(o.out + ".idx")) << c.file;
  }
  o.inputs = {dir.File("x.jsonl")};
  o.tokenizer = dir.path();  // no tokenizer.json
  EXPECT_EQ(RunTokenize(o).code(), Status::Code::kNotFound);
  o.tokenizer = kQwenDir;
  o.jsonl_field.clear();
  o.end_of_text = "<|no such token|>";
  EXPECT_EQ(RunTokenize(o).code(), Status::Code::kInvalidArgument);
  o.tokenizer = "bytes";
  EXPECT_EQ(RunTokenize(o).code(), Status::Code::kInvalidArgument);  // --end-of-text needs a model
}

}  // namespace
}  // namespace radlads::cli
