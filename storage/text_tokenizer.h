// The tokenizer a conversion run reads and writes text with: the teacher's own Qwen2 byte-level
// BPE (storage/qwen2_tokenizer.h, from the teacher directory's tokenizer.json), or the tiny
// default's byte tokens (storage/byte_tokenizer.h). One type, so the run's data preparation and
// its evaluation samples (worker/task_export_eval.cpp) cannot disagree (docs/conversion.md,
// "Tokenizer").
//
// Contract:
// - ForModel(dir) reads dir/tokenizer.json (or tokenizer.json.gz) and tokenizer_config.json.
//   NotFound when the directory has no tokenizer.json. A tokenizer.json whose vocabulary is
//   exactly the byte tokens (257 ids: the 256 byte symbols at their Qwen2.5 ids and
//   <|endoftext|> = 256, what `radlads-model pretrain` writes) yields Bytes(), so the tiny
//   teacher keeps its historical behaviour. InvalidArgument naming the file when the tokenizer
//   has no end of text (no <|endoftext|> and no eos_token in tokenizer_config.json).
// - ForRun(setting, teacher_dir): setting "bytes" is Bytes(); "teacher" is ForModel(teacher_dir),
//   or Bytes() when the teacher has no tokenizer.json. Any other setting is InvalidArgument.
// - Encode adds no ids (no BOS/EOS). end_of_text_id() is the document separator appended after
//   each text document (Qwen2: <|endoftext|> when present, else tokenizer_config.json's
//   eos_token, the rule of `radlads-data tokenize`; bytes: 256).
// - vocab_size(): one more than the largest id the tokenizer writes (Qwen2.5: 151,665; bytes:
//   320, the tiny table's rows). Greedy continuations choose among ids below it, so padding rows
//   of the embedding (Qwen2.5 0.5B: 151,936 rows) are never produced.
// - Decode: bytes as DecodeTokens (end of text becomes "\n", other ids skipped); Qwen2 as
//   Qwen2Tokenizer::Decode, with ids the tokenizer does not define skipped.
// - stop_ids(): ids that end a greedy continuation; empty for bytes (the tiny default's samples
//   run their full length, as they always have), the end of text and tokenizer_config.json's
//   eos_token (<|im_end|> for Instruct) for Qwen2.
// Thread-safety: immutable after construction; copies share the loaded tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/qwen2_tokenizer.h"

namespace radlads {

class TextTokenizer {
 public:
  static TextTokenizer Bytes();
  static Result<TextTokenizer> ForModel(const std::string& dir);
  static Result<TextTokenizer> ForRun(std::string_view setting, const std::string& teacher_dir);

  bool is_bytes() const { return qwen_ == nullptr; }
  std::vector<std::uint32_t> Encode(std::string_view text) const;
  std::string Decode(std::span<const std::uint32_t> ids) const;
  std::uint32_t end_of_text_id() const { return end_of_text_; }
  std::uint32_t vocab_size() const;
  std::vector<std::uint32_t> stop_ids() const;
  // Text bytes each id decodes to, indexed by id (vocab_size() entries; added tokens count their
  // content's bytes); empty for byte tokens, which are one byte each.
  std::vector<std::uint32_t> TokenByteLengths() const;
  // One line for logs: "byte tokens (vocab 320)" or "Qwen2 tokenizer of DIR (vocab 151665, end of
  // text <|endoftext|> = 151643)".
  const std::string& description() const { return description_; }
  // The Qwen2 tokenizer; null for bytes.
  const Qwen2Tokenizer* qwen() const { return qwen_.get(); }

 private:
  std::shared_ptr<const Qwen2Tokenizer> qwen_;
  std::uint32_t end_of_text_ = 0;
  std::string description_;
};

}  // namespace radlads
