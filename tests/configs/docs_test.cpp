// docs/configs.md holds the reference tables of the three schemas between generated-block
// markers; they must equal what the field tables render, so the docs and the code cannot drift.
// To refresh the blocks after changing a field table:
//   RADLADS_UPDATE_CONFIG_DOCS=1 build/<dir>/tests/configs_test --gtest_filter='ConfigDocs.*'
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "base/file.h"
#include "configs/cluster.h"
#include "configs/model_preset.h"
#include "configs/recipe.h"

namespace radlads {
namespace {

struct Block {
  const char* name;
  std::vector<config::FieldDoc> rows;
};

std::string Begin(const char* name) {
  return std::string("<!-- BEGIN GENERATED TABLE: ") + name + " -->\n";
}
std::string End(const char* name) {
  return std::string("<!-- END GENERATED TABLE: ") + name + " -->";
}

TEST(ConfigDocs, ReferenceTablesMatchTheFieldTables) {
  const std::string path = std::string(RADLADS_SOURCE_DIR) + "/docs/configs.md";
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  std::string doc = *text;
  const Block blocks[] = {{"model-preset", ModelPresetFieldDocs()},
                          {"recipe", RecipeFieldDocs()},
                          {"cluster", ClusterFieldDocs()}};
  const bool update = std::getenv("RADLADS_UPDATE_CONFIG_DOCS") != nullptr;
  bool changed = false;
  for (const Block& b : blocks) {
    SCOPED_TRACE(b.name);
    const std::size_t begin = doc.find(Begin(b.name));
    ASSERT_NE(begin, std::string::npos) << "docs/configs.md lacks " << Begin(b.name);
    const std::size_t body = begin + Begin(b.name).size();
    const std::size_t end = doc.find(End(b.name), body);
    ASSERT_NE(end, std::string::npos) << "docs/configs.md lacks " << End(b.name);
    const std::string want = config::RenderFieldTable(b.rows);
    if (doc.compare(body, end - body, want) == 0) continue;
    if (update) {
      doc.replace(body, end - body, want);
      changed = true;
    } else {
      ADD_FAILURE() << "docs/configs.md table '" << b.name << "' is stale; regenerate with "
                    << "RADLADS_UPDATE_CONFIG_DOCS=1 configs_test --gtest_filter='ConfigDocs.*'."
                    << " Expected:\n"
                    << want;
    }
  }
  // Every key is documented, with its full path.
  for (const Block& b : blocks) {
    for (const config::FieldDoc& row : b.rows) {
      EXPECT_NE(doc.find("| `" + row.key + "` |"), std::string::npos) << b.name << ": " << row.key;
    }
  }
  if (changed) {
    ASSERT_TRUE(AtomicWriteFile(path, doc).ok());
  }
}

TEST(ConfigDocs, EveryFieldIsDescribedWithItsSource) {
  for (const auto& rows : {ModelPresetFieldDocs(), RecipeFieldDocs(), ClusterFieldDocs()}) {
    for (const config::FieldDoc& row : rows) {
      EXPECT_FALSE(row.doc.empty()) << row.key;
      EXPECT_FALSE(row.source.empty()) << row.key;
      EXPECT_FALSE(row.default_text.empty()) << row.key << ": say `required` or the default";
    }
  }
}

}  // namespace
}  // namespace radlads
