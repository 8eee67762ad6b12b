#include "configs/run_settings.h"

#include "base/file.h"
#include "configs/config_files.h"

namespace radlads {
namespace {

using config::ConfigNode;
using config::FieldInfo;
using config::IntRange;
using config::Schema;
using config::ValueContext;

FieldInfo Req(std::string doc, std::string source) { return FieldInfo{true, "required", std::move(doc), std::move(source)}; }
FieldInfo Opt(std::string def, std::string doc, std::string source) {
  return FieldInfo{false, std::move(def), std::move(doc), std::move(source)};
}

Status ReadStringList(const ConfigNode& n, const ValueContext& at, std::vector<std::string>* out) {
  std::vector<std::string> items;
  if (n.IsScalar()) {
    std::string s;
    RADLADS_RETURN_IF_ERROR(config::ReadStringValue(n, at, &s));
    items.push_back(s);
  } else if (n.IsSeq()) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      ValueContext item = at;
      item.path += "[" + std::to_string(i) + "]";
      item.line = n.items[i].line;
      std::string s;
      RADLADS_RETURN_IF_ERROR(config::ReadStringValue(n.items[i], item, &s));
      items.push_back(s);
    }
  } else {
    return at.Expected("a path or a list of paths", n);
  }
  if (items.empty()) return at.Error("expected at least one path");
  *out = std::move(items);
  return Status::Ok();
}

Schema<RunSettings> BuildSchema() {
  Schema<RunDataSettings> data;
  data.Custom("train", "path or list of paths", "", Req("Training text files (.txt or .txt.gz, one document each) or one token dataset.", "docs/design.md §1"),
              [](const ConfigNode& n, const ValueContext& at, RunDataSettings* d) { return ReadStringList(n, at, &d->train); });
  data.Custom("heldout", "path or list of paths", "", Req("Held-out text or token dataset: evaluation only, never trained on.", "issue: embedded default"),
              [](const ConfigNode& n, const ValueContext& at, RunDataSettings* d) { return ReadStringList(n, at, &d->heldout); });
  data.Enum<std::string>("tokenizer", &RunDataSettings::tokenizer, {{"teacher", "teacher"}, {"bytes", "bytes"}},
                         Opt("teacher",
                             "Tokenizer for text inputs and evaluation samples: `teacher`, the teacher's tokenizer.json "
                             "(byte tokens when it has none, or when it is the byte vocabulary); `bytes`, Qwen2.5's "
                             "byte tokens (ids 0-255, end-of-text 256).",
                             "docs/conversion.md, docs/tokenizer.md"));

  Schema<RunEvalSettings> eval;
  eval.Int("max_tokens", &RunEvalSettings::max_tokens, IntRange{0, INT64_MAX},
           Opt("0 (all)", "Held-out tokens to evaluate.", "-"));
  eval.Int("seq_len", &RunEvalSettings::seq_len, IntRange{0, 1 << 20},
           Opt("0 (the distill step's)", "Context length of the evaluation windows.", "-"));
  eval.Int("batch", &RunEvalSettings::batch, IntRange{1, 4096}, Opt("8", "Windows per evaluation batch.", "-"));
  eval.String("prompt", &RunEvalSettings::prompt, Opt("\"It is a truth universally acknowledged\"",
                                                     "Prompt of the greedy continuation shown in the summary.", "-"));
  eval.Int("generate_tokens", &RunEvalSettings::generate_tokens, IntRange{0, 100000},
           Opt("160", "Tokens of greedy continuation from teacher and student.", "-"));

  Schema<RunSettings> s;
  s.String("description", &RunSettings::description, Opt("\"\"", "One line describing the run.", "-"));
  s.String("teacher", &RunSettings::teacher, Req("Teacher model directory (Hugging Face layout, model_type qwen2).", "docs/design.md §1"));
  s.String("recipe", &RunSettings::recipe, Req("Conversion recipe: name (configs/recipes/) or path.", "docs/design.md §1"));
  s.String("cluster", &RunSettings::cluster, Opt("local-cpu", "Cluster layout: name (configs/clusters/) or path.", "docs/design.md §1"));
  s.Struct<RunDataSettings>("data", &RunSettings::data, data, Req("Training and held-out data.", "docs/design.md §1"));
  s.Struct<RunEvalSettings>("eval", &RunSettings::eval, eval, Opt("see below", "Evaluation on the held-out data.", "docs/design.md §3 eval"));
  s.Custom("seed", "integer", "≥ 0", Opt("1", "Seed of the new parameters' initialisation (step 0).", "docs/spec.md §3"),
           [](const ConfigNode& n, const ValueContext& at, RunSettings* c) {
             std::int64_t v = 0;
             RADLADS_RETURN_IF_ERROR(config::ReadIntValue(n, at, IntRange{0, INT64_MAX}, &v));
             c->seed = static_cast<std::uint64_t>(v);
             return Status::Ok();
           });
  s.Enum<std::string>("cache_dtype", &RunSettings::cache_dtype, {{"F32", "F32"}, {"BF16", "BF16"}},
                      Opt("F32", "Storage type of the step-1 activation cache.", "docs/formats/activation_cache.md"));
  return s;
}

const Schema<RunSettings>& RunSchema() {
  static const Schema<RunSettings> s = BuildSchema();
  return s;
}

}  // namespace

std::string RunSettings::Resolve(const std::string& path) const {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return JoinPath(base_dir, path);
}

Result<RunSettings> ParseRunSettingsYaml(std::string_view text, std::string_view source) {
  RADLADS_ASSIGN_OR_RETURN(RunSettings c, config::ReadYamlText(text, source, RunSchema()));
  c.name = ConfigStem(source);
  c.base_dir = DirName(std::string(source));
  return c;
}

Result<RunSettings> LoadRunSettings(const std::string& path) {
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseRunSettingsYaml(text, path);
}

std::vector<config::FieldDoc> RunSettingsFieldDocs() { return RunSchema().Docs(); }

}  // namespace radlads
