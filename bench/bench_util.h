// Shared helpers of the CPU benchmark programs in bench/ (bench_teacher_forward,
// bench_align_step): a tiny --key value command line, the tiny Qwen2 config with overrides,
// wall-clock timing with warmup, and the one JSON line each program prints.
//
// Every program prints exactly one JSON object on stdout (its last line) with the fields
//   bench, shape fields (B, T, C, ...), threads, warmup, iters, samples_s (every timed
//   iteration, seconds), median_s, min_s, tokens, tok_per_s (tokens / median_s), check
//   (a value the PyTorch peer recomputes from the same dumped parameters: run_bench.py compares
//   them), and the load average at start and end.
#pragma once

#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "storage/hf_config.h"

namespace radlads::bench {

// --key value / --flag arguments. Unknown keys are an error (a typo must not silently fall
// back to a default shape).
class Args {
 public:
  Args(int argc, char** argv, std::vector<std::string> known_keys, std::vector<std::string> flags)
      : known_(std::move(known_keys)), flags_(std::move(flags)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) Fail("unexpected argument " + a);
      a = a.substr(2);
      if (std::find(flags_.begin(), flags_.end(), a) != flags_.end()) {
        values_[a] = "1";
        continue;
      }
      if (std::find(known_.begin(), known_.end(), a) == known_.end()) Fail("unknown option --" + a);
      if (i + 1 >= argc) Fail("--" + a + " needs a value");
      values_[a] = argv[++i];
    }
  }
  bool Has(const std::string& k) const { return values_.count(k) != 0; }
  std::int64_t Int(const std::string& k, std::int64_t def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : std::stoll(it->second);
  }
  double Double(const std::string& k, double def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : std::stod(it->second);
  }
  std::string Str(const std::string& k, const std::string& def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  [[noreturn]] static void Fail(const std::string& msg) {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    std::exit(2);
  }

 private:
  std::vector<std::string> known_, flags_;
  std::map<std::string, std::string> values_;
};

// Options every program takes (besides its own).
inline std::vector<std::string> CommonKeys() {
  return {"threads", "iters", "warmup", "batch", "time", "layers", "hidden", "heads", "kv-heads",
          "head-dim", "mlp", "vocab", "seed", "dump"};
}
inline std::vector<std::string> CommonFlags() { return {"smoke", "no-mallopt"}; }

// configs/models/tiny.yaml (hidden 128, 4 layers, 4 heads, 2 kv heads, head_dim 32, MLP 384,
// vocab 320), with command-line overrides.
inline Qwen2Config TinyConfig(const Args& a) {
  Qwen2Config c;
  c.num_hidden_layers = a.Int("layers", 4);
  c.hidden_size = a.Int("hidden", 128);
  c.num_attention_heads = a.Int("heads", 4);
  c.num_key_value_heads = a.Int("kv-heads", 2);
  c.head_dim = a.Int("head-dim", 32);
  c.intermediate_size = a.Int("mlp", 384);
  c.vocab_size = a.Int("vocab", 320);
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  c.max_position_embeddings = 2048;
  c.bos_token_id = 256;
  c.eos_token_ids = {256};
  return c;
}

// Large activation buffers (> 128 KiB) come from mmap by default and are unmapped on free, so a
// training step page-faults its whole working set again every iteration. Keeping them in the heap
// is what a long-running trainer wants; --no-mallopt measures the default.
inline void TuneMalloc(const Args& a) {
  if (a.Has("no-mallopt")) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

// OpenMP reads OMP_WAIT_POLICY when the runtime starts, before main: when it is unset, re-run
// this program with it set to passive (spinning barriers on shared cores cost up to 80x).
inline void EnsurePassiveWait(char** argv) {
  if (getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  std::perror("execv /proc/self/exe");  // fall through: run with the runtime's default
}

inline void SetThreads(const Args& a) { cpu::SetNumThreads(static_cast<int>(a.Int("threads", 2))); }

inline std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The median of v (the mean of the two middle values for an even count; 0 when empty).
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Timing {
  std::vector<double> samples;
  double median = 0, min = 0;
};

// Runs fn `warmup` times untimed, then `iters` times timed (wall clock, seconds).
template <typename Fn>
Timing Time(int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  Timing t;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    t.samples.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  if (!t.samples.empty()) {
    t.min = *std::min_element(t.samples.begin(), t.samples.end());
    t.median = Median(t.samples);
  }
  return t;
}

// A flat JSON object built field by field (numbers and strings only).
class Json {
 public:
  Json& Num(const std::string& k, double v) {
    std::ostringstream o;
    o.precision(9);
    o << v;
    return Raw(k, o.str());
  }
  Json& Int(const std::string& k, std::int64_t v) { return Raw(k, std::to_string(v)); }
  Json& Str(const std::string& k, const std::string& v) { return Raw(k, "\"" + v + "\""); }
  Json& Nums(const std::string& k, const std::vector<double>& v) {
    std::ostringstream o;
    o.precision(6);
    o << "[";
    for (std::size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
    o << "]";
    return Raw(k, o.str());
  }
  // An array of objects, each already built (Json::str()).
  Json& Objects(const std::string& k, const std::vector<std::string>& objects) {
    std::string v = "[";
    for (std::size_t i = 0; i < objects.size(); ++i) v += (i ? ", " : "") + objects[i];
    return Raw(k, v + "]");
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  Json& Raw(const std::string& k, const std::string& v) {
    if (!body_.empty()) body_ += ", ";
    body_ += "\"" + k + "\": " + v;
    return *this;
  }
  std::string body_;
};

inline void AddTiming(Json& j, const Timing& t, std::int64_t tokens) {
  j.Int("iters", static_cast<std::int64_t>(t.samples.size()))
      .Nums("samples_s", t.samples)
      .Num("median_s", t.median)
      .Num("min_s", t.min)
      .Int("tokens", tokens)
      .Num("tok_per_s", t.median > 0 ? static_cast<double>(tokens) / t.median : 0.0);
}

}  // namespace radlads::bench
