// The Qwen2 tokenizer's encoding speed (storage/qwen2_tokenizer.h) on the six Austen novels,
// against Hugging Face `tokenizers` (bench/peers/tokenizer_peer.py) on the same text, with the
// same thread count. Prints one JSON line:
//   {"bench": "tokenizer", "threads", "rounds", "documents", "bytes", "tokens", "load_s",
//    "samples_s" (each round's encode time), "median_s", "min_s", "tok_per_s" (tokens /
//    median_s), "mb_per_s", "check" (FNV-1a 64 of all ids; the peer prints the same)}
// Each round encodes every document with fresh Qwen2Encoders (the word caches start empty, as
// in a new radlads-data run); with --threads N the documents are shared by N threads, each
// with its own encoder. --paragraphs: each novel is cut after every "\n\n" and the pieces are
// the documents (many short documents, like a JSONL corpus). --smoke: the first 20 KB of one
// novel, one round.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/gzip.h"
#include "storage/qwen2_tokenizer.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "tokenizer_bench: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace radlads;
  std::string root = RADLADS_SOURCE_DIR;
  int threads = 1, rounds = 5;
  bool smoke = false, paragraphs = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") threads = std::atoi(value().c_str());
    else if (a == "--rounds") rounds = std::atoi(value().c_str());
    else if (a == "--root") root = value();
    else if (a == "--smoke") smoke = true;
    else if (a == "--paragraphs") paragraphs = true;
    else Fail("unknown argument " + a + " (--threads N --rounds N --root DIR --paragraphs --smoke)");
  }
  if (threads < 1 || rounds < 1) Fail("--threads and --rounds must be >= 1");
  if (smoke) rounds = 1;

  const double t0 = Now();
  auto tok = Qwen2Tokenizer::Load(root + "/data/qwen2.5-tokenizer");
  if (!tok.ok()) Fail(tok.status().ToString());
  const double load_s = Now() - t0;

  std::vector<std::string> docs;
  std::size_t bytes = 0;
  for (const char* name : {"emma", "mansfield_park", "northanger_abbey", "persuasion",
                           "pride_and_prejudice", "sense_and_sensibility"}) {
    auto text = ReadMaybeGzipFile(root + "/data/austen/" + name + ".txt.gz");
    if (!text.ok()) Fail(text.status().ToString());
    std::string doc = smoke ? text->substr(0, 20000) : std::move(*text);
    bytes += doc.size();
    if (!paragraphs) {
      docs.push_back(std::move(doc));
    } else {  // each piece ends after a "\n\n" (the peer splits the same way)
      std::size_t pos = 0;
      while (pos < doc.size()) {
        std::size_t end = doc.find("\n\n", pos);
        end = end == std::string::npos ? doc.size() : end + 2;
        docs.push_back(doc.substr(pos, end - pos));
        pos = end;
      }
    }
    if (smoke) break;
  }

  std::vector<std::vector<std::uint32_t>> ids(docs.size());
  std::vector<double> samples;
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::unique_ptr<Qwen2Encoder>> encoders;
    for (int t = 0; t < threads; ++t) encoders.push_back(std::make_unique<Qwen2Encoder>(*tok));
    for (auto& v : ids) v.clear();
    const double start = Now();
    std::atomic<std::size_t> next{0};
    auto work = [&](int t) {
      for (std::size_t d = next++; d < docs.size(); d = next++) encoders[t]->Encode(docs[d], &ids[d]);
    };
    if (threads == 1) {
      work(0);
    } else {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
      for (auto& th : pool) th.join();
    }
    samples.push_back(Now() - start);
  }
  std::uint64_t h = 0xcbf29ce484222325ull, tokens = 0;
  for (const auto& v : ids) {
    tokens += v.size();
    for (std::uint32_t id : v) {
      for (int k = 0; k < 4; ++k) h = (h ^ ((id >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    }
  }
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  std::printf("{\"bench\": \"tokenizer\", \"impl\": \"radlads\", \"threads\": %d, \"rounds\": %d, "
              "\"paragraphs\": %s, \"documents\": %zu, \"bytes\": %zu, \"tokens\": %llu, \"load_s\": %.3f, \"samples_s\": [",
              threads, rounds, paragraphs ? "true" : "false", docs.size(), bytes, static_cast<unsigned long long>(tokens), load_s);
  for (std::size_t i = 0; i < samples.size(); ++i) std::printf("%s%.4f", i ? ", " : "", samples[i]);
  std::printf("], \"median_s\": %.4f, \"min_s\": %.4f, \"tok_per_s\": %.0f, \"mb_per_s\": %.2f, "
              "\"check\": \"%016llx\"}\n",
              median, sorted[0], tokens / median, bytes / median / 1e6,
              static_cast<unsigned long long>(h));
  return 0;
}
