#include "storage/text_tokenizer.h"

#include "base/file.h"
#include "storage/byte_tokenizer.h"

namespace radlads {
namespace {

// True when `t` is the byte vocabulary: 257 ids, each byte symbol at its Qwen2.5 id and
// <|endoftext|> at 256 (storage/byte_tokenizer.h ByteTokenizerJson).
bool IsByteVocabulary(const Qwen2Tokenizer& t) {
  if (t.vocab_size() != kByteEndOfText + 1 || t.end_of_text_id() != kByteEndOfText) return false;
  for (int b = 0; b < 256; ++b) {
    const auto id = t.TokenId(ByteSymbol(static_cast<std::uint8_t>(b)));
    if (!id || *id != ByteToTokenId(static_cast<std::uint8_t>(b))) return false;
  }
  return true;
}

}  // namespace

TextTokenizer TextTokenizer::Bytes() {
  TextTokenizer t;
  t.end_of_text_ = kByteEndOfText;
  t.description_ = "byte tokens (vocab " + std::to_string(kByteVocabSize) + ", end of text " +
                   std::to_string(kByteEndOfText) + ")";
  return t;
}

Result<TextTokenizer> TextTokenizer::ForModel(const std::string& dir) {
  RADLADS_ASSIGN_OR_RETURN(Qwen2Tokenizer q, Qwen2Tokenizer::Load(dir));
  if (IsByteVocabulary(q)) return Bytes();
  if (!q.end_of_text_id()) {
    return Status::InvalidArgument(JoinPath(dir, "tokenizer.json") +
                                   ": the tokenizer has no <|endoftext|> and tokenizer_config.json names no "
                                   "eos_token: expected an end-of-text token to separate documents");
  }
  TextTokenizer t;
  t.end_of_text_ = *q.end_of_text_id();
  t.description_ = "Qwen2 tokenizer of " + dir + " (vocab " + std::to_string(q.vocab_size()) + ", end of text " +
                   q.end_of_text_token() + " = " + std::to_string(t.end_of_text_) + ")";
  t.qwen_ = std::make_shared<const Qwen2Tokenizer>(std::move(q));
  return t;
}

Result<TextTokenizer> TextTokenizer::ForRun(std::string_view setting, const std::string& teacher_dir) {
  if (setting == "bytes") return Bytes();
  if (setting != "teacher") {
    return Status::InvalidArgument("data.tokenizer: expected bytes or teacher, got '" + std::string(setting) + "'");
  }
  if (!PathExists(JoinPath(teacher_dir, "tokenizer.json")) &&
      !PathExists(JoinPath(teacher_dir, "tokenizer.json.gz"))) {
    return Bytes();
  }
  return ForModel(teacher_dir);
}

std::vector<std::uint32_t> TextTokenizer::Encode(std::string_view text) const {
  return qwen_ ? qwen_->Encode(text) : EncodeBytes(text);
}

std::string TextTokenizer::Decode(std::span<const std::uint32_t> ids) const {
  if (!qwen_) return DecodeTokens(ids);
  std::vector<std::uint32_t> known;
  for (std::uint32_t id : ids) {
    if (id < qwen_->vocab_size()) known.push_back(id);
  }
  Result<std::string> text = qwen_->Decode(known);
  if (text.ok()) return std::move(text).value();
  // A gap in the id range (ids below vocab_size that no token has): decode one id at a time.
  std::string out;
  for (std::uint32_t id : known) {
    if (Result<std::string> one = qwen_->Decode(std::span<const std::uint32_t>(&id, 1)); one.ok()) out += *one;
  }
  return out;
}

std::vector<std::uint32_t> TextTokenizer::TokenByteLengths() const {
  if (!qwen_) return {};
  std::vector<std::uint32_t> lengths(qwen_->vocab_size(), 0);
  for (std::uint32_t id = 0; id < qwen_->vocab_size(); ++id) {
    if (Result<std::string> one = qwen_->Decode(std::span<const std::uint32_t>(&id, 1)); one.ok()) {
      lengths[id] = static_cast<std::uint32_t>(one->size());
    }
  }
  return lengths;
}

std::uint32_t TextTokenizer::vocab_size() const { return qwen_ ? qwen_->vocab_size() : kByteVocabSize; }

std::vector<std::uint32_t> TextTokenizer::stop_ids() const {
  if (!qwen_) return {};
  std::vector<std::uint32_t> ids = {end_of_text_};
  if (qwen_->eos_token_id() && *qwen_->eos_token_id() != end_of_text_) ids.push_back(*qwen_->eos_token_id());
  return ids;
}

}  // namespace radlads
