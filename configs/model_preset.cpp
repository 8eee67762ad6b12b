#include "configs/model_preset.h"

#include <filesystem>

#include "base/file.h"
#include "configs/config_files.h"
#include "configs/named_config.h"

namespace radlads {
namespace {

using config::ConfigNode;
using config::FieldDoc;
using config::FieldInfo;
using config::IntRange;
using config::MapView;
using config::RealRange;
using config::Schema;
using config::ValueContext;

constexpr IntRange kPositive{1};
constexpr IntRange kTokenId{0};
constexpr RealRange kPositiveReal{0.0, std::numeric_limits<double>::infinity(), true};

FieldInfo Req(std::string doc, std::string source) {
  return FieldInfo{true, "", std::move(doc), std::move(source)};
}
FieldInfo Opt(std::string def, std::string doc, std::string source) {
  return FieldInfo{false, std::move(def), std::move(doc), std::move(source)};
}

Status ReadEosIds(const ConfigNode& n, const ValueContext& at, ModelPreset* p) {
  std::vector<std::int64_t> ids;
  if (n.IsSeq()) {
    if (n.items.empty()) return at.Expected("a token id or a non-empty list of token ids", n);
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      ValueContext item{at.source, at.path + "[" + std::to_string(i) + "]", n.items[i].line};
      std::int64_t id = 0;
      RADLADS_RETURN_IF_ERROR(config::ReadIntValue(n.items[i], item, kTokenId, &id));
      ids.push_back(id);
    }
  } else {
    std::int64_t id = 0;
    RADLADS_RETURN_IF_ERROR(config::ReadIntValue(n, at, kTokenId, &id));
    ids.push_back(id);
  }
  p->config.eos_token_ids = std::move(ids);
  return Status::Ok();
}

// Relations between shapes, reported at the line of the key that breaks them; the final
// ValidateQwen2Config call is the same gate a checkpoint's config.json goes through.
Status CheckPreset(ModelPreset* p, const MapView& m) {
  Qwen2Config& c = p->config;
  if (!m.Has("head_dim")) c.head_dim = c.hidden_size / c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return m.Error("num_key_value_heads", std::to_string(c.num_key_value_heads) +
                                              " does not divide num_attention_heads (" +
                                              std::to_string(c.num_attention_heads) + ")");
  }
  if (!m.Has("head_dim") && c.head_dim * c.num_attention_heads != c.hidden_size) {
    return m.Error("num_attention_heads",
                   std::to_string(c.num_attention_heads) + " does not divide hidden_size (" +
                       std::to_string(c.hidden_size) + "); give head_dim explicitly");
  }
  if (c.head_dim % 2 != 0) {
    return m.Error(m.Has("head_dim") ? "head_dim" : "num_attention_heads",
                   "head_dim " + std::to_string(c.head_dim) + " must be even (rotate-half RoPE)");
  }
  if (c.bos_token_id >= c.vocab_size) {
    return m.Error("bos_token_id", std::to_string(c.bos_token_id) +
                                       " is outside the vocabulary (vocab_size " +
                                       std::to_string(c.vocab_size) + ")");
  }
  for (std::int64_t e : c.eos_token_ids) {
    if (e >= c.vocab_size) {
      return m.Error("eos_token_id", std::to_string(e) + " is outside the vocabulary (vocab_size " +
                                         std::to_string(c.vocab_size) + ")");
    }
  }
  if (p->base_rms_norm_eps == 0.0) p->base_rms_norm_eps = c.rms_norm_eps;
  return ValidateQwen2Config(c, m.source());
}

Schema<ModelPreset> BuildPresetSchema() {
  Schema<ModelPreset> schema;
  Schema<ModelPreset>* s = &schema;
  auto cfg = [](auto member) {
    return [member](ModelPreset& p) -> decltype(auto) { return (p.config.*member); };
  };
  s->String("description", &ModelPreset::description,
            Opt("\"\"", "One line describing the model, shown by `plan`.", "-"));
  s->String("hf_repo", &ModelPreset::hf_repo,
            Opt("\"\"",
                "Hugging Face repository whose config.json this preset mirrors "
                "(informational).",
                "-"));
  s->String("tokenizer", &ModelPreset::tokenizer,
            Opt("none",
                "Directory with the model's tokenizer files (tokenizer.json[.gz], "
                "tokenizer_config.json), relative to the preset file; `radlads-model init` copies them.",
                "docs/tokenizer.md"));
  s->Int("num_hidden_layers", cfg(&Qwen2Config::num_hidden_layers), kPositive,
         Req("Decoder layers L.", "docs/spec.md §3.0"));
  s->Int("hidden_size", cfg(&Qwen2Config::hidden_size), kPositive,
         Req("Model width D.", "docs/spec.md §3.0"));
  s->Int("num_attention_heads", cfg(&Qwen2Config::num_attention_heads), kPositive,
         Req("Query heads H (student heads).", "docs/spec.md §3.0"));
  s->Int("num_key_value_heads", cfg(&Qwen2Config::num_key_value_heads), kPositive,
         Req("KV heads (GQA); must divide num_attention_heads.", "docs/spec.md §3.0, §2.0"));
  s->Int("head_dim", cfg(&Qwen2Config::head_dim), kPositive,
         Opt("hidden_size / num_attention_heads",
             "Head size N (128 for Qwen2.5); even, for rotate-half RoPE.", "docs/spec.md §3.0, §3.2"));
  s->Int("intermediate_size", cfg(&Qwen2Config::intermediate_size), kPositive,
         Req("SwiGLU inner width.", "docs/spec.md §3.0"));
  s->Int("vocab_size", cfg(&Qwen2Config::vocab_size), kPositive,
         Req("Embedding / LM-head rows (152064 for Qwen2.5 7B+).", "docs/spec.md §3.0"));
  s->Real("rms_norm_eps", cfg(&Qwen2Config::rms_norm_eps), kPositiveReal,
          Req("RMSNorm eps; must match the teacher (1e-6 Instruct).", "docs/spec.md §3.0, §6.3"));
  s->Real("base_rms_norm_eps", &ModelPreset::base_rms_norm_eps, kPositiveReal,
          Opt("rms_norm_eps",
              "RMSNorm eps of the base (non-instruct) checkpoint, for "
              "reference (1e-5 at 14B/32B/72B).",
              "docs/spec.md §3.0, §6.3"));
  s->Real("rope_theta", cfg(&Qwen2Config::rope_theta), kPositiveReal,
          Req("RoPE base θ (1e6 for Qwen2.5).", "docs/spec.md §3.0"));
  s->Bool("tie_word_embeddings", cfg(&Qwen2Config::tie_word_embeddings),
          Req("Tied embedding / LM head. RADLADS distils untied models only.", "docs/spec.md §2.0, §6.10"));
  s->Int("max_position_embeddings", cfg(&Qwen2Config::max_position_embeddings), kPositive,
         Req("Longest context the teacher was trained for.", "config.json"));
  s->Int("bos_token_id", cfg(&Qwen2Config::bos_token_id), kTokenId,
         Opt("none", "Beginning-of-text id (151643 for Qwen2.5).", "docs/spec.md §3.0"));
  s->Custom("eos_token_id", "integer or list of integers", "≥ 0",
            Opt("none", "End-of-text id(s): 151645 Instruct, 151643 base.", "config.json"),
            ReadEosIds);
  s->Enum<std::string>("torch_dtype", cfg(&Qwen2Config::torch_dtype),
                       {{"bfloat16", "bfloat16"}, {"float16", "float16"}, {"float32", "float32"}},
                       Opt("float32", "Storage dtype of the checkpoint.", "config.json"));
  s->Int("sliding_window", cfg(&Qwen2Config::sliding_window), kPositive,
         Opt("4096",
             "Inert (sliding-window attention is off); kept so a preset equals its "
             "config.json field by field.",
             "config.json"));
  s->Int("max_window_layers", cfg(&Qwen2Config::max_window_layers), IntRange{0},
         Opt("28", "Inert, as sliding_window.", "config.json"));
  s->Check(CheckPreset);
  return schema;
}

const Schema<ModelPreset>& PresetSchema() {
  static const Schema<ModelPreset> schema = BuildPresetSchema();
  return schema;
}

}  // namespace

namespace {

// Resolves `tokenizer` against the directory of `source` and checks that it holds a tokenizer.
Status ResolveTokenizerDir(ModelPreset& p, std::string_view source) {
  if (p.tokenizer.empty()) return Status::Ok();
  const std::filesystem::path rel(p.tokenizer);
  const std::filesystem::path base = std::filesystem::path(std::string(source)).parent_path();
  p.tokenizer_dir = (rel.is_absolute() ? rel : base / rel).lexically_normal().string();
  if (!PathExists(JoinPath(p.tokenizer_dir, "tokenizer.json")) &&
      !PathExists(JoinPath(p.tokenizer_dir, "tokenizer.json.gz"))) {
    return Status::InvalidArgument(std::string(source) + ": tokenizer: " + p.tokenizer_dir +
                                   " holds no tokenizer.json or tokenizer.json.gz (expected a directory "
                                   "of tokenizer files, relative to the preset file)");
  }
  return Status::Ok();
}

}  // namespace

Result<ModelPreset> ParseModelPresetYaml(std::string_view text, std::string_view source) {
  RADLADS_ASSIGN_OR_RETURN(ModelPreset p, ParseNamedConfig(text, source, PresetSchema()));
  RADLADS_RETURN_IF_ERROR(ResolveTokenizerDir(p, source));
  return p;
}

Result<ModelPreset> LoadModelPreset(std::string_view name_or_path) {
  RADLADS_ASSIGN_OR_RETURN(std::string path, ResolveConfigPath(ConfigKind::kModel, name_or_path));
  RADLADS_ASSIGN_OR_RETURN(ModelPreset p, LoadNamedConfig(ConfigKind::kModel, path, PresetSchema()));
  RADLADS_RETURN_IF_ERROR(ResolveTokenizerDir(p, path));
  return p;
}

std::vector<config::FieldDoc> ModelPresetFieldDocs() { return PresetSchema().Docs(); }

}  // namespace radlads
