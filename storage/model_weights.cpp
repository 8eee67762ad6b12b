#include "storage/model_weights.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "base/file.h"
#include "storage/safetensors_format.h"

namespace radlads {
namespace {

constexpr std::string_view kIndexMetadataKey = "metadata";
constexpr std::string_view kIndexTotalSizeKey = "total_size";
constexpr std::string_view kIndexWeightMapKey = "weight_map";

std::string Q(std::string_view s) { return QuoteTensorName(s); }

// Empty when `name` is a plain file name, else why it is not.
std::string ShardNameProblem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.find('/') != std::string_view::npos) return "contains '/'";
  if (name.find('\\') != std::string_view::npos) return "contains '\\'";
  if (name.find("..") != std::string_view::npos) return "contains '..'";
  if (name.find('\0') != std::string_view::npos) return "contains a NUL byte";
  return "";
}

// SAX handler for the index: no DOM, duplicate keys detected, unknown keys skipped.
class IndexSax {
 public:
  using json = nlohmann::json;

  IndexSax(std::string_view source, ModelIndex* out) : source_(source), out_(out) {}
  const Status& status() const { return status_; }
  bool saw_weight_map() const { return saw_weight_map_; }

  bool null() { return Scalar("null"); }
  bool boolean(bool v) { return Scalar(v ? "true" : "false"); }
  bool number_integer(json::number_integer_t v) {
    if (v >= 0) return number_unsigned(static_cast<json::number_unsigned_t>(v));
    return Scalar(std::to_string(v));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (skip_ == 0 && state_ == State::kMeta && key_ == kIndexTotalSizeKey) {
      out_->total_size = v;
      return true;
    }
    return Scalar(std::to_string(v));
  }
  bool number_float(json::number_float_t v, const json::string_t& text) {
    // Some writers emit total_size as a float ("1234.0"); accept it when it is integral.
    if (skip_ == 0 && state_ == State::kMeta && key_ == kIndexTotalSizeKey && std::isfinite(v) &&
        v >= 0 && v < 18446744073709551616.0 && std::floor(v) == v) {
      out_->total_size = static_cast<std::uint64_t>(v);
      return true;
    }
    return Scalar(text);
  }
  bool string(json::string_t& v) {
    if (skip_ == 0 && state_ == State::kMap) {
      if (std::string why = ShardNameProblem(v); !why.empty()) {
        return Fail(Corrupt("weight_map: tensor " + Q(key_) + ": shard name " + Q(v) + " " + why +
                            ", expected a plain file name in the index's directory"));
      }
      out_->weight_map.emplace(key_, std::move(v));
      return true;
    }
    return Scalar("a string");
  }
  bool binary(json::binary_t& /*v*/) { return Scalar("binary data"); }

  bool start_object(std::size_t /*n*/) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (state_) {
      case State::kStart:
        state_ = State::kTop;
        return true;
      case State::kTop:
        if (key_ == kIndexMetadataKey) {
          state_ = State::kMeta;
          return true;
        }
        if (key_ == kIndexWeightMapKey) {
          saw_weight_map_ = true;
          state_ = State::kMap;
          return true;
        }
        skip_ = 1;
        return true;
      case State::kMeta:
        if (key_ == kIndexTotalSizeKey) return WrongType("an object");
        skip_ = 1;
        return true;
      default:
        return WrongType("an object");
    }
  }
  bool start_array(std::size_t /*n*/) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if ((state_ == State::kTop && !IsKnownTopKey()) ||
        (state_ == State::kMeta && key_ != kIndexTotalSizeKey)) {
      skip_ = 1;
      return true;
    }
    return WrongType("a list");
  }
  bool end_array() {
    if (skip_ > 0) --skip_;
    return true;
  }
  bool end_object() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    state_ = state_ == State::kTop ? State::kDone : State::kTop;
    return true;
  }
  bool key(json::string_t& k) {
    if (skip_ > 0) return true;
    bool duplicate = false;
    std::string where;
    if (state_ == State::kMap) {
      duplicate = out_->weight_map.count(k) != 0;
      where = "weight_map: tensor ";
    } else if (state_ == State::kMeta) {
      duplicate = !meta_keys_.insert(k).second;
      where = "metadata: key ";
    } else {
      duplicate = !top_keys_.insert(k).second;
      where = "key ";
    }
    if (duplicate) return Fail(Corrupt(where + Q(k) + " appears twice, expected unique keys"));
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t /*pos*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    return Fail(Corrupt(std::string("not valid JSON: ") + ex.what()));
  }

 private:
  enum class State { kStart, kTop, kMeta, kMap, kDone };

  bool IsKnownTopKey() const { return key_ == kIndexMetadataKey || key_ == kIndexWeightMapKey; }
  Status Corrupt(const std::string& msg) const {
    return Status::Corruption(std::string(source_) + ": " + msg);
  }
  bool Fail(Status s) {
    status_ = std::move(s);
    return false;
  }
  // A scalar value: ignored where unknown keys are skipped, else a type error.
  bool Scalar(const std::string& got) {
    if (skip_ > 0) return true;
    if (state_ == State::kTop && !IsKnownTopKey()) return true;
    if (state_ == State::kMeta && key_ != kIndexTotalSizeKey) return true;
    return WrongType(got);
  }
  bool WrongType(const std::string& got) {
    switch (state_) {
      case State::kStart:
        return Fail(Corrupt("expected a JSON object at the top level, got " + got));
      case State::kTop:
        return Fail(Corrupt(key_ + ": expected an object, got " + got));
      case State::kMeta:
        return Fail(Corrupt("metadata.total_size: expected a non-negative integer, got " + got));
      case State::kMap:
        return Fail(Corrupt("weight_map: tensor " + Q(key_) +
                            ": expected a shard file name (a string), got " + got));
      case State::kDone:
        break;
    }
    return Fail(Corrupt("unexpected " + got + " after the top-level object"));
  }

  std::string_view source_;
  ModelIndex* out_;
  Status status_;
  State state_ = State::kStart;
  int skip_ = 0;                     // > 0 while skipping the value of an unknown key
  std::string key_;                  // last key at the current (non-skipped) level
  std::set<std::string> top_keys_;   // keys seen at the top level
  std::set<std::string> meta_keys_;  // keys seen in "metadata"
  bool saw_weight_map_ = false;
};

// JSON string as Python's json.dumps writes it (ensure_ascii): control characters, '"', '\'
// and every non-ASCII code point escaped; input must be valid UTF-8.
void AppendPythonJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto u16 = [&](unsigned v) {
    *out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out->push_back(kHex[(v >> shift) & 15]);
  };
  out->push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          *out += "\\\"";
          break;
        case '\\':
          *out += "\\\\";
          break;
        case '\b':
          *out += "\\b";
          break;
        case '\t':
          *out += "\\t";
          break;
        case '\n':
          *out += "\\n";
          break;
        case '\f':
          *out += "\\f";
          break;
        case '\r':
          *out += "\\r";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            u16(c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    unsigned cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (int k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u16(0xD800 + (cp >> 10));
      u16(0xDC00 + (cp & 0x3FF));
    } else {
      u16(cp);
    }
    i += static_cast<std::size_t>(len);
  }
  out->push_back('"');
}

// The index exactly as transformers writes it: json.dumps(index, indent=2, sort_keys=True)
// followed by a newline.
std::string BuildIndexJson(std::uint64_t total_size,
                           const std::map<std::string, std::string>& weight_map) {
  std::string out = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total_size) +
                    "\n  },\n  \"weight_map\": {";
  bool first = true;
  for (const auto& [name, shard] : weight_map) {
    out += first ? "\n    " : ",\n    ";
    first = false;
    AppendPythonJsonString(&out, name);
    out += ": ";
    AppendPythonJsonString(&out, shard);
  }
  out += first ? "}\n}\n" : "\n  }\n}\n";
  return out;
}

bool IsModelShardName(std::string_view name) {
  // model-DDDDD-of-DDDDD.safetensors
  constexpr std::string_view kPrefix = "model-";
  constexpr std::string_view kMid = "-of-";
  constexpr std::string_view kSuffix = ".safetensors";
  constexpr std::size_t kDigits = kModelShardNumberDigits;
  if (name.size() != kPrefix.size() + kDigits + kMid.size() + kDigits + kSuffix.size()) {
    return false;
  }
  auto digits = [](std::string_view d) {
    for (char c : d) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  std::size_t p = 0;
  if (name.substr(p, kPrefix.size()) != kPrefix) return false;
  p += kPrefix.size();
  if (!digits(name.substr(p, kDigits))) return false;
  p += kDigits;
  if (name.substr(p, kMid.size()) != kMid) return false;
  p += kMid.size();
  if (!digits(name.substr(p, kDigits))) return false;
  p += kDigits;
  return name.substr(p) == kSuffix;
}

Status RemoveIfExists(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::IOError(path + ": remove failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

// Removes model-*-of-*.safetensors files in `dir` that are not in `keep`.
Status RemoveStaleShards(const std::string& dir, const std::set<std::string>& keep) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return Status::IOError(dir + ": open directory failed: " + std::strerror(errno));
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (IsModelShardName(name) && keep.count(name) == 0) stale.push_back(std::move(name));
  }
  ::closedir(d);
  for (const std::string& name : stale)
    RADLADS_RETURN_IF_ERROR(RemoveIfExists(JoinPath(dir, name)));
  return Status::Ok();
}

std::vector<std::vector<std::size_t>> PlanShardsBySize(std::span<const std::uint64_t> sizes,
                                                       std::uint64_t max_shard_bytes) {
  std::vector<std::vector<std::size_t>> shards;
  std::vector<std::size_t> current;
  std::uint64_t current_bytes = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::uint64_t size = sizes[i];
    if (size > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + size > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += size;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  return shards;
}

// The files of a model whose tensors (with these byte sizes) were validated: one
// model.safetensors when everything fits in max_shard_bytes, else the shards and the index,
// last; then the other layout's files and stale shards are removed. `write_file(path, indices)`
// writes one safetensors file atomically with the tensors `indices`.
Result<ModelWeightsWriteResult> WritePlannedModel(
    const std::string& dir, std::span<const SafetensorsWriteTensor> tensors,
    std::span<const std::uint64_t> sizes, std::uint64_t max_shard_bytes,
    const std::function<Status(const std::string&, const std::vector<std::size_t>&)>& write_file) {
  const std::vector<std::vector<std::size_t>> plan = PlanShardsBySize(sizes, max_shard_bytes);
  if (plan.size() > kModelMaxShards) {
    return Status::InvalidArgument(dir + ": " + std::to_string(plan.size()) +
                                   " shards needed, above the limit of " +
                                   std::to_string(kModelMaxShards) + "; raise max_shard_bytes");
  }
  RADLADS_RETURN_IF_ERROR(CreateDirectories(dir));

  ModelWeightsWriteResult result;
  for (std::uint64_t size : sizes) result.total_size += size;
  const std::string single_path = JoinPath(dir, kModelSafetensorsFile);
  const std::string index_path = JoinPath(dir, kModelSafetensorsIndexFile);

  if (plan.size() == 1) {
    RADLADS_RETURN_IF_ERROR(write_file(single_path, plan[0]));
    result.files.emplace_back(kModelSafetensorsFile);
    RADLADS_RETURN_IF_ERROR(RemoveIfExists(index_path));
    RADLADS_RETURN_IF_ERROR(RemoveStaleShards(dir, {}));
    RADLADS_RETURN_IF_ERROR(FsyncDirectory(dir));
    return result;
  }

  result.sharded = true;
  std::map<std::string, std::string> weight_map;
  for (std::size_t k = 0; k < plan.size(); ++k) {
    const std::string name = ModelShardFileName(k + 1, plan.size());
    for (std::size_t i : plan[k]) weight_map.emplace(tensors[i].name, name);
    RADLADS_RETURN_IF_ERROR(write_file(JoinPath(dir, name), plan[k]));
    result.files.push_back(name);
  }
  // The index goes last, so a reader never sees an index naming shards not yet written.
  RADLADS_RETURN_IF_ERROR(
      AtomicWriteFile(index_path, BuildIndexJson(result.total_size, weight_map)));
  RADLADS_RETURN_IF_ERROR(RemoveIfExists(single_path));
  RADLADS_RETURN_IF_ERROR(
      RemoveStaleShards(dir, std::set<std::string>(result.files.begin(), result.files.end())));
  RADLADS_RETURN_IF_ERROR(FsyncDirectory(dir));
  return result;
}

}  // namespace

Result<ModelIndex> ParseModelIndex(std::string_view text, std::string_view source) {
  ModelIndex index;
  IndexSax sax(source, &index);
  const std::string prefix = std::string(source) + ": ";
  // nlohmann's lexer takes a raw NUL for the end of input; JSON never contains one.
  if (std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return Status::Corruption(prefix + "not valid JSON: NUL byte at byte " + std::to_string(nul));
  }
  try {
    if (!nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &sax,
                                   nlohmann::json::input_format_t::json, /*strict=*/true,
                                   /*ignore_comments=*/false)) {
      if (!sax.status().ok()) return sax.status();
      return Status::Corruption(prefix + "not valid JSON");
    }
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted(prefix + "out of memory while parsing the index");
  } catch (const std::exception& e) {
    return Status::Corruption(prefix + "not valid JSON: " + e.what());
  }
  if (!sax.saw_weight_map()) {
    return Status::Corruption(prefix + "missing 'weight_map', expected an object mapping " +
                              "tensor names to shard files");
  }
  return index;
}

std::vector<std::string> ModelWeights::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) names.push_back(name);
  return names;
}

const ModelTensor* ModelWeights::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Result<ModelTensor> ModelWeights::Get(std::string_view name) const {
  const ModelTensor* t = Find(name);
  if (t == nullptr) return Status::NotFound(path_ + ": no tensor " + Q(name));
  return *t;
}

Result<std::vector<float>> ModelWeights::ReadAsF32(std::string_view name) const {
  RADLADS_ASSIGN_OR_RETURN(ModelTensor t, Get(name));
  return TensorBytesToF32(*t.info, t.data, t.file->path());
}

Status ModelWeights::AddFile(std::unique_ptr<SafetensorsFile> file) {
  const SafetensorsFile* f = file.get();
  files_.push_back(std::move(file));
  for (const SafetensorsTensorInfo& info : f->tensors()) {
    auto [it, inserted] = tensors_.emplace(info.name, ModelTensor{&info, f->Data(info), f});
    if (!inserted) {
      return Status::Corruption("tensor " + Q(info.name) + " appears in two shards: " +
                                it->second.file->path() + " and " + f->path());
    }
    tensor_bytes_ += info.num_bytes();
  }
  return Status::Ok();
}

Result<ModelWeights> ModelWeights::Open(const std::string& path) {
  ModelWeights mw;
  mw.path_ = path;
  std::string index_path;
  if (IsDirectory(path)) {
    const std::string single = JoinPath(path, kModelSafetensorsFile);
    const std::string index = JoinPath(path, kModelSafetensorsIndexFile);
    if (PathExists(single)) {
      RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(single));
      RADLADS_RETURN_IF_ERROR(mw.AddFile(std::make_unique<SafetensorsFile>(std::move(f))));
      return mw;
    }
    if (!PathExists(index)) {
      return Status::NotFound(path + ": neither " + std::string(kModelSafetensorsFile) + " nor " +
                              std::string(kModelSafetensorsIndexFile) + " exists");
    }
    index_path = index;
  } else if (!PathExists(path)) {
    return Status::NotFound(path + ": no such file or directory");
  } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    index_path = path;
  } else {
    RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
    RADLADS_RETURN_IF_ERROR(mw.AddFile(std::make_unique<SafetensorsFile>(std::move(f))));
    return mw;
  }

  // Sharded: parse the index, open every shard it names, cross-check both ways.
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  RADLADS_ASSIGN_OR_RETURN(ModelIndex index, ParseModelIndex(text, index_path));
  mw.index_path_ = index_path;
  mw.index_total_size_ = index.total_size;
  const std::string dir = DirName(index_path);
  std::map<std::string, std::string> first_tensor_of_shard;  // shard -> a tensor naming it
  for (const auto& [name, shard] : index.weight_map) first_tensor_of_shard.emplace(shard, name);
  std::map<std::string, const SafetensorsFile*> shard_files;
  for (const auto& [shard, tensor] : first_tensor_of_shard) {
    const std::string shard_path = JoinPath(dir, shard);
    if (!PathExists(shard_path)) {
      return Status::NotFound(index_path + ": shard " + Q(shard) + " (holding tensor " + Q(tensor) +
                              ") does not exist: " + shard_path);
    }
    RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(shard_path));
    auto owned = std::make_unique<SafetensorsFile>(std::move(f));
    shard_files[shard] = owned.get();
    mw.files_.push_back(std::move(owned));
  }
  for (const auto& [name, shard] : index.weight_map) {
    if (shard_files[shard]->Find(name) == nullptr) {
      return Status::Corruption(index_path + ": weight_map maps tensor " + Q(name) + " to shard " +
                                Q(shard) + ", but " + shard_files[shard]->path() +
                                " has no such tensor");
    }
  }
  for (const auto& [shard, file] : shard_files) {
    for (const SafetensorsTensorInfo& info : file->tensors()) {
      auto it = index.weight_map.find(info.name);
      if (it == index.weight_map.end()) {
        return Status::Corruption(file->path() + ": tensor " + Q(info.name) +
                                  " is not listed in the weight_map of " + index_path);
      }
      if (it->second != shard) {
        return Status::Corruption("tensor " + Q(info.name) + " appears in two shards: " +
                                  shard_files[it->second]->path() + " and " + file->path() + " (" +
                                  index_path + " maps it to " + Q(it->second) + ")");
      }
      mw.tensors_.emplace(info.name, ModelTensor{&info, file->Data(info), file});
      mw.tensor_bytes_ += info.num_bytes();
    }
  }
  return mw;
}

std::string ModelShardFileName(std::size_t k, std::size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%0*zu-of-%0*zu.safetensors", kModelShardNumberDigits, k,
                kModelShardNumberDigits, n);
  return buf;
}

std::vector<std::vector<std::size_t>> PlanModelShards(
    std::span<const SafetensorsWriteTensor> tensors, std::uint64_t max_shard_bytes) {
  std::vector<std::uint64_t> sizes;
  for (const SafetensorsWriteTensor& t : tensors) sizes.push_back(t.data.size());
  return PlanShardsBySize(sizes, max_shard_bytes);
}

Result<ModelWeightsWriteResult> WriteModelWeights(const std::string& dir,
                                                  std::span<const SafetensorsWriteTensor> tensors,
                                                  std::uint64_t max_shard_bytes,
                                                  const SafetensorsMetadata& metadata) {
  if (max_shard_bytes == 0) {
    return Status::InvalidArgument(dir + ": max_shard_bytes must be positive");
  }
  SafetensorsMetadata shard_metadata = metadata;
  shard_metadata.emplace(kSafetensorsFormatKey, kSafetensorsFormatPt);
  RADLADS_RETURN_IF_ERROR(ValidateSafetensorsTensors(tensors, shard_metadata).WithContext(dir));
  std::vector<std::uint64_t> sizes;
  for (const SafetensorsWriteTensor& t : tensors) sizes.push_back(t.data.size());
  std::vector<SafetensorsWriteTensor> shard;  // copies names/shapes only; data stay borrowed
  return WritePlannedModel(dir, tensors, sizes, max_shard_bytes,
                           [&](const std::string& path, const std::vector<std::size_t>& indices) {
                             shard.clear();
                             for (std::size_t i : indices) shard.push_back(tensors[i]);
                             return WriteSafetensors(path, shard, shard_metadata);
                           });
}

Result<ModelWeightsWriteResult> WriteModelWeightsStreamed(const std::string& dir,
                                                          std::span<const SafetensorsWriteTensor> tensors,
                                                          std::uint64_t max_shard_bytes,
                                                          const ModelTensorFill& fill,
                                                          const SafetensorsMetadata& metadata) {
  if (max_shard_bytes == 0) {
    return Status::InvalidArgument(dir + ": max_shard_bytes must be positive");
  }
  SafetensorsMetadata shard_metadata = metadata;
  shard_metadata.emplace(kSafetensorsFormatKey, kSafetensorsFormatPt);
  std::vector<std::uint64_t> sizes;
  std::set<std::string_view> names;
  for (const SafetensorsWriteTensor& t : tensors) {
    std::uint64_t n = DTypeSize(t.dtype);
    for (std::int64_t d : t.shape) {
      if (d < 0) return Status::InvalidArgument(dir + ": tensor " + Q(t.name) + ": shape: negative dimension");
      if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d)) {
        return Status::InvalidArgument(dir + ": tensor " + Q(t.name) + ": shape: byte size overflows");
      }
      n *= static_cast<std::uint64_t>(d);
    }
    if (!names.insert(t.name).second) {
      return Status::InvalidArgument(dir + ": tensor " + Q(t.name) + ": name: appears twice");
    }
    sizes.push_back(n);
  }
  // Only the shard being written holds data; each file still validates everything it writes.
  return WritePlannedModel(dir, tensors, sizes, max_shard_bytes,
                           [&](const std::string& path, const std::vector<std::size_t>& indices) -> Status {
                             std::vector<std::vector<std::byte>> data(indices.size());
                             std::vector<SafetensorsWriteTensor> shard;
                             for (std::size_t j = 0; j < indices.size(); ++j) {
                               const std::size_t i = indices[j];
                               data[j].resize(sizes[i]);
                               RADLADS_RETURN_IF_ERROR(fill(i, std::span<std::byte>(data[j])));
                               shard.push_back(tensors[i]);
                               shard.back().data = std::span<const std::byte>(data[j]);
                             }
                             return WriteSafetensors(path, shard, shard_metadata);
                           });
}

}  // namespace radlads
