// .npy reader and writer: round trips for every dtype and several shapes, headers written by
// other NumPy versions, and every malformed-header rule of storage/npy.h.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/file.h"
#include "storage/npy.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// A .npy preamble built by hand: magic, version, header length, then `dict` padded with spaces
// and a '\n' to `align` (0 = no padding, no newline).
std::string Preamble(const std::string& dict, int major = 1, int minor = 0, std::size_t align = 64) {
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back(static_cast<char>(minor));
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::string text = dict;
  if (align != 0) {
    const std::size_t raw = 8 + len_bytes + text.size() + 1;
    text.append((align - raw % align) % align, ' ');
    text.push_back('\n');
  }
  for (std::size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
  return out + text;
}

std::string Dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

void ExpectCorruption(const Status& st, std::initializer_list<std::string_view> parts) {
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  for (auto p : parts) EXPECT_THAT(st.message(), HasSubstr(std::string(p)));
}

Status ParseFile(const std::string& bytes) { return ParseNpyFile(Bytes(bytes), "x.npy").status(); }

TEST(Npy, RoundTripEveryDTypeAndShape) {
  testing::ScratchDir dir;
  testing::Rng rng(99);
  const std::vector<std::vector<std::uint64_t>> shapes = {{}, {0}, {5}, {3, 4}, {2, 3, 4}, {1, 0, 7}};
  const DType dtypes[] = {DType::kF32, DType::kI32, DType::kU32, DType::kU16, DType::kU8, DType::kI64};
  for (DType dt : dtypes) {
    for (const auto& shape : shapes) {
      std::uint64_t n = 1;
      for (auto d : shape) n *= d;
      std::string data(n * DTypeSize(dt), '\0');
      for (auto& c : data) c = static_cast<char>(rng() & 0xff);
      const std::string path = dir.File("a.npy");
      ASSERT_TRUE(WriteNpy(path, dt, shape, Bytes(data)).ok());
      auto raw = ReadFileToString(path);
      ASSERT_TRUE(raw.ok());
      auto arr = NpyArray::Open(path);
      ASSERT_TRUE(arr.ok()) << arr.status().ToString();
      EXPECT_EQ(arr->dtype(), dt);
      EXPECT_EQ(arr->shape(), shape);
      EXPECT_EQ(arr->element_count(), n);
      EXPECT_EQ(arr->header().data_offset % kNpyAlignment, 0u);
      EXPECT_EQ(arr->header().major_version, 1);
      EXPECT_EQ(raw->at(arr->header().data_offset - 1), '\n');
      ASSERT_EQ(arr->data().size(), data.size());
      EXPECT_EQ(std::memcmp(arr->data().data(), data.data(), data.size()), 0);
    }
  }
}

TEST(Npy, HeaderMatchesNumPyByteForByte) {
  // np.save(f, np.arange(5, dtype='<u4')) with NumPy >= 1.14 writes exactly this preamble.
  auto pre = NpyPreamble(DType::kU32, std::vector<std::uint64_t>{5});
  ASSERT_TRUE(pre.ok());
  std::string want("\x93NUMPY\x01\x00\x76\x00", 10);
  want += "{'descr': '<u4', 'fortran_order': False, 'shape': (5,), }";
  want.append(128 - 1 - want.size(), ' ');
  want += "\n";
  EXPECT_EQ(*pre, want);
  EXPECT_THAT(*NpyPreamble(DType::kF32, std::vector<std::uint64_t>{3, 4}), HasSubstr("'shape': (3, 4), }"));
  EXPECT_THAT(*NpyPreamble(DType::kF32, std::vector<std::uint64_t>{}), HasSubstr("'shape': (), }"));
  EXPECT_EQ(NpyPreamble(DType::kBF16, std::vector<std::uint64_t>{1}).status().code(), Status::Code::kInvalidArgument);
}

TEST(Npy, StreamingLogitsWriter) {
  testing::ScratchDir dir;
  const std::uint64_t t = 7, vocab = 320;
  const std::uint64_t shape[] = {t, vocab};
  const std::string path = dir.File("logits.npy");
  Status st = WriteNpyWith(path, DType::kF32, shape, [&](const WriteFn& write) -> Status {
    std::vector<float> row(vocab);
    for (std::uint64_t r = 0; r < t; ++r) {
      for (std::uint64_t v = 0; v < vocab; ++v) row[v] = static_cast<float>(r) * 1000.0f + static_cast<float>(v);
      RADLADS_RETURN_IF_ERROR(write(std::as_bytes(std::span<const float>(row))));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto arr = NpyArray::Open(path);
  ASSERT_TRUE(arr.ok());
  ASSERT_EQ(arr->shape(), (std::vector<std::uint64_t>{t, vocab}));
  float x;
  std::memcpy(&x, arr->data().data() + 4 * (3 * vocab + 17), 4);
  EXPECT_EQ(x, 3017.0f);

  // A fill that writes too little leaves the old file in place.
  st = WriteNpyWith(path, DType::kF32, shape, [](const WriteFn& write) {
    float one = 1.0f;
    return write(std::as_bytes(std::span<const float>(&one, 1)));
  });
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("wrote 4 data bytes, shape needs 8960"));
  EXPECT_TRUE(NpyArray::Open(path).ok());
  const std::uint64_t one[] = {3};
  EXPECT_EQ(WriteNpy(path, DType::kF32, one, Bytes("abc")).code(), Status::Code::kInvalidArgument);
}

TEST(Npy, LargeHeaderUsesVersion2) {
  testing::ScratchDir dir;
  const std::vector<std::uint64_t> shape(25000, 1);  // "1, " x 25000 > 65535 bytes of header
  const std::string path = dir.File("wide.npy");
  const float v = 2.5f;
  ASSERT_TRUE(WriteNpy(path, std::span<const float>(&v, 1), shape).ok());
  auto arr = NpyArray::Open(path);
  ASSERT_TRUE(arr.ok()) << arr.status().ToString();
  EXPECT_EQ(arr->header().major_version, 2);
  EXPECT_EQ(arr->header().data_offset % kNpyAlignment, 0u);
  EXPECT_EQ(arr->shape().size(), 25000u);
}

TEST(Npy, AcceptsOtherWritersHeaders) {
  const std::string data(12, '\x01');
  // NumPy < 1.14 aligned to 16; version 2.0 and 3.0; keys reordered; double quotes; no trailing
  // comma; Python 2 long suffix; extra whitespace.
  const std::string variants[] = {
      Preamble(Dict("<i4", "(3,)"), 1, 0, 16),
      Preamble(Dict("<i4", "(3,)"), 2, 0),
      Preamble(Dict("<i4", "(3,)"), 3, 0),
      Preamble("{'shape': (3,), 'fortran_order': False, 'descr': '<i4'}"),
      Preamble("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3L,)}"),
      Preamble("{ 'descr' : '<i4' , 'fortran_order' : False , 'shape' : ( 3 , ) , }", 1, 0, 0),
  };
  for (const auto& pre : variants) {
    SCOPED_TRACE(pre);
    auto h = ParseNpyFile(Bytes(pre + data), "x.npy");
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(h->dtype, DType::kI32);
    EXPECT_EQ(h->shape, (std::vector<std::uint64_t>{3}));
    EXPECT_EQ(h->data_offset, pre.size());
  }
  auto scalar = ParseNpyFile(Bytes(Preamble(Dict("<f4", "()")) + "abcd"), "x.npy");
  ASSERT_TRUE(scalar.ok());
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->element_count, 1u);
  auto u1 = ParseNpyFile(Bytes(Preamble(Dict("|u1", "(2, 2)")) + "abcd"), "x.npy");
  ASSERT_TRUE(u1.ok());
  EXPECT_EQ(u1->dtype, DType::kU8);
}

TEST(NpyMalformed, MagicVersionAndLength) {
  const std::string good = Preamble(Dict("<u2", "(2,)")) + "abcd";
  ASSERT_TRUE(ParseFile(good).ok());
  ExpectCorruption(ParseFile("\x93NUMPX" + good.substr(6)), {"x.npy: magic"});
  ExpectCorruption(ParseFile(""), {"x.npy: magic"});
  ExpectCorruption(ParseFile(Preamble(Dict("<u2", "(2,)"), 4, 0) + "abcd"), {"x.npy: version: 4.0"});
  ExpectCorruption(ParseFile(Preamble(Dict("<u2", "(2,)"), 1, 1) + "abcd"), {"x.npy: version: 1.1"});
  ExpectCorruption(ParseFile(good.substr(0, 9)), {"x.npy: header length", "truncated"});
  for (std::size_t n : {10, 30, 63}) {
    ExpectCorruption(ParseFile(good.substr(0, n)), {"x.npy: header: truncated; HEADER_LEN says 118"});
  }
  std::string huge("\x93NUMPY\x02\x00", 8);
  huge += std::string("\x00\x00\x00\x10", 4);  // 256 MiB
  ExpectCorruption(ParseFile(huge), {"x.npy: header length 268435456 exceeds"});
}

TEST(NpyMalformed, HeaderDict) {
  struct Case {
    std::string dict;
    std::string expect;
  };
  const Case cases[] = {
      {"['descr', '<u2']", "expected a dict literal"},
      {"", "expected a dict literal"},
      {"{'descr': '<u2', 'fortran_order': False}", "missing key 'shape'"},
      {"{'descr': '<u2', 'shape': (2,)}", "missing key 'fortran_order'"},
      {"{'fortran_order': False, 'shape': (2,)}", "missing key 'descr'"},
      {"{'descr': '<u2', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"},
      {"{'descr': '<u2', 'descr': '<u2', 'fortran_order': False, 'shape': (2,)}", "duplicate key 'descr'"},
      {Dict("<u2", "(2,)", "True"), "fortran_order is True"},
      {Dict("<u2", "(2,)", "1"), "'fortran_order' must be True or False"},
      {Dict("<u2", "(2,)", "Falsehood"), "'fortran_order' must be True or False"},
      {Dict(">u2", "(2,)"), "descr '>u2' is big-endian"},
      {Dict("<c8", "(2,)"), "descr '<c8' is not supported"},
      {Dict("O", "(2,)"), "descr 'O' is not supported"},
      {Dict("<u2", "(2)"), "'shape' (n) is not a tuple"},
      {Dict("<u2", "[2]"), "'shape' must be a tuple"},
      {Dict("<u2", "(-2,)"), "'shape' must hold non-negative integers"},
      {Dict("<u2", "(2.0,)"), "expected ',' or ')' in 'shape'"},
      {Dict("<u2", "(02,)"), "leading zero"},
      {Dict("<u2", "(99999999999999999999,)"), "dimension is too large"},
      {Dict("<u2", "(4611686018427387904, 4611686018427387904)"), "overflows"},
      {"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)} x", "unexpected text after the closing '}'"},
      {"{'descr': '<u\\2', 'fortran_order': False, 'shape': (2,)}", "unsupported character"},
      {"{'descr': '<u2, 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}'"},
      {"{'descr' '<u2', 'fortran_order': False, 'shape': (2,)}", "expected ':' after key 'descr'"},
      {"{'descr': '<u2", "unsupported character in the 'descr' string"},  // the padding's '\n'
      {"{descr: '<u2'}", "expected a key as a quoted string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dict);
    ExpectCorruption(ParseFile(Preamble(c.dict) + "abcd"), {"x.npy: ", c.expect});
  }
  ExpectCorruption(ParseFile(Preamble("{'descr': '<u2", 1, 0, 0)), {"x.npy: header: unterminated string"});
}

TEST(NpyMalformed, FileSizeDisagreesWithShape) {
  const std::string pre = Preamble(Dict("<u4", "(3,)"));
  ExpectCorruption(ParseFile(pre + std::string(11, 'a')),
                   {"x.npy: shape (3,) of <u4 needs 140 bytes (header 128 + data 12) but the file has 139"});
  ExpectCorruption(ParseFile(pre + std::string(13, 'a')), {"but the file has 141"});
  EXPECT_TRUE(ParseNpyHeader(Bytes(pre), "x.npy").ok()) << "the header alone parses";
  testing::ScratchDir dir;
  testing::WriteBytes(dir.File("short.npy"), pre + "abc");
  auto arr = NpyArray::Open(dir.File("short.npy"));
  EXPECT_EQ(arr.status().code(), Status::Code::kCorruption);
  EXPECT_THAT(arr.status().message(), HasSubstr("short.npy: shape (3,)"));
}

}  // namespace
}  // namespace radlads
