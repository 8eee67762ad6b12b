#include "cli/tokenize_command.h"

#include <atomic>
#include <deque>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/gzip.h"
#include "base/progress.h"
#include "storage/binidx.h"
#include "storage/byte_tokenizer.h"
#include "storage/qwen2_tokenizer.h"

namespace radlads::cli {
namespace {

// Appends the ids of one document; one instance per thread.
using EncodeFn = std::function<void(std::string_view, std::vector<std::uint32_t>*)>;

// Documents waiting to be encoded, possibly from several files; a deque so that views into
// its strings stay valid while it grows.
struct Batch {
  std::deque<std::string> texts;
  std::vector<std::string_view> docs;
  std::vector<std::size_t> doc_file;  // input index of each document
  std::size_t bytes = 0;
};

// Adds the documents of one file (its whole text, or its JSONL lines) to `batch`, calling
// `flush` whenever the batch holds kTokenizeBatchBytes of text.
Status AddFile(const std::string& path, std::size_t file, std::string text,
               const std::string& jsonl_field, Batch* batch,
               const std::function<Status()>& flush) {
  if (jsonl_field.empty()) {
    batch->bytes += text.size();
    batch->texts.push_back(std::move(text));
    batch->docs.push_back(batch->texts.back());
    batch->doc_file.push_back(file);
    return batch->bytes >= kTokenizeBatchBytes ? flush() : Status::Ok();
  }
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line.begin(), line.end());
    } catch (const nlohmann::json::exception& e) {
      return Status::InvalidArgument(where + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) return Status::InvalidArgument(where + ": expected a JSON object");
    auto it = j.find(jsonl_field);
    if (it == j.end()) {
      return Status::InvalidArgument(where + ": no field \"" + jsonl_field + "\"");
    }
    if (!it->is_string()) {
      return Status::InvalidArgument(where + ": field \"" + jsonl_field + "\": expected a string, got " +
                                     std::string(it->type_name()));
    }
    batch->texts.push_back(it->get<std::string>());
    batch->docs.push_back(batch->texts.back());
    batch->doc_file.push_back(file);
    batch->bytes += batch->texts.back().size();
    if (batch->bytes >= kTokenizeBatchBytes) RADLADS_RETURN_IF_ERROR(flush());
  }
  return Status::Ok();
}

// Encodes `docs` with one encoder per thread into `ids` (same order).
void EncodeBatch(const std::vector<std::string_view>& docs, std::vector<EncodeFn>& encoders,
                 std::vector<std::vector<std::uint32_t>>* ids) {
  ids->assign(docs.size(), {});
  const std::size_t workers = std::min(encoders.size(), docs.size());
  if (workers <= 1) {
    for (std::size_t d = 0; d < docs.size(); ++d) encoders[0](docs[d], &(*ids)[d]);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (std::size_t d = next++; d < docs.size(); d = next++) encoders[w](docs[d], &(*ids)[d]);
    });
  }
  for (std::thread& t : threads) t.join();
}

std::uint64_t FileBytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return 0;
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fclose(f);
  return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

}  // namespace

Status RunTokenize(const TokenizeOptions& o) {
  if (o.threads < 1) return Status::InvalidArgument("--threads: must be at least 1");
  std::optional<Qwen2Tokenizer> qwen;
  BinidxWriterOptions wo;
  std::string description;
  std::vector<EncodeFn> encoders;
  std::vector<std::unique_ptr<Qwen2Encoder>> qwen_encoders;
  if (o.tokenizer == "bytes") {
    if (!o.end_of_text.empty()) {
      return Status::InvalidArgument("--end-of-text: only with --tokenizer MODEL_DIR");
    }
    wo.vocab_size = kByteVocabSize;
    wo.eos_id = kByteEndOfText;
    description = "byte tokenizer, vocab " + std::to_string(kByteVocabSize);
    for (int t = 0; t < o.threads; ++t) {
      encoders.emplace_back([](std::string_view text, std::vector<std::uint32_t>* ids) {
        *ids = EncodeBytes(text);
      });
    }
  } else {
    RADLADS_ASSIGN_OR_RETURN(Qwen2Tokenizer tok, Qwen2Tokenizer::Load(o.tokenizer));
    qwen.emplace(std::move(tok));
    if (!o.end_of_text.empty()) {
      RADLADS_RETURN_IF_ERROR(qwen->SetEndOfText(o.end_of_text).WithContext("--end-of-text"));
    }
    if (!qwen->end_of_text_id()) {
      return Status::InvalidArgument(o.tokenizer + ": the tokenizer has no <|endoftext|> and "
                                     "tokenizer_config.json names no eos_token; pass --end-of-text");
    }
    wo.vocab_size = qwen->vocab_size();
    wo.eos_id = *qwen->end_of_text_id();
    description = "Qwen2 tokenizer of " + o.tokenizer + ", vocab " +
                  std::to_string(qwen->vocab_size());
    for (int t = 0; t < o.threads; ++t) {
      qwen_encoders.push_back(std::make_unique<Qwen2Encoder>(*qwen));
      Qwen2Encoder* enc = qwen_encoders.back().get();
      encoders.emplace_back([enc](std::string_view text, std::vector<std::uint32_t>* ids) {
        enc->Encode(text, ids);
      });
    }
  }
  const std::uint32_t eos = *wo.eos_id;

  std::uint64_t total_bytes = 0;
  std::vector<std::uint64_t> file_bytes;
  for (const std::string& path : o.inputs) {
    file_bytes.push_back(FileBytes(path));
    total_bytes += file_bytes.back();
  }
  std::optional<ProgressBar> bar;
  if (o.progress) bar.emplace("tokenize", total_bytes, "B");
  RADLADS_ASSIGN_OR_RETURN(BinidxWriter w, BinidxWriter::Create(o.out, wo));

  // Per input: text bytes, documents and tokens written; lines are printed once a file has been
  // read completely and all its documents are written.
  const std::size_t n = o.inputs.size();
  std::vector<std::uint64_t> text_bytes(n, 0), docs(n, 0), tokens(n, 0);
  std::size_t files_read = 0, files_printed = 0, bytes_counted = 0;
  std::uint64_t done_bytes = 0;
  Batch batch;
  std::vector<std::vector<std::uint32_t>> ids;
  auto flush = [&]() -> Status {
    EncodeBatch(batch.docs, encoders, &ids);
    for (std::size_t d = 0; d < ids.size(); ++d) {
      const std::size_t f = batch.doc_file[d];
      RADLADS_RETURN_IF_ERROR(w.AppendDocument(ids[d]).WithContext(o.inputs[f]));
      ++docs[f];
      tokens[f] += ids[d].size() + 1;
    }
    batch = Batch{};
    for (; files_printed < files_read; ++files_printed) {
      const std::size_t f = files_printed;
      if (o.report == nullptr) continue;
      std::fprintf(o.report, "%s: %llu bytes, %llu documents -> %llu tokens\n", o.inputs[f].c_str(),
                  static_cast<unsigned long long>(text_bytes[f]),
                  static_cast<unsigned long long>(docs[f]),
                  static_cast<unsigned long long>(tokens[f]));
    }
    for (; bytes_counted < files_printed; ++bytes_counted) done_bytes += file_bytes[bytes_counted];
    if (bar) {
      bar->Update(done_bytes, ProgressBar::HumanCount(static_cast<double>(w.token_count())) + " tok");
    }
    return Status::Ok();
  };
  for (std::size_t f = 0; f < n; ++f) {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipFile(o.inputs[f]));
    text_bytes[f] = text.size();
    RADLADS_RETURN_IF_ERROR(AddFile(o.inputs[f], f, std::move(text), o.jsonl_field, &batch, flush));
    files_read = f + 1;
  }
  RADLADS_RETURN_IF_ERROR(flush());
  RADLADS_RETURN_IF_ERROR(w.Finish());
  if (bar) bar->Finish();
  if (o.report == nullptr) return Status::Ok();
  std::fprintf(o.report, "wrote %s.bin and %s.idx: %llu documents, %llu tokens (%s, end-of-text %u after "
              "each document)\n",
              o.out.c_str(), o.out.c_str(), static_cast<unsigned long long>(w.document_count()),
              static_cast<unsigned long long>(w.token_count()), description.c_str(), eos);
  return Status::Ok();
}

}  // namespace radlads::cli
