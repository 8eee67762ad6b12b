// The RAD-RWKV7 mixer against golden files from an independent PyTorch float64 transcription of
// the spec, gradients by autograd (tests/data/oracles/mixer_rwkv7_*.safetensors; tensors and
// metadata: docs/formats/oracles.md):
//   x, dy                 inputs [B,T,C] (F64, fp32-exact)
//   p.<name>              every parameter of the layer, by its suffix under "self_attn."
//   v_first               layer >= 1: the value-residual input [B,T,A]
//   y, dx, dp.<name>      outputs and gradients of L = sum(y * dy)
//   v_first_out           layer 0: the stored expanded value (no cotangent)
//   dv_first              layer >= 1: dL/dv_first
//   metadata              student_config (config.json text), layer, unused_parameters (comma
//                         list of parameters whose gradient is exactly 0)
// Positions are 0..T-1 (a `pos0` metadata key, should one appear, is honoured).
// The mixer runs in fp32 on the file's parameters and inputs; every tensor is compared with
//   relative RMS ||got - want|| / ||want|| <= rms and element-wise
//   |got - want| <= atol * rms(want) + rtol * |want|.
// Set RWKV7_TEST_VERBOSE=1 to print the errors per tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/ops/rope.h"
#include "pipeline/param_set.h"
#include "pipeline/rwkv7_mixer.h"
#include "storage/safetensors.h"
#include "storage/student_config.h"
#include "tests/pipeline/rwkv7_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using rwkv7test::Tol;

// fp32 mixer vs float64 goldens. Measured worst over the three files, both DPLR forms (GCC 12
// -O3 -march=native, RWKV7_TEST_VERBOSE=1): relative RMS 5.7e-7 (std_l1 dp.q_proj.bias),
// element-wise 2.1e-6 x (rms + |want|). Limits: the brief's ~1e-5 relative RMS, element-wise
// with a ~10x margin.
constexpr Tol kOracleTol{2e-5, 1e-4, 1e-5};
// The generator writes three RAD-RWKV7 files (l0, l1, std_l1).
constexpr std::size_t kMinFiles = 3;

bool Verbose() {
  const char* v = std::getenv("RWKV7_TEST_VERBOSE");
  return v != nullptr && v[0] == '1';
}

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> out;
  const std::filesystem::path dir(testing::TestDataPath("oracles"));
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("mixer_rwkv7_", 0) == 0 && e.path().extension() == ".safetensors")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class Golden {
 public:
  explicit Golden(const std::string& path) : path_(path) {
    Result<SafetensorsFile> f = SafetensorsFile::Open(path);
    if (!f.ok()) {
      ADD_FAILURE() << f.status().ToString();
      return;
    }
    file_ = std::make_unique<SafetensorsFile>(std::move(*f));
  }
  bool ok() const { return file_ != nullptr; }
  bool Has(const std::string& name) const { return file_->Find(name) != nullptr; }
  const SafetensorsFile& file() const { return *file_; }

  // F64 values and shape; empty (with a failure) when absent.
  std::vector<double> F64(const std::string& name, Shape* shape = nullptr) const {
    const SafetensorsTensorInfo* info = file_->Find(name);
    if (info == nullptr) {
      ADD_FAILURE() << path_ << ": no tensor '" << name << "'";
      return {};
    }
    EXPECT_EQ(info->dtype, DType::kF64) << path_ << ": " << name;
    if (shape != nullptr) *shape = info->shape;
    if (info->dtype != DType::kF64) {
      Result<std::vector<float>> v = file_->ReadAsF32(name);
      return v.ok() ? std::vector<double>(v->begin(), v->end()) : std::vector<double>();
    }
    std::vector<double> out(info->num_elements());
    const auto bytes = file_->Data(*info);
    std::memcpy(out.data(), bytes.data(), std::min(bytes.size(), out.size() * sizeof(double)));
    return out;
  }
  // The tensor rounded to fp32 (inputs are fp32-exact), with its stored shape.
  Tensor F32(const std::string& name) const {
    if (!Has(name)) {
      ADD_FAILURE() << path_ << ": no tensor '" << name << "'";
      return Tensor();
    }
    Shape shape;
    const std::vector<double> v = F64(name, &shape);
    Tensor t = rwkv7test::FromF64(v, shape);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (static_cast<double>(t.f32()[i]) != v[i]) {
        ADD_FAILURE() << path_ << ": input " << name << "[" << i << "] = " << v[i]
                      << " is not exact in fp32";
        break;
      }
    }
    return t;
  }
  std::string Meta(const std::string& key, bool required = true) const {
    auto it = file_->metadata().find(key);
    if (it == file_->metadata().end()) {
      if (required) ADD_FAILURE() << path_ << ": no metadata '" << key << "'";
      return "";
    }
    return it->second;
  }

 private:
  std::string path_;
  std::unique_ptr<SafetensorsFile> file_;
};

void Compare(const Tensor& got, const Golden& g, const std::string& name, const std::string& tag) {
  Shape shape;
  const std::vector<double> want = g.F64(name, &shape);
  ASSERT_EQ(ShapeNumel(shape), got.numel()) << tag << " " << name;
  const std::vector<double> have = rwkv7test::ToF64(got);
  if (Verbose()) {
    const rwkv7test::Err e = rwkv7test::Measure(have, want);
    std::printf("%-28s %-20s rel_rms %.3g  elem %.3g\n", tag.c_str(), name.c_str(), e.rel_rms,
                e.elem);
  }
  EXPECT_TRUE(rwkv7test::AllClose(have, want, kOracleTol, tag + " " + name));
}

void CheckFile(const std::string& path) {
  const std::string tag = std::filesystem::path(path).stem().string();
  SCOPED_TRACE(tag);
  Golden g(path);
  ASSERT_TRUE(g.ok());
  Result<StudentConfig> parsed = ParseStudentConfigJson(g.Meta("student_config"), path);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const StudentConfig cfg = *parsed;
  const int layer = std::stoi(g.Meta("layer"));
  const std::string pos0_text = g.Meta("pos0", /*required=*/false);
  const std::int64_t pos0 = pos0_text.empty() ? 0 : std::stoll(pos0_text);
  const std::int64_t C = cfg.base.hidden_size, A = cfg.base.num_attention_heads * cfg.base.head_dim;

  // Parameters: the file holds exactly the declared set.
  ParamSet ps;
  DeclareRwkv7MixerParams(cfg, layer, ps);
  std::set<std::string> declared;
  for (Param* p : ps.params()) {
    const std::string sfx = rwkv7test::Suffix(p->name);
    declared.insert(sfx);
    const Tensor v = g.F32("p." + sfx);
    ASSERT_TRUE(v.defined()) << sfx;
    ASSERT_EQ(v.numel(), p->value.numel()) << sfx;
    std::memcpy(p->value.f32(), v.f32(), static_cast<std::size_t>(v.numel()) * sizeof(float));
  }
  for (const SafetensorsTensorInfo& info : g.file().tensors()) {
    for (const char* pre : {"p.", "dp."}) {
      const std::string n = info.name;
      if (n.rfind(pre, 0) == 0) {
        EXPECT_TRUE(declared.count(n.substr(std::strlen(pre))) == 1)
            << path << ": " << n << " is not a parameter of the mixer";
      }
    }
  }
  ps.SetTrainable([](const std::string&) { return true; });

  const Tensor x = g.F32("x");
  const Tensor dy = g.F32("dy");
  ASSERT_EQ(x.rank(), 3);
  ASSERT_EQ(x.dim(2), C);
  const std::int64_t B = x.dim(0), T = x.dim(1);
  ops::RopeTable rope;
  if (cfg.use_rope) rope = ops::MakeRopeTable(pos0 + T, cfg.base.head_dim, cfg.base.rope_theta);

  Rwkv7Mixer m(cfg, layer, ps);
  MixerContext ctx;
  ctx.batch = B;
  ctx.time = T;
  ctx.pos0 = pos0;
  ctx.rope = cfg.use_rope ? &rope : nullptr;
  ctx.need_backward = true;
  if (layer > 0) ctx.v_first = g.F32("v_first");
  Tensor y = Tensor::Empty({B, T, C});
  m.Forward(x, ctx, y);
  Compare(y, g, "y", tag);
  if (layer == 0) {
    Compare(ctx.v_first, g, "v_first_out", tag);  // L does not depend on it: no dv_first
  } else {
    ctx.dv_first = Tensor::Zeros({B, T, A});
  }
  Tensor dx = Tensor::Zeros({B, T, C});
  m.Backward(dy, ctx, &dx);
  Compare(dx, g, "dx", tag);
  if (layer > 0) Compare(ctx.dv_first, g, "dv_first", tag);

  // Unused parameters have exactly zero gradient.
  std::set<std::string> unused;
  {
    std::stringstream ss(g.Meta("unused_parameters", /*required=*/false));
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) unused.insert(item);
  }
  for (Param* p : ps.params()) {
    const std::string sfx = rwkv7test::Suffix(p->name);
    if (unused.count(sfx) != 0) {
      for (double e : rwkv7test::ToF64(p->grad)) ASSERT_EQ(e, 0.0) << tag << " d" << sfx;
      for (double e : g.F64("dp." + sfx)) ASSERT_EQ(e, 0.0) << tag << " golden dp." << sfx;
      continue;
    }
    Compare(p->grad, g, "dp." + sfx, tag);
  }
}

TEST(Rwkv7Oracle, MatchesPyTorchGoldens) {
  const std::vector<std::string> files = GoldenFiles();
  EXPECT_GE(files.size(), kMinFiles) << "missing tests/data/oracles/mixer_rwkv7_*.safetensors";
  for (const std::string& f : files) CheckFile(f);
}

// The recurrent and chunked DPLR forms give the same answers on the goldens' inputs.
TEST(Rwkv7Oracle, ChunkedFormMatchesGoldens) {
  for (const std::string& path : GoldenFiles()) {
    SCOPED_TRACE(path);
    Golden g(path);
    ASSERT_TRUE(g.ok());
    Result<StudentConfig> parsed = ParseStudentConfigJson(g.Meta("student_config"), path);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const StudentConfig cfg = *parsed;
    const int layer = std::stoi(g.Meta("layer"));
    const std::string pos0_text = g.Meta("pos0", false);
    const std::int64_t pos0 = pos0_text.empty() ? 0 : std::stoll(pos0_text);
    ParamSet ps;
    DeclareRwkv7MixerParams(cfg, layer, ps);
    for (Param* p : ps.params()) {
      const Tensor v = g.F32("p." + rwkv7test::Suffix(p->name));
      ASSERT_TRUE(v.defined());
      std::memcpy(p->value.f32(), v.f32(), static_cast<std::size_t>(v.numel()) * sizeof(float));
    }
    ps.SetTrainable([](const std::string&) { return true; });
    const Tensor x = g.F32("x");
    const std::int64_t B = x.dim(0), T = x.dim(1);
    ops::RopeTable rope;
    if (cfg.use_rope) rope = ops::MakeRopeTable(pos0 + T, cfg.base.head_dim, cfg.base.rope_theta);
    Rwkv7MixerOptions opts;
    opts.dplr_chunk = 16;
    Rwkv7Mixer m(cfg, layer, ps, opts);
    MixerContext ctx;
    ctx.batch = B;
    ctx.time = T;
    ctx.pos0 = pos0;
    ctx.rope = cfg.use_rope ? &rope : nullptr;
    if (layer > 0) ctx.v_first = g.F32("v_first");
    Tensor y = Tensor::Empty(x.shape());
    m.Forward(x, ctx, y);
    Compare(y, g, "y", "chunk16");
    if (layer > 0) ctx.dv_first = Tensor::Zeros(ctx.v_first.shape());
    Tensor dx = Tensor::Zeros(x.shape());
    m.Backward(g.F32("dy"), ctx, &dx);
    Compare(dx, g, "dx", "chunk16");
    if (layer > 0) Compare(ctx.dv_first, g, "dv_first", "chunk16");
  }
}

}  // namespace
}  // namespace radlads
