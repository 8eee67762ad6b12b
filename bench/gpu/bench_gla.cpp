// The RAD-RWKV6 (GLA) recurrence on the GPU (kernels/cuda/gla.h): times the forward and the
// forward + backward with CUDA events after warm-up, on random bf16 inputs in the RAD-RWKV6
// regime (g = max(-exp(x), -5), x uniform in [-3, 1.6], as bench/gpu/fla_peer.py draws it for
// fla's chunk_gla), with initial and final state and their gradients.
//   bench_gpu_gla [--B 8] [--T 4096] [--H 64] [--D 64] [--iters 10] [--warmup 2] [--simple]
//                 [--smoke]
// --simple times the recurrent reference kernels instead of the chunked ones. --smoke: a tiny
// shape, one iteration. The LAST stdout line is one JSON object:
//   {"row":"rwkv6","impl":"chunked","B":..,"T":..,"H":..,"D":..,"fwd_ms":..,"fwdbwd_ms":..,
//    "min_bytes_fwd":..,"min_bytes_fwdbwd":..,"device":"..."}
// (row "rwkv6" pairs it with fla.chunk_gla in bench/gpu/table.py). min_bytes_*: each bf16
// tensor read or written once, fp32 states (h0, hT; then dhT, dh0), as fla_peer.py counts them:
// the HBM floor for a roofline. The backward accumulates into its gradients; they are not reset
// between iterations. Without a usable GPU it prints why and exits 77.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gla.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr,
               "error: %s\nusage: bench_gpu_gla [--B n] [--T n] [--H n] [--D 32|64|128] "
               "[--iters n] [--warmup n] [--simple] [--smoke]\n",
               msg.c_str());
  std::exit(2);
}

struct Options {
  i64 B = 8, T = 4096, H = 64, D = 64, iters = 10, warmup = 2;
  bool simple = false, smoke = false;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      o.smoke = true;
      continue;
    }
    if (a == "--simple") {
      o.simple = true;
      continue;
    }
    if (i + 1 >= argc) Usage("missing value after " + a);
    char* end = nullptr;
    const long long v = std::strtoll(argv[++i], &end, 10);
    if (end == nullptr || *end != '\0' || v < 0) Usage("bad value for " + a);
    if (a == "--B") o.B = v;
    else if (a == "--T") o.T = v;
    else if (a == "--H") o.H = v;
    else if (a == "--D") o.D = v;
    else if (a == "--iters") o.iters = v;
    else if (a == "--warmup") o.warmup = v;
    else Usage("unknown option " + a);
  }
  if (o.smoke) {
    o.B = 1;
    o.T = 37;
    o.H = 2;
    o.iters = 1;
    o.warmup = 1;
  }
  if (o.iters < 1) Usage("--iters must be >= 1");
  return o;
}

// Deterministic pseudo-random floats in [0, 1).
struct Lcg {
  std::uint64_t s;
  float Next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f;
  }
};

// A device bf16 tensor of n elements filled by tiling a host pattern of `period` elements.
__nv_bfloat16* DeviceBf16(i64 n, i64 period, const std::vector<float>& pattern) {
  void* p = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * 2));
  std::vector<std::uint16_t> h(static_cast<std::size_t>(period));
  for (i64 i = 0; i < period; ++i) {
    h[static_cast<std::size_t>(i)] = F32ToBf16(pattern[static_cast<std::size_t>(i)]);
  }
  for (i64 off = 0; off < n; off += period) {
    const i64 m = n - off < period ? n - off : period;
    RADLADS_CUDA_CHECK(cudaMemcpy(static_cast<char*>(p) + off * 2, h.data(),
                                  static_cast<std::size_t>(m) * 2, cudaMemcpyHostToDevice));
  }
  return static_cast<__nv_bfloat16*>(p);
}

float* DeviceF32(i64 n, float value_scale, Lcg& rng) {
  std::vector<float> h(static_cast<std::size_t>(n));
  for (auto& x : h) x = value_scale * (rng.Next() - 0.5f);
  float* p = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * 4));
  RADLADS_CUDA_CHECK(
      cudaMemcpy(p, h.data(), static_cast<std::size_t>(n) * 4, cudaMemcpyHostToDevice));
  return p;
}

int Run(const Options& o) {
  const cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (probe.count == 0) {
    std::printf("SKIPPED: bench_gpu_gla needs a CUDA device (%s)\n", probe.reason.c_str());
    return 77;
  }
  const cuda::GlaAlgo algo = o.simple ? cuda::GlaAlgo::kRecurrent : cuda::GlaAlgo::kChunked;
  const cuda::GlaShape shape{o.B, o.T, o.H, o.D, o.D};
  const std::string why = cuda::gla_plan::Validate(shape, algo);
  if (!why.empty()) Usage(why);
  const i64 D = o.D, n = o.B * o.T * o.H * D, ns = o.B * o.H * D * D;

  const i64 rows = n / D < 4096 ? n / D : 4096, period = rows * D;
  Lcg rng{4242};
  std::vector<float> pr(period), pk(period), pv(period), pg(period), pd(period);
  for (i64 i = 0; i < period; ++i) {
    pr[i] = 2.0f * rng.Next() - 1.0f;
    pk[i] = 2.0f * rng.Next() - 1.0f;
    pv[i] = 2.0f * rng.Next() - 1.0f;
    pd[i] = 2.0f * rng.Next() - 1.0f;
    pg[i] = std::fmax(-std::exp(4.6f * rng.Next() - 3.0f), -5.0f);
  }
  __nv_bfloat16* r = DeviceBf16(n, period, pr);
  __nv_bfloat16* k = DeviceBf16(n, period, pk);
  __nv_bfloat16* v = DeviceBf16(n, period, pv);
  __nv_bfloat16* g = DeviceBf16(n, period, pg);
  __nv_bfloat16* dout = DeviceBf16(n, period, pd);
  std::vector<__nv_bfloat16*> bufs(5);  // o, dr, dk, dv, dg
  for (auto& x : bufs) {
    RADLADS_CUDA_CHECK(cudaMalloc(&x, static_cast<std::size_t>(n) * 2));
    RADLADS_CUDA_CHECK(cudaMemset(x, 0, static_cast<std::size_t>(n) * 2));
  }
  float* h0 = DeviceF32(ns, 0.5f, rng);
  float* dhT = DeviceF32(ns, 1.0f, rng);
  float *hT = nullptr, *dh0 = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&hT, static_cast<std::size_t>(ns) * 4));
  RADLADS_CUDA_CHECK(cudaMalloc(&dh0, static_cast<std::size_t>(ns) * 4));
  RADLADS_CUDA_CHECK(cudaMemset(dh0, 0, static_cast<std::size_t>(ns) * 4));
  const std::size_t wbytes = cuda::gla_plan::BackwardWorkspaceBytes(shape, algo);
  void* ws = nullptr;
  if (wbytes > 0) RADLADS_CUDA_CHECK(cudaMalloc(&ws, wbytes));

  cuda::GlaForwardArgs fa;
  fa.shape = shape;
  fa.scale = 1.0f / std::sqrt(static_cast<float>(D));
  fa.r = r, fa.k = k, fa.v = v, fa.g = g, fa.h0 = h0, fa.o = bufs[0], fa.hT = hT;
  cuda::GlaBackwardArgs ba;
  ba.shape = shape;
  ba.scale = fa.scale;
  ba.r = r, ba.k = k, ba.v = v, ba.g = g, ba.h0 = h0, ba.d_o = dout, ba.dhT = dhT;
  ba.dr = bufs[1], ba.dk = bufs[2], ba.dv = bufs[3], ba.dg = bufs[4], ba.dh0 = dh0;

  cudaStream_t stream = nullptr;
  RADLADS_CUDA_CHECK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  RADLADS_CUDA_CHECK(cudaEventCreate(&e0));
  RADLADS_CUDA_CHECK(cudaEventCreate(&e1));
  auto fwd = [&] { cuda::GlaForwardCuda(fa, algo, stream); };
  auto fwdbwd = [&] {
    fwd();
    cuda::GlaBackwardCuda(ba, algo, ws, wbytes, stream);
  };
  auto time_ms = [&](auto&& fn) {
    for (i64 i = 0; i < o.warmup; ++i) fn();
    RADLADS_CUDA_CHECK(cudaEventRecord(e0, stream));
    for (i64 i = 0; i < o.iters; ++i) fn();
    RADLADS_CUDA_CHECK(cudaEventRecord(e1, stream));
    RADLADS_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0.0f;
    RADLADS_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    return static_cast<double>(ms) / static_cast<double>(o.iters);
  };
  const double fwd_ms = time_ms(fwd);
  const double fwdbwd_ms = time_ms(fwdbwd);
  RADLADS_CUDA_CHECK(cudaGetLastError());

  // Sanity: the output is finite (a NaN would make the timing meaningless).
  std::vector<std::uint16_t> ho(static_cast<std::size_t>(n < 65536 ? n : 65536));
  RADLADS_CUDA_CHECK(cudaMemcpy(ho.data(), bufs[0], ho.size() * 2, cudaMemcpyDeviceToHost));
  for (std::uint16_t x : ho) {
    if (!std::isfinite(Bf16ToF32(x))) {
      std::fprintf(stderr, "error: non-finite output\n");
      return 1;
    }
  }

  const i64 mb_fwd = cuda::gla_plan::MinBytesForward(shape, 2, true, true);
  const i64 mb_fwdbwd = mb_fwd + cuda::gla_plan::MinBytesBackward(shape, 2, false, true, true);
  const char* impl = o.simple ? "recurrent" : "chunked";
  std::printf("gla %s B=%lld T=%lld H=%lld D=%lld: fwd %.3f ms, fwd+bwd %.3f ms (%s)\n", impl,
              static_cast<long long>(o.B), static_cast<long long>(o.T),
              static_cast<long long>(o.H), static_cast<long long>(D), fwd_ms, fwdbwd_ms,
              probe.first_name.c_str());
  std::printf(
      "{\"row\":\"rwkv6\",\"impl\":\"%s\",\"B\":%lld,\"T\":%lld,\"H\":%lld,\"D\":%lld,"
      "\"fwd_ms\":%.4f,\"fwdbwd_ms\":%.4f,\"min_bytes_fwd\":%lld,\"min_bytes_fwdbwd\":%lld,"
      "\"device\":\"%s\"}\n",
      impl, static_cast<long long>(o.B), static_cast<long long>(o.T),
      static_cast<long long>(o.H), static_cast<long long>(D), fwd_ms, fwdbwd_ms,
      static_cast<long long>(mb_fwd), static_cast<long long>(mb_fwdbwd),
      probe.first_name.c_str());

  for (void* x : {static_cast<void*>(r), static_cast<void*>(k), static_cast<void*>(v),
                  static_cast<void*>(g), static_cast<void*>(dout)}) {
    cudaFree(x);
  }
  for (auto* x : bufs) cudaFree(x);
  for (float* x : {h0, dhT, hT, dh0}) cudaFree(x);
  if (ws != nullptr) cudaFree(ws);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Run(radlads::Parse(argc, argv)); }
