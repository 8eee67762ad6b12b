#include "contract/run_layout.h"

#include <cstdio>
#include <cstdlib>

#include "base/file.h"

namespace radlads {

std::string RunLayout::Abs(const std::string& rel) const { return JoinPath(dir, rel); }

std::string RunLayout::CacheFile(int segment, int stage) {
  char b[64];
  std::snprintf(b, sizeof(b), "cache/S%05d_P%02d.h5", segment, stage);
  return b;
}

std::string RunLayout::TransferFile(int layer) {
  char b[64];
  std::snprintf(b, sizeof(b), "checkpoints/layers/L%03d/transfer.safetensors", layer);
  return b;
}

std::string RunLayout::AlignFile(int layer, int segment, std::int64_t step) {
  char b[96];
  std::snprintf(b, sizeof(b), "checkpoints/layers/L%03d/S%05d-%06lld.safetensors", layer, segment,
                static_cast<long long>(step));
  return b;
}

std::string RunLayout::GangShardFile(const std::string& step_name, std::int64_t step, int tp, int tp_rank, int pp,
                                     int pp_rank) {
  if (tp == 1 && pp == 1) return GangFile(step_name, step);
  char b[128];
  std::snprintf(b, sizeof(b), "checkpoints/%s/step-%06lld-tp%dof%d-pp%dof%d.safetensors", step_name.c_str(),
                static_cast<long long>(step), tp_rank, tp, pp_rank, pp);
  return b;
}

std::string RunLayout::GangFile(const std::string& step_name, std::int64_t step) {
  char b[96];
  std::snprintf(b, sizeof(b), "checkpoints/%s/step-%06lld.safetensors", step_name.c_str(),
                static_cast<long long>(step));
  return b;
}

namespace {
constexpr const char* kFormatMagic = "radlads-run ";
}  // namespace

Status CheckRunFormat(const std::string& run_dir) {
  const RunLayout run{run_dir};
  const std::string path = run.Abs(RunLayout::FormatFile());
  int version = 0;
  if (!PathExists(path)) {
    if (!PathExists(run.Abs(RunLayout::PlanFile()))) return Status::Ok();  // a new run directory
    version = 1;
  } else {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    const std::string magic = kFormatMagic;
    char* end = nullptr;
    const long v = text.compare(0, magic.size(), magic) == 0 ? std::strtol(text.c_str() + magic.size(), &end, 10) : 0;
    if (v <= 0 || end == nullptr || (*end != '\n' && *end != '\0')) {
      return Status::Corruption(path + ": expected \"radlads-run <version>\", got \"" + text.substr(0, 40) + "\"");
    }
    version = static_cast<int>(v);
  }
  if (version == kRunFormatVersion) return Status::Ok();
  return Status::InvalidArgument(
      run_dir + " was written by run-directory format " + std::to_string(version) +
      (version == 1 ? " (no " + RunLayout::FormatFile() + " file)" : "") + "; this build reads format " +
      std::to_string(kRunFormatVersion) + " only (docs/formats/versions.md). Finish or resume it with the "
      "radlads that started it, or start this conversion again in a new run directory");
}

Status WriteRunFormat(const std::string& run_dir) {
  const std::string path = JoinPath(run_dir, RunLayout::FormatFile());
  const std::string text = kFormatMagic + std::to_string(kRunFormatVersion) + "\n";
  if (auto existing = ReadFileToString(path); existing.ok() && *existing == text) return Status::Ok();
  return AtomicWriteFile(path, text);
}

}  // namespace radlads
