#include "storage/byte_tokenizer.h"

#include <array>

#include <nlohmann/json.hpp>

namespace radlads {
namespace {

// bytes_to_unicode: printable bytes keep their code point; the other 68 bytes, in ascending
// order, map to U+0100 + n. The vocabulary lists the printable ones first (in byte order), then
// the remapped ones (in byte order): that list's index is the token id.
struct ByteTables {
  std::array<std::uint32_t, 256> byte_to_id{};
  std::array<int, 256> id_to_byte{};
  std::array<std::uint32_t, 256> codepoint{};
};

bool Printable(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

const ByteTables& Tables() {
  static const ByteTables t = [] {
    ByteTables t;
    std::uint32_t next_id = 0;
    for (int b = 0; b < 256; ++b) {
      if (!Printable(b)) continue;
      t.byte_to_id[b] = next_id;
      t.id_to_byte[next_id++] = b;
      t.codepoint[b] = static_cast<std::uint32_t>(b);
    }
    std::uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      if (Printable(b)) continue;
      t.byte_to_id[b] = next_id;
      t.id_to_byte[next_id++] = b;
      t.codepoint[b] = 256 + n++;
    }
    return t;
  }();
  return t;
}

std::string Utf8(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

std::uint32_t ByteToTokenId(std::uint8_t b) { return Tables().byte_to_id[b]; }

int TokenIdToByte(std::uint32_t id) { return id < 256 ? Tables().id_to_byte[id] : -1; }

std::string ByteSymbol(std::uint8_t b) { return Utf8(Tables().codepoint[b]); }

std::vector<std::uint32_t> EncodeBytes(std::string_view text) {
  std::vector<std::uint32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(ByteToTokenId(static_cast<std::uint8_t>(c)));
  return ids;
}

std::string DecodeTokens(std::span<const std::uint32_t> ids) {
  std::string out;
  out.reserve(ids.size());
  for (std::uint32_t id : ids) {
    int b = TokenIdToByte(id);
    if (b >= 0) out += static_cast<char>(b);
    else if (id == kByteEndOfText) out += '\n';
  }
  return out;
}

std::string ByteTokenizerJson() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (std::uint32_t id = 0; id < 256; ++id) {
    vocab[ByteSymbol(static_cast<std::uint8_t>(TokenIdToByte(id)))] = id;
  }
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = {{{"id", kByteEndOfText}, {"content", "<|endoftext|>"}, {"single_word", false},
                        {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                        {"use_regex", false}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                         {"use_regex", false}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                  {"use_regex", false}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""},
                {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}};
  return j.dump(2) + "\n";
}

}  // namespace radlads
