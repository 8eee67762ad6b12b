#include "storage/unicode_text.h"

#include <cstdlib>
#include <cstring>

#include <utf8proc.h>

#include "base/check.h"

namespace radlads {
namespace {

// Length of the well-formed sequence at text[i], or 0 when it is ill-formed; in that case
// *bad is the length of the maximal subpart to replace (>= 1). Table 3-7 of the standard.
std::size_t WellFormedLength(std::string_view text, std::size_t i, std::size_t* bad) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char b = s[i];
  *bad = 1;
  if (b < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;  // 80..C1, F5..FF: never a lead byte
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= n) { *bad = k; return 0; }
    const unsigned char c = s[i + k];
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) { *bad = k; return 0; }
  }
  return static_cast<std::size_t>(need) + 1;
}

bool InRange(char32_t cp, char32_t lo, char32_t hi) { return cp >= lo && cp <= hi; }

}  // namespace

bool IsValidUtf8(std::string_view text) {
  std::size_t i = 0, bad = 0;
  while (i < text.size()) {
    if (i + 8 <= text.size()) {  // eight ASCII bytes at once
      std::uint64_t v;
      std::memcpy(&v, text.data() + i, 8);
      if ((v & 0x8080808080808080ull) == 0) { i += 8; continue; }
    }
    if (static_cast<unsigned char>(text[i]) < 0x80) { ++i; continue; }
    const std::size_t len = WellFormedLength(text, i, &bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string ReplaceInvalidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0, bad = 0;
  while (i < text.size()) {
    const std::size_t len = WellFormedLength(text, i, &bad);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      i += bad;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

bool IsBelowU0300(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0xCC) return false;
  }
  return true;
}

std::string NfcNormalize(std::string_view text) {
  if (IsBelowU0300(text)) return std::string(text);
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t len =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &dst,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  RADLADS_CHECK(len >= 0) << "utf8proc_map failed on valid UTF-8: " << utf8proc_errmsg(len);
  std::string out(reinterpret_cast<const char*>(dst), static_cast<std::size_t>(len));
  std::free(dst);
  return out;
}

CharClass ClassifyCodePoint(char32_t cp) {
  if (cp == '\n' || cp == '\r') return CharClass::kNewline;
  if (cp == '\t' || cp == 0x0B || cp == 0x0C || cp == ' ' || cp == 0x85 || cp == 0xA0 ||
      cp == 0x1680 || InRange(cp, 0x2000, 0x200A) || cp == 0x2028 || cp == 0x2029 ||
      cp == 0x202F || cp == 0x205F || cp == 0x3000) {
    return CharClass::kSpace;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::kNumber;
    default:
      return CharClass::kOther;
  }
}

bool IsWordCodePoint(char32_t cp) {
  if (cp == '_' || cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace radlads
