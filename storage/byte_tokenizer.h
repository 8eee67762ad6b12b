// The embedded default's tokenizer: Qwen2.5's byte-level BPE with zero merges.
//
// Token ids 0..255 are exactly Qwen2.5's own ids of the 256 byte symbols (GPT-2's
// bytes_to_unicode order: '!' = 0, '\n' = 198, ' ' = 220), so the tiny model's token ids are a
// true subset of the real Qwen vocabulary. Id 256 is end-of-text; the embedding table is padded
// to kByteVocabSize rows. A test checks every id against the real tokenizer.json shipped in
// data/qwen2.5-tokenizer/.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace radlads {

inline constexpr std::uint32_t kByteEndOfText = 256;
inline constexpr std::uint32_t kByteVocabSize = 320;  // 256 bytes + end-of-text, padded

// The Qwen2.5 token id of byte b.
std::uint32_t ByteToTokenId(std::uint8_t b);
// The byte of a byte-token id; -1 for any other id.
int TokenIdToByte(std::uint32_t id);
// The byte's symbol as tokenizer.json spells it (UTF-8 of bytes_to_unicode(b), e.g. "Ġ").
std::string ByteSymbol(std::uint8_t b);

std::vector<std::uint32_t> EncodeBytes(std::string_view text);
// Bytes of the byte tokens in order; end-of-text becomes "\n" (a document break), other ids
// outside 0..256 are skipped.
std::string DecodeTokens(std::span<const std::uint32_t> ids);

// A Hugging Face tokenizer.json for this vocabulary (BPE, no merges, ByteLevel pre-tokenizer and
// decoder, <|endoftext|> = 256), so exported tiny models load with `tokenizers`.
std::string ByteTokenizerJson();

}  // namespace radlads
