#include "storage/json_fields.h"

namespace radlads {

Result<nlohmann::json> ParseJsonObject(std::string_view text, std::string_view source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number overflow
    return Status::InvalidArgument(std::string(source) + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) {
    return Status::InvalidArgument(std::string(source) + ": expected a JSON object at the top level, got " +
                                   std::string(j.type_name()));
  }
  return j;
}

const nlohmann::json* JsonFields::Get(std::string_view key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

Status JsonFields::TypeError(std::string_view key, std::string_view what) const {
  std::string got = "nothing";
  if (auto it = obj_.find(key); it != obj_.end()) {
    got = it->dump();
    if (got.size() > 80) got = got.substr(0, 77) + "...";
  }
  return Status::InvalidArgument(source_ + ": " + std::string(key) + ": expected " +
                                 std::string(what) + ", got " + got);
}

Status JsonFields::Int(std::string_view key, std::int64_t* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
      return TypeError(key, "an integer that fits in 64 bits");
    }
    *out = v->get<std::int64_t>();
    return Status::Ok();
  }
  return TypeError(key, "an integer");
}

Status JsonFields::Number(std::string_view key, double* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_number()) return TypeError(key, "a number");
  *out = v->get<double>();
  return Status::Ok();
}

Status JsonFields::Bool(std::string_view key, bool* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) return TypeError(key, "true or false");
  *out = v->get<bool>();
  return Status::Ok();
}

Status JsonFields::String(std::string_view key, std::string* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) return TypeError(key, "a string");
  *out = v->get<std::string>();
  return Status::Ok();
}

Status JsonFields::StringList(std::string_view key, std::vector<std::string>* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_array()) return TypeError(key, "a list of strings");
  std::vector<std::string> r;
  for (const auto& e : *v) {
    if (!e.is_string()) return TypeError(key, "a list of strings");
    r.push_back(e.get<std::string>());
  }
  *out = std::move(r);
  return Status::Ok();
}

Status JsonFields::IntOrIntList(std::string_view key, std::vector<std::int64_t>* out) const {
  const nlohmann::json* v = Get(key);
  if (v == nullptr) return Status::Ok();
  std::vector<std::int64_t> r;
  if (v->is_number_integer()) {
    r.push_back(v->get<std::int64_t>());
  } else if (v->is_array()) {
    for (const auto& e : *v) {
      if (!e.is_number_integer()) return TypeError(key, "an integer or a list of integers");
      r.push_back(e.get<std::int64_t>());
    }
  } else {
    return TypeError(key, "an integer or a list of integers");
  }
  *out = std::move(r);
  return Status::Ok();
}

}  // namespace radlads
