// Typed, error-reporting access to the fields of a parsed JSON object (config.json files,
// index files). Absent keys and JSON null leave the caller's default untouched; a present key
// of the wrong type is an InvalidArgument naming the source, the key, the expected type and
// the value found. Never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace radlads {

// Parses text that must be a JSON object. Errors name `source` and the parser's position.
Result<nlohmann::json> ParseJsonObject(std::string_view text, std::string_view source);

class JsonFields {
 public:
  // `obj` must outlive this object.
  JsonFields(const nlohmann::json& obj, std::string_view source) : obj_(obj), source_(source) {}

  Status Int(std::string_view key, std::int64_t* out) const;
  Status Number(std::string_view key, double* out) const;  // integers accepted
  Status Bool(std::string_view key, bool* out) const;
  Status String(std::string_view key, std::string* out) const;
  Status StringList(std::string_view key, std::vector<std::string>* out) const;
  Status IntOrIntList(std::string_view key, std::vector<std::int64_t>* out) const;

  // "<source>: <key>: expected <what>, got <value>"
  Status TypeError(std::string_view key, std::string_view what) const;

 private:
  const nlohmann::json* Get(std::string_view key) const;  // nullptr when absent or null
  const nlohmann::json& obj_;
  std::string source_;
};

}  // namespace radlads
