// Model directories: the sharded writer (HF's greedy split, file names, index written like
// transformers, stale-file cleanup), uniform lookup across shards, the committed Hugging Face
// sharded fixture, and every index / shard disagreement the reader must refuse.
#include "storage/model_weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "storage/safetensors_format.h"
#include "tests/storage/safetensors_test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;
using testing::OwnedTensor;
using testing::RandomTensor;

// A small Qwen2-like state dict in module order with mixed dtypes.
std::vector<OwnedTensor> ModelTensors(std::uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<OwnedTensor> ts;
  ts.push_back(RandomTensor(rng, "model.embed_tokens.weight", DType::kBF16, {16, 8}));
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back(RandomTensor(rng, p + "input_layernorm.weight", DType::kF32, {8}));
    ts.push_back(RandomTensor(rng, p + "self_attn.q_proj.weight", DType::kBF16, {8, 8}));
    ts.push_back(RandomTensor(rng, p + "self_attn.q_proj.bias", DType::kBF16, {8}));
    ts.push_back(RandomTensor(rng, p + "mlp.up_proj.weight", DType::kF16, {12, 8}));
  }
  ts.push_back(RandomTensor(rng, "model.norm.weight", DType::kF32, {8}));
  ts.push_back(RandomTensor(rng, "model.step", DType::kI64, {}));
  ts.push_back(RandomTensor(rng, "model.unused", DType::kF32, {0, 8}));
  return ts;
}

void ExpectSameTensors(const ModelWeights& mw, const std::vector<OwnedTensor>& ts) {
  ASSERT_EQ(mw.num_tensors(), ts.size());
  std::uint64_t total = 0;
  for (const OwnedTensor& want : ts) {
    SCOPED_TRACE(want.name);
    Result<ModelTensor> got = mw.Get(want.name);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->info->name, want.name);
    EXPECT_EQ(got->info->dtype, want.dtype);
    EXPECT_EQ(got->info->shape, want.shape);
    ASSERT_EQ(got->data.size(), want.bytes.size());
    EXPECT_TRUE(std::equal(got->data.begin(), got->data.end(), want.bytes.begin()));
    total += want.bytes.size();
  }
  EXPECT_EQ(mw.tensor_bytes(), total);
}

TEST(ModelShards, PlanFollowsTheHuggingFaceGreedyRule) {
  const std::vector<std::byte> buf(100);
  auto t = [&](std::size_t n) {
    return SafetensorsWriteTensor{
        "", DType::kU8, {static_cast<std::int64_t>(n)}, std::span<const std::byte>(buf).first(n)};
  };
  // 40 | 30+30 | 50 (oversized, own shard, emitted before the open shard) ... as HF does.
  const std::vector<SafetensorsWriteTensor> ts = {t(40), t(30), t(30), t(70), t(10), t(0)};
  const auto plan = PlanModelShards(ts, 60);
  const std::vector<std::vector<std::size_t>> want = {{0}, {3}, {1, 2}, {4, 5}};
  EXPECT_EQ(plan, want);
  EXPECT_EQ(PlanModelShards(ts, 1000), (std::vector<std::vector<std::size_t>>{{0, 1, 2, 3, 4, 5}}));
  EXPECT_EQ(PlanModelShards({}, 10), (std::vector<std::vector<std::size_t>>{{}}));
  EXPECT_EQ(ModelShardFileName(2, 5), "model-00002-of-00005.safetensors");
}

TEST(ModelWeights, ShardedRoundTripWritesShardsAndIndex) {
  testing::ScratchDir dir;
  const std::vector<OwnedTensor> ts = ModelTensors(11);
  Result<ModelWeightsWriteResult> w =
      WriteModelWeights(dir.path(), testing::Views(ts), 300, {{"producer", "radlads"}});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->sharded);
  ASSERT_GE(w->files.size(), 3u);
  for (std::size_t k = 0; k < w->files.size(); ++k) {
    EXPECT_EQ(w->files[k], ModelShardFileName(k + 1, w->files.size()));
  }
  EXPECT_FALSE(PathExists(dir.File("model.safetensors")));

  Result<ModelWeights> mw = ModelWeights::Open(dir.path());
  ASSERT_TRUE(mw.ok()) << mw.status().ToString();
  EXPECT_TRUE(mw->sharded());
  EXPECT_EQ(*mw->index_path(), JoinPath(dir.path(), kModelSafetensorsIndexFile));
  EXPECT_EQ(mw->num_files(), w->files.size());
  ExpectSameTensors(*mw, ts);
  EXPECT_EQ(mw->index_total_size(), w->total_size);
  EXPECT_TRUE(mw->total_size_matches());
  for (std::size_t i = 0; i < mw->num_files(); ++i) {
    EXPECT_EQ(mw->file(i).metadata(),
              (SafetensorsMetadata{{"format", "pt"}, {"producer", "radlads"}}));
  }
  std::vector<std::string> names = mw->TensorNames();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.size(), ts.size());

  // The index maps each tensor to the shard that holds it; total_size is the data bytes.
  const auto index =
      nlohmann::json::parse(testing::ReadAll(dir.File("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), mw->tensor_bytes());
  for (const OwnedTensor& t : ts) {
    EXPECT_EQ(index["weight_map"][t.name].get<std::string>(),
              BaseName(mw->Get(t.name)->file->path()));
  }
  // Each shard is within budget unless it holds a single oversized tensor.
  for (std::size_t i = 0; i < mw->num_files(); ++i) {
    const auto& f = mw->file(i);
    EXPECT_TRUE(f.header().data_size <= 300 || f.tensors().size() == 1) << f.path();
  }

  Result<std::vector<float>> norm = mw->ReadAsF32("model.layers.2.input_layernorm.weight");
  ASSERT_TRUE(norm.ok());
  EXPECT_EQ(norm->size(), 8u);
  Result<ModelTensor> absent = mw->Get("lm_head.weight");
  EXPECT_EQ(absent.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(absent.status().message(), HasSubstr("no tensor 'lm_head.weight'"));
}

TEST(ModelWeights, WritesOneFileWhenEverythingFitsAndCleansStaleLayouts) {
  testing::ScratchDir dir;
  const std::vector<OwnedTensor> ts = ModelTensors(12);
  // First a sharded layout with many shards, then fewer shards, then a single file.
  ASSERT_TRUE(WriteModelWeights(dir.path(), testing::Views(ts), 128).ok());
  Result<ModelWeightsWriteResult> fewer = WriteModelWeights(dir.path(), testing::Views(ts), 400);
  ASSERT_TRUE(fewer.ok()) << fewer.status().ToString();
  std::vector<std::string> names;
  for (int k = 1; k <= 99; ++k) {
    for (int n = 1; n <= 20; ++n) {
      if (PathExists(dir.File(ModelShardFileName(k, n)))) names.push_back(ModelShardFileName(k, n));
    }
  }
  EXPECT_EQ(names, fewer->files) << "shards of the earlier write must be gone";

  Result<ModelWeightsWriteResult> single =
      WriteModelWeights(dir.path(), testing::Views(ts), 1 << 20);
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  EXPECT_FALSE(single->sharded);
  EXPECT_EQ(single->files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(PathExists(dir.File("model.safetensors.index.json")));
  for (const std::string& n : fewer->files) EXPECT_FALSE(PathExists(dir.File(n))) << n;

  Result<ModelWeights> mw = ModelWeights::Open(dir.path());
  ASSERT_TRUE(mw.ok()) << mw.status().ToString();
  EXPECT_FALSE(mw->sharded());
  EXPECT_EQ(mw->num_files(), 1u);
  EXPECT_EQ(mw->file(0).metadata(), (SafetensorsMetadata{{"format", "pt"}}));
  EXPECT_EQ(mw->index_total_size(), std::nullopt);
  EXPECT_TRUE(mw->total_size_matches());
  ExpectSameTensors(*mw, ts);

  // And back to sharded: the stale single file is removed, so the index is what readers see.
  ASSERT_TRUE(WriteModelWeights(dir.path(), testing::Views(ts), 400).ok());
  EXPECT_FALSE(PathExists(dir.File("model.safetensors")));
  Result<ModelWeights> again = ModelWeights::Open(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->sharded());
}

// The streamed writer (radlads-model init) writes the same files, byte for byte, as the
// in-memory one, producing only the tensors of the file being written.
TEST(ModelWeights, StreamedWriterWritesTheSameBytesOneShardAtATime) {
  const std::vector<OwnedTensor> ts = ModelTensors(13);
  std::vector<SafetensorsWriteTensor> shapes;
  for (const SafetensorsWriteTensor& t : testing::Views(ts)) {
    shapes.push_back(t);
    shapes.back().data = {};
  }
  for (std::uint64_t max_shard : {std::uint64_t{128}, std::uint64_t{400}, std::uint64_t{1} << 20}) {
    SCOPED_TRACE(max_shard);
    testing::ScratchDir a, b;
    Result<ModelWeightsWriteResult> want = WriteModelWeights(a.path(), testing::Views(ts), max_shard);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    std::vector<std::size_t> filled;
    Result<ModelWeightsWriteResult> got = WriteModelWeightsStreamed(
        b.path(), shapes, max_shard, [&](std::size_t i, std::span<std::byte> out) {
          EXPECT_EQ(out.size(), ts[i].bytes.size());
          std::copy(ts[i].bytes.begin(), ts[i].bytes.end(), out.begin());
          filled.push_back(i);
          return Status::Ok();
        });
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->files, want->files);
    EXPECT_EQ(got->sharded, want->sharded);
    EXPECT_EQ(got->total_size, want->total_size);
    EXPECT_EQ(filled.size(), ts.size()) << "each tensor is produced once";
    for (const std::string& f : want->files) EXPECT_EQ(testing::ReadAll(b.File(f)), testing::ReadAll(a.File(f))) << f;
    EXPECT_EQ(testing::ReadAll(b.File("model.safetensors.index.json")),
              testing::ReadAll(a.File("model.safetensors.index.json")));
  }
  // A failing producer stops the write with its own error; duplicate names are refused first.
  testing::ScratchDir c;
  Result<ModelWeightsWriteResult> failed = WriteModelWeightsStreamed(
      c.path(), shapes, 128, [](std::size_t, std::span<std::byte>) { return Status::IOError("no entropy"); });
  EXPECT_EQ(failed.status().code(), Status::Code::kIOError);
  std::vector<SafetensorsWriteTensor> dup = {shapes[0], shapes[0]};
  Result<ModelWeightsWriteResult> refused = WriteModelWeightsStreamed(
      c.path(), dup, 128, [](std::size_t, std::span<std::byte>) { return Status::Ok(); });
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("appears twice"));
}

TEST(ModelWeights, OpensASingleFileOrAnIndexPathDirectly) {
  testing::ScratchDir dir;
  const std::vector<OwnedTensor> ts = ModelTensors(13);
  ASSERT_TRUE(WriteSafetensors(dir.File("weights.safetensors"), testing::Views(ts)).ok());
  Result<ModelWeights> file = ModelWeights::Open(dir.File("weights.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectSameTensors(*file, ts);

  const std::string sub = dir.File("sharded");
  ASSERT_TRUE(WriteModelWeights(sub, testing::Views(ts), 256).ok());
  Result<ModelWeights> index = ModelWeights::Open(JoinPath(sub, kModelSafetensorsIndexFile));
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_TRUE(index->sharded());
  ExpectSameTensors(*index, ts);
}

TEST(ModelWeights, ReadsTheHuggingFaceShardedFixtureAndWritesTheSameBytes) {
  const nlohmann::json want = testing::ExpectedFixtures()["hf_sharded"];
  const std::string fixture_dir = testing::TestDataPath("safetensors/hf_sharded");
  Result<ModelWeights> mw = ModelWeights::Open(fixture_dir);
  ASSERT_TRUE(mw.ok()) << mw.status().ToString();
  EXPECT_TRUE(mw->sharded());
  EXPECT_EQ(mw->num_files(), want["files"].size());
  EXPECT_EQ(mw->num_tensors(), want["weight_map"].size());
  EXPECT_EQ(mw->index_total_size(), want["total_size"].get<std::uint64_t>());
  EXPECT_TRUE(mw->total_size_matches());
  for (const auto& [name, shard] : want["weight_map"].items()) {
    SCOPED_TRACE(name);
    Result<ModelTensor> t = mw->Get(name);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(BaseName(t->file->path()), shard.get<std::string>());
    EXPECT_EQ(testing::ToHex(t->data),
              want["files"][shard.get<std::string>()]["tensors"][name]["hex"].get<std::string>());
  }

  // Same tensors, same order, same budget -> the writer reproduces every file byte for byte.
  std::vector<SafetensorsWriteTensor> ts;
  for (const auto& name : want["order"]) {
    const ModelTensor* t = mw->Find(name.get<std::string>());
    ASSERT_NE(t, nullptr);
    ts.push_back({t->info->name, t->info->dtype, t->info->shape, t->data});
  }
  testing::ScratchDir out;
  Result<ModelWeightsWriteResult> w =
      WriteModelWeights(out.path(), ts, want["max_shard_size"].get<std::uint64_t>());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->files.size(), want["files"].size());
  for (const std::string& name : w->files) {
    EXPECT_EQ(testing::ReadAll(out.File(name)), testing::ReadAll(JoinPath(fixture_dir, name)))
        << name;
  }
  EXPECT_EQ(testing::ReadAll(out.File("model.safetensors.index.json")),
            testing::ReadAll(JoinPath(fixture_dir, "model.safetensors.index.json")));
}

// A directory with shards a.safetensors {x, y} and b.safetensors {z} and a hand-written index.
class ModelIndexErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::Rng rng(5);
    a_ = {RandomTensor(rng, "x", DType::kF32, {2}), RandomTensor(rng, "y", DType::kU8, {3})};
    b_ = {RandomTensor(rng, "z", DType::kBF16, {2, 2})};
    ASSERT_TRUE(WriteSafetensors(dir_.File("a.safetensors"), testing::Views(a_)).ok());
    ASSERT_TRUE(WriteSafetensors(dir_.File("b.safetensors"), testing::Views(b_)).ok());
  }
  std::string IndexPath() const { return dir_.File("model.safetensors.index.json"); }
  Result<ModelWeights> OpenWith(const std::string& index_json) {
    testing::WriteBytes(IndexPath(), index_json);
    return ModelWeights::Open(dir_.path());
  }
  static std::string Index(const std::string& weight_map, const std::string& metadata = "{}") {
    return R"({"metadata":)" + metadata + R"(,"weight_map":{)" + weight_map + "}}";
  }
  void ExpectError(const std::string& index_json, Status::Code code,
                   const std::vector<std::string>& fragments) {
    Result<ModelWeights> mw = OpenWith(index_json);
    ASSERT_FALSE(mw.ok()) << index_json;
    EXPECT_EQ(mw.status().code(), code) << mw.status().ToString();
    for (const std::string& f : fragments) EXPECT_THAT(mw.status().message(), HasSubstr(f));
  }

  testing::ScratchDir dir_;
  std::vector<OwnedTensor> a_, b_;
};

constexpr const char* kGoodMap = R"("x":"a.safetensors","y":"a.safetensors","z":"b.safetensors")";

TEST_F(ModelIndexErrors, AValidIndexOpens) {
  Result<ModelWeights> mw = OpenWith(Index(kGoodMap, R"({"total_size":18})"));
  ASSERT_TRUE(mw.ok()) << mw.status().ToString();
  EXPECT_EQ(mw->num_files(), 2u);
  EXPECT_EQ(mw->tensor_bytes(), 8u + 3u + 8u);
  EXPECT_EQ(mw->index_total_size(), 18u);
  EXPECT_FALSE(mw->total_size_matches()) << "off by one, as HF files sometimes are";
}

TEST_F(ModelIndexErrors, UnknownKeysAreIgnoredAndFloatTotalSizeIsAccepted) {
  Result<ModelWeights> mw =
      OpenWith(R"({"extra":{"a":[1,{"b":[]}],"c":null},"metadata":{"total_parameters":7,)"
               R"("nested":{"x":[{"y":1}]},"total_size":19.0},"weight_map":{)" +
               std::string(kGoodMap) + R"(},"tail":[[],{}]})");
  ASSERT_TRUE(mw.ok()) << mw.status().ToString();
  EXPECT_EQ(mw->index_total_size(), 19u);
  EXPECT_TRUE(mw->total_size_matches());
}

TEST_F(ModelIndexErrors, RejectsUnsafeShardNames) {
  ExpectError(Index(R"("x":"../a.safetensors")"), Status::Code::kCorruption,
              {IndexPath(), "weight_map: tensor 'x': shard name '../a.safetensors' contains '/'"});
  ExpectError(Index(R"("x":"sub/a.safetensors")"), Status::Code::kCorruption,
              {"tensor 'x'", "contains '/'"});
  ExpectError(Index(R"("x":"..")"), Status::Code::kCorruption, {"tensor 'x'", "contains '..'"});
  ExpectError(Index(R"("x":"")"), Status::Code::kCorruption, {"tensor 'x'", "is empty"});
}

TEST_F(ModelIndexErrors, RejectsAMissingShard) {
  ExpectError(Index(R"("x":"a.safetensors","y":"a.safetensors","z":"c.safetensors")"),
              Status::Code::kNotFound,
              {IndexPath(), "shard 'c.safetensors' (holding tensor 'z') does not exist"});
}

TEST_F(ModelIndexErrors, RejectsATensorTheShardLacks) {
  ExpectError(Index(std::string(kGoodMap) + R"(,"w":"b.safetensors")"), Status::Code::kCorruption,
              {IndexPath(), "maps tensor 'w' to shard 'b.safetensors'",
               dir_.File("b.safetensors") + " has no such tensor"});
}

TEST_F(ModelIndexErrors, RejectsATensorInTwoShards) {
  std::vector<OwnedTensor> b2 = b_;
  b2.push_back(a_[0]);  // x is now in a and b
  ASSERT_TRUE(WriteSafetensors(dir_.File("b.safetensors"), testing::Views(b2)).ok());
  ExpectError(
      Index(kGoodMap), Status::Code::kCorruption,
      {"tensor 'x' appears in two shards", dir_.File("a.safetensors"), dir_.File("b.safetensors")});
}

TEST_F(ModelIndexErrors, RejectsAShardTensorTheIndexDoesNotList) {
  ExpectError(Index(R"("x":"a.safetensors","z":"b.safetensors")"), Status::Code::kCorruption,
              {dir_.File("a.safetensors") + ": tensor 'y' is not listed in the weight_map"});
}

TEST_F(ModelIndexErrors, RejectsMalformedIndexes) {
  const auto C = Status::Code::kCorruption;
  ExpectError(Index(R"("x":"a.safetensors","x":"a.safetensors")"), C,
              {IndexPath(), "weight_map: tensor 'x' appears twice"});
  ExpectError(R"({"metadata":{}})", C, {IndexPath(), "missing 'weight_map'"});
  ExpectError(R"({"weight_map":[]})", C, {"weight_map: expected an object, got a list"});
  ExpectError(Index(R"("x":3)"), C,
              {"weight_map: tensor 'x': expected a shard file name", "got 3"});
  ExpectError(Index(kGoodMap, R"({"total_size":-1})"), C, {"metadata.total_size", "got -1"});
  ExpectError(Index(kGoodMap, R"({"total_size":"18"})"), C,
              {"metadata.total_size", "got a string"});
  ExpectError(Index(kGoodMap, R"({"total_size":1.5})"), C, {"metadata.total_size", "got 1.5"});
  ExpectError(Index(kGoodMap, R"({"total_size":1,"total_size":2})"), C,
              {"metadata: key 'total_size' appears twice"});
  ExpectError(R"({"metadata":{},"metadata":{},"weight_map":{}})", C,
              {"key 'metadata' appears twice"});
  ExpectError(R"({"weight_map":{"x":"a.safetensors")", C, {IndexPath(), "not valid JSON"});
  ExpectError("[]", C, {"expected a JSON object at the top level"});
  ExpectError(Index(kGoodMap) + std::string("\0junk", 5), C, {"NUL byte"});
}

TEST(ModelWeights, OpenReportsMissingFiles) {
  testing::ScratchDir dir;
  Result<ModelWeights> empty = ModelWeights::Open(dir.path());
  EXPECT_EQ(empty.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(empty.status().message(),
              HasSubstr("neither model.safetensors nor model.safetensors.index.json"));
  EXPECT_EQ(ModelWeights::Open(dir.File("nope")).status().code(), Status::Code::kNotFound);
}

TEST(ModelWeights, WriterRejectsBadInputBeforeWritingAnything) {
  testing::ScratchDir dir;
  const std::string out = dir.File("out");
  std::vector<OwnedTensor> ts = ModelTensors(14);
  EXPECT_EQ(WriteModelWeights(out, testing::Views(ts), 0).status().code(),
            Status::Code::kInvalidArgument);
  ts.push_back(ts.front());  // duplicate name, would land in another shard
  Result<ModelWeightsWriteResult> dup = WriteModelWeights(out, testing::Views(ts), 128);
  EXPECT_EQ(dup.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(dup.status().message(),
              HasSubstr("tensor 'model.embed_tokens.weight': name appears twice"));
  EXPECT_FALSE(PathExists(out));
}

}  // namespace
}  // namespace radlads
