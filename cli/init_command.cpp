#include "cli/init_command.h"

#include <cstring>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/gzip.h"
#include "configs/model_preset.h"
#include "pipeline/model_io.h"
#include "pipeline/pretrain.h"
#include "storage/model_weights.h"

namespace radlads::cli {
namespace {

// Files a Hugging Face tokenizer directory may hold besides tokenizer.json (copied when present).
constexpr const char* kTokenizerSideFiles[] = {"tokenizer_config.json", "vocab.json", "merges.txt",
                                               "special_tokens_map.json", "generation_config.json"};

// FNV-1a 64 of a tensor name: the per-tensor seed does not depend on the tensor's position.
std::uint64_t NameHash(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Every tensor of the teacher in Hugging Face's module order (embedding, each layer's attention
// and MLP and norms, final norm, head), which is the order the shards are filled in.
std::vector<ParamSpec> ModuleOrderSpecs(const Qwen2Config& cfg) {
  const std::vector<ParamSpec> all = Qwen2ParamSpecs(cfg);
  std::vector<ParamSpec> out;
  auto take = [&](const std::string& prefix) {
    for (const ParamSpec& s : all) {
      if (s.name.compare(0, prefix.size(), prefix) == 0) out.push_back(s);
    }
  };
  take("model.embed_tokens.");
  for (int l = 0; l < cfg.num_hidden_layers; ++l) take(LayerPrefix(l));
  take("model.norm.");
  take("lm_head.");
  RADLADS_CHECK(out.size() == all.size()) << "a teacher tensor outside the module order";
  return out;
}

struct InitSource {
  Qwen2Config config;
  std::string name;           // preset name or config path, for init.json
  std::string tokenizer_dir;  // "" when there is no tokenizer to copy
};

Result<InitSource> LoadSource(const InitArgs& a) {
  if (a.preset.empty() == a.config.empty()) {
    return Status::InvalidArgument("radlads-model init: give exactly one of --preset NAME and --config config.json");
  }
  InitSource src;
  if (!a.preset.empty()) {
    RADLADS_ASSIGN_OR_RETURN(ModelPreset p, LoadModelPreset(a.preset));
    src.config = p.config;
    src.name = p.name;
    src.tokenizer_dir = p.tokenizer_dir;
  } else {
    RADLADS_ASSIGN_OR_RETURN(src.config, LoadQwen2Config(a.config));
    src.name = a.config;
    const std::string dir = IsDirectory(a.config) ? a.config : DirName(a.config);
    if (PathExists(JoinPath(dir, "tokenizer.json")) || PathExists(JoinPath(dir, "tokenizer.json.gz"))) {
      src.tokenizer_dir = dir;
    }
  }
  return src;
}

Result<DType> ChooseDType(const InitArgs& a, const Qwen2Config& cfg) {
  if (a.dtype.empty()) return cfg.torch_dtype == "bfloat16" ? DType::kBF16 : DType::kF32;
  if (a.dtype == "bf16") return DType::kBF16;
  if (a.dtype == "f32") return DType::kF32;
  return Status::InvalidArgument("radlads-model init: --dtype: expected bf16 or f32, got '" + a.dtype + "'");
}

Status CheckOutputDir(const std::string& out) {
  if (out.empty()) return Status::InvalidArgument("radlads-model init: --out: a directory is required");
  if (!PathExists(out)) return Status::Ok();
  std::error_code ec;
  if (!IsDirectory(out) || !std::filesystem::is_empty(out, ec)) {
    return Status::InvalidArgument("radlads-model init: --out " + out +
                                   " exists and is not an empty directory; choose a new one");
  }
  return Status::Ok();
}

// tokenizer.json (inflated when the source holds tokenizer.json.gz: transformers reads plain
// files only) and the side files present in `from`.
Status CopyTokenizer(const std::string& from, const std::string& out) {
  const std::string plain = JoinPath(from, "tokenizer.json");
  RADLADS_ASSIGN_OR_RETURN(std::string json, ReadMaybeGzipFile(PathExists(plain) ? plain : plain + ".gz"));
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(out, "tokenizer.json"), json));
  for (const char* name : kTokenizerSideFiles) {
    const std::string path = JoinPath(from, name);
    if (!PathExists(path)) continue;
    RADLADS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(out, name), bytes));
  }
  return Status::Ok();
}

}  // namespace

Status RunInit(const InitArgs& a, std::FILE* report) {
  RADLADS_ASSIGN_OR_RETURN(InitSource src, LoadSource(a));
  Qwen2Config cfg = src.config;
  if (a.layers < 0) {
    return Status::InvalidArgument("radlads-model init: --layers: expected a positive layer count, got " +
                                   std::to_string(a.layers));
  }
  if (a.layers > 0) cfg.num_hidden_layers = a.layers;
  RADLADS_RETURN_IF_ERROR(ValidateQwen2Config(cfg, src.name));
  RADLADS_ASSIGN_OR_RETURN(DType dtype, ChooseDType(a, cfg));
  cfg.torch_dtype = dtype == DType::kBF16 ? "bfloat16" : "float32";
  if (!(a.init_range > 0.0)) {
    return Status::InvalidArgument("radlads-model init: --init-range: expected a positive standard deviation");
  }
  RADLADS_RETURN_IF_ERROR(CheckOutputDir(a.out));
  RADLADS_RETURN_IF_ERROR(CreateDirectories(a.out));
  if (report != nullptr) {
    std::fprintf(report, "initialising %s in %s at %s\n", DescribeQwen2Config(cfg).c_str(),
                 std::string(DTypeName(dtype)).c_str(), a.out.c_str());
    std::fflush(report);
  }

  const std::vector<ParamSpec> specs = ModuleOrderSpecs(cfg);
  std::vector<SafetensorsWriteTensor> shapes;
  for (const ParamSpec& s : specs) {
    shapes.push_back({s.name, dtype, std::vector<std::int64_t>(s.shape.begin(), s.shape.end()), {}});
  }
  auto fill = [&](std::size_t i, std::span<std::byte> out) -> Status {
    // One tensor in F32, initialised as InitQwen2Params does, then converted into the shard.
    ParamSet one;
    one.Add(specs[i].name, Tensor::Zeros(specs[i].shape));
    InitQwen2Params(one, a.init_range, a.seed ^ NameHash(specs[i].name));
    const Tensor& t = one.Get(specs[i].name).value;
    if (dtype == DType::kF32) {
      std::memcpy(out.data(), t.raw(), out.size());
    } else {
      Tensor c = t.ToDType(dtype);
      RADLADS_CHECK(c.nbytes() == out.size()) << specs[i].name;
      std::memcpy(out.data(), c.raw(), out.size());
    }
    return Status::Ok();
  };
  RADLADS_ASSIGN_OR_RETURN(ModelWeightsWriteResult written,
                           WriteModelWeightsStreamed(a.out, shapes, a.max_shard_bytes, fill));
  if (!src.tokenizer_dir.empty()) RADLADS_RETURN_IF_ERROR(CopyTokenizer(src.tokenizer_dir, a.out));

  nlohmann::ordered_json j;
  j["what"] = "a randomly initialised Qwen2-architecture model written by radlads-model init "
              "(transformers' Qwen2 init; not a trained model)";
  j["command"] = a.command_line;
  j["source"] = src.name;
  j["num_hidden_layers"] = cfg.num_hidden_layers;
  j["dtype"] = DTypeName(dtype);
  j["seed"] = a.seed;
  j["initializer_range"] = a.init_range;
  j["parameters"] = cfg.ParameterCount();
  j["tokenizer"] = src.tokenizer_dir;
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(a.out, "init.json"), j.dump(2) + "\n"));
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(a.out, "config.json"), Qwen2ConfigToJson(cfg)));
  if (report != nullptr) {
    std::fprintf(report, "wrote %s: %s, %s, %zu file(s)%s\n", a.out.c_str(), DescribeQwen2Config(cfg).c_str(),
                 std::string(DTypeName(dtype)).c_str(), written.files.size(),
                 src.tokenizer_dir.empty() ? ", no tokenizer" : ", tokenizer copied");
  }
  return Status::Ok();
}

}  // namespace radlads::cli
