// binidx reader/writer and TokenDataset: round trips for every format and dtype, format
// detection, and every malformed-index rule of storage/binidx.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dirent.h>

#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "base/file.h"
#include "storage/binidx.h"
#include "storage/binidx_format.h"
#include "storage/npy.h"
#include "storage/token_dataset.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;

template <typename T>
void Put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

// An independent builder of the Megatron .idx layout, with every field overridable so tests can
// produce malformed files.
struct IdxSpec {
  std::string magic = std::string("MMIDIDX\0\0", 9);
  std::uint64_t version = 1;
  std::uint8_t code = 4;
  std::vector<std::int32_t> sizes;
  std::optional<std::vector<std::int64_t>> pointers;  // default: running sum * itemsize
  std::vector<std::int64_t> doc_idx;
  std::optional<std::uint64_t> s_count;  // default: sizes.size()
  std::optional<std::uint64_t> d_count;  // default: doc_idx.size()
  std::string trailing;

  std::string Build() const {
    std::string s = magic;
    Put(s, version);
    Put(s, code);
    Put<std::uint64_t>(s, s_count.value_or(sizes.size()));
    Put<std::uint64_t>(s, d_count.value_or(doc_idx.size()));
    for (auto v : sizes) Put(s, v);
    if (pointers) {
      for (auto v : *pointers) Put(s, v);
    } else {
      const std::int64_t item = static_cast<std::int64_t>(BinidxTokenItemSize(code).value_or(4));
      std::int64_t run = 0;
      for (auto v : sizes) {
        Put(s, run);
        run += v * item;
      }
    }
    for (auto v : doc_idx) Put(s, v);
    return s + trailing;
  }
};

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::vector<std::int64_t> Iota(std::int64_t n) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = 0; i < n; ++i) v.push_back(i);
  return v;
}

// A valid spec: 3 sequences of 2, 0 and 3 int32 tokens, Megatron doc_idx 0..S.
IdxSpec ValidSpec() {
  IdxSpec spec;
  spec.sizes = {2, 0, 3};
  spec.doc_idx = {0, 1, 2, 3};
  return spec;
}
constexpr std::uint64_t kValidBinBytes = 5 * 4;

Status Parse(const IdxSpec& spec, std::uint64_t bin_bytes = kValidBinBytes) {
  return ParseBinidxIndex(Bytes(spec.Build()), bin_bytes, "data/x.idx").status();
}

void ExpectCorruption(const Status& st, std::initializer_list<std::string_view> parts) {
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  for (auto p : parts) EXPECT_THAT(st.message(), HasSubstr(std::string(p)));
}

std::vector<std::vector<std::uint32_t>> RandomDocs(std::uint64_t seed, int docs, std::uint32_t vocab,
                                                   int max_len) {
  testing::Rng rng(seed);
  std::vector<std::vector<std::uint32_t>> out(static_cast<std::size_t>(docs));
  for (auto& d : out) {
    d.resize(std::uniform_int_distribution<int>(0, max_len)(rng));
    for (auto& t : d) t = std::uniform_int_distribution<std::uint32_t>(0, vocab - 1)(rng);
  }
  return out;
}

int CountEntries(const std::string& dir) {
  int n = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n;
}

std::vector<std::uint32_t> ReadAll(const TokenDataset& ds) {
  std::vector<std::uint32_t> out(ds.size());
  EXPECT_TRUE(ds.CopyTokens(0, out).ok());
  return out;
}

// ------------------------------------------------------------------------------------------
// Writer + reader round trips

struct WriterCase {
  std::uint64_t vocab;
  std::optional<std::uint32_t> eos;
  BinidxDTypeCode expect_code;
  DType expect_dtype;
};

TEST(Binidx, WriterRoundTripRandomDocuments) {
  const WriterCase cases[] = {
      {320, 256, BinidxDTypeCode::kUint16, DType::kU16},
      {65535, std::nullopt, BinidxDTypeCode::kUint16, DType::kU16},
      {65536, 65535, BinidxDTypeCode::kInt32, DType::kI32},
      {151936, 151643, BinidxDTypeCode::kInt32, DType::kI32},
  };
  std::uint64_t seed = 1000;
  for (const auto& c : cases) {
    SCOPED_TRACE("vocab " + std::to_string(c.vocab));
    testing::ScratchDir dir;
    const std::string prefix = dir.File("corpus");
    const auto docs = RandomDocs(seed++, 40, static_cast<std::uint32_t>(c.vocab), 300);
    auto w = BinidxWriter::Create(prefix, {.vocab_size = c.vocab, .eos_id = c.eos});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->dtype_code(), c.expect_code);
    std::vector<std::uint32_t> expect;
    std::vector<std::uint64_t> expect_starts;
    for (const auto& d : docs) {
      if (!d.empty() || c.eos) expect_starts.push_back(expect.size());
      expect.insert(expect.end(), d.begin(), d.end());
      if (c.eos) expect.push_back(*c.eos);
      ASSERT_TRUE(w->AppendDocument(d).ok());
    }
    ASSERT_TRUE(w->Finish().ok());
    EXPECT_EQ(w->token_count(), expect.size());
    EXPECT_EQ(w->document_count(), docs.size());
    EXPECT_EQ(CountEntries(dir.path()), 2) << "exactly PREFIX.bin and PREFIX.idx, no temp files";

    auto index = ReadBinidxIndex(prefix);
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    EXPECT_EQ(index->sequence_count(), docs.size());
    EXPECT_EQ(index->doc_idx, Iota(static_cast<std::int64_t>(docs.size()) + 1)) << "strict Megatron doc_idx";
    EXPECT_FALSE(index->has_modes);

    for (const std::string& path : {prefix, prefix + ".bin", prefix + ".idx"}) {
      auto ds = TokenDataset::Open(path);
      ASSERT_TRUE(ds.ok()) << ds.status().ToString();
      EXPECT_EQ(ds->format(), TokenFileFormat::kBinidx);
      EXPECT_EQ(ds->dtype(), c.expect_dtype);
      EXPECT_EQ(ds->path(), prefix + ".bin");
      ASSERT_EQ(ds->size(), expect.size());
      EXPECT_EQ(ReadAll(*ds), expect);
      std::vector<std::uint64_t> starts(ds->document_starts().begin(), ds->document_starts().end());
      EXPECT_EQ(starts, expect_starts);
      EXPECT_TRUE(ds->CheckVocabulary(c.vocab).ok());
      std::uint32_t max_id = 0;
      for (auto t : expect) max_id = std::max(max_id, t);
      EXPECT_EQ(*ds->MaxTokenId(), max_id);
    }
  }
}

TEST(Binidx, WriterEmptyDatasetAndOverwrite) {
  testing::ScratchDir dir;
  const std::string prefix = dir.File("d");
  {
    auto w = BinidxWriter::Create(prefix, {.vocab_size = 10});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Finish().ok());
  }
  auto empty = TokenDataset::Open(prefix);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_FALSE(empty->has_document_boundaries());
  EXPECT_EQ(empty->MaxTokenId().status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(empty->CheckVocabulary(10).ok());

  // A second writer replaces the pair.
  auto w = BinidxWriter::Create(prefix, {.vocab_size = 10, .eos_id = 9});
  ASSERT_TRUE(w.ok());
  const std::vector<std::uint32_t> doc = {1, 2, 3};
  ASSERT_TRUE(w->AppendDocument(doc).ok());
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(w->Finish().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(w->AppendDocument(doc).code(), Status::Code::kFailedPrecondition);
  auto ds = TokenDataset::Open(prefix);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ReadAll(*ds), (std::vector<std::uint32_t>{1, 2, 3, 9}));
}

TEST(Binidx, AbandonedWriterLeavesOldPairAndNoTemp) {
  testing::ScratchDir dir;
  const std::string prefix = dir.File("d");
  {
    auto w = BinidxWriter::Create(prefix, {.vocab_size = 100});
    ASSERT_TRUE(w.ok());
    const std::vector<std::uint32_t> doc = {7, 8};
    ASSERT_TRUE(w->AppendDocument(doc).ok());
    ASSERT_TRUE(w->Finish().ok());
  }
  {
    auto w = BinidxWriter::Create(prefix, {.vocab_size = 100});
    ASSERT_TRUE(w.ok());
    const std::vector<std::uint32_t> doc = {1, 2, 3, 4};
    ASSERT_TRUE(w->AppendDocument(doc).ok());
    BinidxWriter moved = std::move(*w);  // ownership of the temp file moves too
    EXPECT_EQ(CountEntries(dir.path()), 3);
  }
  EXPECT_EQ(CountEntries(dir.path()), 2);
  auto ds = TokenDataset::Open(prefix);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ReadAll(*ds), (std::vector<std::uint32_t>{7, 8}));
}

TEST(Binidx, WriterRejectsBadOptionsAndTokens) {
  testing::ScratchDir dir;
  const std::string prefix = dir.File("d");
  EXPECT_EQ(BinidxWriter::Create(prefix, {.vocab_size = 0}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(BinidxWriter::Create(prefix, {.vocab_size = 10, .eos_id = 10}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(BinidxWriter::Create(dir.File("missing/d"), {.vocab_size = 10}).status().code(),
            Status::Code::kNotFound);
  auto w = BinidxWriter::Create(prefix, {.vocab_size = 10});
  ASSERT_TRUE(w.ok());
  const std::vector<std::uint32_t> bad = {1, 10};
  Status st = w->AppendDocument(bad);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("d.bin: document 0 token[1]=10 is >= vocab_size 10"));
  const std::vector<std::uint32_t> good = {9};
  ASSERT_TRUE(w->AppendDocument(good).ok()) << "the writer stays usable after a rejected document";
  ASSERT_TRUE(w->Finish().ok());
  auto ds = TokenDataset::Open(prefix);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ReadAll(*ds), (std::vector<std::uint32_t>{9}));
}

// Every accepted token dtype, read from hand-built files.
TEST(Binidx, ReaderAcceptsEveryIntegerDType) {
  struct Case {
    std::uint8_t code;
    DType dtype;
    std::size_t item;
  };
  const Case cases[] = {{1, DType::kU8, 1}, {2, DType::kI8, 1}, {3, DType::kI16, 2},
                        {4, DType::kI32, 4}, {5, DType::kI64, 8}, {8, DType::kU16, 2}};
  testing::Rng rng(7);
  for (const auto& c : cases) {
    SCOPED_TRACE("code " + std::to_string(c.code));
    testing::ScratchDir dir;
    std::vector<std::uint32_t> tokens(37);
    std::string bin;
    for (auto& t : tokens) {
      t = std::uniform_int_distribution<std::uint32_t>(0, 100)(rng);  // fits every dtype
      const std::uint64_t v = t;
      bin.append(reinterpret_cast<const char*>(&v), c.item);  // little-endian truncation
    }
    IdxSpec spec;
    spec.code = c.code;
    spec.sizes = {10, 27};
    spec.doc_idx = {0, 1};  // make_data_hf.py style: range(S)
    testing::WriteBytes(dir.File("t.idx"), spec.Build());
    testing::WriteBytes(dir.File("t.bin"), bin);
    auto ds = TokenDataset::Open(dir.File("t"));
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_EQ(ds->dtype(), c.dtype);
    EXPECT_EQ(ReadAll(*ds), tokens);
    std::vector<std::int32_t> as_i32(tokens.size());
    ASSERT_TRUE(ds->CopyTokens(0, as_i32).ok());
    for (std::size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(as_i32[i], static_cast<std::int32_t>(tokens[i]));
    EXPECT_EQ(ds->RawTokenAt(36), tokens[36]);
    EXPECT_EQ(*ds->TokenAt(5), tokens[5]);
    std::vector<std::uint64_t> starts(ds->document_starts().begin(), ds->document_starts().end());
    EXPECT_EQ(starts, (std::vector<std::uint64_t>{0, 10}));
  }
}

TEST(Binidx, NegativeTokensInSignedDTypesAreErrors) {
  for (std::uint8_t code : {2, 3, 4, 5}) {
    SCOPED_TRACE("code " + std::to_string(code));
    testing::ScratchDir dir;
    const std::size_t item = *BinidxTokenItemSize(code);
    std::string bin;
    for (std::int64_t v : {3, 4, -2, 5}) bin.append(reinterpret_cast<const char*>(&v), item);
    IdxSpec spec;
    spec.code = code;
    spec.sizes = {4};
    spec.doc_idx = {0, 1};
    testing::WriteBytes(dir.File("t.idx"), spec.Build());
    testing::WriteBytes(dir.File("t.bin"), bin);
    auto ds = TokenDataset::Open(dir.File("t"));
    ASSERT_TRUE(ds.ok()) << "negative values are found when tokens are read, not at open";
    EXPECT_EQ(ds->RawTokenAt(2), -2);
    std::vector<std::uint32_t> out(4);
    Status st = ds->CopyTokens(0, out);
    ExpectCorruption(st, {"t.bin", "token[2]=-2", "negative"});
    ExpectCorruption(ds->MaxTokenId().status(), {"t.bin", "token[2]=-2"});
    st = ds->CheckVocabulary(100);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("t.bin: token[2]=-2 is outside the vocabulary [0, vocab_size=100)"));
    std::vector<std::uint32_t> two(2);
    EXPECT_TRUE(ds->CopyTokens(0, two).ok()) << "a window before the bad token is fine";
  }
}

// ------------------------------------------------------------------------------------------
// Malformed indexes: each error names the file and the field.

TEST(BinidxMalformed, ValidSpecParses) {
  auto idx = ValidSpec().Build();
  auto r = ParseBinidxIndex(Bytes(idx), kValidBinBytes, "data/x.idx");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->token_count, 5u);
  EXPECT_EQ(r->DocumentStartTokens(), (std::vector<std::uint64_t>{0, 2}));
}

TEST(BinidxMalformed, TruncatedAtEveryLength) {
  const std::string full = ValidSpec().Build();
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE("length " + std::to_string(n));
    auto r = ParseBinidxIndex(Bytes(full.substr(0, n)), kValidBinBytes, "data/x.idx");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    EXPECT_THAT(r.status().message(), HasSubstr("data/x.idx: "));
  }
  ExpectCorruption(ParseBinidxIndex(Bytes(full.substr(0, 20)), kValidBinBytes, "data/x.idx").status(),
                   {"data/x.idx: header: file has 20 bytes, expected at least 34"});
  // Cut inside sizes/pointers: the sequence count no longer fits.
  ExpectCorruption(ParseBinidxIndex(Bytes(full.substr(0, 50)), kValidBinBytes, "data/x.idx").status(),
                   {"data/x.idx: sequence count S=3", "only 16 bytes follow"});
  // Cut inside doc_idx.
  ExpectCorruption(
      ParseBinidxIndex(Bytes(full.substr(0, full.size() - 3)), kValidBinBytes, "data/x.idx").status(),
      {"data/x.idx: doc_idx count D=4"});
}

TEST(BinidxMalformed, MagicVersionDType) {
  IdxSpec s = ValidSpec();
  s.magic = std::string("MMIDIDX\0\1", 9);
  ExpectCorruption(Parse(s), {"data/x.idx: magic"});
  s = ValidSpec();
  s.version = 2;
  ExpectCorruption(Parse(s), {"data/x.idx: version: 2, expected 1"});
  for (std::uint8_t code : {6, 7}) {
    s = ValidSpec();
    s.code = code;
    ExpectCorruption(Parse(s), {"data/x.idx: dtype code " + std::to_string(code), "tokens must be integers"});
  }
  for (std::uint8_t code : {0, 9, 10, 255}) {
    s = ValidSpec();
    s.code = code;
    ExpectCorruption(Parse(s), {"data/x.idx: dtype code " + std::to_string(code) + " is unknown"});
  }
}

TEST(BinidxMalformed, LyingCounts) {
  for (std::uint64_t lie : {std::uint64_t{1} << 62, std::uint64_t{1} << 60, ~std::uint64_t{0}, std::uint64_t{6}}) {
    SCOPED_TRACE(lie);
    IdxSpec s = ValidSpec();
    s.s_count = lie;
    ExpectCorruption(Parse(s), {"data/x.idx: sequence count S=" + std::to_string(lie)});
  }
  for (std::uint64_t lie : {std::uint64_t{1} << 62, std::uint64_t{1} << 61, ~std::uint64_t{0}, std::uint64_t{5}}) {
    SCOPED_TRACE(lie);
    IdxSpec s = ValidSpec();
    s.d_count = lie;
    ExpectCorruption(Parse(s), {"data/x.idx: doc_idx count D=" + std::to_string(lie)});
  }
  // A smaller D leaves bytes that are not a modes array.
  IdxSpec s = ValidSpec();
  s.d_count = 3;
  ExpectCorruption(Parse(s), {"data/x.idx: 8 bytes follow doc_idx; expected 0 or S=3"});
}

TEST(BinidxMalformed, SizesAndPointers) {
  IdxSpec s = ValidSpec();
  s.sizes = {2, -1, 3};
  s.pointers = std::vector<std::int64_t>{0, 8, 8};
  ExpectCorruption(Parse(s), {"data/x.idx: sizes[1]=-1 is negative"});

  s = ValidSpec();
  s.pointers = std::vector<std::int64_t>{0, 8, 12};
  ExpectCorruption(Parse(s), {"data/x.idx: pointers[2]=12 expected 8"});
  s.pointers = std::vector<std::int64_t>{4, 8, 8};
  ExpectCorruption(Parse(s), {"data/x.idx: pointers[0]=4 expected 0"});
  s.pointers = std::vector<std::int64_t>{0, -8, 8};
  ExpectCorruption(Parse(s), {"data/x.idx: pointers[1]=-8 expected 8"});

  // Sequence 2 (3 tokens at byte 8) runs past a 16-byte .bin.
  s = ValidSpec();
  ExpectCorruption(Parse(s, 16),
                   {"data/x.idx: sizes[2]=3 tokens at pointer 8 runs past the end of data/x.bin (16 bytes)"});
  s.sizes = {2, 0, std::numeric_limits<std::int32_t>::max()};
  ExpectCorruption(Parse(s, 16), {"data/x.idx: sizes[2]=2147483647 tokens at pointer 8 runs past"});
  ExpectCorruption(Parse(s, ~std::uint64_t{0} - 3), {"data/x.bin: has 18446744073709551612 bytes but data/x.idx covers 8589934596"});
  // .bin longer than the index says.
  ExpectCorruption(Parse(ValidSpec(), 24), {"data/x.bin: has 24 bytes but data/x.idx covers 20"});
  // .bin not a whole number of tokens.
  ExpectCorruption(Parse(ValidSpec(), 21), {"data/x.bin: size 21 bytes is not a multiple of 4"});
}

TEST(BinidxMalformed, DocIdx) {
  IdxSpec s = ValidSpec();
  s.doc_idx = {0, 2, 1, 3};
  ExpectCorruption(Parse(s), {"data/x.idx: doc_idx[2]=1 is less than doc_idx[1]=2"});
  s.doc_idx = {0, 4};
  ExpectCorruption(Parse(s), {"data/x.idx: doc_idx[1]=4 is outside [0, S=3]"});
  s.doc_idx = {-1, 3};
  ExpectCorruption(Parse(s), {"data/x.idx: doc_idx[0]=-1 is outside"});
}

TEST(BinidxLenient, DocIdxFormsAndModes) {
  // Megatron: 0..S; make_data_hf.py: range(S); also empty, and a trailing modes array.
  for (const auto& doc_idx : {std::vector<std::int64_t>{0, 1, 2, 3}, std::vector<std::int64_t>{0, 1, 2},
                              std::vector<std::int64_t>{}, std::vector<std::int64_t>{0, 3}}) {
    IdxSpec s = ValidSpec();
    s.doc_idx = doc_idx;
    EXPECT_TRUE(Parse(s).ok()) << Parse(s).ToString();
    s.trailing = std::string(3, '\0');
    auto r = ParseBinidxIndex(Bytes(s.Build()), kValidBinBytes, "data/x.idx");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->has_modes);
  }
  IdxSpec s = ValidSpec();
  s.doc_idx = {0, 3};  // one document spanning all sequences
  auto r = ParseBinidxIndex(Bytes(s.Build()), kValidBinBytes, "data/x.idx");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->DocumentStartTokens(), (std::vector<std::uint64_t>{0}));
}

TEST(BinidxMalformed, OpenReportsMissingFiles) {
  testing::ScratchDir dir;
  testing::WriteBytes(dir.File("only.idx"), ValidSpec().Build());
  auto r = TokenDataset::Open(dir.File("only"), TokenFileFormat::kBinidx);
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("only.bin"));
  EXPECT_EQ(ReadBinidxIndex(dir.File("only")).status().code(), Status::Code::kNotFound);
}

// ------------------------------------------------------------------------------------------
// Other formats and detection

TEST(TokenDataset, NpyAndRawRoundTrips) {
  testing::ScratchDir dir;
  testing::Rng rng(42);
  std::vector<std::uint32_t> tokens(1000);
  for (auto& t : tokens) t = std::uniform_int_distribution<std::uint32_t>(0, 151935)(rng);
  const std::uint64_t shape[] = {tokens.size()};

  ASSERT_TRUE(WriteNpy(dir.File("t_u4.npy"), std::span<const std::uint32_t>(tokens), shape).ok());
  std::vector<std::int32_t> i32(tokens.begin(), tokens.end());
  ASSERT_TRUE(WriteNpy(dir.File("t_i4.npy"), std::span<const std::int32_t>(i32), shape).ok());
  std::vector<std::int64_t> i64(tokens.begin(), tokens.end());
  ASSERT_TRUE(WriteNpy(dir.File("t_i8.npy"), DType::kI64, shape, std::as_bytes(std::span(i64))).ok());
  std::vector<std::uint16_t> u16(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) u16[i] = static_cast<std::uint16_t>(tokens[i] % 50257);
  ASSERT_TRUE(WriteNpy(dir.File("t_u2.npy"), std::span<const std::uint16_t>(u16), shape).ok());
  std::vector<std::uint32_t> from_u16(u16.begin(), u16.end());

  for (const auto& [name, expect, dtype] :
       {std::tuple{"t_u4.npy", tokens, DType::kU32}, std::tuple{"t_i4.npy", tokens, DType::kI32},
        std::tuple{"t_i8.npy", tokens, DType::kI64}, std::tuple{"t_u2.npy", from_u16, DType::kU16}}) {
    SCOPED_TRACE(name);
    auto ds = TokenDataset::Open(dir.File(name));
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    EXPECT_EQ(ds->format(), TokenFileFormat::kNpy);
    EXPECT_EQ(ds->dtype(), dtype);
    EXPECT_EQ(ReadAll(*ds), expect);
    EXPECT_FALSE(ds->has_document_boundaries());
  }

  // Raw uint32 by suffix, raw uint16 (nanoGPT) only when asked.
  testing::WriteBytes(dir.File("t.u32"), std::string(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4));
  auto raw = TokenDataset::Open(dir.File("t.u32"));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->format(), TokenFileFormat::kRawU32);
  EXPECT_EQ(ReadAll(*raw), tokens);
  testing::WriteBytes(dir.File("train.bin"), std::string(reinterpret_cast<const char*>(u16.data()), u16.size() * 2));
  auto guess = TokenDataset::Open(dir.File("train.bin"));
  EXPECT_EQ(guess.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(guess.status().message(), HasSubstr("format u16"));
  auto nano = TokenDataset::Open(dir.File("train.bin"), TokenFileFormat::kRawU16);
  ASSERT_TRUE(nano.ok());
  EXPECT_EQ(nano->format(), TokenFileFormat::kRawU16);
  EXPECT_EQ(ReadAll(*nano), from_u16);
  auto as_u32 = TokenDataset::Open(dir.File("train.bin"), TokenFileFormat::kRawU32);
  ASSERT_TRUE(as_u32.ok()) << "2000 bytes is a whole number of uint32";
  EXPECT_EQ(as_u32->size(), 500u);
}

TEST(TokenDataset, DetectionErrors) {
  testing::ScratchDir dir;
  auto missing = TokenDataset::Open(dir.File("nothing"));
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  testing::WriteBytes(dir.File("odd.u32"), "abcdef");
  ExpectCorruption(TokenDataset::Open(dir.File("odd.u32")).status(), {"odd.u32: size 6 bytes is not a multiple of 4"});
  testing::WriteBytes(dir.File("mystery.txt"), "abcd");
  auto mystery = TokenDataset::Open(dir.File("mystery.txt"));
  EXPECT_EQ(mystery.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(mystery.status().message(), HasSubstr("cannot tell the token format"));

  const std::uint64_t shape2[] = {2, 3};
  const std::vector<std::uint32_t> six = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(WriteNpy(dir.File("m.npy"), std::span<const std::uint32_t>(six), shape2).ok());
  auto two_d = TokenDataset::Open(dir.File("m.npy"));
  EXPECT_EQ(two_d.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(two_d.status().message(), HasSubstr("m.npy: shape has 2 dimensions; a token file must be 1-D"));
  const std::uint64_t shape1[] = {2};
  const std::vector<float> f = {1, 2};
  ASSERT_TRUE(WriteNpy(dir.File("f.npy"), std::span<const float>(f), shape1).ok());
  EXPECT_THAT(TokenDataset::Open(dir.File("f.npy")).status().message(), HasSubstr("tokens must be integers"));

  EXPECT_EQ(*ParseTokenFileFormat("u16"), TokenFileFormat::kRawU16);
  EXPECT_EQ(ParseTokenFileFormat("parquet").status().code(), Status::Code::kInvalidArgument);
}

TEST(TokenDataset, RangeAndOutputTypeChecks) {
  auto ds = TokenDataset::FromTokens({5, 0x80000000u, 7}, "mem");
  std::vector<std::uint32_t> out(2);
  EXPECT_TRUE(ds.CopyTokens(1, out).ok());
  EXPECT_EQ(out[0], 0x80000000u);
  Status st = ds.CopyTokens(2, out);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("mem: tokens [2, 2+2) are outside the dataset (3 tokens)"));
  EXPECT_EQ(ds.CopyTokens(~std::uint64_t{0}, out).code(), Status::Code::kInvalidArgument);
  std::vector<std::int32_t> i32(2);
  ExpectCorruption(ds.CopyTokens(0, i32), {"mem: token[1]=2147483648 does not fit int32"});
  EXPECT_EQ(ds.TokenAt(3).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(*ds.MaxTokenId(), 0x80000000u);
  st = ds.CheckVocabulary(151936);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("mem: token[1]=2147483648 is outside the vocabulary [0, vocab_size=151936)"));

  // i64 values above UINT32_MAX do not fit a uint32 window.
  testing::ScratchDir dir;
  const std::vector<std::int64_t> big = {1, std::int64_t{1} << 33};
  const std::uint64_t shape[] = {2};
  ASSERT_TRUE(WriteNpy(dir.File("big.npy"), DType::kI64, shape, std::as_bytes(std::span(big))).ok());
  auto b = TokenDataset::Open(dir.File("big.npy"));
  ASSERT_TRUE(b.ok());
  ExpectCorruption(b->CopyTokens(0, out), {"big.npy: token[1]=8589934592 does not fit uint32"});
}

// Committed fixtures written by tests/data/datasets/make_fixtures.py, which mirrors Megatron's
// _IndexWriter, RADLADS make_data_hf.py and NumPy's header writer byte for byte.
TEST(TokenDataset, CommittedFixtures) {
  const std::vector<std::uint32_t> expect = {11, 12, 13, 0, 21, 22, 0, 31, 0};
  auto mega = TokenDataset::Open(testing::TestDataPath("datasets/megatron_u16"));
  ASSERT_TRUE(mega.ok()) << mega.status().ToString();
  EXPECT_EQ(mega->dtype(), DType::kU16);
  EXPECT_EQ(ReadAll(*mega), expect);
  std::vector<std::uint64_t> starts(mega->document_starts().begin(), mega->document_starts().end());
  EXPECT_EQ(starts, (std::vector<std::uint64_t>{0, 4, 7}));

  auto hf = TokenDataset::Open(testing::TestDataPath("datasets/make_data_hf_i32"));
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  EXPECT_EQ(hf->dtype(), DType::kI32);
  const std::vector<std::uint32_t> expect_hf = {151000, 5, 151643, 7, 8, 9, 151643};
  EXPECT_EQ(ReadAll(*hf), expect_hf);
  starts.assign(hf->document_starts().begin(), hf->document_starts().end());
  EXPECT_EQ(starts, (std::vector<std::uint64_t>{0, 3}));
  EXPECT_TRUE(hf->CheckVocabulary(151665).ok());

  auto npy = TokenDataset::Open(testing::TestDataPath("datasets/tokens_u4.npy"));
  ASSERT_TRUE(npy.ok()) << npy.status().ToString();
  EXPECT_EQ(ReadAll(*npy), (std::vector<std::uint32_t>{0, 1, 2, 151643, 4294967295u}));
}

}  // namespace
}  // namespace radlads
