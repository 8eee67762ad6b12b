// Sharded training checkpoints (worker/checkpoint_io.h) and the slicing behind them
// (pipeline/model_shard.h): a student with Adam moments written as the shards of one layout
// loads exactly (bit for bit: slicing and joining only copy) into the whole model and into
// every rank of other layouts; the shapes a shard may have; which stage holds which tensor;
// and the errors for truncated, missing, corrupted and lying shards, each naming the file or
// the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/file.h"
#include "contract/run_layout.h"
#include "pipeline/model_shard.h"
#include "pipeline/student_model.h"
#include "tests/testing/test_util.h"
#include "worker/checkpoint_io.h"

namespace radlads {
namespace {

StudentConfig Config() {
  Qwen2Config b;
  b.vocab_size = 40;
  b.hidden_size = 16;
  b.intermediate_size = 24;
  b.num_hidden_layers = 3;
  b.num_attention_heads = 4;
  b.num_key_value_heads = 2;
  b.head_dim = 6;
  b.tie_word_embeddings = false;
  StudentConfig c = StudentConfig::Defaults(StudentArch::kRwkv7, b);
  c.lora_rank_decay = 4;
  c.lora_rank_iclr = 3;
  c.lora_rank_value_residual_mix = 5;
  c.lora_rank_gate = 3;
  return c;
}

void Fill(Tensor& t, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = nd(rng);
}

// The whole student with random values and moments.
std::unique_ptr<ParamSet> Whole(const StudentConfig& cfg, unsigned seed) {
  std::mt19937 rng(seed);
  auto p = std::make_unique<ParamSet>();
  DeclareParams(StudentParamSpecs(cfg), *p);
  for (Param* q : p->params()) {
    Fill(q->value, rng);
    q->adam_m = Tensor::Empty(q->value.shape());
    q->adam_v = Tensor::Empty(q->value.shape());
    Fill(q->adam_m, rng);
    Fill(q->adam_v, rng);
  }
  return p;
}

ModelShard Shard(int tp, int tp_rank, int pp, int pp_rank, int layers) {
  ModelShard s;
  s.tp = tp;
  s.tp_rank = tp_rank;
  s.pp = pp;
  s.pp_rank = pp_rank;
  s.first_layer = pp_rank * layers / pp;
  s.last_layer = (pp_rank + 1) * layers / pp;
  return s;
}

// The local parameters of shard `s`, declared in their local shapes (values zero).
std::unique_ptr<ParamSet> Local(const StudentConfig& cfg, const ModelShard& s) {
  Result<StudentConfig> local = TpSliceStudent(cfg, s.tp);
  EXPECT_TRUE(local.ok()) << local.status().message();
  auto p = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(StudentParamSpecs(*local), s), *p);
  return p;
}

// Writes `whole` as the shards of tp x pp under RUN/; returns their records.
std::vector<FileRecord> WriteShards(const std::string& run, const StudentConfig& cfg, const ParamSet& whole, int tp,
                                    int pp, std::int64_t step) {
  std::vector<FileRecord> files;
  for (int r = 0; r < pp; ++r) {
    for (int t = 0; t < tp; ++t) {
      const ModelShard s = Shard(tp, t, pp, r, static_cast<int>(cfg.base.num_hidden_layers));
      auto local = Local(cfg, s);
      EXPECT_TRUE(SliceParams(whole, *local, tp, t).ok());
      TrainingState st;
      st.optimizer_step = step;
      st.tokens = step * 100;
      st.sample_cursor = step * 4;
      st.extra = ShardMetadata(tp, t, pp, r);
      Result<FileRecord> f =
          SaveTrainingCheckpoint(run, RunLayout::GangShardFile("distill", step, tp, t, pp, r), *local, st);
      EXPECT_TRUE(f.ok()) << f.status().message();
      files.push_back(*f);
    }
  }
  return files;
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), static_cast<std::size_t>(a.nbytes())) == 0;
}

TEST(ModelShard, SliceJoinAndSplitDimension) {
  std::mt19937 rng(1);
  Tensor full = Tensor::Empty({6, 4, 5});
  Fill(full, rng);
  for (int dim = 0; dim < 2; ++dim) {
    Shape local = full.shape();
    local[static_cast<std::size_t>(dim)] /= 2;
    Result<int> d = TpSplitDim(full.shape(), local, 2);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, dim);
    std::vector<Tensor> pieces = {TpSlice(full, local, 2, 0), TpSlice(full, local, 2, 1)};
    // Block 1 of dimension `dim` starts where block 0 ends.
    const std::int64_t off = dim == 0 ? 3 * 4 * 5 : 2 * 5;
    EXPECT_EQ(pieces[1].f32()[0], full.f32()[off]);
    Tensor back = Tensor::Zeros(full.shape());
    TpJoin(pieces, dim, back);
    EXPECT_TRUE(SameBits(back, full)) << "dim " << dim;
  }
  EXPECT_EQ(*TpSplitDim({6, 4}, {6, 4}, 2), -1);                                 // replicated
  EXPECT_FALSE(TpSplitDim({6, 4}, {3, 2}, 2).ok());                              // two dims
  EXPECT_FALSE(TpSplitDim({6, 4}, {2, 4}, 2).ok());                              // not 1/tp
  EXPECT_FALSE(TpSplitDim({6, 4}, {6, 4, 1}, 2).ok());                           // rank
  EXPECT_TRUE(TpPartialGradient("model.layers.0.self_attn.w1", {16, 4}, {16, 4}));  // LoRA input factor
  EXPECT_FALSE(TpPartialGradient("model.layers.0.self_attn.w2", {4, 24}, {4, 12}));
  EXPECT_FALSE(TpPartialGradient("model.layers.0.input_layernorm.weight", {16}, {16}));
}

TEST(ModelShard, SlicedConfigAndStages) {
  const StudentConfig cfg = Config();
  Result<StudentConfig> two = TpSliceStudent(cfg, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->base.num_attention_heads, 2);
  EXPECT_EQ(two->base.num_key_value_heads, 1);
  EXPECT_EQ(two->base.intermediate_size, 12);
  EXPECT_EQ(two->base.vocab_size, 20);
  EXPECT_EQ(two->base.hidden_size, 16);
  Result<StudentConfig> three = TpSliceStudent(cfg, 3);
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("num_attention_heads 4"), std::string::npos) << three.status().message();
  StudentConfig biased = cfg;
  biased.attention_output_bias = true;
  EXPECT_FALSE(TpSliceStudent(biased, 2).ok());
  EXPECT_TRUE(TpSliceStudent(biased, 1).ok());

  const ModelShard first = Shard(1, 0, 2, 0, 3), last = Shard(1, 0, 2, 1, 3);
  EXPECT_TRUE(StageHolds(first, "model.embed_tokens.weight"));
  EXPECT_FALSE(StageHolds(last, "model.embed_tokens.weight"));
  EXPECT_TRUE(StageHolds(last, "lm_head.weight"));
  EXPECT_TRUE(StageHolds(last, "model.norm.weight"));
  EXPECT_FALSE(StageHolds(first, "lm_head.weight"));
  EXPECT_TRUE(StageHolds(first, "model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(StageHolds(first, "model.layers.1.mlp.up_proj.weight"));
  EXPECT_TRUE(StageHolds(last, "model.layers.2.self_attn.w0"));
  // Every tensor is held by exactly one stage.
  for (const ParamSpec& p : StudentParamSpecs(cfg)) {
    EXPECT_NE(StageHolds(first, p.name), StageHolds(last, p.name)) << p.name;
  }
}

TEST(CheckpointShards, AnyLayoutLoadsIntoAnyOtherExactly) {
  testing::ScratchDir dir;
  const StudentConfig cfg = Config();
  auto whole = Whole(cfg, 7);
  const auto full_shapes = ShapesByName(StudentParamSpecs(cfg));
  const int L = static_cast<int>(cfg.base.num_hidden_layers);
  for (auto [tp, pp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {1, 2}, {2, 3}}) {
    const std::vector<FileRecord> files = WriteShards(dir.path(), cfg, *whole, tp, pp, 5 + tp * 10 + pp);
    // Into the whole model.
    ParamSet back;
    DeclareParams(StudentParamSpecs(cfg), back);
    Result<TrainingState> st = LoadCheckpointShards(dir.path(), files, back, 1, 0, full_shapes);
    ASSERT_TRUE(st.ok()) << st.status().message();
    EXPECT_EQ(st->optimizer_step, 5 + tp * 10 + pp);
    EXPECT_EQ(st->sample_cursor, st->optimizer_step * 4);
    EXPECT_TRUE(st->extra.empty()) << "shard metadata is the file's, not the state's";
    for (const Param* p : whole->params()) {
      const Param& q = back.Get(p->name);
      EXPECT_TRUE(SameBits(q.value, p->value) && SameBits(q.adam_m, p->adam_m) && SameBits(q.adam_v, p->adam_v))
          << p->name << " from tp " << tp << " x pp " << pp;
    }
    // Into every rank of tp 2 x pp 2.
    for (int r = 0; r < 2; ++r) {
      for (int t = 0; t < 2; ++t) {
        const ModelShard s = Shard(2, t, 2, r, L);
        auto local = Local(cfg, s);
        ASSERT_TRUE(LoadCheckpointShards(dir.path(), files, *local, 2, t, full_shapes).ok());
        for (const Param* p : local->params()) {
          const Param& w = whole->Get(p->name);
          EXPECT_TRUE(SameBits(p->value, TpSlice(w.value, p->value.shape(), 2, t)) &&
                      SameBits(p->adam_v, TpSlice(w.adam_v, p->value.shape(), 2, t)))
              << p->name << " at tp rank " << t << " stage " << r << " from tp " << tp << " x pp " << pp;
        }
      }
    }
  }
}

TEST(CheckpointShards, BadShardsAreRefusedNamingWhatIsWrong) {
  testing::ScratchDir dir;
  const StudentConfig cfg = Config();
  auto whole = Whole(cfg, 9);
  const auto full_shapes = ShapesByName(StudentParamSpecs(cfg));
  const std::vector<FileRecord> files = WriteShards(dir.path(), cfg, *whole, 2, 1, 3);
  auto load = [&](const std::vector<FileRecord>& f) {
    ParamSet back;
    DeclareParams(StudentParamSpecs(cfg), back);
    return LoadCheckpointShards(dir.path(), f, back, 1, 0, full_shapes).status();
  };
  ASSERT_TRUE(load(files).ok());
  // A missing shard: the tensors it held cannot be assembled.
  Status st = load({files[0]});
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("lack tp rank 1 of 2"), std::string::npos) << st.message();
  // No files at all.
  EXPECT_FALSE(load({}).ok());
  // A shard whose bytes changed after the commit (truncated): the recorded checksum names it.
  {
    const std::string path = JoinPath(dir.path(), files[1].path);
    Result<std::string> bytes = ReadFileToString(path);
    ASSERT_TRUE(bytes.ok());
    testing::WriteBytes(path, bytes->substr(0, bytes->size() / 2));
    st = load(files);
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_NE(st.message().find(files[1].path), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("checksum"), std::string::npos) << st.message();
    // Without a recorded checksum the truncated file fails to parse, still naming it.
    FileRecord unchecked = files[1];
    unchecked.checksum.clear();
    st = load({files[0], unchecked});
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(files[1].path), std::string::npos) << st.message();
    testing::WriteBytes(path, *bytes);
  }
  // Shards of different steps in one checkpoint.
  const std::vector<FileRecord> later = WriteShards(dir.path(), cfg, *whole, 2, 1, 4);
  st = load({files[0], later[1]});
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("optimizer step 4"), std::string::npos) << st.message();
  // A shard that lies about its place: both claim tp rank 0 of 2.
  {
    auto local = Local(cfg, Shard(2, 1, 1, 0, 3));
    ASSERT_TRUE(SliceParams(*whole, *local, 2, 1).ok());
    TrainingState lie;
    lie.optimizer_step = 3;
    lie.tokens = 300;
    lie.sample_cursor = 12;
    lie.extra = ShardMetadata(2, 0, 1, 0);
    Result<FileRecord> f = SaveTrainingCheckpoint(dir.path(), "checkpoints/distill/lying.safetensors", *local, lie);
    ASSERT_TRUE(f.ok());
    st = load({files[0], *f});
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_NE(st.message().find("lack tp rank 1 of 2"), std::string::npos) << st.message();
    lie.extra = ShardMetadata(3, 1, 1, 0);  // tp 3 among tp 2 shards
    f = SaveTrainingCheckpoint(dir.path(), "checkpoints/distill/lying.safetensors", *local, lie);
    ASSERT_TRUE(f.ok());
    st = load({files[0], *f});
    EXPECT_EQ(st.code(), Status::Code::kCorruption);
    EXPECT_NE(st.message().find("lying.safetensors"), std::string::npos) << st.message();
  }
  // A target layout the tensors do not divide into.
  {
    ParamSet odd;
    odd.Add("model.layers.0.mlp.up_proj.weight", Tensor::Zeros({5, 16}));
    Status s = LoadCheckpointShards(dir.path(), files, odd, 2, 0, full_shapes).status();
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("[5, 16]"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace radlads
