// The RAD-RWKV6 mixer (pipeline/rwkv6_mixer.h) against golden files from an independent
// PyTorch float64 transcription of the spec (tests/data/oracles/mixer_rwkv6_*.safetensors,
// written by tools/gen_mixer_goldens.py; format: docs/formats/oracles.md §3):
//   tensors  x, dy, y, dx [B,T,C]; p.<suffix> (the layer's parameters by name suffix under
//            "model.layers.{layer}.self_attn."), dp.<suffix> (dL/dp for L = sum(y * dy))
//   metadata student_config (config.json text), layer, unused_parameters (exactly-zero grads)
// Inputs and parameters are stored F64 but exactly representable in F32. For every file, the
// fp32 mixer runs with the recurrent (chunk 0) and the chunked (chunk 16) GLA, at pos0 = 0, and
// y, dx and every dp are compared by name with the file's F64 values:
//   relative RMS  ||got - want|| / ||want||                       <= kOracleRelRms
//   element-wise  |got - want| <= kOracleAtolOverRms * rms(want) + kOracleRtol * |want|
// Set RADLADS_ORACLE_REPORT=1 to print the worst errors per file, form and tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kernels/ops/rope.h"
#include "pipeline/param_set.h"
#include "pipeline/rwkv6_mixer.h"
#include "storage/safetensors.h"
#include "storage/student_config.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// fp32 mixer vs float64 goldens. Measured worst over both files, both GLA forms and every
// tensor (GCC 12 -O3 -march=native, RADLADS_ORACLE_REPORT=1): relative RMS 2.9e-6 (the variant
// file's RoPE'd q/k gradients and dx; 3e-7..8e-7 elsewhere), max|err| <= 3.6e-5 * rms(ref),
// worst err/bound 0.10 of the element-wise bound below.
constexpr double kOracleRelRms = 1e-5;
constexpr double kOracleAtolOverRms = 1e-4;
constexpr double kOracleRtol = 1e-4;
// The generator writes a default (released setting) and a variant file.
constexpr std::size_t kMinFiles = 2;

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> out;
  const std::filesystem::path dir(testing::TestDataPath("oracles"));
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("mixer_rwkv6_", 0) == 0 && e.path().extension() == ".safetensors")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// F64 (or any numeric dtype) values of a tensor, and its shape; empty + failure when absent.
std::vector<double> ReadF64(const SafetensorsFile& f, const std::string& name, Shape* shape) {
  const SafetensorsTensorInfo* info = f.Find(name);
  if (info == nullptr) {
    ADD_FAILURE() << f.path() << ": no tensor '" << name << "'";
    return {};
  }
  *shape = info->shape;
  std::vector<double> out(info->num_elements());
  if (info->dtype == DType::kF64) {
    const auto bytes = f.Data(*info);
    EXPECT_EQ(bytes.size(), out.size() * sizeof(double));
    std::memcpy(out.data(), bytes.data(), std::min(bytes.size(), out.size() * sizeof(double)));
  } else {
    Result<std::vector<float>> v = f.ReadAsF32(name);
    if (!v.ok()) {
      ADD_FAILURE() << v.status().ToString();
      return {};
    }
    std::copy(v->begin(), v->end(), out.begin());
  }
  return out;
}

// An F32 tensor of the values, which must be exactly representable.
Tensor ExactF32(const std::vector<double>& v, const Shape& shape, const std::string& what) {
  Tensor t = Tensor::Empty(shape);
  std::size_t inexact = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    t.f32()[i] = static_cast<float>(v[i]);
    inexact += static_cast<double>(t.f32()[i]) != v[i];
  }
  EXPECT_EQ(inexact, 0u) << what << ": input values not exactly representable in fp32";
  return t;
}

void ExpectClose(const Tensor& got_t, const std::vector<double>& want, const Shape& want_shape,
                 const std::string& what, bool report) {
  ASSERT_EQ(got_t.shape(), want_shape) << what;
  const float* got = got_t.f32();
  double ss_ref = 0, ss_err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    ss_ref += want[i] * want[i];
    ss_err += (got[i] - want[i]) * (got[i] - want[i]);
  }
  ASSERT_GT(ss_ref, 0.0) << what << ": reference is all zeros";
  const double rms_ref = std::sqrt(ss_ref / static_cast<double>(want.size()));
  const double rel_rms = std::sqrt(ss_err / ss_ref);
  double worst_ratio = 0, max_err = 0;
  std::size_t worst_i = 0, bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]);
    const double bound = kOracleAtolOverRms * rms_ref + kOracleRtol * std::fabs(want[i]);
    if (!(err <= bound)) ++bad;
    max_err = std::max(max_err, err);
    if (err / bound > worst_ratio) {
      worst_ratio = err / bound;
      worst_i = i;
    }
  }
  if (report)
    std::printf("  %-28s rel RMS %.2e  max|err|/rms(ref) %.2e  worst err/bound %.3f\n", what.c_str(),
                rel_rms, max_err / rms_ref, worst_ratio);
  EXPECT_LE(rel_rms, kOracleRelRms) << what;
  EXPECT_EQ(bad, 0u) << what << ": worst element " << worst_i << " got " << got[worst_i] << " want "
                     << want[worst_i] << " (err/bound " << worst_ratio << ")";
}

TEST(Rwkv6OracleTest, MatchesPyTorchGoldens) {
  const std::vector<std::string> files = GoldenFiles();
  ASSERT_GE(files.size(), kMinFiles) << "mixer_rwkv6_*.safetensors missing under "
                                     << testing::TestDataPath("oracles");
  const char* env = std::getenv("RADLADS_ORACLE_REPORT");
  const bool report = env != nullptr && std::string(env) == "1";
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    Result<SafetensorsFile> opened = SafetensorsFile::Open(path);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const SafetensorsFile& f = *opened;
    const auto& meta = f.metadata();
    ASSERT_TRUE(meta.count("student_config") && meta.count("layer")) << "metadata";
    Result<StudentConfig> parsed = ParseStudentConfigJson(meta.at("student_config"), path);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const StudentConfig& cfg = *parsed;
    ASSERT_EQ(cfg.arch, StudentArch::kRwkv6);
    const int layer = std::stoi(meta.at("layer"));

    Shape x_shape, dy_shape, y_shape, dx_shape;
    const std::vector<double> xv = ReadF64(f, "x", &x_shape);
    const std::vector<double> dyv = ReadF64(f, "dy", &dy_shape);
    const std::vector<double> y_want = ReadF64(f, "y", &y_shape);
    const std::vector<double> dx_want = ReadF64(f, "dx", &dx_shape);
    ASSERT_EQ(x_shape.size(), 3u);
    const std::int64_t B = x_shape[0], T = x_shape[1];
    const Tensor x = ExactF32(xv, x_shape, "x");
    const Tensor dy = ExactF32(dyv, dy_shape, "dy");

    // Every declared parameter comes from p.<suffix>, and the file has no other p.*.
    ParamSet params;
    DeclareRwkv6MixerParams(cfg, layer, params);
    const std::string prefix = Rwkv6MixerPrefix(layer);
    std::set<std::string> declared;
    for (Param* p : params.params()) {
      const std::string suffix = p->name.substr(prefix.size());
      declared.insert(suffix);
      Shape shape;
      const std::vector<double> v = ReadF64(f, "p." + suffix, &shape);
      ASSERT_EQ(shape, p->value.shape()) << suffix;
      const Tensor t = ExactF32(v, shape, suffix);
      std::memcpy(p->value.f32(), t.f32(), static_cast<std::size_t>(t.numel()) * sizeof(float));
    }
    for (const SafetensorsTensorInfo& info : f.tensors()) {
      if (info.name.rfind("p.", 0) == 0) {
        EXPECT_TRUE(declared.count(info.name.substr(2))) << info.name;
      }
    }
    params.SetTrainable([](const std::string&) { return true; });

    // Comma-separated names whose gradient is 0 by construction (may be empty).
    std::set<std::string> unused;
    if (meta.count("unused_parameters")) {
      std::string list = meta.at("unused_parameters");
      for (std::size_t at = 0; at < list.size();) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        if (comma > at) unused.insert(list.substr(at, comma - at));
        at = comma + 1;
      }
    }
    const ops::RopeTable rope = ops::MakeRopeTable(T, cfg.base.head_dim, cfg.base.rope_theta);
    for (std::int64_t chunk : {0, 16}) {
      SCOPED_TRACE("gla chunk " + std::to_string(chunk));
      if (report) std::printf("%s, chunk %lld\n", path.c_str(), static_cast<long long>(chunk));
      params.ZeroGrads();
      Rwkv6MixerOptions opts;
      opts.gla_chunk = chunk;
      Rwkv6Mixer mixer(cfg, layer, params, opts);
      MixerContext ctx;
      ctx.batch = B;
      ctx.time = T;
      ctx.rope = &rope;
      ctx.need_backward = true;
      Tensor y = Tensor::Empty(x.shape());
      mixer.Forward(x, ctx, y);
      Tensor dx = Tensor::Zeros(x.shape());
      mixer.Backward(dy, ctx, &dx);
      ExpectClose(y, y_want, y_shape, "y", report);
      ExpectClose(dx, dx_want, dx_shape, "dx", report);
      for (Param* p : params.params()) {
        const std::string suffix = p->name.substr(prefix.size());
        Shape shape;
        const std::vector<double> want = ReadF64(f, "dp." + suffix, &shape);
        if (unused.count(suffix)) {
          // Unused by construction: the gradient is exactly zero.
          for (std::int64_t i = 0; i < p->grad.numel(); ++i) ASSERT_EQ(p->grad.f32()[i], 0.0f) << suffix;
        } else {
          ExpectClose(p->grad, want, shape, "dp." + suffix, report);
        }
      }
    }
  }
}

}  // namespace
}  // namespace radlads
