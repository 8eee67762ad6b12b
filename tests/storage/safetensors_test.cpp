// safetensors reader: every validation rule (error code + message naming file, tensor and
// field), accepted edge cases, zero-copy access, and the file written by Hugging Face's own
// `safetensors` package (tools/gen_safetensors_fixtures.py).
#include "storage/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/storage/safetensors_test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;
using testing::RawSafetensors;

constexpr std::string_view kSource = "bad.safetensors";

Result<SafetensorsHeader> Parse(const std::string& file) {
  return ParseSafetensorsHeader(testing::Bytes(file), kSource);
}

// One tensor entry with the given fields, as JSON text.
std::string Entry(std::string_view name, std::string_view body) {
  return "\"" + std::string(name) + "\":{" + std::string(body) + "}";
}

struct BadCase {
  const char* what;
  std::string file;
  Status::Code code;
  std::vector<std::string> fragments;  // all must appear in the message
};

std::vector<BadCase> BadCases() {
  const auto C = Status::Code::kCorruption;
  const std::string u8x4 = R"("dtype":"U8","shape":[4],"data_offsets":[0,4])";
  std::string too_long_prefix(8, '\0');
  too_long_prefix[0] = 100;
  std::string cap_prefix(8, '\0');
  const std::uint64_t cap = 100'000'001;
  for (int i = 0; i < 8; ++i) cap_prefix[i] = static_cast<char>((cap >> (8 * i)) & 0xff);
  return {
      {"file shorter than the prefix",
       std::string("\x01\x02\x03", 3),
       C,
       {"bad.safetensors", "3 bytes", "shorter than the 8-byte"}},
      {"header length beyond the file",
       too_long_prefix + "{}",
       C,
       {"bad.safetensors", "header length 100", "beyond the end of the file (2 bytes"}},
      {"header length above the cap",
       cap_prefix + "{}",
       C,
       {"header length 100000001", "exceeds the limit of 100000000"}},
      {"header not UTF-8", RawSafetensors("{\"a\xff\":1}"), C, {"not valid UTF-8", "byte 3"}},
      {"overlong UTF-8", RawSafetensors("{\"\xc0\xaf\":1}"), C, {"not valid UTF-8"}},
      {"leading space", RawSafetensors(" {}"), C, {"must start with '{'", "got ' '"}},
      {"top level is a list", RawSafetensors("[]"), C, {"must start with '{'", "got '['"}},
      {"empty header", RawSafetensors(""), C, {"must start with '{'", "empty header"}},
      {"truncated JSON", RawSafetensors(R"({"a":)"), C, {"bad.safetensors", "not valid JSON"}},
      {"garbage after the object", RawSafetensors("{} x"), C, {"not valid JSON"}},
      {"NUL padding",
       RawSafetensors(std::string("{}\0\0", 4)),
       C,
       {"not valid JSON", "NUL byte at byte 2"}},
      {"NUL then garbage", RawSafetensors(std::string("{}\0 junk", 7)), C, {"NUL byte"}},
      {"duplicate tensor",
       RawSafetensors("{" + Entry("a", u8x4) + "," +
                          Entry("a", R"("dtype":"U8","shape":[4],"data_offsets":[4,8])") + "}",
                      "12345678"),
       C,
       {"tensor 'a'", "appears twice"}},
      {"duplicate __metadata__",
       RawSafetensors(R"({"__metadata__":{},"__metadata__":{}})"),
       C,
       {"__metadata__ appears twice"}},
      {"duplicate metadata key",
       RawSafetensors(R"({"__metadata__":{"k":"1","k":"2"}})"),
       C,
       {"__metadata__: key 'k' appears twice"}},
      {"duplicate field",
       RawSafetensors(
           "{" + Entry("a", R"("dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0])") + "}"),
       C,
       {"tensor 'a': field 'dtype' appears twice"}},
      {"entry not an object",
       RawSafetensors(R"({"a":[1,2]})"),
       C,
       {"tensor 'a'", "expected an object with dtype, shape and data_offsets", "got a list"}},
      {"entry is a number", RawSafetensors(R"({"a":7})"), C, {"tensor 'a'", "got 7"}},
      {"missing shape",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","data_offsets":[0,0])") + "}"),
       C,
       {"bad.safetensors", "tensor 'a'", "missing field 'shape'"}},
      {"missing dtype",
       RawSafetensors("{" + Entry("a", R"("shape":[0],"data_offsets":[0,0])") + "}"),
       C,
       {"tensor 'a'", "missing field 'dtype'"}},
      {"missing data_offsets",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[0])") + "}"),
       C,
       {"tensor 'a'", "missing field 'data_offsets'"}},
      {"extra field",
       RawSafetensors("{" + Entry("a", u8x4 + R"(,"foo":1)") + "}", "1234"),
       C,
       {"tensor 'a'", "unexpected field 'foo'"}},
      {"dtype not a string",
       RawSafetensors("{" + Entry("a", R"("dtype":3,"shape":[0],"data_offsets":[0,0])") + "}"),
       C,
       {"tensor 'a': dtype: expected a string, got 3"}},
      {"unknown dtype",
       RawSafetensors("{" + Entry("a", R"("dtype":"F4","shape":[0],"data_offsets":[0,0])") + "}"),
       Status::Code::kInvalidArgument,
       {"bad.safetensors", "tensor 'a': dtype: unknown dtype 'F4'", "BF16"}},
      {"lowercase dtype",
       RawSafetensors("{" + Entry("a", R"("dtype":"f32","shape":[0],"data_offsets":[0,0])") + "}"),
       Status::Code::kInvalidArgument,
       {"unknown dtype 'f32'"}},
      {"shape not a list",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":4,"data_offsets":[0,4])") + "}",
                      "1234"),
       C,
       {"tensor 'a': shape: expected a list of non-negative integers, got 4"}},
      {"negative dim",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[-1],"data_offsets":[0,0])") + "}"),
       C,
       {"tensor 'a': shape: element 0: expected a non-negative integer", "got -1"}},
      {"float dim",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[1,2.5],"data_offsets":[0,0])") +
                      "}"),
       C,
       {"tensor 'a': shape: element 1", "got 2.5"}},
      {"nested shape",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[[1]],"data_offsets":[0,1])") + "}",
                      "x"),
       C,
       {"tensor 'a': shape: element 0", "got a list"}},
      {"string dim",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":["1"],"data_offsets":[0,1])") + "}",
                      "x"),
       C,
       {"tensor 'a': shape: element 0", "got a string"}},
      {"dim above 2^63",
       RawSafetensors(
           "{" + Entry("a", R"("dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0])") +
           "}"),
       C,
       {"tensor 'a': shape: dimension 9223372036854775808 exceeds 2^63-1"}},
      {"one offset",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[0],"data_offsets":[0])") + "}"),
       C,
       {"tensor 'a': data_offsets: expected exactly 2 integers", "got 1"}},
      {"three offsets",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[0],"data_offsets":[0,0,0])") + "}"),
       C,
       {"tensor 'a': data_offsets: expected exactly 2 integers", "got more"}},
      {"offsets not a list",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[0],"data_offsets":"0,0")") + "}"),
       C,
       {"tensor 'a': data_offsets: expected a list of 2 non-negative integers, got a string"}},
      {"negative offset",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[0],"data_offsets":[-4,0])") + "}"),
       C,
       {"tensor 'a': data_offsets: element 0", "got -4"}},
      {"offset above 2^64",
       RawSafetensors(
           "{" + Entry("a", R"("dtype":"U8","shape":[0],"data_offsets":[0,18446744073709551616])") +
           "}"),
       C,
       {"tensor 'a': data_offsets: element 1"}},
      {"begin after end",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[4],"data_offsets":[8,4])") + "}",
                      "12345678"),
       C,
       {"tensor 'a': data_offsets: begin 8 is after end 4"}},
      {"size disagrees with shape",
       RawSafetensors("{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[0,4])") + "}",
                      "1234"),
       C,
       {"bad.safetensors", "tensor 'a': data_offsets: [0, 4] spans 4 bytes, expected 8", "F32"}},
      {"lying shape overflows",
       RawSafetensors(
           "{" +
               Entry(
                   "a",
                   R"("dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8])") +
               "}",
           "12345678"),
       C,
       {"tensor 'a': shape: [1099511627776, 1099511627776] of F32 needs more than 2^64 bytes"}},
      {"overflow that wraps to zero",
       RawSafetensors(
           "{" +
           Entry("a", R"("dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0])") +
           "}"),
       C,
       {"tensor 'a': shape", "needs more than 2^64 bytes"}},
      {"offsets beyond the data buffer",
       RawSafetensors("{" + Entry("a", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])") + "}",
                      "1234"),
       C,
       {"tensor 'a': data_offsets: end 8 is beyond the data buffer (4 bytes)"}},
      {"overlap",
       RawSafetensors("{" + Entry("a", u8x4) + "," +
                          Entry("b", R"("dtype":"U8","shape":[4],"data_offsets":[2,6])") + "}",
                      "123456"),
       C,
       {"tensor 'b': data_offsets: [2, 6] overlaps tensor 'a' [0, 4]"}},
      {"empty tensor inside another",
       RawSafetensors("{" + Entry("a", u8x4) + "," +
                          Entry("e", R"("dtype":"U8","shape":[0],"data_offsets":[2,2])") + "}",
                      "1234"),
       C,
       {"tensor 'e': data_offsets: [2, 2] overlaps tensor 'a' [0, 4]"}},
      {"hole at the start",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[2],"data_offsets":[2,4])") + "}",
                      "1234"),
       C,
       {"tensor 'a': data_offsets: begin 2 leaves a hole", "[0, 2]", "at its start"}},
      {"hole between tensors",
       RawSafetensors("{" + Entry("a", R"("dtype":"U8","shape":[2],"data_offsets":[0,2])") + "," +
                          Entry("b", R"("dtype":"U8","shape":[2],"data_offsets":[4,6])") + "}",
                      "123456"),
       C,
       {"tensor 'b'", "leaves a hole", "[2, 4]", "after tensor 'a'"}},
      {"trailing bytes",
       RawSafetensors("{" + Entry("a", u8x4) + "}", "123456"),
       C,
       {"2 trailing bytes", "last is 'a'"}},
      {"data but no tensors",
       RawSafetensors("{}", "xy"),
       C,
       {"2 trailing bytes", "header lists none"}},
      {"__metadata__ not an object",
       RawSafetensors(R"({"__metadata__":"pt"})"),
       C,
       {"__metadata__: expected an object of string to string, got a string"}},
      {"__metadata__ null",
       RawSafetensors(R"({"__metadata__":null})"),
       C,
       {"__metadata__: expected an object", "got null"}},
      {"metadata value not a string",
       RawSafetensors(R"({"__metadata__":{"k":1}})"),
       C,
       {"__metadata__: value of key 'k': expected a string, got 1"}},
      {"metadata value nested",
       RawSafetensors(R"({"__metadata__":{"k":{"x":"y"}}})"),
       C,
       {"__metadata__: value of key 'k'", "got an object"}},
  };
}

TEST(SafetensorsReader, RejectsEveryMalformedCase) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.what);
    Result<SafetensorsHeader> r = Parse(c.file);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
    EXPECT_THAT(r.status().message(), ::testing::StartsWith(std::string(kSource) + ": "));
    for (const std::string& f : c.fragments) EXPECT_THAT(r.status().message(), HasSubstr(f));
  }
}

TEST(SafetensorsReader, OpenNamesThePathInErrors) {
  testing::ScratchDir dir;
  const std::string path = dir.File("broken.safetensors");
  testing::WriteBytes(
      path, RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"));
  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Status::Code::kCorruption);
  EXPECT_THAT(f.status().message(), HasSubstr(path + ": tensor 'w': data_offsets: end 8"));

  Result<SafetensorsFile> missing = SafetensorsFile::Open(dir.File("absent.safetensors"));
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

TEST(SafetensorsReader, AcceptsUnalignedUnorderedPaddedHeaders) {
  // N = 107 (not a multiple of 8), entries out of offset order, whitespace inside the JSON and
  // trailing spaces after it.
  const std::string header =
      R"({ "b" : {"data_offsets":[4,6],"shape":[1],"dtype":"BF16"},
          "a": {"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}  }   )";
  const std::string file = RawSafetensors(header, "abcdEF");
  ASSERT_NE((8 + header.size()) % 8, 0u);
  Result<SafetensorsHeader> h = Parse(file);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->tensors[0].name, "a");  // offset order
  EXPECT_EQ(h->tensors[1].name, "b");
  EXPECT_EQ(h->header_size, header.size());
  EXPECT_EQ(h->data_offset, 8 + header.size());
  EXPECT_EQ(h->data_size, 6u);
  EXPECT_EQ(h->Find("b")->dtype, DType::kBF16);
  EXPECT_EQ(h->Find("a")->shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(h->Find("c"), nullptr);
  EXPECT_TRUE(h->metadata.empty());
}

TEST(SafetensorsReader, AcceptsEmptyTensorsScalarsAndNoTensors) {
  const std::string header = R"({"__metadata__":{"format":"pt","note":"caf\u00e9 \"q\""},)"
                             R"("z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                             R"("y":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                             R"("x":{"dtype":"U16","shape":[2,0,5],"data_offsets":[8,8]}})";
  Result<SafetensorsHeader> h = Parse(RawSafetensors(header, "12345678"));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensors[0].name, "z");  // (0,0) sorts before (0,8)
  EXPECT_EQ(h->tensors[1].name, "y");
  EXPECT_EQ(h->tensors[2].name, "x");
  EXPECT_TRUE(h->Find("y")->shape.empty());
  EXPECT_EQ(h->Find("y")->num_elements(), 1u);
  EXPECT_EQ(h->Find("x")->num_elements(), 0u);
  EXPECT_EQ(h->metadata.at("note"), "caf\xc3\xa9 \"q\"");

  Result<SafetensorsHeader> none = Parse(RawSafetensors("{}"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->tensors.empty());
}

TEST(SafetensorsReader, AcceptsEveryKnownDType) {
  for (DType t : testing::kAllDTypes) {
    const std::string name(DTypeName(t));
    SCOPED_TRACE(name);
    const std::string size = std::to_string(2 * DTypeSize(t));
    Result<SafetensorsHeader> h = Parse(RawSafetensors(
        R"({"t":{"dtype":")" + name + R"(","shape":[2],"data_offsets":[0,)" + size + "]}}",
        std::string(2 * DTypeSize(t), 'x')));
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(h->tensors[0].dtype, t);
  }
}

TEST(SafetensorsReader, LongAndControlNamesAreQuotedSafelyInMessages) {
  const std::string long_name(500, 'n');
  Result<SafetensorsHeader> r = Parse(RawSafetensors("{\"" + long_name + "\\u0001\":3}"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'" + std::string(200, 'n') + "...'"));
  Result<SafetensorsHeader> ctrl = Parse(RawSafetensors(R"({"a\nb":3})"));
  EXPECT_THAT(ctrl.status().message(), HasSubstr("tensor 'a\\x0ab'"));
}

TEST(SafetensorsFile, DataIsZeroCopyAndReadAsF32Converts) {
  testing::ScratchDir dir;
  const std::string path = dir.File("m.safetensors");
  // bf16 1.0 = 0x3f80, -2.0 = 0xc000; f16 0.5 = 0x3800.
  const std::string data("\x80\x3f\x00\xc0\x00\x38\x01\x02", 8);
  testing::WriteBytes(path,
                      RawSafetensors(R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                                     R"("h":{"dtype":"F16","shape":[],"data_offsets":[4,6]},)"
                                     R"("q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[6,8]}})",
                                     data));
  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->path(), path);
  const SafetensorsTensorInfo* b = f->Find("b");
  const SafetensorsTensorInfo* h = f->Find("h");
  ASSERT_NE(b, nullptr);
  ASSERT_NE(h, nullptr);
  // Spans point into one mapping, at the header's offsets.
  EXPECT_EQ(f->Data(*h).data() - f->Data(*b).data(), 4);
  EXPECT_EQ(testing::ToHex(f->Data(*b)), "803f00c0");

  SafetensorsFile moved = std::move(f).value();
  EXPECT_EQ(testing::ToHex(moved.Data(*moved.Find("h"))), "0038");
  EXPECT_EQ(*moved.ReadAsF32("b"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(*moved.ReadAsF32("h"), (std::vector<float>{0.5f}));

  Result<std::vector<float>> f8 = moved.ReadAsF32("q");
  EXPECT_EQ(f8.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(f8.status().message(), HasSubstr("tensor 'q': dtype F8_E4M3 cannot be read as f32"));
  Result<std::vector<float>> absent = moved.ReadAsF32("nope");
  EXPECT_EQ(absent.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(absent.status().message(), HasSubstr(path + ": no tensor 'nope'"));
}

// Compares a file's tensors with one file entry of expected.json.
void ExpectMatchesFixture(const SafetensorsFile& f, const nlohmann::json& want) {
  EXPECT_EQ(f.header().header_size, want["header_size"].get<std::uint64_t>());
  EXPECT_EQ(f.metadata(), (want["metadata"].get<std::map<std::string, std::string>>()));
  ASSERT_EQ(f.tensors().size(), want["tensors"].size());
  std::uint64_t prev_begin = 0;
  for (const SafetensorsTensorInfo& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(want["tensors"].contains(t.name));
    const nlohmann::json& w = want["tensors"][t.name];
    EXPECT_GE(t.begin, prev_begin);
    prev_begin = t.begin;
    EXPECT_EQ(DTypeName(t.dtype), w["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, w["shape"].get<std::vector<std::int64_t>>());
    EXPECT_EQ(t.begin, w["data_offsets"][0].get<std::uint64_t>());
    EXPECT_EQ(t.end, w["data_offsets"][1].get<std::uint64_t>());
    EXPECT_EQ(testing::ToHex(f.Data(t)), w["hex"].get<std::string>());
    if (!w["f32"].is_null()) {
      Result<std::vector<float>> got = f.ReadAsF32(t.name);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      const auto want_f32 = w["f32"].get<std::vector<double>>();
      ASSERT_EQ(got->size(), want_f32.size());
      for (std::size_t i = 0; i < want_f32.size(); ++i) {
        EXPECT_EQ((*got)[i], static_cast<float>(want_f32[i])) << "element " << i;  // exact
      }
    }
  }
}

TEST(SafetensorsFile, ReadsTheHuggingFaceFixture) {
  const nlohmann::json expected = testing::ExpectedFixtures();
  Result<SafetensorsFile> f =
      SafetensorsFile::Open(testing::TestDataPath("safetensors/hf_fixture.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ExpectMatchesFixture(*f, expected["hf_fixture.safetensors"]);
  // The fixture covers a scalar, an empty tensor and BF16.
  EXPECT_TRUE(f->Find("scale")->shape.empty());
  EXPECT_EQ(f->Find("empty")->num_bytes(), 0u);
  EXPECT_EQ(f->Find("embed.weight")->dtype, DType::kBF16);
}

TEST(SafetensorsFile, ReadsTheHuggingFaceShardsOneByOne) {
  const nlohmann::json expected = testing::ExpectedFixtures()["hf_sharded"]["files"];
  ASSERT_GE(expected.size(), 2u);
  for (const auto& [name, want] : expected.items()) {
    SCOPED_TRACE(name);
    Result<SafetensorsFile> f =
        SafetensorsFile::Open(testing::TestDataPath("safetensors/hf_sharded/" + name));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ExpectMatchesFixture(*f, want);
  }
}

}  // namespace
}  // namespace radlads
