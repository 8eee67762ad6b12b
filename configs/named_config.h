// The one way a shipped config kind (model preset, recipe, cluster) is read into its struct:
// strict schema reading (configs/yaml_reader.h) and `name` set to the file stem. Parse* reads
// text whose `source` names it in errors; Load* resolves a name or path first
// (configs/config_files.h). T is a struct with a std::string `name` member.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "configs/config_files.h"
#include "configs/config_node.h"
#include "configs/yaml_reader.h"

namespace radlads {

template <typename T>
Result<T> ParseNamedConfig(std::string_view text, std::string_view source, const config::Schema<T>& schema) {
  RADLADS_ASSIGN_OR_RETURN(T value, config::ReadYamlText(text, source, schema));
  value.name = ConfigStem(source);
  return value;
}

template <typename T>
Result<T> LoadNamedConfig(ConfigKind kind, std::string_view name_or_path, const config::Schema<T>& schema) {
  RADLADS_ASSIGN_OR_RETURN(std::string path, ResolveConfigPath(kind, name_or_path));
  RADLADS_ASSIGN_OR_RETURN(config::ConfigNode root, config::ParseYamlFile(path));
  T value{};
  RADLADS_RETURN_IF_ERROR(schema.Read(root, path, "", &value));
  value.name = ConfigStem(path);
  return value;
}

}  // namespace radlads
