// The Qwen2 / Qwen2.5 tokenizer: Hugging Face's tokenizer.json pipeline for Qwen2 re-done in
// C++ (byte-level BPE), producing the same ids as `tokenizers` (docs/tokenizer.md).
//
// Encoding a text:
//   1. Invalid UTF-8 policy: each maximal invalid subpart of `text` becomes U+FFFD first
//      (ReplaceInvalidUtf8, storage/unicode_text.h), i.e. the ids are those Hugging Face gives
//      for `raw.decode("utf-8", errors="replace")`. Valid UTF-8 is untouched.
//   2. Added tokens whose "normalized" flag is false (all of Qwen2's: <|endoftext|>,
//      <|im_start|>, ...) are split out of the raw text, leftmost-longest; each becomes its one
//      id. single_word, lstrip and rstrip are honoured as Hugging Face does (lstrip/rstrip absorb
//      the White_Space next to the match into the token; single_word skips a match touching a
//      \w character).
//   3. Each remaining piece is normalised (tokenizer.json's "normalizer": NFC or null), then
//      added tokens with normalized=true are split out of the normalised piece.
//   4. The Qwen2 split regex cuts each piece into words (storage/qwen2_pretokenizer.h), unless
//      the pre-tokenizer is a lone ByteLevel with use_regex=false (then the piece is one word).
//   5. Each word's bytes go through byte-level BPE (storage/bpe.h).
// No other ids are added (no BOS, no EOS): the caller appends end_of_text_id() where it wants.
//
// Decoding returns bytes: each id's token through the ByteLevel decoder (a token whose
// characters are all in GPT-2's byte alphabet becomes those bytes; any other token, e.g. an
// added token holding a space, its own UTF-8), concatenated. Unlike Hugging Face, invalid UTF-8
// from a cut sequence is returned as is, not replaced. decode(encode(x)) == x whenever x is
// valid UTF-8 that NFC leaves unchanged.
//
// Supported tokenizer.json: model.type "BPE" without dropout, byte_fallback, ignore_merges or
// word prefixes/suffixes; normalizer null or {"type": "NFC"}; pre_tokenizer the Qwen2 Sequence
// [Split(Qwen2 regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)] or a lone
// ByteLevel(use_regex=false); decoder null or ByteLevel. The vocabulary's ids must be exactly
// 0..N-1, each of the 256 byte symbols must be in it, every merge must name two tokens of it
// whose concatenation is also in it, merges must not repeat; added tokens need a unique id, a
// non-empty content, and the vocabulary's id when their content is in it. Anything else is
// InvalidArgument "<file>: <field>: expected ..., got ...".
//
// End of text (the document separator appended by `radlads-data tokenize`): "<|endoftext|>"
// when the tokenizer has it (Qwen2's pretraining separator; note that Qwen2.5 instruct
// tokenizer_config.json sets eos_token to "<|im_end|>", which ends a chat turn), otherwise
// tokenizer_config.json's eos_token. SetEndOfText chooses another token.
//
// Thread-safety: a Qwen2Tokenizer is immutable after Load/Parse except for SetEndOfText; its
// const methods may run on any threads at once. A Qwen2Encoder (it owns a word cache) is used by
// one thread at a time; use one per thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "storage/bpe.h"

namespace radlads {

struct Qwen2AddedToken {
  std::uint32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A byte trie of added-token contents with leftmost-longest search (internal to the tokenizer,
// exposed for its tests).
class AddedTokenMatcher {
 public:
  void Add(std::string_view content, std::uint32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest content that starts at text[i]: its length, *token_index set; 0 when none.
  std::size_t LongestAt(std::string_view text, std::size_t i, std::uint32_t* token_index) const;

 private:
  struct Node {
    std::array<std::int32_t, 256> child;
    std::int32_t token = -1;
    Node() { child.fill(-1); }
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
};

class Qwen2Tokenizer {
 public:
  // Reads MODEL_DIR/tokenizer.json (else MODEL_DIR/tokenizer.json.gz; either may be gzipped)
  // and, when present, MODEL_DIR/tokenizer_config.json. NotFound when there is no tokenizer.json.
  static Result<Qwen2Tokenizer> Load(const std::string& model_dir);
  // The same from text; `source` and `config_source` name the files in errors. An empty
  // `config_json` means no tokenizer_config.json.
  static Result<Qwen2Tokenizer> Parse(std::string_view tokenizer_json, std::string_view source,
                                      std::string_view config_json = {},
                                      std::string_view config_source = "tokenizer_config.json");

  // Ids of `text` (any bytes; see the invalid UTF-8 policy above). Builds a fresh word cache
  // per call: for many documents use a Qwen2Encoder.
  std::vector<std::uint32_t> Encode(std::string_view text) const;

  // Bytes of `ids`; InvalidArgument naming the first id that is not a token.
  Result<std::string> Decode(std::span<const std::uint32_t> ids) const;

  // One more than the largest id (151,665 for Qwen2.5); ids of a dataset are below it.
  std::uint32_t vocab_size() const { return static_cast<std::uint32_t>(decoded_.size()); }
  // The id of a model-vocabulary symbol ("Ġthe") or of an added token's content.
  std::optional<std::uint32_t> TokenId(std::string_view token) const;
  const std::vector<Qwen2AddedToken>& added_tokens() const { return added_; }
  // tokenizer_config.json's eos_token, when it names a token.
  std::optional<std::uint32_t> eos_token_id() const { return eos_id_; }

  // The document separator (see above); nullopt when the tokenizer has neither
  // "<|endoftext|>" nor an eos_token.
  std::optional<std::uint32_t> end_of_text_id() const { return end_of_text_id_; }
  const std::string& end_of_text_token() const { return end_of_text_token_; }
  // Makes `token` (a symbol or an added token's content) the end of text; InvalidArgument if the
  // tokenizer has no such token.
  Status SetEndOfText(std::string_view token);

 private:
  friend class Qwen2Encoder;
  Qwen2Tokenizer() = default;

  std::vector<std::string> decoded_;    // id -> bytes it decodes to
  std::vector<std::uint8_t> defined_;   // id -> 1 when some token has this id
  std::unordered_map<std::string, std::uint32_t> vocab_;  // model symbols -> id
  std::array<std::uint32_t, 256> byte_ids_{};
  BpeMerges merges_;
  std::vector<Qwen2AddedToken> added_;
  AddedTokenMatcher raw_matcher_;         // normalized == false
  AddedTokenMatcher normalized_matcher_;  // normalized == true, matched on NFC text
  bool nfc_ = false;
  bool split_ = true;
  std::optional<std::uint32_t> eos_id_;
  std::optional<std::uint32_t> end_of_text_id_;
  std::string end_of_text_token_;
};

// Encodes with a cache of word -> ids that lives as long as the encoder. `tokenizer` must
// outlive it. Same ids as Qwen2Tokenizer::Encode.
class Qwen2Encoder {
 public:
  explicit Qwen2Encoder(const Qwen2Tokenizer& tokenizer) : tok_(&tokenizer) {}
  // Appends the ids of `text` to `out`.
  void Encode(std::string_view text, std::vector<std::uint32_t>* out);

 private:
  void EncodeAddedSplit(std::string_view text, const AddedTokenMatcher& matcher, bool normalize,
                        std::vector<std::uint32_t>* out);
  void EncodeWords(std::string_view text, std::vector<std::uint32_t>* out);
  void EncodeWord(std::string_view word, std::vector<std::uint32_t>* out);

  const Qwen2Tokenizer* tok_;
  BpeWordCache cache_;
  std::vector<std::string_view> pieces_;
  std::vector<std::uint32_t> symbols_;
};

}  // namespace radlads
