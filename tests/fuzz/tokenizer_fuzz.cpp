// libFuzzer target for the Qwen2 tokenizer (storage/qwen2_tokenizer.h). The first input byte
// picks the mode, the rest is the data:
//   even  the data is a tokenizer.json (Qwen2Tokenizer::Parse); when it parses, the tokenizer
//         also encodes and decodes a fixed text;
//   odd   the data is arbitrary bytes encoded with the real Qwen2.5 tokenizer
//         (data/qwen2.5-tokenizer/, loaded once).
// Properties: no crash, no sanitizer report, no exception escapes; a parse error names the
// source; every id is below vocab_size() and decodes; the decoded text is valid UTF-8; ASCII
// input decodes back to itself (ASCII is NFC-stable and needs no replacement).
// Seeds: tests/fuzz/corpus/tokenizer_fuzz/ (the byte tokenizer's tokenizer.json and a small
// BPE one, each behind an even byte; text with special tokens, CJK, emoji, invalid UTF-8,
// behind an odd byte).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "storage/qwen2_tokenizer.h"
#include "storage/unicode_text.h"

namespace {

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

const radlads::Qwen2Tokenizer& Real() {
  static const radlads::Qwen2Tokenizer* tok = [] {
    auto t = radlads::Qwen2Tokenizer::Load(std::string(RADLADS_SOURCE_DIR) + "/data/qwen2.5-tokenizer");
    if (!t.ok()) Die("cannot load the Qwen2.5 tokenizer", t.status().ToString());
    return new radlads::Qwen2Tokenizer(std::move(t).value());
  }();
  return *tok;
}

void CheckIds(const radlads::Qwen2Tokenizer& tok, std::string_view text) {
  const std::vector<std::uint32_t> ids = tok.Encode(text);
  for (std::uint32_t id : ids) {
    if (id >= tok.vocab_size()) Die("id out of range", std::to_string(id));
  }
  auto back = tok.Decode(ids);
  if (!back.ok()) Die("an encoded id does not decode", back.status().ToString());
  if (!radlads::IsValidUtf8(*back)) Die("decoded text is not valid UTF-8", *back);
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii && *back != text) Die("ASCII text does not round-trip", std::string(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    auto t = radlads::Qwen2Tokenizer::Parse(text, "fuzz.json");
    if (!t.ok()) {
      if (t.status().message().find("fuzz.json") == std::string::npos) {
        Die("an error without the source", t.status().ToString());
      }
      return 0;
    }
    CheckIds(*t, "Hello, world! It's 2024.\n\n  <|endoftext|>");
  } else {
    CheckIds(Real(), text);
  }
  return 0;
}
