#include "configs/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace radlads::config {
namespace {

std::string JoinPath2(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  if (key.empty()) return std::string(prefix);
  return std::string(prefix) + "." + std::string(key);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Removes `_` separators that sit between two digits; false if any `_` is elsewhere.
bool StripUnderscores(std::string_view in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '_') {
      if (i == 0 || i + 1 == in.size() || !IsDigit(in[i - 1]) || !IsDigit(in[i + 1])) {
        return false;
      }
      continue;
    }
    out->push_back(in[i]);
  }
  return true;
}

// Plain decimal integer: [+-]?(0|[1-9][0-9]*) after separators are removed.
bool ParseInt(std::string_view text, std::int64_t* out) {
  std::string s;
  if (!StripUnderscores(text, &s) || s.empty()) return false;
  std::size_t i = 0;
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    i = 1;
  }
  if (i >= s.size()) return false;
  if (s[i] == '0' && i + 1 < s.size()) return false;  // leading zero: octal in YAML 1.1
  for (std::size_t j = i; j < s.size(); ++j) {
    if (!IsDigit(s[j])) return false;
  }
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data() + i, s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return false;
  *out = negative ? -v : v;
  return true;
}

// [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?, finite.
bool ParseReal(std::string_view text, double* out) {
  std::string s;
  if (!StripUnderscores(text, &s) || s.empty()) return false;
  std::size_t i = 0;
  if (s[0] == '+' || s[0] == '-') i = 1;
  const std::size_t mantissa_begin = i;
  std::size_t digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && IsDigit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  if (i != s.size()) return false;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data() + mantissa_begin, s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = s[0] == '-' ? -v : v;
  return true;
}

bool InRange(double v, const RealRange& r) {
  if (r.min_open ? !(v > r.min) : !(v >= r.min)) return false;
  if (r.max_open ? !(v < r.max) : !(v <= r.max)) return false;
  return true;
}

constexpr std::int64_t kIntMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kIntMax = std::numeric_limits<std::int64_t>::max();

// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of
// adjacent characters ("cuont" -> "count") each cost 1.
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string EscapeCell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

}  // namespace

Status ValueContext::Error(std::string_view msg) const {
  std::string s = source + ":" + std::to_string(line > 0 ? line : 1) + ": ";
  if (!path.empty()) s += path + ": ";
  s += msg;
  return Status::InvalidArgument(std::move(s));
}

Status ValueContext::Expected(std::string_view expected, const ConfigNode& found) const {
  return Error("expected " + std::string(expected) + ", got " + found.Describe());
}

const ConfigNode* MapView::Find(std::string_view rel) const {
  const ConfigNode* node = map_;
  while (node != nullptr && !rel.empty()) {
    if (!node->IsMap()) return nullptr;
    const std::size_t dot = rel.find('.');
    const std::string_view head = rel.substr(0, dot);
    const ConfigMapEntry* e = node->Find(head);
    node = e ? &e->value : nullptr;
    rel = dot == std::string_view::npos ? std::string_view() : rel.substr(dot + 1);
  }
  return node;
}

bool MapView::Has(std::string_view rel) const { return !rel.empty() && Find(rel) != nullptr; }

ValueContext MapView::At(std::string_view rel) const {
  const ConfigNode* n = rel.empty() ? nullptr : Find(rel);
  return ValueContext{source_, JoinPath2(path_, rel), n != nullptr ? n->line : line_};
}

std::string DescribeIntRange(IntRange r) {
  if (r.max == kIntMax) {
    if (r.min == 1) return "a positive integer";
    if (r.min == 0) return "a non-negative integer";
    if (r.min == kIntMin) return "an integer";
    return "an integer >= " + std::to_string(r.min);
  }
  if (r.min == kIntMin) return "an integer <= " + std::to_string(r.max);
  return "an integer in [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]";
}

std::string IntRangeText(IntRange r) {
  if (r.max == kIntMax) return r.min == kIntMin ? "" : "≥ " + std::to_string(r.min);
  if (r.min == kIntMin) return "≤ " + std::to_string(r.max);
  return "[" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]";
}

std::string FormatReal(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "?";
  return std::string(buf, p);
}

std::string DescribeRealRange(RealRange r) {
  const bool lo = std::isfinite(r.min), hi = std::isfinite(r.max);
  if (!lo && !hi) return "a number";
  if (lo && !hi) {
    if (r.min == 0 && r.min_open) return "a positive number";
    if (r.min == 0) return "a non-negative number";
    return std::string("a number ") + (r.min_open ? "> " : ">= ") + FormatReal(r.min);
  }
  if (!lo) return std::string("a number ") + (r.max_open ? "< " : "<= ") + FormatReal(r.max);
  return "a number in " + RealRangeText(r);
}

std::string RealRangeText(RealRange r) {
  const bool lo = std::isfinite(r.min), hi = std::isfinite(r.max);
  if (!lo && !hi) return "";
  if (lo && !hi) return (r.min_open ? "> " : "≥ ") + FormatReal(r.min);
  if (!lo) return (r.max_open ? "< " : "≤ ") + FormatReal(r.max);
  return std::string(r.min_open ? "(" : "[") + FormatReal(r.min) + ", " + FormatReal(r.max) +
         (r.max_open ? ")" : "]");
}

Status ReadIntValue(const ConfigNode& n, const ValueContext& at, IntRange range,
                    std::int64_t* out) {
  std::int64_t v = 0;
  if (!n.IsScalar() || n.quoted || !ParseInt(n.scalar, &v) || v < range.min || v > range.max) {
    return at.Expected(DescribeIntRange(range), n);
  }
  *out = v;
  return Status::Ok();
}

Status ReadIntOrAutoValue(const ConfigNode& n, const ValueContext& at, IntRange range,
                          std::int64_t* out) {
  if (n.IsScalar() && !n.quoted && n.scalar == "auto") {
    *out = 0;
    return Status::Ok();
  }
  std::int64_t v = 0;
  if (!n.IsScalar() || n.quoted || !ParseInt(n.scalar, &v) || v < range.min || v > range.max) {
    return at.Expected("`auto` or " + DescribeIntRange(range), n);
  }
  *out = v;
  return Status::Ok();
}

Status ReadRealValue(const ConfigNode& n, const ValueContext& at, RealRange range, double* out) {
  double v = 0;
  if (!n.IsScalar() || n.quoted || !ParseReal(n.scalar, &v) || !InRange(v, range)) {
    return at.Expected(DescribeRealRange(range), n);
  }
  *out = v;
  return Status::Ok();
}

Status ReadBoolValue(const ConfigNode& n, const ValueContext& at, bool* out) {
  if (n.IsScalar() && !n.quoted) {
    const std::string& s = n.scalar;
    if (s == "true" || s == "True" || s == "TRUE") {
      *out = true;
      return Status::Ok();
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      *out = false;
      return Status::Ok();
    }
  }
  return at.Expected("true or false", n);
}

Status ReadStringValue(const ConfigNode& n, const ValueContext& at, std::string* out) {
  if (!n.IsScalar() || n.scalar.empty()) return at.Expected("a non-empty string", n);
  *out = n.scalar;
  return Status::Ok();
}

Status ReadEnumIndex(const ConfigNode& n, const ValueContext& at,
                     const std::vector<std::string>& names, const std::vector<bool>& alias,
                     std::size_t* index) {
  if (n.IsScalar()) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (n.scalar == names[i]) {
        *index = i;
        return Status::Ok();
      }
    }
  }
  std::string expected = "one of ";
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (alias[i]) continue;
    expected += (first ? "`" : ", `") + names[i] + "`";
    first = false;
  }
  std::string msg = "expected " + expected + ", got " + n.Describe();
  if (n.IsScalar()) {
    std::string hint = SuggestKey(n.scalar, names);
    if (!hint.empty()) msg += "; did you mean `" + hint + "`?";
  }
  return at.Error(msg);
}

std::string SuggestKey(std::string_view unknown, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  const std::size_t limit = std::max<std::size_t>(1, unknown.size() / 3);
  for (const std::string& k : known) {
    std::size_t d = EditDistance(unknown, k);
    // A known key inside the unknown one ("lr_init" for "init") or the other way round.
    const bool contains =
        k.size() >= 3 && unknown.size() >= 3 &&
        (unknown.find(k) != std::string_view::npos || k.find(unknown) != std::string::npos);
    if (d > limit && !contains) continue;
    if (contains) d = std::min(d, limit);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best;
}

std::string RenderFieldTable(const std::vector<FieldDoc>& rows) {
  std::string out =
      "| key | type | range | default | meaning | source |\n"
      "|---|---|---|---|---|---|\n";
  for (const FieldDoc& r : rows) {
    out += "| `" + r.key + "` | " + EscapeCell(r.type) + " | " + EscapeCell(r.range) + " | " +
           EscapeCell(r.default_text) + " | " + EscapeCell(r.doc) + " | " + EscapeCell(r.source) +
           " |\n";
  }
  return out;
}

}  // namespace radlads::config
