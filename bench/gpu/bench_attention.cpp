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
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench_util.h"
#include "kernels/cuda/attention.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

// Inputs are uniform in (-2, 2), so |o| < 2: the two kernels' bf16 outputs may differ by the
// output rounding (<= 2^-8 |o| each) plus the flash kernel's bf16 probabilities
// (<= 2^-8 max|v|), under 1.6e-2 even if every rounding had the same sign.
constexpr double kSmokeMaxAbs = 2e-2;

constexpr char kUsage[] =
    "bench_gpu_attention [--B n] [--T n] [--Hq n] [--Hkv n] [--D n] [--impl flash|simple] "
    "[--iters n] [--warmup n] [--seed n] [--check] [--smoke]";

[[noreturn]] void Usage(const std::string& msg) { gpu_bench::UsageExit(kUsage, msg); }

struct Options {
  cuda::AttentionShape s{12, 512, 28, 4, 128};
  std::string impl = "flash";
  i64 iters = 20, warmup = 3, seed = 1;
  bool check = false, smoke = false;
};

Options Parse(int argc, char** argv) {
  Options o;
  gpu_bench::Args args(argc, argv, kUsage);
  while (args.Next()) {
    const std::string& a = args.name();
    if (a == "--smoke") {
      o.smoke = o.check = true;
      continue;
    }
    if (a == "--check") {
      o.check = true;
      continue;
    }
    if (!args.HasValue()) Usage(a + " needs a value (or is unknown)");
    const std::string v = args.Value();
    if (a == "--impl") {
      if (v != "flash" && v != "simple") Usage("--impl must be flash or simple");
      o.impl = v;
      continue;
    }
    long long n = 0;
    if (!gpu_bench::ParseInteger(v, &n)) Usage(a + " needs an integer, got " + v);
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

using Kernel = void (*)(const cuda::AttentionShape&, const __nv_bfloat16*, const __nv_bfloat16*,
                        const __nv_bfloat16*, float, __nv_bfloat16*, float*, cudaStream_t);

int Main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);
  cuda::DeviceProbe probe;
  if (!gpu_bench::ProbeOrSkip("bench_gpu_attention", &probe)) return gpu_bench::kSkipExit;
  const cuda::AttentionShape& s = opt.s;
  const std::size_t nq = static_cast<std::size_t>(s.b * s.t * s.h * s.d);
  const std::size_t nkv = static_cast<std::size_t>(s.b * s.t * s.hkv * s.d);
  // Uniform(-2, 2) inputs, q then k then v from one LCG seeded with --seed.
  gpu_bench::Lcg rng{static_cast<std::uint64_t>(opt.seed)};
  gpu_bench::DeviceBuffers mem;
  const __nv_bfloat16* q = mem.Bf16(static_cast<i64>(nq), gpu_bench::Uniform(nq, -2.f, 2.f, rng));
  const __nv_bfloat16* k =
      mem.Bf16(static_cast<i64>(nkv), gpu_bench::Uniform(nkv, -2.f, 2.f, rng));
  const __nv_bfloat16* v =
      mem.Bf16(static_cast<i64>(nkv), gpu_bench::Uniform(nkv, -2.f, 2.f, rng));
  auto* o = static_cast<__nv_bfloat16*>(mem.Alloc(nq * 2));
  const float scale = 1.f / std::sqrt(static_cast<float>(s.d));
  const bool flash = opt.impl == "flash";
  const Kernel run = flash ? cuda::AttentionForwardFlash : cuda::AttentionForwardSimple;

  gpu_bench::EventTimer timer;
  cudaStream_t stream = timer.stream();
  const double fwd_ms = timer.MeanMs(opt.warmup, opt.iters,
                                     [&] { run(s, q, k, v, scale, o, nullptr, stream); });

  double max_abs = 0;
  bool check_failed = false;
  if (opt.check) {
    // The other kernel on the same inputs; bf16 outputs of |o| <= 2 differ by a few 1e-3.
    auto* o2 = static_cast<__nv_bfloat16*>(mem.Alloc(nq * 2));
    (flash ? cuda::AttentionForwardSimple : cuda::AttentionForwardFlash)(s, q, k, v, scale, o2,
                                                                          nullptr, stream);
    RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<std::uint16_t> a(nq), b(nq);
    RADLADS_CUDA_CHECK(cudaMemcpy(a.data(), o, nq * 2, cudaMemcpyDeviceToHost));
    RADLADS_CUDA_CHECK(cudaMemcpy(b.data(), o2, nq * 2, cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < nq; ++i) {
      const double d = std::fabs(static_cast<double>(Bf16ToF32(a[i])) - Bf16ToF32(b[i]));
      max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, d);
    }
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
  gpu_bench::JsonLine json;
  json.Str("row", "attention")
      .Str("impl", opt.impl)
      .Int("B", s.b)
      .Int("T", s.t)
      .Int("Hq", s.h)
      .Int("Hkv", s.hkv)
      .Int("D", s.d)
      .General("fwd_ms", fwd_ms, 6)
      .General("min_bytes_fwd", bytes, 17)
      .General("flops", flops, 17)
      .General("tflops", flops / fwd_ms * 1e-9, 4)
      .General("gbps", bytes / fwd_ms * 1e-6, 4)
      .Str("device", probe.first_name);
  if (opt.check) json.General("check_max_abs", max_abs, 3);
  json.Print();

  if (check_failed) {
    std::fprintf(stderr, "FAILED: flash and simple outputs differ by more than %g\n", kSmokeMaxAbs);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Main(argc, argv); }
