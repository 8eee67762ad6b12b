// ConfigNode: a YAML document as a plain tree of values with 1-based source positions, and the
// one place in the project that calls yaml-cpp.
//
// Contract:
// - ParseYamlText/ParseYamlFile never throw. Every yaml-cpp exception is caught here and turned
//   into InvalidArgument "<source>:<line>: YAML syntax error: <what> (column <c>)".
// - The tree is stricter than YAML: mapping keys must be plain scalars, a key may appear only
//   once per mapping ("<source>:9: steps.align: duplicate key `batch` (first at line 7)"), a file
//   holds exactly one document whose top level is a mapping, and tags (`!!str`, `!foo`) are
//   rejected. Anchors and aliases resolve as YAML says.
// - Scalars keep their text; `quoted` is true for '...', "..." and block scalars (| >), which are
//   always strings and never numbers or booleans. `~`, `null` and an empty value are kNull.
// - Lines and columns are 1-based. For a null value (whose yaml-cpp mark points past the key)
//   and for block collections the line is the line of the key that owns the value.
// Thread-safety: plain values.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace radlads::config {

struct ConfigMapEntry;

struct ConfigNode {
  enum class Kind { kNull, kScalar, kMap, kSeq };

  Kind kind = Kind::kNull;
  std::string scalar;   // kScalar: the text as written (without quotes)
  bool quoted = false;  // kScalar: quoted or block scalar, i.e. a string whatever it looks like
  int line = 0;         // 1-based
  int column = 0;       // 1-based
  std::vector<ConfigMapEntry> entries;  // kMap, in document order
  std::vector<ConfigNode> items;        // kSeq

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSeq() const { return kind == Kind::kSeq; }

  // kMap: the entry with this key, or nullptr.
  const ConfigMapEntry* Find(std::string_view key) const;

  // For messages: `"text"` for quoted scalars, the bare text for plain ones, "a mapping",
  // "a list" or "null".
  std::string Describe() const;
};

struct ConfigMapEntry {
  std::string key;
  int key_line = 0;    // 1-based line of the key
  int key_column = 0;  // 1-based
  ConfigNode value;
};

// Parses one YAML document. `source` names the file in messages.
Result<ConfigNode> ParseYamlText(std::string_view text, std::string_view source);

// Reads and parses a file; the path is the `source` of every message.
Result<ConfigNode> ParseYamlFile(const std::string& path);

}  // namespace radlads::config
