// Reads a whole file, transparently inflating it when it is gzip-compressed (magic 1f 8b).
// Errors name the file: NotFound, IOError, Corruption for a broken or truncated gzip stream.
#pragma once

#include <string>

#include "base/status.h"

namespace radlads {

Result<std::string> ReadMaybeGzipFile(const std::string& path);

}  // namespace radlads
