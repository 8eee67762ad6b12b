#include "base/host_info.h"

#include <fstream>
#include <string>

namespace radlads {

std::optional<double> HostMemoryGib() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (f >> key >> kib >> unit) {
    if (key == "MemTotal:") return kib / (1024.0 * 1024.0);
  }
  return std::nullopt;
}

}  // namespace radlads
