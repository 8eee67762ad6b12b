// safetensors writer: round trips for every dtype (with empty and scalar tensors), the exact
// byte layout (prefix, padding, order, contiguity), byte identity with the reference Rust
// writer (its unit-test vectors and the committed Hugging Face fixture), and input validation.
#include "storage/safetensors_writer.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "storage/safetensors.h"
#include "storage/safetensors_format.h"
#include "tests/storage/safetensors_test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;
using testing::OwnedTensor;
using testing::RandomTensor;

std::uint64_t ReadU64Le(std::string_view s) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  return n;
}

int CountEntries(const std::string& dir) {
  int n = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
  }
  closedir(d);
  return n;
}

// Three tensors per dtype: a random matrix, a 0-rank scalar and an empty [0, k] tensor.
std::vector<OwnedTensor> EveryDTypeTensors(std::uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<OwnedTensor> ts;
  for (DType t : testing::kAllDTypes) {
    const std::string base = "t." + std::string(DTypeName(t));
    const auto rows = static_cast<std::int64_t>(1 + rng() % 5);
    const auto cols = static_cast<std::int64_t>(1 + rng() % 7);
    ts.push_back(RandomTensor(rng, base + ".matrix", t, {rows, cols}));
    ts.push_back(RandomTensor(rng, base + ".scalar", t, {}));
    ts.push_back(RandomTensor(rng, base + ".empty", t, {0, cols}));
  }
  std::shuffle(ts.begin(), ts.end(), rng);  // the writer must not depend on input order
  return ts;
}

TEST(SafetensorsWriter, RoundTripsEveryDTypeWithEmptyAndScalarTensors) {
  testing::ScratchDir dir;
  const std::string path = dir.File("all.safetensors");
  const std::vector<OwnedTensor> ts = EveryDTypeTensors(20261128);
  const SafetensorsMetadata metadata = {
      {"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\" back\\slash\ttab\x01"}, {"", "empty key"}};
  ASSERT_TRUE(WriteSafetensors(path, testing::Views(ts), metadata).ok());
  EXPECT_EQ(CountEntries(dir.path()), 1) << "no temp file may be left behind";

  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->metadata(), metadata);
  ASSERT_EQ(f->tensors().size(), ts.size());
  for (const OwnedTensor& want : ts) {
    SCOPED_TRACE(want.name);
    const SafetensorsTensorInfo* got = f->Find(want.name);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->dtype, want.dtype);
    EXPECT_EQ(got->shape, want.shape);
    const std::span<const std::byte> data = f->Data(*got);
    ASSERT_EQ(data.size(), want.bytes.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), want.bytes.begin()));
  }
}

TEST(SafetensorsWriter, OutputLayoutIsByteValid) {
  const std::vector<OwnedTensor> ts = EveryDTypeTensors(7);
  Result<std::string> bytes = SerializeSafetensors(testing::Views(ts), {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  const std::string& file = *bytes;

  const std::uint64_t n = ReadU64Le(file);
  ASSERT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % kSafetensorsAlignment, 0u) << "data must start 8-aligned";
  const std::string header = file.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const std::size_t close = header.find_last_not_of(' ');
  EXPECT_EQ(header[close], '}');
  EXPECT_LT(n - (close + 1), kSafetensorsAlignment) << "padding is spaces only, < 8 of them";

  // Entries appear in write order: dtype rank descending, then name; offsets ascend with no
  // holes and the last one ends at the end of the file. nlohmann's ordered_json keeps the
  // textual order.
  const auto j = nlohmann::ordered_json::parse(header);
  ASSERT_EQ(j.begin().key(), kSafetensorsMetadataKey);
  std::uint64_t cursor = 0;
  int prev_rank = 1000;
  std::string prev_name;
  for (auto it = std::next(j.begin()); it != j.end(); ++it) {
    SCOPED_TRACE(it.key());
    const DType t = *DTypeFromName(it.value()["dtype"].get<std::string>());
    const int rank = SafetensorsDTypeRank(t);
    EXPECT_TRUE(rank < prev_rank || (rank == prev_rank && it.key() > prev_name));
    prev_rank = rank;
    prev_name = it.key();
    EXPECT_EQ(it.value()["data_offsets"][0].get<std::uint64_t>(), cursor);
    cursor = it.value()["data_offsets"][1].get<std::uint64_t>();
  }
  EXPECT_EQ(8 + n + cursor, file.size());

  // SafetensorsWriteOrder exposes the same order.
  const std::vector<SafetensorsWriteTensor> views = testing::Views(ts);
  const std::vector<std::size_t> order = SafetensorsWriteOrder(views);
  auto it = std::next(j.begin());
  for (std::size_t i : order) {
    ASSERT_NE(it, j.end());
    EXPECT_EQ(it.key(), views[i].name);
    ++it;
  }
}

// Byte vectors from the reference implementation's own unit tests (safetensors
// src/tensor.rs: test_empty, test_serialization, test_serialization_forced_alignement).
TEST(SafetensorsWriter, MatchesTheReferenceWritersTestVectors) {
  Result<std::string> empty = SerializeSafetensors({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::string("\x08\0\0\0\0\0\0\0{}      ", 16));

  Result<std::string> with_meta = SerializeSafetensors({}, {{"framework", "pt"}});
  ASSERT_TRUE(with_meta.ok());
  EXPECT_EQ(*with_meta, std::string("\x28\0\0\0\0\0\0\0", 8) +
                            R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));

  const float values[] = {0, 1, 2, 3, 4, 5};
  const auto data = std::as_bytes(std::span<const float>(values));
  const std::string data_str(reinterpret_cast<const char*>(data.data()), data.size());
  Result<std::string> one = SerializeSafetensors(
      std::vector<SafetensorsWriteTensor>{{"attn.0", DType::kF32, {1, 2, 3}, data}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::string("\x40\0\0\0\0\0\0\0", 8) +
                      R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" +
                      data_str);

  Result<std::string> padded = SerializeSafetensors(
      std::vector<SafetensorsWriteTensor>{{"attn0", DType::kF32, {1, 1, 2, 3}, data}});
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(*padded, std::string("\x48\0\0\0\0\0\0\0", 8) +
                         R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" +
                         std::string(7, ' ') + data_str);
}

// Rewrites every tensor of `path` (in reverse name order, to show input order does not
// matter) with the given metadata and compares with the original bytes.
void ExpectRewriteIsByteIdentical(const std::string& path) {
  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::vector<SafetensorsWriteTensor> ts;
  for (const SafetensorsTensorInfo& t : f->tensors())
    ts.push_back({t.name, t.dtype, t.shape, f->Data(t)});
  std::sort(ts.begin(), ts.end(), [](const auto& a, const auto& b) { return a.name > b.name; });
  Result<std::string> bytes = SerializeSafetensors(ts, f->metadata());
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(*bytes, testing::ReadAll(path));
}

TEST(SafetensorsWriter, IsByteIdenticalToTheHuggingFaceWriter) {
  ExpectRewriteIsByteIdentical(testing::TestDataPath("safetensors/hf_fixture.safetensors"));
  const nlohmann::json shards = testing::ExpectedFixtures()["hf_sharded"]["files"];
  ASSERT_GE(shards.size(), 2u);
  for (const auto& [name, unused] : shards.items()) {
    SCOPED_TRACE(name);
    ExpectRewriteIsByteIdentical(testing::TestDataPath("safetensors/hf_sharded/" + name));
  }
}

TEST(SafetensorsWriter, ReplacesAnExistingFileAtomically) {
  testing::ScratchDir dir;
  const std::string path = dir.File("w.safetensors");
  testing::Rng rng(99);
  const std::vector<OwnedTensor> v1 = {RandomTensor(rng, "a", DType::kF32, {3})};
  const std::vector<OwnedTensor> v2 = {RandomTensor(rng, "b", DType::kI64, {2, 2})};
  ASSERT_TRUE(WriteSafetensors(path, testing::Views(v1)).ok());
  ASSERT_TRUE(WriteSafetensors(path, testing::Views(v2)).ok());
  Result<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->Find("a"), nullptr);
  EXPECT_NE(f->Find("b"), nullptr);
  EXPECT_EQ(CountEntries(dir.path()), 1);
}

struct BadInput {
  const char* what;
  std::vector<SafetensorsWriteTensor> tensors;
  SafetensorsMetadata metadata;
  std::vector<std::string> fragments;
};

TEST(SafetensorsWriter, RejectsBadInputWithoutTouchingTheFile) {
  const std::vector<std::byte> eight(8);
  const std::span<const std::byte> e8(eight);
  const std::vector<BadInput> cases = {
      {"duplicate names",
       {{"w", DType::kU8, {8}, e8}, {"w", DType::kF32, {2}, e8}},
       {},
       {"tensor 'w': name appears twice"}},
      {"size mismatch",
       {{"w", DType::kF32, {3}, e8}},
       {},
       {"tensor 'w': data is 8 bytes, expected 12", "F32"}},
      {"negative dim", {{"w", DType::kU8, {-8}, e8}}, {}, {"tensor 'w': shape: dim 0 is -8"}},
      {"overflowing shape",
       {{"w", DType::kF32, {std::int64_t{1} << 40, std::int64_t{1} << 40}, e8}},
       {},
       {"tensor 'w': shape", "overflows 64 bits"}},
      {"reserved name",
       {{"__metadata__", DType::kU8, {8}, e8}},
       {},
       {"'__metadata__'", "reserved"}},
      {"name not UTF-8", {{"w\xff", DType::kU8, {8}, e8}}, {}, {"name is not valid UTF-8"}},
      {"metadata not UTF-8", {}, {{"k", "\xc3"}}, {"metadata value of key 'k' is not valid UTF-8"}},
  };
  testing::ScratchDir dir;
  const std::string path = dir.File("keep.safetensors");
  testing::WriteBytes(path, "old content");
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.what);
    Status st = WriteSafetensors(path, c.tensors, c.metadata);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
    EXPECT_THAT(st.message(), HasSubstr(path));
    for (const std::string& f : c.fragments) EXPECT_THAT(st.message(), HasSubstr(f));
    EXPECT_EQ(testing::ReadAll(path), "old content");
    EXPECT_EQ(CountEntries(dir.path()), 1);
    EXPECT_EQ(ValidateSafetensorsTensors(c.tensors, c.metadata).code(),
              Status::Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace radlads
