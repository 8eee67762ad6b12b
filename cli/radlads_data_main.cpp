// radlads-data: turn text into token datasets.
#include <cstdio>
#include <vector>

#include "base/gzip.h"
#include "cli/cli_util.h"
#include "storage/binidx.h"
#include "storage/byte_tokenizer.h"

namespace {

radlads::Status Tokenize(const std::vector<std::string>& inputs, const std::string& out) {
  using namespace radlads;
  BinidxWriterOptions o;
  o.vocab_size = kByteVocabSize;
  o.eos_id = kByteEndOfText;
  RADLADS_ASSIGN_OR_RETURN(BinidxWriter w, BinidxWriter::Create(out, o));
  for (const std::string& path : inputs) {
    RADLADS_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipFile(path));
    std::vector<std::uint32_t> ids = EncodeBytes(text);
    RADLADS_RETURN_IF_ERROR(w.AppendDocument(ids));
    std::printf("%s: %zu bytes -> %zu tokens\n", path.c_str(), text.size(), ids.size() + 1);
  }
  RADLADS_RETURN_IF_ERROR(w.Finish());
  std::printf("wrote %s.bin and %s.idx: %llu documents, %llu tokens (byte tokenizer, vocab %u, "
              "end-of-text %u after each document)\n",
              out.c_str(), out.c_str(), static_cast<unsigned long long>(w.document_count()),
              static_cast<unsigned long long>(w.token_count()), kByteVocabSize, kByteEndOfText);
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace radlads;
  cli::ReexecWithThreadingDefaults(argc, argv);
  CLI::App app{"radlads-data: build token datasets.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage."};
  app.require_subcommand(1);
  std::vector<std::string> inputs;
  std::string out;
  std::string tokenizer = "bytes";
  CLI::App* tok = app.add_subcommand(
      "tokenize", "Tokenize text files (plain or .gz; each file is one document) into a binidx "
                  "dataset PREFIX.bin/PREFIX.idx, appending end-of-text after each document");
  tok->add_option("inputs", inputs, "Text files")->required()->check(CLI::ExistingFile);
  tok->add_option("--out", out, "Output prefix (writes PREFIX.bin and PREFIX.idx)")->required();
  tok->add_option("--tokenizer", tokenizer,
                  "Tokenizer: bytes (Qwen2.5's byte tokens, ids 0-255, end-of-text 256, vocab 320)")
      ->check(CLI::IsMember({"bytes"}))
      ->capture_default_str();
  if (int rc = cli::ParseOrExitCode(app, argc, argv); rc >= 0) return rc;
  return cli::Finish(Tokenize(inputs, out));
}
