// Process-wide logging to stderr: "2026-11-28 01:02:03.456 [info] message". Thin wrapper over
// spdlog so that heavy headers stay out of hot includes. Thread-safe.
// Level names: "debug", "info", "warn", "error", "off"; RADLADS_LOG_LEVEL sets the default.
#pragma once

#include <string_view>

namespace radlads::log {

void Debug(std::string_view msg);
void Info(std::string_view msg);
void Warn(std::string_view msg);
void Error(std::string_view msg);
// Returns false for an unknown level name.
bool SetLevel(std::string_view level);

}  // namespace radlads::log
