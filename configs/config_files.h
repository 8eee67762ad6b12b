// Where the shipped YAML files live and how a name ("qwen2.5-7b") or a path becomes a file.
//
// ConfigsDir() is $RADLADS_CONFIGS_DIR when set and non-empty, else the configs/ directory of the
// source tree this library was built from. It holds models/, recipes/ and clusters/.
// A reference is a path when it contains '/' or ends in ".yaml"/".yml"; otherwise it is a name
// looked up as <ConfigsDir>/<kind>/<name>.yaml. A missing name is NotFound and lists the names
// that exist. Thread-safety: reads the environment and the filesystem; no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace radlads {

enum class ConfigKind { kModel, kRecipe, kCluster };

// "models", "recipes", "clusters".
std::string_view ConfigKindDir(ConfigKind kind);

std::string ConfigsDir();

// The file a reference names (see above). Paths are returned as given, after checking that the
// file exists.
Result<std::string> ResolveConfigPath(ConfigKind kind, std::string_view name_or_path);

// Names of the shipped files of one kind (file stems, sorted).
std::vector<std::string> ListConfigNames(ConfigKind kind);

// "configs/recipes/qwen2.5-7b-rwkv7.yaml" -> "qwen2.5-7b-rwkv7".
std::string ConfigStem(std::string_view path);

}  // namespace radlads
