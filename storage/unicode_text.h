// UTF-8 text helpers for the Qwen2 tokenizer (storage/qwen2_tokenizer.h): the invalid-input
// policy, NFC normalisation (utf8proc) and the code point classes its pre-tokenizer regex uses.
//
// Invalid UTF-8 policy: ReplaceInvalidUtf8 substitutes U+FFFD for each maximal subpart of an
// ill-formed sequence (The Unicode Standard, ch. 3 "U+FFFD Substitution of Maximal Subparts"),
// which is exactly what Python's `bytes.decode("utf-8", errors="replace")` produces. Overlong
// forms, surrogates (ED A0..BF ..) and code points above U+10FFFF are ill-formed.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace radlads {

// True when `text` is well-formed UTF-8 (NUL bytes are allowed).
bool IsValidUtf8(std::string_view text);

// `text` with every maximal invalid subpart replaced by U+FFFD (EF BF BD); valid input is
// returned unchanged.
std::string ReplaceInvalidUtf8(std::string_view text);

// Unicode Normalization Form C of well-formed UTF-8 `text` (utf8proc, Unicode 15 tables). Text
// whose bytes are all below 0xCC (every code point < U+0300, all NFC-stable) is returned
// without calling utf8proc. Precondition: IsValidUtf8(text); aborts only if utf8proc reports
// an error for valid input (out of memory).
std::string NfcNormalize(std::string_view text);
// True when every byte of `text` is below 0xCC (all code points < U+0300): NFC is the identity.
bool IsBelowU0300(std::string_view text);

// The classes of the Qwen2 split regex: \p{L} (Lu Ll Lt Lm Lo), \p{N} (Nd Nl No), the two
// characters \r and \n, the rest of \s (Unicode White_Space: U+0009, U+000B, U+000C, U+0020,
// U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), and other.
enum class CharClass : std::uint8_t {
  kLetter,
  kNumber,
  kNewline,  // U+000A or U+000D
  kSpace,    // White_Space other than \r and \n
  kOther,
};
CharClass ClassifyCodePoint(char32_t cp);

// Rust regex's \w, as Hugging Face uses it for an added token's single_word flag: letters,
// marks, decimal and letter numbers, connector punctuation, ZWNJ and ZWJ.
bool IsWordCodePoint(char32_t cp);

// Decodes the code point at `p` of well-formed UTF-8 (at least one byte available; the
// sequence must be complete). Returns its length in bytes (1..4).
inline int DecodeUtf8(const unsigned char* p, char32_t* cp) {
  const unsigned char b = p[0];
  if (b < 0x80) { *cp = b; return 1; }
  if (b < 0xE0) { *cp = (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F); return 2; }
  if (b < 0xF0) {
    *cp = (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  *cp = (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
        (p[3] & 0x3F);
  return 4;
}

// Appends the UTF-8 encoding of `cp` (< 0x110000, not a surrogate) to `out`.
void AppendUtf8(char32_t cp, std::string* out);

}  // namespace radlads
