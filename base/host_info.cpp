#include "base/host_info.h"

#include <unistd.h>

#include <fstream>
#include <string>

namespace radlads {

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "";
  return host;
}

std::optional<double> HostMemoryGib() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (f >> key >> kib >> unit) {
    if (key == "MemTotal:") return kib / (1024.0 * 1024.0);
  }
  return std::nullopt;
}

std::optional<std::int64_t> PeakRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<std::int64_t>(std::stoll(line.substr(6))) * 1024;
  }
  return std::nullopt;
}

void ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

}  // namespace radlads
