// libFuzzer target for the YAML files a user writes (configs/): the first input byte picks the
// schema, the rest is the file's text:
//   0  a recipe (configs/recipe.h ParseRecipeYaml)
//   1  a cluster layout (configs/cluster.h ParseClusterYaml)
//   2  a run config (configs/run_settings.h ParseRunSettingsYaml)
//   3  any YAML document (configs/config_node.h ParseYamlText)
// Property: no crash, no sanitizer report, no exception escapes (the readers never throw); an
// error names the source. Seeds: tests/fuzz/corpus/config_yaml_fuzz/ (the shipped recipes and
// layouts and the test run configs, each behind its selector byte).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "configs/cluster.h"
#include "configs/config_node.h"
#include "configs/recipe.h"
#include "configs/run_settings.h"

namespace {

void CheckNamed(const radlads::Status& s) {
  if (s.ok()) return;
  if (s.message().find("fuzz.yaml") == std::string::npos) {
    std::fprintf(stderr, "config_yaml_fuzz: an error that does not name the file: %s\n", s.ToString().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0: CheckNamed(radlads::ParseRecipeYaml(text, "fuzz.yaml").status()); break;
    case 1: CheckNamed(radlads::ParseClusterYaml(text, "fuzz.yaml").status()); break;
    case 2: CheckNamed(radlads::ParseRunSettingsYaml(text, "fuzz.yaml").status()); break;
    default: CheckNamed(radlads::config::ParseYamlText(text, "fuzz.yaml").status()); break;
  }
  return 0;
}
