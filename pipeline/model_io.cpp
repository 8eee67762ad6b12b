#include "pipeline/model_io.h"

#include <cstring>
#include <set>

#include "base/file.h"
#include "base/profile.h"
#include "pipeline/attention_mixer.h"
#include "pipeline/frozen_weights.h"

namespace radlads {

std::vector<ParamSpec> DecoderParamSpecs(const Qwen2Config& cfg) {
  const std::int64_t C = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size;
  std::vector<ParamSpec> s;
  s.push_back({"model.embed_tokens.weight", {V, C}});
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = LayerPrefix(l);
    s.push_back({p + "input_layernorm.weight", {C}});
    s.push_back({p + "post_attention_layernorm.weight", {C}});
    s.push_back({p + "mlp.gate_proj.weight", {F, C}});
    s.push_back({p + "mlp.up_proj.weight", {F, C}});
    s.push_back({p + "mlp.down_proj.weight", {C, F}});
  }
  s.push_back({"model.norm.weight", {C}});
  if (!cfg.tie_word_embeddings) s.push_back({"lm_head.weight", {V, C}});
  return s;
}

std::vector<ParamSpec> Qwen2AttentionParamSpecs(const Qwen2Config& cfg, int layer) {
  const std::int64_t C = cfg.hidden_size, qd = cfg.q_dim(), kvd = cfg.kv_dim();
  const std::string p = LayerPrefix(layer) + "self_attn.";
  return {{p + "q_proj.weight", {qd, C}},  {p + "q_proj.bias", {qd}},
          {p + "k_proj.weight", {kvd, C}}, {p + "k_proj.bias", {kvd}},
          {p + "v_proj.weight", {kvd, C}}, {p + "v_proj.bias", {kvd}},
          {p + "o_proj.weight", {C, qd}}};
}

std::vector<ParamSpec> Qwen2ParamSpecs(const Qwen2Config& cfg) {
  std::vector<ParamSpec> s = DecoderParamSpecs(cfg);
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto a = Qwen2AttentionParamSpecs(cfg, l);
    s.insert(s.end(), a.begin(), a.end());
  }
  return s;
}

void DeclareParams(const std::vector<ParamSpec>& specs, ParamSet& params) {
  for (const ParamSpec& s : specs) params.Add(s.name, Tensor::Zeros(s.shape));
}

bool IsIgnorableExtraTensor(std::string_view name, bool tied_embeddings) {
  if (tied_embeddings && name == "lm_head.weight") return true;
  constexpr std::string_view kInvFreq = ".rotary_emb.inv_freq";
  return name.size() >= kInvFreq.size() &&
         name.substr(name.size() - kInvFreq.size()) == kInvFreq;
}

std::vector<Status> CheckModelTensors(const ModelWeights& weights, const std::vector<ParamSpec>& expected,
                                      bool tied_embeddings) {
  std::vector<Status> problems;
  std::set<std::string, std::less<>> names;
  for (const ParamSpec& spec : expected) {
    names.insert(spec.name);
    const ModelTensor* t = weights.Find(spec.name);
    if (t == nullptr) {
      problems.push_back(Status::NotFound(weights.path() + ": tensor '" + spec.name +
                                          "' is missing (expected shape " + ShapeToString(spec.shape) + ")"));
      continue;
    }
    Shape found(t->info->shape.begin(), t->info->shape.end());
    if (found != spec.shape) {
      problems.push_back(Status::InvalidArgument(
          t->file->path() + ": tensor '" + spec.name + "' has shape " + ShapeToString(found) +
          ", expected " + ShapeToString(spec.shape) + " from the config"));
    } else if (!IsFloatingPoint(t->info->dtype) || t->info->dtype == DType::kF8E4M3 ||
               t->info->dtype == DType::kF8E5M2) {
      problems.push_back(Status::InvalidArgument(
          t->file->path() + ": tensor '" + spec.name + "' has dtype " +
          std::string(DTypeName(t->info->dtype)) + ", expected F32, BF16, F16 or F64"));
    }
  }
  for (const std::string& name : weights.TensorNames()) {
    if (!names.count(name) && !IsIgnorableExtraTensor(name, tied_embeddings)) {
      problems.push_back(Status::InvalidArgument(
          weights.path() + ": tensor '" + name + "' is not part of this model (wrong config or wrong model?)"));
    }
  }
  return problems;
}

Status LoadParams(const ModelWeights& weights, ParamSet& params, bool tied_embeddings) {
  std::vector<ParamSpec> specs;
  for (const Param* p : params.params()) specs.push_back({p->name, p->value.shape()});
  std::vector<Status> problems = CheckModelTensors(weights, specs, tied_embeddings);
  if (!problems.empty()) return problems.front();
  for (Param* p : params.params()) {
    const ModelTensor* t = weights.Find(p->name);
    RADLADS_CHECK(ConvertToF32(t->info->dtype, t->data.data(), p->value.f32(),
                               static_cast<std::size_t>(p->value.numel())))
        << p->name;
  }
  return Status::Ok();
}

Status SaveParams(const ParamSet& params, const std::string& dir, DType dtype,
                  std::uint64_t max_shard_bytes,
                  const std::function<bool(const std::string&)>& filter) {
  const profile::Scope profile_scope(profile::Family::kIo);
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16) {
    return Status::InvalidArgument("SaveParams: dtype must be F32, BF16 or F16");
  }
  std::vector<Tensor> converted;  // keeps converted copies alive during the write
  std::vector<SafetensorsWriteTensor> tensors;
  for (const Param* p : params.params()) {
    if (filter && !filter(p->name)) continue;
    Tensor t = dtype == DType::kF32 ? p->value : p->value.ToDType(dtype);
    converted.push_back(t);
    SafetensorsWriteTensor w;
    w.name = p->name;
    w.dtype = dtype;
    w.shape = std::vector<std::int64_t>(t.shape().begin(), t.shape().end());
    w.data = std::span<const std::byte>(static_cast<const std::byte*>(t.raw()), t.nbytes());
    tensors.push_back(std::move(w));
  }
  RADLADS_RETURN_IF_ERROR(CreateDirectories(dir));
  auto r = WriteModelWeights(dir, tensors, max_shard_bytes);
  return r.ok() ? Status::Ok() : r.status();
}

Qwen2Teacher MakeQwen2Teacher(const Qwen2Config& cfg, std::unique_ptr<ParamSet> params, const DecoderShard& shard) {
  Qwen2Teacher t;
  t.config = cfg;
  t.params = std::move(params);
  ParamSet* ps = t.params.get();
  t.model = std::make_unique<DecoderModel>(cfg, *ps, [&cfg, ps](int layer) {
    return std::make_unique<AttentionMixer>(cfg, *ps, LayerPrefix(layer) + "self_attn.");
  }, shard);
  return t;
}

Result<Qwen2Teacher> LoadQwen2Teacher(const std::string& dir) {
  const profile::Scope profile_scope(profile::Family::kIo);
  RADLADS_ASSIGN_OR_RETURN(Qwen2Config cfg, LoadQwen2Config(dir));
  RADLADS_ASSIGN_OR_RETURN(ModelWeights opened, ModelWeights::Open(dir));
  auto weights = std::make_shared<const ModelWeights>(std::move(opened));
  auto params = std::make_unique<ParamSet>();
  RADLADS_RETURN_IF_ERROR(BindFrozenParams(*weights, Qwen2ParamSpecs(cfg), cfg.tie_word_embeddings, *params).status());
  Qwen2Teacher t = MakeQwen2Teacher(cfg, std::move(params));
  t.weights = std::move(weights);
  return t;
}

Result<Qwen2Teacher> LoadQwen2TeacherF32(const std::string& dir) {
  const profile::Scope profile_scope(profile::Family::kIo);
  RADLADS_ASSIGN_OR_RETURN(Qwen2Config cfg, LoadQwen2Config(dir));
  RADLADS_ASSIGN_OR_RETURN(ModelWeights weights, ModelWeights::Open(dir));
  auto params = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(cfg), *params);
  RADLADS_RETURN_IF_ERROR(LoadParams(weights, *params, cfg.tie_word_embeddings));
  return MakeQwen2Teacher(cfg, std::move(params));
}

}  // namespace radlads
