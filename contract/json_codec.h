// The JSON encoding derived from a record's field declaration (contract/fields.h): an object
// with one key per field, in declaration order. Integers are JSON integers, doubles numbers,
// bools true/false, enums their names (EnumTraits::Name), lists arrays, nested records objects,
// an absent optional null. Every declared key is written.
//
// Reading is strict about what it knows: every declared key must be present with its type
// (an int32 field must fit, an enum must be one of its names); keys it does not declare are
// ignored, so a document may carry derived extras (plan.json's per-task estimates). The first
// error is kept and names the path: "tasks[3].layer: expected an integer, got \"x\"".
// Thread-safety: plain values.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "contract/fields.h"

namespace radlads::codec {

class JsonOut {
 public:
  explicit JsonOut(nlohmann::json& obj) : obj_(obj) { obj_ = nlohmann::json::object(); }
  bool Since(int) const { return true; }  // JSON documents carry every field they declare

  void Str(std::string_view f, const std::string& s, std::size_t) { obj_[std::string(f)] = s; }
  template <FieldInt T>
  void Int(std::string_view f, const T& v) { obj_[std::string(f)] = v; }
  void Real(std::string_view f, const double& v) { obj_[std::string(f)] = v; }
  void Flag(std::string_view f, const bool& b) { obj_[std::string(f)] = b; }
  template <std::size_t N>
  void Fixed(std::string_view f, const std::array<std::uint8_t, N>& a) {  // lowercase hex
    static constexpr char kHex[] = "0123456789abcdef";
    std::string h;
    for (std::uint8_t b : a) {
      h.push_back(kHex[b >> 4]);
      h.push_back(kHex[b & 15]);
    }
    obj_[std::string(f)] = std::move(h);
  }
  template <FieldEnum E>
  void Enum(std::string_view f, const E& e) { obj_[std::string(f)] = std::string(EnumTraits<E>::Name(e)); }
  void Strs(std::string_view f, const std::vector<std::string>& v, std::size_t, std::size_t) {
    obj_[std::string(f)] = v;
  }
  template <class R>
  void Rec(std::string_view f, const R& r) { obj_[std::string(f)] = Of(r); }
  template <class R>
  void Recs(std::string_view f, const std::vector<R>& v, std::size_t) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : v) a.push_back(Of(r));
    obj_[std::string(f)] = std::move(a);
  }
  template <class R>
  void Opt(std::string_view f, const std::optional<R>& o) {
    obj_[std::string(f)] = o ? Of(*o) : nlohmann::json(nullptr);
  }

  template <class R>
  static nlohmann::json Of(const R& r) {
    nlohmann::json j;
    JsonOut w(j);
    VisitFields(w, const_cast<R&>(r));
    return j;
  }

 private:
  nlohmann::json& obj_;
};

// Keeps the first error; `path` names where in the document this object sits.
class JsonIn {
 public:
  JsonIn(const nlohmann::json& obj, std::string path, std::string* error)
      : obj_(obj), path_(std::move(path)), error_(error) {
    if (error_->empty() && !obj_.is_object()) Fail("", "expected an object", obj_);
  }
  bool Since(int) const { return true; }

  void Str(std::string_view f, std::string& s, std::size_t) {
    if (const auto* v = Get(f, &nlohmann::json::is_string, "a string")) s = v->get<std::string>();
  }
  template <FieldInt T>
  void Int(std::string_view f, T& out) {
    const auto* v = Get(f, &nlohmann::json::is_number_integer, "an integer");
    if (v == nullptr) return;
    bool fits = false;
    if (v->is_number_unsigned()) {
      fits = v->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    } else if constexpr (std::is_signed_v<T>) {
      const std::int64_t x = v->get<std::int64_t>();
      fits = x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max();
    }
    if (!fits) return Fail(f, "out of range", *v);
    out = v->is_number_unsigned() ? static_cast<T>(v->get<std::uint64_t>()) : static_cast<T>(v->get<std::int64_t>());
  }
  void Real(std::string_view f, double& out) {
    if (const auto* v = Get(f, &nlohmann::json::is_number, "a number")) out = v->get<double>();
  }
  void Flag(std::string_view f, bool& out) {
    if (const auto* v = Get(f, &nlohmann::json::is_boolean, "true or false")) out = v->get<bool>();
  }
  template <std::size_t N>
  void Fixed(std::string_view f, std::array<std::uint8_t, N>& out) {
    const auto* v = Get(f, &nlohmann::json::is_string, "a hex string");
    if (v == nullptr) return;
    const std::string h = v->get<std::string>();
    auto nibble = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    if (h.size() != 2 * N) return Fail(f, "expected " + std::to_string(2 * N) + " hex digits", *v);
    for (std::size_t i = 0; i < N; ++i) {
      const int hi = nibble(h[2 * i]), lo = nibble(h[2 * i + 1]);
      if (hi < 0 || lo < 0) return Fail(f, "expected lowercase hex digits", *v);
      out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
  }
  template <FieldEnum E>
  void Enum(std::string_view f, E& out) {
    const auto* v = Get(f, &nlohmann::json::is_string, "a name");
    if (v != nullptr && !EnumTraits<E>::Parse(v->get<std::string>(), &out)) Fail(f, "unknown name", *v);
  }
  void Strs(std::string_view f, std::vector<std::string>& out, std::size_t, std::size_t) {
    const auto* v = Get(f, &nlohmann::json::is_array, "an array");
    if (v == nullptr) return;
    out.clear();
    for (std::size_t i = 0; i < v->size() && error_->empty(); ++i) {
      const auto& e = (*v)[i];
      if (!e.is_string()) return Fail(std::string(f) + "[" + std::to_string(i) + "]", "expected a string", e);
      out.push_back(e.get<std::string>());
    }
  }
  template <class R>
  void Rec(std::string_view f, R& r) {
    if (const auto* v = Get(f, &nlohmann::json::is_object, "an object")) Read(*v, Child(f), r);
  }
  template <class R>
  void Recs(std::string_view f, std::vector<R>& out, std::size_t) {
    const auto* v = Get(f, &nlohmann::json::is_array, "an array");
    if (v == nullptr) return;
    out.clear();
    for (std::size_t i = 0; i < v->size() && error_->empty(); ++i) {
      Read((*v)[i], Child(std::string(f) + "[" + std::to_string(i) + "]"), out.emplace_back());
    }
  }
  template <class R>
  void Opt(std::string_view f, std::optional<R>& o) {
    o.reset();
    if (!error_->empty()) return;
    auto it = obj_.find(std::string(f));
    if (it == obj_.end()) return Fail(f, "missing", nullptr);
    if (it->is_null()) return;
    Read(*it, Child(f), o.emplace());
  }

  template <class R>
  static void Read(const nlohmann::json& j, std::string path, R& r, std::string* error) {
    JsonIn in(j, std::move(path), error);
    if (error->empty()) VisitFields(in, r);
  }

 private:
  template <class R>
  void Read(const nlohmann::json& j, std::string path, R& r) { Read(j, std::move(path), r, error_); }
  std::string Child(std::string_view f) const { return path_.empty() ? std::string(f) : path_ + "." + std::string(f); }
  void Fail(std::string_view f, std::string_view what, const nlohmann::json& got) {
    if (!error_->empty()) return;
    std::string where = Child(f);
    *error_ = (where.empty() ? std::string("document") : where) + ": " + std::string(what);
    if (!got.is_null() || what != "missing") *error_ += ", got " + got.dump().substr(0, 80);
  }
  const nlohmann::json* Get(std::string_view f, bool (nlohmann::json::*is)() const noexcept, const char* want) {
    if (!error_->empty()) return nullptr;
    auto it = obj_.find(std::string(f));
    if (it == obj_.end()) {
      Fail(f, "missing", nullptr);
      return nullptr;
    }
    if (!((*it).*is)()) {
      Fail(f, std::string("expected ") + want, *it);
      return nullptr;
    }
    return &*it;
  }

  const nlohmann::json& obj_;
  std::string path_;
  std::string* error_;
};

template <class R>
nlohmann::json ToJson(const R& r) {
  return JsonOut::Of(r);
}

// InvalidArgument("<what>: <path>: <problem>") when `j` is not an R.
template <class R>
Status FromJson(const nlohmann::json& j, R* out, std::string_view what, std::string path = "") {
  std::string error;
  JsonIn::Read(j, std::move(path), *out, &error);
  if (!error.empty()) return Status::InvalidArgument(std::string(what) + ": " + error);
  return Status::Ok();
}

}  // namespace radlads::codec
