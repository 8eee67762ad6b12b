// The teacher's causal GQA attention forward on the GPU (kernels/cuda/attention.h): times one
// kernel with CUDA events after warm-up, on random bf16 inputs, without lse (the frozen teacher
// never needs it).
//   bench_gpu_attention [--B 12] [--T 512] [--Hq 28] [--Hkv 4] [--D 128] [--impl flash|simple]
//                       [--iters 20] [--warmup 3] [--seed 1] [--check] [--smoke]
// Defaults are Qwen2.5-7B's attention at the step-2 shape. --check (implied by --smoke) also runs
// the other kernel once and reports the largest |difference| of the outputs; under --smoke a
// difference above kSmokeMaxAbs fails the run (exit 1) after the JSON line. The LAST stdout line
// is one JSON object:
//   {"row":"attention","impl":"flash","B":..,"T":..,"Hq":..,"Hkv":..,"D":..,"fwd_ms":..,
//    "min_bytes_fwd":..,"flops":..,"tflops":..,"gbps":..,"device":"..."[,"check_max_abs":..]}
// flops counts the causal triangle exactly (4 B Hq D T(T+1)/2); min_bytes_fwd is reading q, k,
// v and writing o once in bf16. Without a usable GPU it prints why and exits 77.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/memory.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

// Inputs are uniform in (-2, 2), so |o| < 2: the two kernels' bf16 outputs may differ by the
// output rounding (<= 2^-8 |o| each) plus the flash kernel's bf16 probabilities
// (<= 2^-8 max|v|), under 1.6e-2 even if every rounding had the same sign.
constexpr double kSmokeMaxAbs = 2e-2;

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr,
               "error: %s\nusage: bench_gpu_attention [--B n] [--T n] [--Hq n] [--Hkv n] [--D n] "
               "[--impl flash|simple] [--iters n] [--warmup n] [--seed n] [--check] [--smoke]\n",
               msg.c_str());
  std::exit(2);
}

struct Options {
  cuda::AttentionShape s{12, 512, 28, 4, 128};
  std::string impl = "flash";
  i64 iters = 20, warmup = 3, seed = 1;
  bool check = false, smoke = false;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      o.smoke = o.check = true;
      continue;
    }
    if (a == "--check") {
      o.check = true;
      continue;
    }
    if (i + 1 >= argc) Usage(a + " needs a value (or is unknown)");
    const std::string v = argv[++i];
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    const bool numeric = end != v.c_str() && *end == '\0';
    if (a == "--impl") {
      if (v != "flash" && v != "simple") Usage("--impl must be flash or simple");
      o.impl = v;
      continue;
    }
    if (!numeric) Usage(a + " needs an integer, got " + v);
    if (a == "--B") o.s.b = n;
    else if (a == "--T") o.s.t = n;
    else if (a == "--Hq") o.s.h = n;
    else if (a == "--Hkv") o.s.hkv = n;
    else if (a == "--D") o.s.d = n;
    else if (a == "--iters") o.iters = n;
    else if (a == "--warmup") o.warmup = n;
    else if (a == "--seed") o.seed = n;
    else Usage("unknown option " + a);
  }
  if (o.smoke) {
    o.s = {1, 130, 4, 2, 64};
    o.iters = 1;
    o.warmup = 1;
  }
  if (o.iters < 1 || o.warmup < 0) Usage("--iters must be >= 1 and --warmup >= 0");
  if (o.s.b < 1 || o.s.t < 1) Usage("--B and --T must be >= 1");
  const cuda::AttentionImpl impl =
      o.impl == "flash" ? cuda::AttentionImpl::kFlash : cuda::AttentionImpl::kSimple;
  const std::string err = cuda::AttentionShapeError(o.s, impl);
  if (!err.empty()) Usage(err);
  return o;
}

// Uniform(-2, 2) bf16 from a 64-bit LCG (fast enough for the 7B shapes' tens of millions).
std::vector<std::uint16_t> RandomBf16(std::size_t n, std::uint64_t& state) {
  std::vector<std::uint16_t> x(n);
  for (auto& e : x) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(state >> 40) * (1.f / 16777216.f);  // [0, 1)
    e = F32ToBf16(4.f * u - 2.f);
  }
  return x;
}

using Kernel = void (*)(const cuda::AttentionShape&, const __nv_bfloat16*, const __nv_bfloat16*,
                        const __nv_bfloat16*, float, __nv_bfloat16*, float*, cudaStream_t);

int Main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);
  const cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (probe.count == 0) {
    std::printf("SKIPPED: bench_gpu_attention needs a CUDA device (%s)\n", probe.reason.c_str());
    return 77;
  }
  const cuda::AttentionShape& s = opt.s;
  const std::size_t nq = static_cast<std::size_t>(s.b * s.t * s.h * s.d);
  const std::size_t nkv = static_cast<std::size_t>(s.b * s.t * s.hkv * s.d);
  std::uint64_t state = static_cast<std::uint64_t>(opt.seed);
  const std::vector<std::uint16_t> hq = RandomBf16(nq, state), hk = RandomBf16(nkv, state),
                                   hv = RandomBf16(nkv, state);
  auto* q = static_cast<__nv_bfloat16*>(cuda::DeviceAlloc(nq * 2));
  auto* k = static_cast<__nv_bfloat16*>(cuda::DeviceAlloc(nkv * 2));
  auto* v = static_cast<__nv_bfloat16*>(cuda::DeviceAlloc(nkv * 2));
  auto* o = static_cast<__nv_bfloat16*>(cuda::DeviceAlloc(nq * 2));
  cuda::CopyHostToDevice(q, hq.data(), nq * 2);
  cuda::CopyHostToDevice(k, hk.data(), nkv * 2);
  cuda::CopyHostToDevice(v, hv.data(), nkv * 2);
  const float scale = 1.f / std::sqrt(static_cast<float>(s.d));
  const bool flash = opt.impl == "flash";
  const Kernel run = flash ? cuda::AttentionForwardFlash : cuda::AttentionForwardSimple;

  cudaStream_t stream = nullptr;
  RADLADS_CUDA_CHECK(cudaStreamCreate(&stream));
  cudaEvent_t start = nullptr, stop = nullptr;
  RADLADS_CUDA_CHECK(cudaEventCreate(&start));
  RADLADS_CUDA_CHECK(cudaEventCreate(&stop));
  for (i64 i = 0; i < opt.warmup; ++i) run(s, q, k, v, scale, o, nullptr, stream);
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream));
  RADLADS_CUDA_CHECK(cudaEventRecord(start, stream));
  for (i64 i = 0; i < opt.iters; ++i) run(s, q, k, v, scale, o, nullptr, stream);
  RADLADS_CUDA_CHECK(cudaEventRecord(stop, stream));
  RADLADS_CUDA_CHECK(cudaEventSynchronize(stop));
  float total_ms = 0.f;
  RADLADS_CUDA_CHECK(cudaEventElapsedTime(&total_ms, start, stop));
  const double fwd_ms = static_cast<double>(total_ms) / static_cast<double>(opt.iters);

  std::string check;
  bool check_failed = false;
  if (opt.check) {
    // The other kernel on the same inputs; bf16 outputs of |o| <= 2 differ by a few 1e-3.
    auto* o2 = static_cast<__nv_bfloat16*>(cuda::DeviceAlloc(nq * 2));
    (flash ? cuda::AttentionForwardSimple : cuda::AttentionForwardFlash)(s, q, k, v, scale, o2,
                                                                          nullptr, stream);
    RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<std::uint16_t> a(nq), b(nq);
    cuda::CopyDeviceToHost(a.data(), o, nq * 2);
    cuda::CopyDeviceToHost(b.data(), o2, nq * 2);
    double max_abs = 0;
    for (std::size_t i = 0; i < nq; ++i) {
      const double d = std::fabs(static_cast<double>(Bf16ToF32(a[i])) - Bf16ToF32(b[i]));
      max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, d);
    }
    cuda::DeviceFree(o2);
    char buf[64];
    std::snprintf(buf, sizeof(buf), ",\"check_max_abs\":%.3g", max_abs);
    check = buf;
    check_failed = opt.smoke && !(max_abs <= kSmokeMaxAbs);
    std::printf("check: max |%s - %s| = %.3g\n", opt.impl.c_str(), flash ? "simple" : "flash",
                max_abs);
  }

  const double flops = cuda::AttentionForwardFlops(s);
  const double bytes = cuda::AttentionForwardMinBytes(s, false);
  std::printf("attention %s on %s: B=%lld T=%lld Hq=%lld Hkv=%lld D=%lld: %.4f ms, %.1f TFLOP/s, "
              "%.1f GB/s of the minimum traffic\n",
              opt.impl.c_str(), probe.first_name.c_str(), static_cast<long long>(s.b),
              static_cast<long long>(s.t), static_cast<long long>(s.h),
              static_cast<long long>(s.hkv), static_cast<long long>(s.d), fwd_ms,
              flops / fwd_ms * 1e-9, bytes / fwd_ms * 1e-6);
  std::printf("{\"row\":\"attention\",\"impl\":\"%s\",\"B\":%lld,\"T\":%lld,\"Hq\":%lld,\"Hkv\":%lld,"
              "\"D\":%lld,\"fwd_ms\":%.6g,\"min_bytes_fwd\":%.17g,\"flops\":%.17g,\"tflops\":%.4g,"
              "\"gbps\":%.4g,\"device\":\"%s\"%s}\n",
              opt.impl.c_str(), static_cast<long long>(s.b), static_cast<long long>(s.t),
              static_cast<long long>(s.h), static_cast<long long>(s.hkv),
              static_cast<long long>(s.d), fwd_ms, bytes, flops, flops / fwd_ms * 1e-9,
              bytes / fwd_ms * 1e-6, probe.first_name.c_str(), check.c_str());

  RADLADS_CUDA_CHECK(cudaEventDestroy(start));
  RADLADS_CUDA_CHECK(cudaEventDestroy(stop));
  RADLADS_CUDA_CHECK(cudaStreamDestroy(stream));
  cuda::DeviceFree(q);
  cuda::DeviceFree(k);
  cuda::DeviceFree(v);
  cuda::DeviceFree(o);
  if (check_failed) {
    std::fprintf(stderr, "FAILED: flash and simple outputs differ by more than %g\n", kSmokeMaxAbs);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Main(argc, argv); }
