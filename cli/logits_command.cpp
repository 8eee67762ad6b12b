#include "cli/logits_command.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "base/file.h"
#include "pipeline/model_io.h"
#include "pipeline/student_model.h"
#include "storage/npy.h"
#include "storage/student_config.h"

namespace radlads::cli {
namespace {

Result<std::vector<std::int32_t>> ParseIntegers(std::string_view text, const std::string& source) {
  std::vector<std::int32_t> out;
  std::size_t i = 0, index = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == ',') { ++i; continue; }
    std::size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) && text[j] != ',') ++j;
    std::string item(text.substr(i, j - i));
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v > INT32_MAX) {
      return Status::InvalidArgument(source + ": token " + std::to_string(index) + " is \"" + item +
                                     "\"; expected a non-negative integer id");
    }
    out.push_back(static_cast<std::int32_t>(v));
    ++index;
    i = j;
  }
  if (out.empty()) return Status::InvalidArgument(source + ": no tokens given");
  return out;
}

}  // namespace

Result<std::vector<std::int32_t>> ParseTokenList(const std::string& spec) {
  if (!PathExists(spec)) return ParseIntegers(spec, "--tokens");
  if (spec.size() >= 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0) {
    RADLADS_ASSIGN_OR_RETURN(NpyArray a, NpyArray::Open(spec));
    if (a.shape().size() != 1) return Status::InvalidArgument(spec + ": expected a 1-D array of token ids");
    std::vector<float> f(a.element_count());
    if (!ConvertToF32(a.dtype(), a.data().data(), f.data(), f.size()) ||
        (a.dtype() != DType::kI32 && a.dtype() != DType::kI64 && a.dtype() != DType::kU32 &&
         a.dtype() != DType::kU16 && a.dtype() != DType::kU8)) {
      return Status::InvalidArgument(spec + ": dtype " + std::string(DTypeName(a.dtype())) +
                                     " is not an integer token type");
    }
    std::vector<std::int32_t> out;
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (f[i] < 0) return Status::InvalidArgument(spec + ": token " + std::to_string(i) + " is negative");
      out.push_back(static_cast<std::int32_t>(f[i]));
    }
    if (out.empty()) return Status::InvalidArgument(spec + ": no tokens");
    return out;
  }
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(spec));
  return ParseIntegers(text, spec);
}

Result<Tensor> ComputeLogits(const std::string& dir, const std::vector<std::int32_t>& tokens) {
  RADLADS_ASSIGN_OR_RETURN(std::string model_type, ReadModelType(dir));
  const auto T = static_cast<std::int64_t>(tokens.size());
  Tensor ids = Tensor::Empty({1, T}, DType::kI32);
  std::memcpy(ids.raw(), tokens.data(), tokens.size() * sizeof(std::int32_t));
  auto run = [&](DecoderModel& model, std::int64_t vocab, const std::string& cfg_path) -> Result<Tensor> {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] >= vocab) {
        return Status::InvalidArgument("--tokens: token " + std::to_string(i) + " is " +
                                       std::to_string(tokens[i]) + ", outside the vocabulary of " +
                                       cfg_path + " (" + std::to_string(vocab) + ")");
      }
    }
    Tensor hidden = model.Forward(ids, DecoderForwardOptions{});
    return model.Logits(hidden);
  };
  const std::string cfg_path = JoinPath(dir, "config.json");
  if (model_type == "qwen2") {
    RADLADS_ASSIGN_OR_RETURN(Qwen2Teacher t, LoadQwen2Teacher(dir));
    return run(*t.model, t.config.vocab_size, cfg_path);
  }
  if (model_type == "rwkv6qwen2" || model_type == "rwkv7qwen2") {
    RADLADS_ASSIGN_OR_RETURN(StudentModel s, LoadStudent(dir));
    return run(*s.model, s.config.base.vocab_size, cfg_path);
  }
  return Status::InvalidArgument(cfg_path + ": model_type: \"" + model_type +
                                 "\" is not supported; expected \"qwen2\", \"rwkv6qwen2\" or \"rwkv7qwen2\"");
}

Status RunLogits(const LogitsArgs& args, std::FILE* out) {
  RADLADS_ASSIGN_OR_RETURN(std::vector<std::int32_t> tokens, ParseTokenList(args.tokens));
  RADLADS_ASSIGN_OR_RETURN(Tensor logits, ComputeLogits(args.model, tokens));
  const std::int64_t T = logits.dim(0), V = logits.dim(1);
  if (!args.out.empty()) {
    std::vector<std::uint64_t> shape = {static_cast<std::uint64_t>(T), static_cast<std::uint64_t>(V)};
    RADLADS_RETURN_IF_ERROR(
        WriteNpy(args.out, std::span<const float>(logits.f32(), static_cast<std::size_t>(T * V)), shape));
    std::fprintf(out, "wrote %s: float32 [%lld, %lld]\n", args.out.c_str(), static_cast<long long>(T),
                 static_cast<long long>(V));
    return Status::Ok();
  }
  std::fprintf(out, "logits: float32 [%lld, %lld] (use --out FILE.npy to save them)\n",
               static_cast<long long>(T), static_cast<long long>(V));
  std::fprintf(out, "%5s  %8s  %8s  %12s  %12s\n", "pos", "token", "argmax", "max logit", "mean logit");
  for (std::int64_t t = 0; t < T; ++t) {
    const float* row = logits.f32() + t * V;
    std::int64_t arg = std::max_element(row, row + V) - row;
    double mean = 0;
    for (std::int64_t v = 0; v < V; ++v) mean += row[v];
    std::fprintf(out, "%5lld  %8d  %8lld  %12.5f  %12.5f\n", static_cast<long long>(t), tokens[static_cast<std::size_t>(t)],
                 static_cast<long long>(arg), row[arg], mean / static_cast<double>(V));
  }
  return Status::Ok();
}

}  // namespace radlads::cli
