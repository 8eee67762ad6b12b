// radlads-data: turn text into token datasets (cli/tokenize_command.h, docs/tokenizer.md).
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/tokenize_command.h"

int main(int argc, char** argv) {
  using namespace radlads;
  cli::ReexecWithThreadingDefaults(argc, argv);
  CLI::App app{"radlads-data: build token datasets.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 invalid input or usage."};
  app.require_subcommand(1);
  cli::TokenizeOptions o;
  bool no_progress = false;
  CLI::App* tok = app.add_subcommand(
      "tokenize",
      "Tokenize text into a binidx dataset PREFIX.bin/PREFIX.idx (documents in input order, "
      "end-of-text appended after each). Each input file (plain or .gz) is one document, or, "
      "with --jsonl-field, JSON Lines with one document per line. The output is the same for "
      "every --threads value.");
  tok->add_option("inputs", o.inputs, "Text files (plain or .gz)")->required()->check(CLI::ExistingFile);
  tok->add_option("--out", o.out, "Output prefix (writes PREFIX.bin and PREFIX.idx)")->required();
  tok->add_option("--tokenizer", o.tokenizer,
                  "'bytes' (the tiny default: Qwen2.5's byte tokens 0-255, end-of-text 256, vocab "
                  "320) or MODEL_DIR: a directory with a Qwen2/Qwen2.5 tokenizer.json (or "
                  "tokenizer.json.gz) and optionally tokenizer_config.json; end-of-text is "
                  "<|endoftext|>, else the config's eos_token; ids are those of Hugging Face "
                  "tokenizers; invalid UTF-8 is encoded as U+FFFD per invalid sequence")
      ->capture_default_str();
  tok->add_option("--jsonl-field", o.jsonl_field,
                  "Read every input as JSON Lines and take each line's document text from this "
                  "string field (blank lines skipped; any other bad line is an error naming "
                  "FILE:LINE)");
  tok->add_option("--end-of-text", o.end_of_text,
                  "With --tokenizer MODEL_DIR: the token appended after each document, instead of "
                  "the default (e.g. '<|im_end|>')");
  tok->add_option("--threads", o.threads,
                  "Documents encoded in parallel by this many threads (output order and bytes do "
                  "not depend on it)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  tok->add_flag("--no-progress", no_progress, "No progress bar on stderr");
  if (int rc = cli::ParseOrExitCode(app, argc, argv); rc >= 0) return rc;
  o.progress = !no_progress;
  return cli::Finish(cli::RunTokenize(o));
}
