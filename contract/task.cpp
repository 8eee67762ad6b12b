#include "contract/task.h"

#include <array>
#include <cstdio>

namespace radlads {
namespace {

constexpr std::array<std::string_view, 7> kTypeNames = {"transfer", "cache",    "align", "distill",
                                                        "finetune", "export", "eval"};

}  // namespace

std::string_view TaskTypeName(TaskType t) { return kTypeNames[static_cast<std::size_t>(t)]; }

bool ParseTaskType(std::string_view name, TaskType* out) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) {
      *out = static_cast<TaskType>(i);
      return true;
    }
  }
  return false;
}

std::string TransferTaskId(int layer) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "transfer/L%03d", layer);
  return buf;
}

std::string CacheTaskId(int segment, int stage) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "cache/S%05d/P%02d", segment, stage);
  return buf;
}

std::string AlignTaskId(int layer, int segment) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "align/L%03d/S%05d", layer, segment);
  return buf;
}

}  // namespace radlads
