#include "configs/config_files.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "base/file.h"

#ifndef RADLADS_CONFIGS_DIR
#error "RADLADS_CONFIGS_DIR must be defined by configs/CMakeLists.txt"
#endif

namespace radlads {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool LooksLikePath(std::string_view ref) {
  return ref.find('/') != std::string_view::npos || EndsWith(ref, ".yaml") || EndsWith(ref, ".yml");
}

}  // namespace

std::string_view ConfigKindDir(ConfigKind kind) {
  switch (kind) {
    case ConfigKind::kModel: return "models";
    case ConfigKind::kRecipe: return "recipes";
    case ConfigKind::kCluster: return "clusters";
  }
  return "";
}

std::string ConfigsDir() {
  const char* env = std::getenv("RADLADS_CONFIGS_DIR");
  if (env != nullptr && *env != '\0') return env;
  return RADLADS_CONFIGS_DIR;
}

std::vector<std::string> ListConfigNames(ConfigKind kind) {
  std::vector<std::string> names;
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(ConfigsDir()) / ConfigKindDir(kind);
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".yaml" && it->is_regular_file(ec)) {
      names.push_back(it->path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> ResolveConfigPath(ConfigKind kind, std::string_view name_or_path) {
  if (name_or_path.empty()) {
    return Status::InvalidArgument("empty " + std::string(ConfigKindDir(kind)) +
                                   " reference: give a name or a path to a .yaml file");
  }
  if (LooksLikePath(name_or_path)) {
    std::string path(name_or_path);
    if (!PathExists(path)) return Status::NotFound(path + ": no such file");
    return path;
  }
  const std::string dir = JoinPath(ConfigsDir(), ConfigKindDir(kind));
  const std::string path = JoinPath(dir, std::string(name_or_path) + ".yaml");
  if (PathExists(path)) return path;
  std::string msg = "no " + std::string(ConfigKindDir(kind)) + " config named \"" +
                    std::string(name_or_path) + "\" in " + dir + " (available:";
  for (const std::string& n : ListConfigNames(kind)) msg += " " + n;
  msg += "; or give a path to a .yaml file)";
  return Status::NotFound(std::move(msg));
}

std::string ConfigStem(std::string_view path) {
  return std::filesystem::path(std::string(path)).stem().string();
}

}  // namespace radlads
