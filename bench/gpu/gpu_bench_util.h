// The harness the GPU benchmarks in bench/gpu share (bench_gla.cpp, bench_dplr.cpp,
// bench_attention.cpp): option walking with the usage-error exit (2), the no-GPU skip (exit 77,
// ctest's SKIP_RETURN_CODE), device buffers filled from a deterministic LCG, CUDA-event timing
// after warm-up, the finite-output sanity check, and the one-line JSON result that is each
// program's LAST stdout line (bench/gpu/table.py and bench/gpu/check.sh read it). Header-only:
// each benchmark stays one .cpp. Host code; CUDA failures abort through RADLADS_CUDA_CHECK.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"

namespace radlads::gpu_bench {

using i64 = std::int64_t;

inline constexpr int kSkipExit = 77;  // no usable GPU: ctest reports the test as skipped
inline constexpr int kUsageExit = 2;  // bad command line

// Prints "error: <msg>" and "usage: <usage>" to stderr and exits kUsageExit.
[[noreturn]] inline void UsageExit(const char* usage, const std::string& msg) {
  std::fprintf(stderr, "error: %s\nusage: %s\n", msg.c_str(), usage);
  std::exit(kUsageExit);
}

// All of `text` as a base-10 integer (sign allowed); false for an empty or partly numeric text.
inline bool ParseInteger(const std::string& text, long long* out) {
  char* end = nullptr;
  *out = std::strtoll(text.c_str(), &end, 10);
  return end != text.c_str() && *end == '\0';
}

// Walks argv one option at a time:
//   gpu_bench::Args args(argc, argv, "bench_x [--B n] [--smoke]");
//   while (args.Next()) {
//     if (args.Is("--smoke")) smoke = true;
//     else { const i64 v = args.Count(); if (args.Is("--B")) b = v; else args.Fail(...); }
//   }
class Args {
 public:
  Args(int argc, char** argv, const char* usage) : argc_(argc), argv_(argv), usage_(usage) {}

  // Moves to the next option; false when there is none left.
  bool Next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    return true;
  }
  const std::string& name() const { return name_; }
  bool Is(const char* option) const { return name_ == option; }
  bool HasValue() const { return i_ + 1 < argc_; }
  // Consumes the argument after the option ("missing value after <option>" if there is none).
  std::string Value() {
    if (!HasValue()) Fail("missing value after " + name_);
    return argv_[++i_];
  }
  // Value() as a non-negative integer ("bad value for <option>" otherwise).
  i64 Count() {
    const std::string text = Value();
    long long v = 0;
    if (!ParseInteger(text, &v) || v < 0) Fail("bad value for " + name_);
    return v;
  }
  [[noreturn]] void Fail(const std::string& msg) const { UsageExit(usage_, msg); }

 private:
  int argc_;
  char** argv_;
  const char* usage_;
  int i_ = 0;
  std::string name_;
};

// Probes the CUDA devices into *probe. With none usable, prints
// "SKIPPED: <program> needs a CUDA device (<reason>)" to stdout and returns false: the caller
// then returns kSkipExit.
inline bool ProbeOrSkip(const char* program, cuda::DeviceProbe* probe) {
  *probe = cuda::ProbeDevices();
  if (probe->count > 0) return true;
  std::printf("SKIPPED: %s needs a CUDA device (%s)\n", program, probe->reason.c_str());
  return false;
}

// Deterministic pseudo-random floats in [0, 1): a 64-bit LCG, 24 bits per draw.
struct Lcg {
  std::uint64_t s;
  float Next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f;
  }
};

// n floats lo + (hi - lo) u, u = rng.Next().
inline std::vector<float> Uniform(std::size_t n, float lo, float hi, Lcg& rng) {
  std::vector<float> x(n);
  for (float& e : x) e = (hi - lo) * rng.Next() + lo;
  return x;
}

// The device buffers of one run; all are freed when it goes out of scope.
class DeviceBuffers {
 public:
  DeviceBuffers() = default;
  DeviceBuffers(const DeviceBuffers&) = delete;
  DeviceBuffers& operator=(const DeviceBuffers&) = delete;
  ~DeviceBuffers() {
    for (void* p : owned_) cudaFree(p);
  }

  // `bytes` uninitialised bytes.
  void* Alloc(std::size_t bytes) {
    void* p = nullptr;
    RADLADS_CUDA_CHECK(cudaMalloc(&p, bytes));
    owned_.push_back(p);
    return p;
  }
  void* Zeros(std::size_t bytes) {
    void* p = Alloc(bytes);
    RADLADS_CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
  }
  // n bf16 values: `pattern` rounded to bf16 (nearest even) and tiled over the n elements, so a
  // pattern of whole rows keeps per-row structure. `pattern` must not be empty.
  __nv_bfloat16* Bf16(i64 n, const std::vector<float>& pattern) {
    const i64 period = static_cast<i64>(pattern.size());
    char* p = static_cast<char*>(Alloc(static_cast<std::size_t>(n) * 2));
    std::vector<std::uint16_t> h(pattern.size());
    for (std::size_t i = 0; i < pattern.size(); ++i) h[i] = F32ToBf16(pattern[i]);
    for (i64 off = 0; off < n; off += period) {
      const i64 m = n - off < period ? n - off : period;
      RADLADS_CUDA_CHECK(cudaMemcpy(p + off * 2, h.data(), static_cast<std::size_t>(m) * 2,
                                    cudaMemcpyHostToDevice));
    }
    return reinterpret_cast<__nv_bfloat16*>(p);
  }
  // n fp32 values value_scale * (u - 0.5), u = rng.Next().
  float* F32(i64 n, float value_scale, Lcg& rng) {
    std::vector<float> h(static_cast<std::size_t>(n));
    for (float& x : h) x = value_scale * (rng.Next() - 0.5f);
    float* p = static_cast<float*>(Alloc(h.size() * 4));
    RADLADS_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    return p;
  }

 private:
  std::vector<void*> owned_;
};

// A stream and two CUDA events, destroyed with it. MeanMs runs fn() `warmup` times, then
// `iters` times between the events, and returns the mean milliseconds per run (iters >= 1).
// fn enqueues its work on stream().
class EventTimer {
 public:
  EventTimer() {
    RADLADS_CUDA_CHECK(cudaStreamCreate(&stream_));
    RADLADS_CUDA_CHECK(cudaEventCreate(&start_));
    RADLADS_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    cudaStreamDestroy(stream_);
  }
  cudaStream_t stream() const { return stream_; }

  template <typename Fn>
  double MeanMs(i64 warmup, i64 iters, Fn&& fn) {
    for (i64 i = 0; i < warmup; ++i) fn();
    RADLADS_CUDA_CHECK(cudaEventRecord(start_, stream_));
    for (i64 i = 0; i < iters; ++i) fn();
    RADLADS_CUDA_CHECK(cudaEventRecord(stop_, stream_));
    RADLADS_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    RADLADS_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) / static_cast<double>(iters);
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Whether the first min(n, 65536) bf16 values at `device` are finite (a NaN makes a timing
// meaningless); if not, prints "error: non-finite output" to stderr.
inline bool FiniteBf16Output(const void* device, i64 n) {
  std::vector<std::uint16_t> h(static_cast<std::size_t>(n < 65536 ? n : 65536));
  RADLADS_CUDA_CHECK(cudaMemcpy(h.data(), device, h.size() * 2, cudaMemcpyDeviceToHost));
  for (std::uint16_t x : h) {
    if (!std::isfinite(Bf16ToF32(x))) {
      std::fprintf(stderr, "error: non-finite output\n");
      return false;
    }
  }
  return true;
}

// One JSON object printed as one stdout line, keys in the order added, no spaces:
//   gpu_bench::JsonLine().Str("row", "rwkv6").Int("B", 8).Fixed("fwd_ms", ms, 4).Print();
class JsonLine {
 public:
  // A string value; `"` and `\` are escaped (device names are plain text).
  JsonLine& Str(const char* key, const std::string& value) {
    Key(key);
    body_ += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') body_ += '\\';
      body_ += c;
    }
    body_ += '"';
    return *this;
  }
  JsonLine& Int(const char* key, long long value) { return Format(key, "%lld", value); }
  // printf "%.<digits>f" and "%.<digits>g".
  JsonLine& Fixed(const char* key, double value, int digits) {
    return Format(key, "%.*f", digits, value);
  }
  JsonLine& General(const char* key, double value, int digits) {
    return Format(key, "%.*g", digits, value);
  }
  void Print() const { std::printf("{%s}\n", body_.c_str()); }

 private:
  void Key(const char* key) {
    if (!body_.empty()) body_ += ',';
    body_ += '"';
    body_ += key;
    body_ += "\":";
  }
  template <typename... T>
  JsonLine& Format(const char* key, const char* format, T... values) {
    Key(key);
    char buf[64];
    std::snprintf(buf, sizeof(buf), format, values...);
    body_ += buf;
    return *this;
  }

  std::string body_;
};

// ---- the recurrence benchmarks (bench_gla.cpp, bench_dplr.cpp) ----------------------------------

// The options both recurrence benchmarks take:
//   [--B 8] [--T 4096] [--H 64] [--D 64] [--iters 10] [--warmup 2] [--simple] [--smoke]
// --smoke: B = 1, T = 37, H = 2, one warm-up and one timed iteration (D as given).
struct RecurrenceOptions {
  i64 B = 8, T = 4096, H = 64, D = 64, iters = 10, warmup = 2;
  bool simple = false, smoke = false;
};

// Parses the common options; `extra(args, value)` sees each other integer option (args.name())
// and returns false for an unknown one ("unknown option <name>").
template <typename Extra>
RecurrenceOptions ParseRecurrenceOptions(int argc, char** argv, const char* usage,
                                         Extra&& extra) {
  RecurrenceOptions o;
  Args args(argc, argv, usage);
  while (args.Next()) {
    if (args.Is("--smoke")) {
      o.smoke = true;
      continue;
    }
    if (args.Is("--simple")) {
      o.simple = true;
      continue;
    }
    const i64 v = args.Count();
    if (args.Is("--B")) o.B = v;
    else if (args.Is("--T")) o.T = v;
    else if (args.Is("--H")) o.H = v;
    else if (args.Is("--D")) o.D = v;
    else if (args.Is("--iters")) o.iters = v;
    else if (args.Is("--warmup")) o.warmup = v;
    else if (!extra(args, v)) args.Fail("unknown option " + args.name());
  }
  if (o.smoke) {
    o.B = 1;
    o.T = 37;
    o.H = 2;
    o.iters = 1;
    o.warmup = 1;
  }
  if (o.iters < 1) args.Fail("--iters must be >= 1");
  return o;
}

// Prints a recurrence benchmark's result: the human line
//   "<kernel> <impl> B=.. T=.. H=.. D=..: fwd .. ms, fwd+bwd .. ms (<device>)"
// then the JSON line (impl "recurrent" under --simple, else "chunked"; "chunk" only when given):
//   {"row":..,"impl":..,"B":..,"T":..,"H":..,"D":..,"fwd_ms":..,"fwdbwd_ms":..,
//    "min_bytes_fwd":..,"min_bytes_fwdbwd":..[,"chunk":..],"device":".."}
inline void ReportRecurrence(const char* kernel, const char* row, const RecurrenceOptions& o,
                             double fwd_ms, double fwdbwd_ms, i64 min_bytes_fwd,
                             i64 min_bytes_fwdbwd, std::optional<i64> chunk,
                             const std::string& device) {
  const char* impl = o.simple ? "recurrent" : "chunked";
  std::printf("%s %s B=%lld T=%lld H=%lld D=%lld: fwd %.3f ms, fwd+bwd %.3f ms (%s)\n", kernel,
              impl, static_cast<long long>(o.B), static_cast<long long>(o.T),
              static_cast<long long>(o.H), static_cast<long long>(o.D), fwd_ms, fwdbwd_ms,
              device.c_str());
  JsonLine json;
  json.Str("row", row)
      .Str("impl", impl)
      .Int("B", o.B)
      .Int("T", o.T)
      .Int("H", o.H)
      .Int("D", o.D)
      .Fixed("fwd_ms", fwd_ms, 4)
      .Fixed("fwdbwd_ms", fwdbwd_ms, 4)
      .Int("min_bytes_fwd", min_bytes_fwd)
      .Int("min_bytes_fwdbwd", min_bytes_fwdbwd);
  if (chunk) json.Int("chunk", *chunk);
  json.Str("device", device).Print();
}

}  // namespace radlads::gpu_bench
