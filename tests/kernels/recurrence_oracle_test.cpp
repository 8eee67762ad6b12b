// Our GLA and DPLR kernels (kernels/ops/gla.h, kernels/ops/dplr.h) against golden files computed
// by flash-linear-attention's own reference implementations in float64
// (tests/data/oracles/{gla,dplr}_*.safetensors, written by tools/gen_recurrence_goldens.py;
// tensors and metadata: docs/formats/oracles.md).
//
// For every golden file, both forms (recurrent chunk = 0 and chunked chunk = 16) run in fp32 on
// the file's inputs (stored as F64 but exactly representable in F32, so the kernel sees the very
// inputs fla saw) and every output and gradient is compared by name with the file's F64 values:
//   relative RMS  ||got - want|| / ||want||                <= kOracleRelRms
//   element-wise  |got - want| <= kOracleAtolOverRms * rms(want) + kOracleRtol * |want|
// (atol is relative to the tensor's RMS so one constant fits o, states and dg at g = -5).
// Set RADLADS_ORACLE_REPORT=1 to print the worst errors seen per form and tensor.
// Also checks that the mixer golden files (tests/data/oracles/mixer_*) are well formed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops/dplr.h"
#include "kernels/ops/gla.h"
#include "kernels/tensor.h"
#include "storage/safetensors.h"
#include "storage/student_config.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

// Limits, fp32 kernels vs fla float64. Measured worst over all files, both forms, every tensor
// (GCC 12 -O3 -march=native, RADLADS_ORACLE_REPORT=1): relative RMS 3.1e-7 (gla chunk16 dg),
// max|err| <= 2.5e-6 * rms(ref) (gla chunk16 dk); no element above 0.07 of the element-wise
// bound below (dplr chunk16 da). Margins: 60x on relative RMS, 14x element-wise.
constexpr double kOracleRelRms = 2e-5;
constexpr double kOracleAtolOverRms = 2e-5;
constexpr double kOracleRtol = 2e-5;
constexpr std::int64_t kChunk = 16;
// The generator writes 4 GLA and 4 DPLR files; fewer means the fixtures went missing.
constexpr std::size_t kMinGlaFiles = 4;
constexpr std::size_t kMinDplrFiles = 4;

std::vector<std::string> GoldenFiles(const std::string& prefix) {
  std::vector<std::string> out;
  const std::filesystem::path dir(testing::TestDataPath("oracles"));
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".safetensors") {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One open golden file.
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

  // The tensor as an fp32 Tensor of its stored shape (inputs).
  Tensor F32(const std::string& name) const {
    const SafetensorsTensorInfo* info = Info(name);
    if (info == nullptr) return Tensor();
    Result<std::vector<float>> v = file_->ReadAsF32(name);
    if (!v.ok()) {
      ADD_FAILURE() << v.status().ToString();
      return Tensor();
    }
    return Tensor::FromVector(*v, info->shape);
  }
  // The tensor's F64 values (references), with its shape.
  std::vector<double> F64(const std::string& name, Shape* shape = nullptr) const {
    const SafetensorsTensorInfo* info = Info(name);
    if (info == nullptr) return {};
    EXPECT_EQ(info->dtype, DType::kF64) << path_ << ": " << name;
    if (shape != nullptr) *shape = info->shape;
    std::vector<double> out(info->num_elements());
    const auto bytes = file_->Data(*info);
    EXPECT_EQ(bytes.size(), out.size() * sizeof(double));
    std::memcpy(out.data(), bytes.data(), std::min(bytes.size(), out.size() * sizeof(double)));
    return out;
  }
  std::string Meta(const std::string& key) const {
    auto it = file_->metadata().find(key);
    if (it == file_->metadata().end()) {
      ADD_FAILURE() << path_ << ": no metadata '" << key << "'";
      return "";
    }
    return it->second;
  }
  const std::string& path() const { return path_; }

 private:
  const SafetensorsTensorInfo* Info(const std::string& name) const {
    const SafetensorsTensorInfo* info = file_->Find(name);
    if (info == nullptr) ADD_FAILURE() << path_ << ": no tensor '" << name << "'";
    return info;
  }
  std::string path_;
  std::unique_ptr<SafetensorsFile> file_;
};

struct WorstErr {
  double rel_rms = 0, max_over_rms = 0, max_ratio = 0;  // ratio: err / element-wise bound
};
std::map<std::string, WorstErr>& Worst() {
  static std::map<std::string, WorstErr> w;
  return w;
}

void ExpectClose(const Tensor& got_t, const std::vector<double>& want, const Shape& want_shape,
                 const std::string& key, const std::string& what) {
  ASSERT_EQ(got_t.shape(), want_shape) << what;
  ASSERT_EQ(static_cast<std::size_t>(got_t.numel()), want.size()) << what;
  const float* got = got_t.f32();
  double ss_ref = 0.0, ss_err = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    ss_ref += want[i] * want[i];
    ss_err += (got[i] - want[i]) * (got[i] - want[i]);
  }
  ASSERT_GT(ss_ref, 0.0) << what << ": reference is all zeros";
  const double rms_ref = std::sqrt(ss_ref / static_cast<double>(want.size()));
  const double rel_rms = std::sqrt(ss_err / ss_ref);
  double worst_ratio = 0.0, max_err = 0.0;
  std::size_t worst_i = 0, bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]);
    max_err = std::max(max_err, err);
    const double bound = kOracleAtolOverRms * rms_ref + kOracleRtol * std::fabs(want[i]);
    const double ratio = err / bound;
    if (!(ratio <= 1.0)) ++bad;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst_i = i;
    }
  }
  WorstErr& w = Worst()[key];
  w.rel_rms = std::max(w.rel_rms, rel_rms);
  w.max_over_rms = std::max(w.max_over_rms, max_err / rms_ref);
  w.max_ratio = std::max(w.max_ratio, worst_ratio);
  EXPECT_LE(rel_rms, kOracleRelRms) << what << ": relative RMS error";
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements outside atol*rms+rtol*|ref|; worst at "
                     << worst_i << " got " << got[worst_i] << " want " << want[worst_i]
                     << " (rms(ref) " << rms_ref << ")";
}

std::string FormName(std::int64_t chunk) {
  return chunk == 0 ? "recurrent" : "chunk" + std::to_string(chunk);
}

// Compares each named result with the file's reference of the same name.
void CompareAll(const Golden& gf, const std::map<std::string, Tensor>& got,
                const std::string& kind, std::int64_t chunk) {
  for (const auto& [name, t] : got) {
    Shape shape;
    const std::vector<double> want = gf.F64(name, &shape);
    ExpectClose(t, want, shape, kind + "/" + FormName(chunk) + "/" + name,
                gf.path() + " [" + FormName(chunk) + "] " + name);
  }
}

Tensor NanLike(const Shape& s) { return Tensor::Full(s, NAN); }  // forward must write it all

TEST(RecurrenceOracle, GlaMatchesFla) {
  const std::vector<std::string> files = GoldenFiles("gla_");
  ASSERT_GE(files.size(), kMinGlaFiles) << "missing tests/data/oracles/gla_*.safetensors";
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    Golden gf(path);
    ASSERT_TRUE(gf.ok());
    ASSERT_NE(gf.Meta("source").find("fla.ops.gla"), std::string::npos);
    const float scale = std::stof(gf.Meta("scale"));
    const Tensor r = gf.F32("r"), k = gf.F32("k"), v = gf.F32("v"), g = gf.F32("g");
    const Tensor h0 = gf.F32("h0"), d_o = gf.F32("do"), dhT = gf.F32("dhT");
    ASSERT_TRUE(r.defined() && k.defined() && v.defined() && g.defined() && h0.defined() &&
                d_o.defined() && dhT.defined());
    for (std::int64_t chunk : {std::int64_t{0}, kChunk}) {
      const GlaOptions opt{scale, chunk};
      Tensor o = NanLike(v.shape()), hT = NanLike(h0.shape());
      GlaForward(r, k, v, g, h0, opt, o, &hT);
      Tensor dr = Tensor::Zeros(r.shape()), dk = Tensor::Zeros(k.shape());
      Tensor dv = Tensor::Zeros(v.shape()), dg = Tensor::Zeros(g.shape());
      Tensor dh0 = Tensor::Zeros(h0.shape());
      GlaBackward(r, k, v, g, h0, d_o, dhT, opt, dr, dk, dv, dg, &dh0);
      CompareAll(gf, {{"o", o}, {"hT", hT}, {"dr", dr}, {"dk", dk}, {"dv", dv}, {"dg", dg},
                      {"dh0", dh0}},
                 "gla", chunk);
    }
  }
}

TEST(RecurrenceOracle, DplrMatchesFla) {
  const std::vector<std::string> files = GoldenFiles("dplr_");
  ASSERT_GE(files.size(), kMinDplrFiles) << "missing tests/data/oracles/dplr_*.safetensors";
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    Golden gf(path);
    ASSERT_TRUE(gf.ok());
    ASSERT_NE(gf.Meta("source").find("dplr_recurrence"), std::string::npos);
    const float scale = std::stof(gf.Meta("scale"));
    const Tensor r = gf.F32("r"), g = gf.F32("g"), k = gf.F32("k"), v = gf.F32("v");
    const Tensor a = gf.F32("a"), b = gf.F32("b");
    const Tensor h0 = gf.F32("h0"), d_o = gf.F32("do"), dhT = gf.F32("dhT");
    ASSERT_TRUE(r.defined() && g.defined() && k.defined() && v.defined() && a.defined() &&
                b.defined() && h0.defined() && d_o.defined() && dhT.defined());
    for (std::int64_t chunk : {std::int64_t{0}, kChunk}) {
      DplrOptions opt;
      opt.scale = scale;
      opt.chunk = chunk;
      Tensor o = NanLike(v.shape()), hT = NanLike(h0.shape());
      DplrForward(r, g, k, v, a, b, h0, opt, o, &hT);
      Tensor dr = Tensor::Zeros(r.shape()), dg = Tensor::Zeros(g.shape());
      Tensor dk = Tensor::Zeros(k.shape()), dv = Tensor::Zeros(v.shape());
      Tensor da = Tensor::Zeros(a.shape()), db = Tensor::Zeros(b.shape());
      Tensor dh0 = Tensor::Zeros(h0.shape());
      DplrBackward(r, g, k, v, a, b, h0, d_o, dhT, opt, dr, dg, dk, dv, da, db, &dh0);
      CompareAll(gf, {{"o", o}, {"hT", hT}, {"dr", dr}, {"dg", dg}, {"dk", dk}, {"dv", dv},
                      {"da", da}, {"db", db}, {"dh0", dh0}},
                 "dplr", chunk);
    }
  }
}

// The mixer goldens (tools/gen_mixer_goldens.py, docs/formats/oracles.md) are consumed by the
// mixer tests; here only their container is checked: every file opens, its student_config is a
// config our parser accepts, and the tensors every mixer golden must have are there.
TEST(MixerOracle, FilesAreWellFormed) {
  const std::vector<std::string> files = GoldenFiles("mixer_");
  ASSERT_GE(files.size(), 5u) << "missing tests/data/oracles/mixer_*.safetensors";
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    Golden gf(path);
    ASSERT_TRUE(gf.ok());
    Result<StudentConfig> cfg = ParseStudentConfigJson(gf.Meta("student_config"), path);
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    const int layer = std::stoi(gf.Meta("layer"));
    const std::int64_t C = cfg->base.hidden_size;
    const std::int64_t HN = cfg->base.num_attention_heads * cfg->base.head_dim;
    for (const char* name : {"x", "dy", "y", "dx"}) {
      Shape shape;
      const std::vector<double> t = gf.F64(name, &shape);
      ASSERT_EQ(shape.size(), 3u) << name;
      EXPECT_EQ(shape[2], C) << name;
      EXPECT_EQ(t.size(), static_cast<std::size_t>(ShapeNumel(shape))) << name;
    }
    Shape q;
    gf.F64("p.q_proj.weight", &q);
    EXPECT_EQ(q, (Shape{HN, C}));
    gf.F64("dp.q_proj.weight");
    if (cfg->arch == StudentArch::kRwkv7) {
      if (layer == 0) {
        gf.F64("v_first_out");
      } else {
        gf.F64("v_first");
        gf.F64("dv_first");
      }
    }
  }
}

class OracleReport : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* env = std::getenv("RADLADS_ORACLE_REPORT");
    if (env == nullptr || env[0] == '0') return;
    std::printf("worst errors vs fla: kind/form/tensor  rel-RMS  max|err|/rms(ref)  "
                "max|err|/bound\n");
    for (const auto& [k, v] : Worst()) {
      std::printf("  %-24s %.2e  %.2e  %.3f\n", k.c_str(), v.rel_rms, v.max_over_rms,
                  v.max_ratio);
    }
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new OracleReport);

}  // namespace
}  // namespace radlads
