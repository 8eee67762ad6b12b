#include "base/fault_injection.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace radlads {
namespace {

struct Rule {
  std::string kind, substring;
  long left = 0;
};

struct Rules {
  std::mutex mu;
  std::vector<Rule> rules;
};

Rules& Parsed() {
  static Rules* r = [] {
    auto* out = new Rules();
    const char* env = std::getenv("RADLADS_FAULTS");
    std::string spec = env == nullptr ? "" : env;
    std::size_t start = 0;
    while (start < spec.size()) {
      std::size_t end = spec.find(',', start);
      if (end == std::string::npos) end = spec.size();
      const std::string item = spec.substr(start, end - start);
      start = end + 1;
      const auto colon = item.find(':');
      const auto eq = item.rfind('=');
      char* stop = nullptr;
      const long n = eq == std::string::npos ? 0 : std::strtol(item.c_str() + eq + 1, &stop, 10);
      if (colon == std::string::npos || eq == std::string::npos || eq < colon || n <= 0 || stop == nullptr ||
          *stop != '\0' || item.substr(0, colon) != "enospc") {
        std::fprintf(stderr, "RADLADS_FAULTS: ignoring '%s' (expected enospc:SUBSTRING=N)\n", item.c_str());
        continue;
      }
      out->rules.push_back(Rule{item.substr(0, colon), item.substr(colon + 1, eq - colon - 1), n});
    }
    return out;
  }();
  return *r;
}

}  // namespace

bool TakeFault(std::string_view kind, std::string_view path) {
  Rules& r = Parsed();
  if (r.rules.empty()) return false;
  std::lock_guard<std::mutex> lock(r.mu);
  for (Rule& rule : r.rules) {
    if (rule.left > 0 && rule.kind == kind && path.find(rule.substring) != std::string_view::npos) {
      --rule.left;
      return true;
    }
  }
  return false;
}

}  // namespace radlads
