#include "storage/qwen2_pretokenizer.h"

#include <array>
#include <cstddef>
#include <cstdint>

#include "storage/unicode_text.h"

namespace radlads {

const std::string_view kQwen2SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

const std::array<CharClass, 128>& AsciiClasses() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = ClassifyCodePoint(c);
    return t;
  }();
  return table;
}

// A cursor over well-formed UTF-8: the class and length of the code point at a byte offset.
class Scanner {
 public:
  explicit Scanner(std::string_view text)
      : s_(reinterpret_cast<const unsigned char*>(text.data())), n_(text.size()),
        ascii_(AsciiClasses()) {}

  std::size_t size() const { return n_; }
  unsigned char Byte(std::size_t i) const { return s_[i]; }

  // Class of the code point at i (< n_); *len receives its byte length.
  CharClass At(std::size_t i, int* len) const {
    if (s_[i] < 0x80) { *len = 1; return ascii_[s_[i]]; }
    char32_t cp;
    *len = DecodeUtf8(s_ + i, &cp);
    return ClassifyCodePoint(cp);
  }
  CharClass ClassAt(std::size_t i) const { int len; return At(i, &len); }

  // End of the run of `cls` starting at i.
  std::size_t RunEnd(std::size_t i, CharClass cls) const {
    int len;
    while (i < n_ && At(i, &len) == cls) i += static_cast<std::size_t>(len);
    return i;
  }

 private:
  const unsigned char* s_;
  std::size_t n_;
  const std::array<CharClass, 128>& ascii_;
};

bool IsLetterIn(unsigned char b, char lower) { return b == lower || b == lower - 'a' + 'A'; }

// End of the contraction at i (an apostrophe), or 0.
std::size_t Contraction(const Scanner& sc, std::size_t i) {
  const std::size_t n = sc.size();
  if (i + 1 >= n) return 0;
  const unsigned char b1 = sc.Byte(i + 1);
  if (IsLetterIn(b1, 's') || IsLetterIn(b1, 't') || IsLetterIn(b1, 'm') || IsLetterIn(b1, 'd')) {
    return i + 2;
  }
  if (i + 2 >= n) return 0;
  const unsigned char b2 = sc.Byte(i + 2);
  if (b1 == 0xC5 && b2 == 0xBF) return i + 3;  // U+017F folds to 's'
  if ((IsLetterIn(b1, 'r') || IsLetterIn(b1, 'v')) && IsLetterIn(b2, 'e')) return i + 3;
  if (IsLetterIn(b1, 'l') && IsLetterIn(b2, 'l')) return i + 3;
  return 0;
}

// End of the piece that starts at i (< size).
std::size_t MatchAt(const Scanner& sc, std::size_t i) {
  const std::size_t n = sc.size();
  if (sc.Byte(i) == '\'') {
    if (std::size_t e = Contraction(sc, i)) return e;
  }
  int len0;
  const CharClass c0 = sc.At(i, &len0);
  const std::size_t i1 = i + static_cast<std::size_t>(len0);
  // 2. [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0 == CharClass::kLetter) return sc.RunEnd(i1, CharClass::kLetter);
  const bool have1 = i1 < n;
  const CharClass c1 = have1 ? sc.ClassAt(i1) : CharClass::kOther;
  if ((c0 == CharClass::kSpace || c0 == CharClass::kOther) && have1 && c1 == CharClass::kLetter) {
    return sc.RunEnd(i1, CharClass::kLetter);
  }
  // 3. \p{N}
  if (c0 == CharClass::kNumber) return i1;
  // 4. ' '?[^\s\p{L}\p{N}]+[\r\n]*
  std::size_t k = i;
  if (sc.Byte(i) == ' ' && have1 && c1 == CharClass::kOther) k = i1;
  if (k != i || c0 == CharClass::kOther) {
    const std::size_t e = sc.RunEnd(k, CharClass::kOther);
    return sc.RunEnd(e, CharClass::kNewline);
  }
  // Whitespace from here on (c0 is kSpace or kNewline).
  std::size_t p = i, last_start = i, newline_end = 0;
  int len;
  while (p < n) {
    const CharClass c = sc.At(p, &len);
    if (c != CharClass::kSpace && c != CharClass::kNewline) break;
    if (c == CharClass::kNewline) newline_end = p + static_cast<std::size_t>(len);
    last_start = p;
    p += static_cast<std::size_t>(len);
  }
  if (newline_end != 0) return newline_end;  // 5. \s*[\r\n]+
  if (p == n) return p;                      // 6. \s+(?!\S) at the end
  if (last_start > i) return last_start;     // 6. backtracked by one character
  return p;                                  // 7. \s+
}

}  // namespace

void SplitQwen2Pieces(std::string_view text, std::vector<std::string_view>* pieces) {
  const Scanner sc(text);
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t e = MatchAt(sc, i);
    pieces->push_back(text.substr(i, e - i));
    i = e;
  }
}

}  // namespace radlads
