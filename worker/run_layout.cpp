#include "worker/run_layout.h"

#include <cstdio>

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

std::string RunLayout::GangFile(const std::string& step_name, std::int64_t step) {
  char b[96];
  std::snprintf(b, sizeof(b), "checkpoints/%s/step-%06lld.safetensors", step_name.c_str(),
                static_cast<long long>(step));
  return b;
}

}  // namespace radlads
