#include "storage/activation_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "base/file.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

ActivationCacheMeta Meta(DType dtype) {
  ActivationCacheMeta m;
  m.segment = 3;
  m.stage = 1;
  m.first_layer = 2;
  m.last_layer = 4;
  m.samples = 5;
  m.seq_len = 7;
  m.hidden = 6;
  m.sample_begin = 15;
  m.dtype = dtype;
  return m;
}

Tensor Random(Shape s, testing::Rng& rng) {
  Tensor t = Tensor::Empty(std::move(s));
  std::normal_distribution<float> nd(0.f, 1.f);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = nd(rng);
  return t;
}

struct Written {
  std::vector<Tensor> in, out;
  Tensor stage, tokens, vfirst;
  std::uint64_t checksum = 0;
};

Written WriteCache(const std::string& path, const ActivationCacheMeta& m, testing::Rng& rng) {
  Written w;
  auto writer = ActivationCacheWriter::Create(path, m);
  EXPECT_TRUE(writer.ok()) << writer.status().ToString();
  for (std::int64_t l = m.first_layer; l < m.last_layer; ++l) {
    w.in.push_back(Random({m.samples, m.seq_len, m.hidden}, rng));
    w.out.push_back(Random({m.samples, m.seq_len, m.hidden}, rng));
    // Written in two pieces, out of order.
    EXPECT_TRUE((*writer)->WriteLayer(l, 2, w.in.back().Rows(2, 5), w.out.back().Rows(2, 5)).ok());
    EXPECT_TRUE((*writer)->WriteLayer(l, 0, w.in.back().Rows(0, 2), w.out.back().Rows(0, 2)).ok());
  }
  w.stage = Random({m.samples, m.seq_len, m.hidden}, rng);
  w.tokens = Tensor::Empty({m.samples, m.seq_len}, DType::kI32);
  for (std::int64_t i = 0; i < w.tokens.numel(); ++i) w.tokens.data<std::int32_t>()[i] = static_cast<std::int32_t>(i * 7 % 320);
  EXPECT_TRUE((*writer)->WriteStageOutput(0, w.stage, w.tokens).ok());
  if (m.value_first_width > 0) {
    w.vfirst = Random({m.samples, m.seq_len, m.value_first_width}, rng);
    EXPECT_TRUE((*writer)->WriteValueFirst(0, w.vfirst).ok());
  }
  auto sum = (*writer)->Finish();
  EXPECT_TRUE(sum.ok()) << sum.status().ToString();
  w.checksum = *sum;
  return w;
}

TEST(ActivationCache, RoundTripF32IsExactAndBf16Rounds) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    testing::ScratchDir dir;
    testing::Rng rng(11);
    const std::string path = dir.File("S00003_P01.h5");
    ActivationCacheMeta m = Meta(dt);
    if (dt == DType::kF32) m.value_first_width = 8;  // a RAD-RWKV7 cache
    Written w = WriteCache(path, m, rng);
    auto r = ActivationCacheReader::Open(path, m, w.checksum);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE((*r)->meta() == m);
    for (std::int64_t l = m.first_layer; l < m.last_layer; ++l) {
      Tensor in = Tensor::Empty({3, m.seq_len, m.hidden}), out = Tensor::Empty({3, m.seq_len, m.hidden});
      ASSERT_TRUE((*r)->ReadLayer(l, 1, in, out).ok());
      const Tensor& want_in = w.in[static_cast<std::size_t>(l - m.first_layer)];
      for (std::int64_t i = 0; i < in.numel(); ++i) {
        float want = want_in.f32()[m.seq_len * m.hidden + i];
        if (dt == DType::kBF16) want = Bf16ToF32(F32ToBf16(want));
        ASSERT_EQ(in.f32()[i], want) << "layer " << l << " element " << i;
      }
    }
    Tensor hs = Tensor::Empty({m.samples, m.seq_len, m.hidden});
    Tensor tok = Tensor::Empty({m.samples, m.seq_len}, DType::kI32);
    ASSERT_TRUE((*r)->ReadStageOutput(0, hs, tok).ok());
    EXPECT_EQ(std::memcmp(tok.raw(), w.tokens.raw(), tok.nbytes()), 0);
    if (m.value_first_width > 0) {
      Tensor vf = Tensor::Empty({2, m.seq_len, m.value_first_width});
      ASSERT_TRUE((*r)->ReadValueFirst(3, vf).ok());
      EXPECT_EQ(std::memcmp(vf.raw(), w.vfirst.Rows(3, 5).raw(), vf.nbytes()), 0);
    } else {
      Tensor vf = Tensor::Empty({1, m.seq_len, 8});
      EXPECT_EQ((*r)->ReadValueFirst(0, vf).code(), Status::Code::kInvalidArgument);
    }
  }
}

TEST(ActivationCache, DetectsCorruptionAndMismatches) {
  testing::ScratchDir dir;
  testing::Rng rng(12);
  const std::string path = dir.File("c.h5");
  ActivationCacheMeta m = Meta(DType::kF32);
  Written w = WriteCache(path, m, rng);
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  // Flip one byte inside a dataset chunk: find the bytes of the first floats of layer 2's
  // mixer_in (stored as F32, so they appear verbatim in the file).
  std::string needle(reinterpret_cast<const char*>(w.in[0].f32()), 16);
  std::size_t at = bytes->find(needle);
  ASSERT_NE(at, std::string::npos);
  std::string flipped = *bytes;
  flipped[at + 5] ^= 0x40;
  const std::string bad = dir.File("bad.h5");
  testing::WriteBytes(bad, flipped);
  auto with_sum = ActivationCacheReader::Open(bad, m, w.checksum);
  ASSERT_FALSE(with_sum.ok());
  EXPECT_EQ(with_sum.status().code(), Status::Code::kCorruption);
  EXPECT_NE(with_sum.status().message().find("checksum"), std::string::npos);
  // Without the recorded checksum, HDF5's per-chunk Fletcher32 catches it on read.
  auto no_sum = ActivationCacheReader::Open(bad, m);
  if (no_sum.ok()) {
    bool any_failed = false;
    for (std::int64_t l = m.first_layer; l < m.last_layer; ++l) {
      Tensor in = Tensor::Empty({m.samples, m.seq_len, m.hidden}), out = Tensor::Empty({m.samples, m.seq_len, m.hidden});
      Status st = (*no_sum)->ReadLayer(l, 0, in, out);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), Status::Code::kCorruption);
        any_failed = true;
      }
    }
    Tensor hs = Tensor::Empty({m.samples, m.seq_len, m.hidden});
    Tensor tok = Tensor::Empty({m.samples, m.seq_len}, DType::kI32);
    if (!(*no_sum)->ReadStageOutput(0, hs, tok).ok()) any_failed = true;
    EXPECT_TRUE(any_failed) << "a flipped data byte must fail some read";
  } else {
    EXPECT_EQ(no_sum.status().code(), Status::Code::kCorruption);
  }
  // Truncated, not HDF5, wrong expectations, missing.
  testing::WriteBytes(dir.File("trunc.h5"), bytes->substr(0, bytes->size() / 2));
  EXPECT_EQ(ActivationCacheReader::Open(dir.File("trunc.h5"), m).status().code(), Status::Code::kCorruption);
  testing::WriteBytes(dir.File("text.h5"), "not hdf5");
  EXPECT_EQ(ActivationCacheReader::Open(dir.File("text.h5")).status().code(), Status::Code::kCorruption);
  ActivationCacheMeta other = m;
  other.segment = 4;
  auto wrong = ActivationCacheReader::Open(path, other);
  EXPECT_EQ(wrong.status().code(), Status::Code::kCorruption);
  EXPECT_NE(wrong.status().message().find("segment 3"), std::string::npos);
  EXPECT_EQ(ActivationCacheReader::Open(dir.File("none.h5")).status().code(), Status::Code::kNotFound);
}

TEST(ActivationCache, UnfinishedWritesLeaveNothingAndIncompleteCachesDoNotFinish) {
  testing::ScratchDir dir;
  testing::Rng rng(13);
  ActivationCacheMeta m = Meta(DType::kF32);
  {
    auto w = ActivationCacheWriter::Create(dir.File("x.h5"), m);
    ASSERT_TRUE(w.ok());
    Tensor in = Random({1, m.seq_len, m.hidden}, rng);
    ASSERT_TRUE((*w)->WriteLayer(2, 0, in, in).ok());
    auto f = (*w)->Finish();
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find("never written"), std::string::npos);
    EXPECT_EQ((*w)->WriteLayer(7, 0, in, in).code(), Status::Code::kInvalidArgument);
    EXPECT_EQ((*w)->WriteLayer(2, 4, Random({2, m.seq_len, m.hidden}, rng), in).code(),
              Status::Code::kInvalidArgument);
  }
  EXPECT_FALSE(PathExists(dir.File("x.h5")));
  // Nothing but the directory itself remains (the temp file was removed).
  auto listing = ReadFileToString(dir.path());
  EXPECT_FALSE(listing.ok());
}

}  // namespace
}  // namespace radlads
