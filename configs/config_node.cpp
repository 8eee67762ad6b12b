#include "configs/config_node.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <exception>
#include <sstream>
#include <string>

#include "base/file.h"

namespace radlads::config {
namespace {

// Records where each document starts; ignores the rest.
class DocumentCounter final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Converts a yaml-cpp node; `path` is the dotted key path used in messages.
class Converter {
 public:
  explicit Converter(std::string_view source) : source_(source) {}
  static constexpr int kMaxDepth = 64;

  Status Convert(const YAML::Node& in, const std::string& path, int owner_line, ConfigNode* out) {
    const YAML::Mark mark = in.Mark();
    out->line = mark.is_null() ? owner_line : mark.line + 1;
    out->column = mark.is_null() ? 1 : mark.column + 1;
    // An alias of a mapping that contains it makes the document infinite (found by
    // tests/fuzz/config_yaml_fuzz.cpp: the conversion recursed until the stack overflowed).
    struct Depth {
      int& d;
      explicit Depth(int& v) : d(++v) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxDepth) {
      return Status::InvalidArgument(Where(out->line, path) + "nested more than " + std::to_string(kMaxDepth) +
                                     " levels deep (an alias of a mapping that contains it?)");
    }
    const std::string& tag = in.Tag();
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out->kind = ConfigNode::Kind::kNull;
        out->line = owner_line;  // yaml-cpp marks an empty value at the next token
        return Status::Ok();
      case YAML::NodeType::Scalar:
        if (tag != "?" && tag != "!") return TagError(path, out->line, tag);
        out->kind = ConfigNode::Kind::kScalar;
        out->scalar = in.Scalar();
        out->quoted = tag == "!";
        return Status::Ok();
      case YAML::NodeType::Sequence: {
        if (tag != "?" && !tag.empty()) return TagError(path, out->line, tag);
        out->kind = ConfigNode::Kind::kSeq;
        out->line = owner_line > 0 ? owner_line : out->line;
        int i = 0;
        for (const YAML::Node& item : in) {
          ConfigNode child;
          RADLADS_RETURN_IF_ERROR(Convert(item, path + "[" + std::to_string(i++) + "]",
                                          item.Mark().is_null() ? out->line : item.Mark().line + 1,
                                          &child));
          out->items.push_back(std::move(child));
        }
        return Status::Ok();
      }
      case YAML::NodeType::Map: {
        if (tag != "?" && !tag.empty()) return TagError(path, out->line, tag);
        out->kind = ConfigNode::Kind::kMap;
        out->line = owner_line > 0 ? owner_line : out->line;
        for (auto it = in.begin(); it != in.end(); ++it) {
          const YAML::Mark km = it->first.Mark();
          const int key_line = km.is_null() ? out->line : km.line + 1;
          if (!it->first.IsScalar() || it->first.Tag() != "?") {
            return Status::InvalidArgument(Where(key_line, path) +
                                           "mapping keys must be plain words");
          }
          ConfigMapEntry entry;
          entry.key = it->first.Scalar();
          entry.key_line = key_line;
          entry.key_column = km.is_null() ? 1 : km.column + 1;
          if (const ConfigMapEntry* first = out->Find(entry.key)) {
            return Status::InvalidArgument(Where(key_line, path) + "duplicate key `" + entry.key +
                                           "` (first at line " + std::to_string(first->key_line) +
                                           ")");
          }
          const std::string child_path = path.empty() ? entry.key : path + "." + entry.key;
          // Collections and nulls report the key's line; scalars their own.
          RADLADS_RETURN_IF_ERROR(
              Convert(it->second, child_path, it->second.IsScalar() ? 0 : key_line, &entry.value));
          if (entry.value.IsScalar() && entry.value.line == 0) entry.value.line = key_line;
          out->entries.push_back(std::move(entry));
        }
        return Status::Ok();
      }
    }
    return Status::Internal(Where(out->line, path) + "unknown YAML node type");
  }

  std::string Where(int line, const std::string& path) const {
    std::string s = source_ + ":" + std::to_string(line) + ": ";
    if (!path.empty()) s += path + ": ";
    return s;
  }

 private:
  Status TagError(const std::string& path, int line, const std::string& tag) const {
    return Status::InvalidArgument(Where(line, path) + "YAML tags are not supported (found `" +
                                   tag + "`); write the plain value");
  }

  std::string source_;
  int depth_ = 0;
};

}  // namespace

const ConfigMapEntry* ConfigNode::Find(std::string_view key) const {
  for (const ConfigMapEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string ConfigNode::Describe() const {
  switch (kind) {
    case Kind::kNull: return "null";
    case Kind::kMap: return "a mapping";
    case Kind::kSeq: return "a list";
    case Kind::kScalar: break;
  }
  if (quoted) return "\"" + scalar + "\"";
  return scalar;
}

Result<ConfigNode> ParseYamlText(std::string_view text, std::string_view source) {
  const std::string src(source);
  // YAML text is UTF-8 without control characters but tab, LF and CR (the YAML 1.2 spec,
  // sections 5.1 and 5.2).
  // yaml-cpp 0.7 loops forever on a NUL byte and on some invalid UTF-8, so both are refused
  // before it sees the text.
  int line = 1;
  for (std::size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", b);
    if (b == '\n') ++line;
    if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f) {
      return Status::InvalidArgument(src + ":" + std::to_string(line) + ": a control character (byte " + hex +
                                     ") in YAML text; is this a text file?");
    }
    if (b < 0x80) {
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation bytes 10xxxxxx, no
    // overlong forms, no surrogates, nothing above U+10FFFF.
    const std::size_t n = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    bool ok = n > 0 && i + n <= text.size();
    for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (ok && n >= 3) {
      const auto b1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(b == 0xe0 && b1 < 0xa0) && !(b == 0xed && b1 >= 0xa0) && !(b == 0xf0 && b1 < 0x90) &&
           !(b == 0xf4 && b1 >= 0x90);
    }
    if (!ok) {
      return Status::InvalidArgument(src + ":" + std::to_string(line) + ": not UTF-8 (byte " + hex +
                                     "); YAML files are UTF-8 text");
    }
    i += n;
  }
  // Documents are counted with the parser's events, at most two: yaml-cpp 0.7's LoadAll loops
  // forever on text where a "document" consumes nothing (", " alone), so it is not used.
  YAML::Node doc;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.starts.size() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.starts.empty()) {
      return Status::InvalidArgument(src + ":1: the file is empty; expected a mapping of keys");
    }
    if (counter.starts.size() > 1) {
      const YAML::Mark& m = counter.starts[1];
      if (m.pos == counter.starts[0].pos) {
        return Status::InvalidArgument(src + ":" + std::to_string(m.line + 1) +
                                       ": YAML syntax error: the text cannot be read as a document (column " +
                                       std::to_string(m.column + 1) + ")");
      }
      return Status::InvalidArgument(src + ":" + std::to_string(m.line + 1) +
                                     ": expected one YAML document, found more (remove the `---` separator)");
    }
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    std::string msg = src + ":" + std::to_string(line) + ": YAML syntax error: " + e.msg;
    if (!e.mark.is_null()) msg += " (column " + std::to_string(e.mark.column + 1) + ")";
    return Status::InvalidArgument(std::move(msg));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(src + ":1: YAML could not be read: " + e.what());
  }
  Converter converter(src);
  ConfigNode root;
  try {
    RADLADS_RETURN_IF_ERROR(converter.Convert(doc, "", 0, &root));
  } catch (const std::exception& e) {  // yaml-cpp accessors may throw on malformed trees
    return Status::InvalidArgument(src + ":1: YAML could not be read: " + e.what());
  }
  if (!root.IsMap()) {
    return Status::InvalidArgument(src + ":" + std::to_string(root.line > 0 ? root.line : 1) +
                                   ": expected a mapping of keys at the top level, got " +
                                   root.Describe());
  }
  if (root.entries.empty()) root.line = 1;
  return root;
}

Result<ConfigNode> ParseYamlFile(const std::string& path) {
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseYamlText(text, path);
}

}  // namespace radlads::config
