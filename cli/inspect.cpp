#include "cli/inspect.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/progress.h"
#include "pipeline/model_io.h"
#include "pipeline/student_model.h"
#include "storage/hf_config.h"
#include "storage/model_weights.h"
#include "storage/student_config.h"
#include "storage/token_dataset.h"

namespace radlads::cli {
namespace {

using Json = nlohmann::ordered_json;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string HumanBytes(std::uint64_t b) {
  char buf[32];
  double v = static_cast<double>(b);
  if (v >= 1e9) std::snprintf(buf, sizeof(buf), "%.2f GB", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof(buf), "%.2f MB", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof(buf), "%.1f kB", v / 1e3);
  else std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

std::string ShapeText(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct TensorRow {
  std::string name, dtype, file;
  std::vector<std::int64_t> shape;
  std::uint64_t bytes;
};

void PrintTensorTable(const std::vector<TensorRow>& rows, bool all, std::FILE* out) {
  std::size_t w = 4;
  for (const auto& r : rows) w = std::max(w, r.name.size());
  w = std::min<std::size_t>(w, 70);
  std::fprintf(out, "  %-*s  %-7s  %-22s  %s\n", static_cast<int>(w), "name", "dtype", "shape", "bytes");
  std::size_t limit = all ? rows.size() : std::min<std::size_t>(rows.size(), 40);
  for (std::size_t i = 0; i < limit; ++i) {
    const TensorRow& r = rows[i];
    std::fprintf(out, "  %-*s  %-7s  %-22s  %s\n", static_cast<int>(w), r.name.c_str(),
                 r.dtype.c_str(), ShapeText(r.shape).c_str(), HumanBytes(r.bytes).c_str());
  }
  if (limit < rows.size()) {
    std::fprintf(out, "  ... %zu more tensors (use --all to list every one)\n", rows.size() - limit);
  }
}

Json TensorRowsJson(const std::vector<TensorRow>& rows) {
  Json a = Json::array();
  for (const auto& r : rows) {
    a.push_back({{"name", r.name}, {"dtype", r.dtype}, {"shape", r.shape}, {"bytes", r.bytes},
                 {"file", r.file}});
  }
  return a;
}

std::vector<TensorRow> RowsOf(const ModelWeights& w) {
  std::vector<TensorRow> rows;
  for (const std::string& name : w.TensorNames()) {
    const ModelTensor* t = w.Find(name);
    rows.push_back({name, std::string(DTypeName(t->info->dtype)), BaseName(t->file->path()),
                    t->info->shape, t->info->num_bytes()});
  }
  return rows;
}

std::uint64_t ParamCount(const std::vector<TensorRow>& rows) {
  std::uint64_t n = 0;
  for (const auto& r : rows) {
    std::uint64_t e = 1;
    for (auto d : r.shape) e *= static_cast<std::uint64_t>(d);
    n += e;
  }
  return n;
}

Status InspectSafetensorsFile(const std::string& path, const InspectOptions& opts, std::FILE* out) {
  RADLADS_ASSIGN_OR_RETURN(ModelWeights w, ModelWeights::Open(path));
  std::vector<TensorRow> rows = RowsOf(w);
  const SafetensorsFile& f = w.file(0);
  if (opts.json) {
    Json j = {{"kind", "safetensors"}, {"path", path}, {"metadata", f.metadata()},
              {"tensor_count", rows.size()}, {"parameters", ParamCount(rows)},
              {"tensor_bytes", w.tensor_bytes()}, {"tensors", TensorRowsJson(rows)}};
    std::fprintf(out, "%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::fprintf(out, "safetensors file: %s\n", path.c_str());
  std::fprintf(out, "header: %llu bytes; data: %s\n",
               static_cast<unsigned long long>(f.header().header_size), HumanBytes(w.tensor_bytes()).c_str());
  for (const auto& [k, v] : f.metadata()) std::fprintf(out, "metadata: %s = %s\n", k.c_str(), v.c_str());
  std::fprintf(out, "tensors: %zu (%s parameters)\n", rows.size(),
               ProgressBar::HumanCount(static_cast<double>(ParamCount(rows))).c_str());
  PrintTensorTable(rows, opts.all_tensors, out);
  return Status::Ok();
}

Status InspectModelDir(const std::string& dir, const InspectOptions& opts, std::FILE* out) {
  RADLADS_ASSIGN_OR_RETURN(std::string model_type, ReadModelType(dir));
  std::string description;
  std::vector<ParamSpec> expected;
  bool tied = false;
  if (model_type == "qwen2") {
    RADLADS_ASSIGN_OR_RETURN(Qwen2Config c, LoadQwen2Config(dir));
    description = DescribeQwen2Config(c);
    expected = Qwen2ParamSpecs(c);
    tied = c.tie_word_embeddings;
  } else if (model_type == "rwkv6qwen2" || model_type == "rwkv7qwen2") {
    RADLADS_ASSIGN_OR_RETURN(StudentConfig c, LoadStudentConfig(dir));
    description = std::string(StudentModelType(c.arch)) + " student (" +
                  std::string(StudentArchName(c.arch)) + "): " + DescribeQwen2Config(c.base);
    expected = StudentParamSpecs(c);
    tied = c.base.tie_word_embeddings;
  } else {
    return Status::InvalidArgument(JoinPath(dir, "config.json") + ": model_type: \"" + model_type +
                                   "\" is not supported; expected \"qwen2\", \"rwkv6qwen2\" or "
                                   "\"rwkv7qwen2\"");
  }
  RADLADS_ASSIGN_OR_RETURN(ModelWeights w, ModelWeights::Open(dir));
  std::vector<TensorRow> rows = RowsOf(w);
  std::vector<std::string> problems;
  for (const Status& p : CheckModelTensors(w, expected, tied)) problems.push_back(p.message());
  if (opts.json) {
    Json j = {{"kind", "model"}, {"path", dir}, {"model_type", model_type},
              {"description", description}, {"sharded", w.sharded()}, {"files", w.num_files()},
              {"tensor_count", rows.size()}, {"parameters", ParamCount(rows)},
              {"tensor_bytes", w.tensor_bytes()}, {"problems", problems},
              {"tensors", TensorRowsJson(rows)}};
    if (w.index_total_size()) j["index_total_size"] = *w.index_total_size();
    std::fprintf(out, "%s\n", j.dump(2).c_str());
  } else {
    std::fprintf(out, "model directory: %s\n", dir.c_str());
    std::fprintf(out, "config: %s\n", description.c_str());
    std::fprintf(out, "weights: %zu file(s)%s, %zu tensors, %s parameters, %s\n", w.num_files(),
                 w.sharded() ? " (sharded, with index)" : "", rows.size(),
                 ProgressBar::HumanCount(static_cast<double>(ParamCount(rows))).c_str(),
                 HumanBytes(w.tensor_bytes()).c_str());
    if (!w.total_size_matches()) {
      std::fprintf(out, "note: the index's total_size (%llu) differs from the tensors' bytes (%llu)\n",
                   static_cast<unsigned long long>(*w.index_total_size()),
                   static_cast<unsigned long long>(w.tensor_bytes()));
    }
    if (problems.empty()) {
      std::fprintf(out, "check: all %zu tensors the config implies are present with the right shapes\n",
                   expected.size());
    } else {
      for (const auto& p : problems) std::fprintf(out, "problem: %s\n", p.c_str());
    }
    PrintTensorTable(rows, opts.all_tensors, out);
  }
  if (!problems.empty()) {
    return Status::InvalidArgument(dir + ": " + std::to_string(problems.size()) +
                                   " tensor(s) do not match the config; first: " + problems[0]);
  }
  return Status::Ok();
}

Status InspectDataset(const std::string& path, const InspectOptions& opts, std::FILE* out) {
  TokenFileFormat fmt = TokenFileFormat::kAuto;
  if (!opts.format.empty()) {
    RADLADS_ASSIGN_OR_RETURN(fmt, ParseTokenFileFormat(opts.format));
  }
  RADLADS_ASSIGN_OR_RETURN(TokenDataset ds, TokenDataset::Open(path, fmt));
  const std::uint64_t n = ds.size();
  std::map<std::int64_t, std::uint64_t> sparse;  // ids beyond the dense table
  std::vector<std::uint64_t> counts(1 << 20, 0);
  std::int64_t min_id = INT64_MAX, max_id = INT64_MIN;
  std::unique_ptr<ProgressBar> bar;
  if (n > 50'000'000 && !opts.json) bar = std::make_unique<ProgressBar>("scan", n, "tok");
  for (std::uint64_t i = 0; i < n; ++i) {
    std::int64_t t = ds.RawTokenAt(i);
    min_id = std::min(min_id, t);
    max_id = std::max(max_id, t);
    if (t >= 0 && t < static_cast<std::int64_t>(counts.size())) ++counts[static_cast<std::size_t>(t)];
    else ++sparse[t];
    if (bar && (i & 0xFFFFFF) == 0) bar->Update(i);
  }
  if (bar) bar->Finish();
  std::vector<std::pair<std::uint64_t, std::int64_t>> freq;
  double entropy = 0;
  for (std::size_t id = 0; id < counts.size(); ++id)
    if (counts[id]) freq.push_back({counts[id], static_cast<std::int64_t>(id)});
  for (auto& [id, c] : sparse) freq.push_back({c, id});
  for (auto& [c, id] : freq) {
    double p = static_cast<double>(c) / static_cast<double>(n);
    entropy -= p * std::log2(p);
  }
  std::sort(freq.rbegin(), freq.rend());
  if (min_id < 0 && n > 0) {
    return Status::Corruption(ds.path() + ": contains negative token ids (min " + std::to_string(min_id) +
                              "); token ids must be non-negative");
  }
  const std::size_t docs = ds.has_document_boundaries() ? ds.document_starts().size() : 0;
  if (opts.json) {
    Json top = Json::array();
    for (std::size_t i = 0; i < std::min<std::size_t>(10, freq.size()); ++i)
      top.push_back({{"id", freq[i].second}, {"count", freq[i].first}});
    Json j = {{"kind", "dataset"}, {"path", ds.path()}, {"format", TokenFileFormatName(ds.format())},
              {"dtype", DTypeName(ds.dtype())}, {"tokens", n}, {"documents", docs},
              {"min_id", n ? min_id : 0}, {"max_id", n ? max_id : 0}, {"distinct_ids", freq.size()},
              {"unigram_entropy_bits", entropy}, {"top", top}};
    std::fprintf(out, "%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::fprintf(out, "dataset: %s\n", ds.path().c_str());
  std::fprintf(out, "format: %s, stored as %s\n", std::string(TokenFileFormatName(ds.format())).c_str(),
               std::string(DTypeName(ds.dtype())).c_str());
  std::fprintf(out, "tokens: %llu", static_cast<unsigned long long>(n));
  if (docs) std::fprintf(out, " in %zu documents (mean %.1f tokens)", docs, static_cast<double>(n) / docs);
  std::fprintf(out, "\n");
  if (n == 0) return Status::Ok();
  std::fprintf(out, "ids: min %lld, max %lld, %zu distinct (a vocabulary of at least %lld)\n",
               static_cast<long long>(min_id), static_cast<long long>(max_id), freq.size(),
               static_cast<long long>(max_id + 1));
  std::fprintf(out, "unigram entropy: %.3f bits/token\n", entropy);
  std::fprintf(out, "most frequent:");
  for (std::size_t i = 0; i < std::min<std::size_t>(8, freq.size()); ++i) {
    std::fprintf(out, " %lld (%.2f%%)", static_cast<long long>(freq[i].second),
                 100.0 * static_cast<double>(freq[i].first) / static_cast<double>(n));
  }
  std::fprintf(out, "\n");
  return Status::Ok();
}

}  // namespace

Status Inspect(const std::string& path, const InspectOptions& opts, std::FILE* out) {
  if (IsDirectory(path)) {
    if (PathExists(JoinPath(path, "config.json"))) return InspectModelDir(path, opts, out);
    if (PathExists(JoinPath(path, "model.safetensors")) ||
        PathExists(JoinPath(path, "model.safetensors.index.json"))) {
      return Status::InvalidArgument(path + ": has weights but no config.json; inspect the "
                                            ".safetensors file directly, or add the config");
    }
    return Status::InvalidArgument(path + ": not a model directory (no config.json)");
  }
  if (EndsWith(path, ".safetensors") || EndsWith(path, ".safetensors.index.json")) {
    if (!PathExists(path)) return Status::NotFound(path + ": no such file");
    return InspectSafetensorsFile(path, opts, out);
  }
  if (PathExists(path) || PathExists(path + ".idx")) return InspectDataset(path, opts, out);
  return Status::NotFound(path + ": no such file, directory or dataset prefix (looked for " + path +
                          " and " + path + ".idx)");
}

}  // namespace radlads::cli
