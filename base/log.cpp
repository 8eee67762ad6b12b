#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace radlads::log {
namespace {

spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("radlads");
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e [%^%l%$] %v");
    l->set_level(spdlog::level::info);
    if (const char* env = std::getenv("RADLADS_LOG_LEVEL")) {
      auto lvl = spdlog::level::from_str(env);
      l->set_level(lvl);
    }
    return l;
  }();
  return *logger;
}

}  // namespace

void Debug(std::string_view msg) { Logger().debug(msg); }
void Info(std::string_view msg) { Logger().info(msg); }
void Warn(std::string_view msg) { Logger().warn(msg); }
void Error(std::string_view msg) { Logger().error(msg); }

bool SetLevel(std::string_view level) {
  std::string s(level);
  auto lvl = spdlog::level::from_str(s);
  if (lvl == spdlog::level::off && s != "off") return false;
  Logger().set_level(lvl);
  return true;
}

}  // namespace radlads::log
