// The strict schema walker behind every radlads YAML file (model presets, recipes, clusters).
//
// A Schema<T> is a declarative field table: for each key its type, range, whether it is required
// or its default, what it means and which spec section it comes from. The same table drives
// reading (Schema::Read) and the reference tables in docs/configs.md (Schema::AppendDocs), so
// the two cannot drift; tests/configs/docs_test.cpp compares them.
//
// Reading contract:
// - Unknown keys, wrong types, out-of-range values and missing required keys are errors; nothing
//   is ignored and nothing is coerced. Every message is
//   "<file>:<line>: <key.path>: <what was expected>, got <what was found>", e.g.
//   "my-recipe.yaml:14: steps.align.batch: expected a positive integer, got -3".
//   Unknown keys carry a near-miss suggestion ("did you mean `warmup_steps`?"). A missing key
//   names the line of the mapping that lacks it.
// - Integers: optional sign, digits, `_` separators (100_000_000); no leading zeros (YAML 1.1
//   would read 010 as octal), no floats. Numbers: integers or decimals with an optional exponent
//   (1.0e-5); never inf or nan. Booleans: true or false only (not yes/no/on/off, not 0/1).
//   Quoted scalars are strings and never numbers or booleans. Null is never a value: omit a key
//   to get its default.
// - A field absent from the YAML leaves the destination untouched, so the struct's own
//   initialisers are the defaults; FieldInfo::default_text must say the same thing (the docs
//   test checks the shipped tables against docs/configs.md, and each module's tests check the
//   defaults it documents).
// - Check functions run after a mapping's fields are read; they see which keys were written
//   (MapView::Has) so defaults may depend on other fields and inapplicable keys can be refused.
// Everything here is in namespace radlads::config (generic names kept out of radlads).
// Never throws. Thread-safety: a Schema is immutable after construction and may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "configs/config_node.h"

namespace radlads::config {

// One row of a reference table in docs/configs.md.
struct FieldDoc {
  std::string key;           // dotted path: "steps.align.lr.init"
  std::string type;          // "integer", "number", "`true` or `false`", "mapping", ...
  std::string range;         // "≥ 1", "(0, 1]", or ""
  std::string default_text;  // "required", or the default as written in YAML
  std::string doc;           // meaning
  std::string source;        // where the number or rule comes from ("docs/spec.md §2.6")
};

struct FieldInfo {
  bool required = false;
  std::string default_text;  // shown in the docs when not required
  std::string doc;
  std::string source;
};

struct IntRange {
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();
};

struct RealRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;  // (min, ...
  bool max_open = false;  // ..., max)
};

template <typename E>
struct EnumName {
  std::string name;
  E value;
  bool alias = false;  // accepted, but not listed as the canonical spelling
};

// Where a value sits, for messages.
struct ValueContext {
  std::string source;  // file name
  std::string path;    // dotted key path
  int line = 0;        // 1-based
  // "<source>:<line>: <path>: <msg>" as InvalidArgument.
  Status Error(std::string_view msg) const;
  // "expected <expected>, got <found>".
  Status Expected(std::string_view expected, const ConfigNode& found) const;
};

// A read-only view of one mapping, for Check functions.
class MapView {
 public:
  // `map` may be null (an absent optional mapping); it must outlive the view.
  MapView(std::string source, std::string path, int line, const ConfigNode* map)
      : source_(std::move(source)), path_(std::move(path)), line_(line), map_(map) {}

  // True when the dotted relative key ("mixer.init") is written in the YAML.
  bool Has(std::string_view rel) const;
  // Context of a relative key: its value's line when written, else this mapping's line.
  ValueContext At(std::string_view rel) const;
  Status Error(std::string_view rel, std::string_view msg) const { return At(rel).Error(msg); }
  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  int line() const { return line_; }

 private:
  const ConfigNode* Find(std::string_view rel) const;
  std::string source_;
  std::string path_;
  int line_;
  const ConfigNode* map_;
};

// Scalar readers shared by the schema and by custom fields.
Status ReadIntValue(const ConfigNode& n, const ValueContext& at, IntRange range, std::int64_t* out);
Status ReadRealValue(const ConfigNode& n, const ValueContext& at, RealRange range, double* out);
Status ReadBoolValue(const ConfigNode& n, const ValueContext& at, bool* out);
Status ReadStringValue(const ConfigNode& n, const ValueContext& at, std::string* out);
// `auto` -> 0; otherwise an integer in `range` (which must exclude 0).
Status ReadIntOrAutoValue(const ConfigNode& n, const ValueContext& at, IntRange range,
                          std::int64_t* out);
// Index into `names` (canonical names first in docs; any may match).
Status ReadEnumIndex(const ConfigNode& n, const ValueContext& at,
                     const std::vector<std::string>& names, const std::vector<bool>& alias,
                     std::size_t* index);

// "a positive integer", "an integer in [1, 64]", ... and "≥ 1", "[1, 64]" for the docs.
std::string DescribeIntRange(IntRange r);
std::string IntRangeText(IntRange r);
std::string DescribeRealRange(RealRange r);
std::string RealRangeText(RealRange r);
// Shortest formatting that reads back to the same double ("1e-05", "0.9", "1000000").
std::string FormatReal(double v);

// The closest of `known` to `unknown` by edit distance, or "" when nothing is close.
std::string SuggestKey(std::string_view unknown, const std::vector<std::string>& known);

// The markdown table of a schema's rows (header included), one row per FieldDoc.
std::string RenderFieldTable(const std::vector<FieldDoc>& rows);

template <typename T>
class Schema {
 public:
  using ReadFn = std::function<Status(const ConfigNode& value, const ValueContext& at, T* out)>;
  using CheckFn = std::function<Status(T* out, const MapView& map)>;
  using DocsFn = std::function<void(const std::string& prefix, std::vector<FieldDoc>* out)>;

  // Any field: `read` is called only when the key is present.
  Schema& Custom(std::string key, std::string type, std::string range, FieldInfo info,
                 ReadFn read) {
    fields_.push_back(Field{std::move(key), std::move(type), std::move(range), std::move(info),
                            std::move(read), nullptr});
    return *this;
  }

  // `acc` is a data-member pointer or a callable T& -> V&.
  template <typename Acc>
  Schema& Int(std::string key, Acc acc, IntRange range, FieldInfo info) {
    return Custom(std::move(key), "integer", IntRangeText(range), std::move(info),
                  [acc, range](const ConfigNode& n, const ValueContext& at, T* out) {
                    return ReadIntValue(n, at, range, &std::invoke(acc, *out));
                  });
  }
  template <typename Acc>
  Schema& IntOrAuto(std::string key, Acc acc, IntRange range, FieldInfo info) {
    return Custom(std::move(key), "integer or `auto`", IntRangeText(range), std::move(info),
                  [acc, range](const ConfigNode& n, const ValueContext& at, T* out) {
                    return ReadIntOrAutoValue(n, at, range, &std::invoke(acc, *out));
                  });
  }
  template <typename Acc>
  Schema& Real(std::string key, Acc acc, RealRange range, FieldInfo info) {
    return Custom(std::move(key), "number", RealRangeText(range), std::move(info),
                  [acc, range](const ConfigNode& n, const ValueContext& at, T* out) {
                    return ReadRealValue(n, at, range, &std::invoke(acc, *out));
                  });
  }
  template <typename Acc>
  Schema& Bool(std::string key, Acc acc, FieldInfo info) {
    return Custom(std::move(key), "`true` or `false`", "", std::move(info),
                  [acc](const ConfigNode& n, const ValueContext& at, T* out) {
                    return ReadBoolValue(n, at, &std::invoke(acc, *out));
                  });
  }
  template <typename Acc>
  Schema& String(std::string key, Acc acc, FieldInfo info) {
    return Custom(std::move(key), "string", "non-empty", std::move(info),
                  [acc](const ConfigNode& n, const ValueContext& at, T* out) {
                    return ReadStringValue(n, at, &std::invoke(acc, *out));
                  });
  }
  template <typename E, typename Acc>
  Schema& Enum(std::string key, Acc acc, std::vector<EnumName<E>> values, FieldInfo info) {
    std::vector<std::string> names;
    std::vector<bool> alias;
    std::string type;
    for (const EnumName<E>& v : values) {
      names.push_back(v.name);
      alias.push_back(v.alias);
      if (!v.alias) type += (type.empty() ? "`" : " | `") + v.name + "`";
    }
    return Custom(std::move(key), type, "", std::move(info),
                  [acc, values, names, alias](const ConfigNode& n, const ValueContext& at, T* out) {
                    std::size_t i = 0;
                    RADLADS_RETURN_IF_ERROR(ReadEnumIndex(n, at, names, alias, &i));
                    std::invoke(acc, *out) = values[i].value;
                    return Status::Ok();
                  });
  }
  // A nested mapping read with `sub`. When absent and not required, `sub` still runs on an
  // empty mapping so its checks can apply defaults.
  template <typename S, typename Acc>
  Schema& Struct(std::string key, Acc acc, Schema<S> sub, FieldInfo info) {
    const bool required = info.required;
    std::string k = key;
    Custom(std::move(key), "mapping", "", std::move(info),
           [acc, sub](const ConfigNode& n, const ValueContext& at, T* out) {
             return sub.Read(n, at.source, at.path, &std::invoke(acc, *out));
           });
    fields_.back().docs = [sub](const std::string& prefix, std::vector<FieldDoc>* out) {
      sub.AppendDocs(prefix, out);
    };
    if (!required) {
      absent_.push_back([k, acc, sub](const MapView& parent, T* out) {
        ValueContext at = parent.At(k);
        ConfigNode empty;
        empty.kind = ConfigNode::Kind::kMap;
        empty.line = at.line;
        return sub.Read(empty, at.source, at.path, &std::invoke(acc, *out));
      });
    } else {
      absent_.push_back(nullptr);
    }
    absent_keys_.push_back(std::move(k));
    return *this;
  }
  // A nested mapping read only when written; when absent the member keeps its value and the
  // parent's checks decide whether that is allowed.
  template <typename S, typename Acc>
  Schema& StructIfPresent(std::string key, Acc acc, Schema<S> sub, FieldInfo info) {
    Custom(std::move(key), "mapping", "", std::move(info),
           [acc, sub](const ConfigNode& n, const ValueContext& at, T* out) {
             return sub.Read(n, at.source, at.path, &std::invoke(acc, *out));
           });
    fields_.back().docs = [sub](const std::string& prefix, std::vector<FieldDoc>* out) {
      sub.AppendDocs(prefix, out);
    };
    return *this;
  }
  // A nested mapping that may be absent altogether (std::optional<S> stays empty).
  template <typename S, typename Acc>
  Schema& OptionalStruct(std::string key, Acc acc, Schema<S> sub, FieldInfo info) {
    Custom(std::move(key), "mapping", "", std::move(info),
           [acc, sub](const ConfigNode& n, const ValueContext& at, T* out) {
             S value{};
             RADLADS_RETURN_IF_ERROR(sub.Read(n, at.source, at.path, &value));
             std::invoke(acc, *out) = std::move(value);
             return Status::Ok();
           });
    fields_.back().docs = [sub](const std::string& prefix, std::vector<FieldDoc>* out) {
      sub.AppendDocs(prefix, out);
    };
    return *this;
  }

  // Cross-field rule or default, run after this mapping's fields are read.
  Schema& Check(CheckFn fn) {
    checks_.push_back(std::move(fn));
    return *this;
  }

  // Reads mapping `map` (at dotted `path`, "" for the top level) into *out.
  Status Read(const ConfigNode& map, const std::string& source, const std::string& path,
              T* out) const {
    ValueContext here{source, path, map.line};
    if (!map.IsMap()) return here.Expected("a mapping", map);
    std::vector<std::string> known;
    for (const Field& f : fields_) known.push_back(f.key);
    for (const ConfigMapEntry& e : map.entries) {
      const Field* f = FindField(e.key);
      ValueContext at{source, Join(path, e.key), e.value.line};
      if (f == nullptr) return UnknownKey(e, source, path, known);
      if (e.value.IsNull()) {
        return at.Error("expected a value (" + f->type +
                        "), got null (omit the key to use its default)");
      }
      RADLADS_RETURN_IF_ERROR(f->read(e.value, at, out));
    }
    MapView view(source, path, map.line, &map);
    for (const Field& f : fields_) {
      if (map.Find(f.key) != nullptr) continue;
      if (f.info.required) {
        return here.Error("missing required key `" + f.key + "` (" + f.info.doc + ")");
      }
    }
    for (std::size_t i = 0; i < absent_.size(); ++i) {
      if (absent_[i] && map.Find(absent_keys_[i]) == nullptr) {
        RADLADS_RETURN_IF_ERROR(absent_[i](view, out));
      }
    }
    for (const CheckFn& check : checks_) RADLADS_RETURN_IF_ERROR(check(out, view));
    return Status::Ok();
  }

  // Appends one row per field (and the rows of nested mappings), keys prefixed by `prefix`.
  void AppendDocs(const std::string& prefix, std::vector<FieldDoc>* out) const {
    for (const Field& f : fields_) {
      const std::string key = Join(prefix, f.key);
      out->push_back(FieldDoc{key, f.type, f.range,
                              f.info.required ? "required" : f.info.default_text, f.info.doc,
                              f.info.source});
      if (f.docs) f.docs(key, out);
    }
  }

  std::vector<FieldDoc> Docs(const std::string& prefix = "") const {
    std::vector<FieldDoc> rows;
    AppendDocs(prefix, &rows);
    return rows;
  }

 private:
  struct Field {
    std::string key;
    std::string type;
    std::string range;
    FieldInfo info;
    ReadFn read;
    DocsFn docs;
  };

  static std::string Join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

  const Field* FindField(std::string_view key) const {
    for (const Field& f : fields_) {
      if (f.key == key) return &f;
    }
    return nullptr;
  }

  static Status UnknownKey(const ConfigMapEntry& e, const std::string& source,
                           const std::string& path, const std::vector<std::string>& known) {
    ValueContext at{source, Join(path, e.key), e.key_line};
    std::string msg = "unknown key";
    std::string hint = SuggestKey(e.key, known);
    if (!hint.empty()) msg += "; did you mean `" + hint + "`?";
    msg += " (";
    msg += path.empty() ? "top-level keys" : "keys of " + path;
    msg += ": ";
    for (std::size_t i = 0; i < known.size(); ++i) msg += (i ? ", " : "") + known[i];
    msg += ")";
    return at.Error(msg);
  }

  std::vector<Field> fields_;
  std::vector<CheckFn> checks_;
  std::vector<std::function<Status(const MapView&, T*)>> absent_;
  std::vector<std::string> absent_keys_;
};

// Parses `text` and reads it with `schema` into a default-constructed T.
template <typename T>
Result<T> ReadYamlText(std::string_view text, std::string_view source, const Schema<T>& schema) {
  RADLADS_ASSIGN_OR_RETURN(ConfigNode root, ParseYamlText(text, source));
  T value{};
  RADLADS_RETURN_IF_ERROR(schema.Read(root, std::string(source), "", &value));
  return value;
}

}  // namespace radlads::config
