#include "pipeline/student_model.h"

#include <cstring>

#include "base/file.h"
#include "pipeline/rwkv6_mixer.h"
#include "pipeline/rwkv7_mixer.h"

namespace radlads {

void DeclareStudentMixerParams(const StudentConfig& cfg, int layer, ParamSet& params) {
  if (cfg.arch == StudentArch::kRwkv6) DeclareRwkv6MixerParams(cfg, layer, params);
  else DeclareRwkv7MixerParams(cfg, layer, params);
}

std::vector<ParamSpec> StudentMixerParamSpecs(const StudentConfig& cfg, int layer) {
  ParamSet tmp;
  DeclareStudentMixerParams(cfg, layer, tmp);
  std::vector<ParamSpec> specs;
  for (const Param* p : tmp.params()) specs.push_back({p->name, p->value.shape()});
  return specs;
}

std::vector<ParamSpec> StudentParamSpecs(const StudentConfig& cfg) {
  std::vector<ParamSpec> specs = DecoderParamSpecs(cfg.base);
  for (int l = 0; l < cfg.base.num_hidden_layers; ++l) {
    auto m = StudentMixerParamSpecs(cfg, l);
    specs.insert(specs.end(), m.begin(), m.end());
  }
  return specs;
}

std::unique_ptr<Mixer> MakeStudentMixer(const StudentConfig& cfg, int layer, ParamSet& params,
                                        const StudentMixerOptions& opts) {
  if (cfg.arch == StudentArch::kRwkv6) {
    Rwkv6MixerOptions o;
    o.gla_chunk = opts.rwkv6_chunk;
    return std::make_unique<Rwkv6Mixer>(cfg, layer, params, o);
  }
  Rwkv7MixerOptions o;
  o.dplr_chunk = opts.rwkv7_chunk;
  return std::make_unique<Rwkv7Mixer>(cfg, layer, params, o);
}

StudentModel MakeStudentModel(const StudentConfig& cfg, std::unique_ptr<ParamSet> params,
                              const StudentMixerOptions& opts, const DecoderShard& shard) {
  StudentModel s;
  s.config = cfg;
  s.params = std::move(params);
  ParamSet* ps = s.params.get();
  s.model = std::make_unique<DecoderModel>(cfg.base, *ps, [&cfg, ps, opts](int layer) {
    return MakeStudentMixer(cfg, layer, *ps, opts);
  }, shard);
  return s;
}

Result<StudentModel> LoadStudent(const std::string& dir, const StudentMixerOptions& opts) {
  RADLADS_ASSIGN_OR_RETURN(StudentConfig cfg, LoadStudentConfig(dir));
  RADLADS_ASSIGN_OR_RETURN(ModelWeights weights, ModelWeights::Open(dir));
  auto params = std::make_unique<ParamSet>();
  DeclareParams(StudentParamSpecs(cfg), *params);
  RADLADS_RETURN_IF_ERROR(LoadParams(weights, *params, cfg.base.tie_word_embeddings));
  return MakeStudentModel(cfg, std::move(params), opts);
}

Status SaveStudent(const StudentConfig& cfg, const ParamSet& params, const std::string& dir,
                   DType dtype, std::uint64_t max_shard_bytes) {
  RADLADS_RETURN_IF_ERROR(CreateDirectories(dir));
  StudentConfig c = cfg;
  c.base.torch_dtype = dtype == DType::kBF16 ? "bfloat16" : dtype == DType::kF16 ? "float16" : "float32";
  RADLADS_RETURN_IF_ERROR(SaveParams(params, dir, dtype, max_shard_bytes));
  return AtomicWriteFile(JoinPath(dir, "config.json"), StudentConfigToJson(c));
}

namespace {

void CopyInto(const ParamSet& from, const std::string& from_name, ParamSet& to, const std::string& to_name) {
  const Param& src = from.Get(from_name);
  Param& dst = to.Get(to_name);
  RADLADS_CHECK(src.value.shape() == dst.value.shape())
      << "transfer " << from_name << " -> " << to_name << ": shape " << ShapeToString(src.value.shape())
      << " vs " << ShapeToString(dst.value.shape());
  RADLADS_CHECK(dst.value.dtype() == DType::kF32) << "transfer into " << to_name << ": " << dst.value.DebugString();
  // A frozen teacher's tensor may be a bf16/f16 view of its file: converting is exact.
  RADLADS_CHECK(ConvertToF32(src.value.dtype(), src.value.raw(), dst.value.f32(),
                             static_cast<std::size_t>(src.value.numel())))
      << "transfer " << from_name << ": " << src.value.DebugString();
}

}  // namespace

void TransferLayer(const ParamSet& teacher, const StudentConfig& cfg, int layer, std::uint64_t seed,
                   ParamSet& student) {
  DeclareStudentMixerParams(cfg, layer, student);
  const std::string prefix = LayerPrefix(layer) + "self_attn.";
  const std::vector<std::string> copied =
      cfg.arch == StudentArch::kRwkv6 ? Rwkv6TeacherCopiedNames() : Rwkv7TeacherCopiedNames();
  for (const std::string& suffix : copied) {
    if (student.Find(prefix + suffix) == nullptr) continue;  // e.g. biases when attention_bias off
    CopyInto(teacher, prefix + suffix, student, prefix + suffix);
  }
  // One generator per layer, seeded from (seed, layer): independent of transfer order.
  InitRng rng(seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(layer) + 1);
  if (cfg.arch == StudentArch::kRwkv6) InitRwkv6MixerNewParams(cfg, layer, student, rng);
  else InitRwkv7MixerNewParams(cfg, layer, student, rng);
}

void TransferDecoder(const ParamSet& teacher, const StudentConfig& cfg, ParamSet& student) {
  for (const ParamSpec& spec : DecoderParamSpecs(cfg.base)) {
    if (student.Find(spec.name) == nullptr) student.Add(spec.name, Tensor::Zeros(spec.shape));
    CopyInto(teacher, spec.name, student, spec.name);
  }
}

std::unique_ptr<ParamSet> TransferTeacher(const ParamSet& teacher, const StudentConfig& cfg,
                                          std::uint64_t seed) {
  auto student = std::make_unique<ParamSet>();
  TransferDecoder(teacher, cfg, *student);
  for (int l = 0; l < cfg.base.num_hidden_layers; ++l) TransferLayer(teacher, cfg, l, seed, *student);
  return student;
}

}  // namespace radlads
