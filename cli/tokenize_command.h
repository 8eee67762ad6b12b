// `radlads-data tokenize`: text files to a binidx dataset (storage/binidx.h), with the byte
// tokens of the tiny default (storage/byte_tokenizer.h) or a model directory's Qwen2 tokenizer
// (storage/qwen2_tokenizer.h). docs/tokenizer.md states the contract.
//
// Documents: each input file (plain or gzip) is one document; with `jsonl_field` set every
// input is JSON Lines instead, one document per line, its text the named string field (blank
// lines are skipped; a line that is not a JSON object, or lacks the field, or holds a
// non-string there, is InvalidArgument "FILE:LINE: ..."). After each document the end-of-text
// id is appended (256 for bytes; the tokenizer's end_of_text_id() or `end_of_text`).
//
// Parallelism: with threads > 1, documents are read in batches (at most kTokenizeBatchBytes of
// text), encoded by `threads` workers (each with its own word cache) and written in input
// order, so the output is byte-identical for every thread count. A single document is never
// split across threads.
// Thread-safety: RunTokenize starts and joins its own threads; call it from one thread.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "base/status.h"

namespace radlads::cli {

inline constexpr std::size_t kTokenizeBatchBytes = std::size_t{64} << 20;

struct TokenizeOptions {
  std::vector<std::string> inputs;
  std::string out;                  // PREFIX: writes PREFIX.bin and PREFIX.idx
  std::string tokenizer = "bytes";  // "bytes" or a model directory with tokenizer.json
  std::string jsonl_field;          // empty: each file is one document
  std::string end_of_text;          // empty: the tokenizer's default
  int threads = 1;
  bool progress = true;             // the progress bar on stderr
  std::FILE* report = stdout;       // one line per input file and a summary; nullptr: none
};

// Tokenizes every input and writes the dataset; prints one line per input file and a summary
// to options.report. Errors name the file (and line for JSONL); nothing is left at PREFIX.idx on error.
Status RunTokenize(const TokenizeOptions& options);

}  // namespace radlads::cli
