// The RAD-RWKV7 DPLR recurrence on the GPU (kernels/cuda/dplr.h): times the forward and the
// forward + backward with CUDA events after warm-up, on random bf16 inputs in the RWKV-7 regime
// (log-decay in (-0.6065, 0), a = -kappa, b = kappa * iclr with kappa unit-norm), with initial
// and final state and their gradients, as fla's chunk_rwkv7 is timed in bench/gpu/fla_peer.py.
//   bench_gpu_dplr [--B 8] [--T 4096] [--H 64] [--D 64] [--chunk 16] [--checkpoint 16]
//                  [--iters 10] [--warmup 2] [--simple] [--smoke]
// --simple times the recurrent reference kernel instead of the chunked one. --smoke: a tiny shape,
// one iteration. The LAST stdout line is one JSON object:
//   {"row":"rwkv7","impl":"chunked","B":..,"T":..,"H":..,"D":..,"fwd_ms":..,"fwdbwd_ms":..,
//    "min_bytes_fwd":..,"min_bytes_fwdbwd":..,"chunk":..,"device":"..."}
// (row "rwkv7" pairs it with fla.chunk_rwkv7 in bench/gpu/table.py). min_bytes_*: each bf16
// tensor read or written once, fp32 states (h0, hT; then dhT, h0 again, dh0): the HBM floor for a
// roofline. The backward accumulates into its gradients; they are not reset between iterations.
// Without a usable GPU it prints why and exits 77.
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
#include "kernels/cuda/dplr.h"
#include "kernels/cuda/dplr_plan.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr,
               "error: %s\nusage: bench_gpu_dplr [--B n] [--T n] [--H n] [--D 32|64|128] "
               "[--chunk n] [--checkpoint n] [--iters n] [--warmup n] [--simple] [--smoke]\n",
               msg.c_str());
  std::exit(2);
}

struct Options {
  cuda::DplrCudaDims d{8, 4096, 64, 64};
  i64 chunk = 16, checkpoint = 16, iters = 10, warmup = 2;
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
    if (a == "--B") o.d.B = v;
    else if (a == "--T") o.d.T = v;
    else if (a == "--H") o.d.H = v;
    else if (a == "--D") o.d.D = v;
    else if (a == "--chunk") o.chunk = v;
    else if (a == "--checkpoint") o.checkpoint = v;
    else if (a == "--iters") o.iters = v;
    else if (a == "--warmup") o.warmup = v;
    else Usage("unknown option " + a);
  }
  if (o.smoke) {
    o.d = {1, 37, 2, o.d.D};
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

// A device bf16 tensor of n elements filled by tiling a host pattern of `period` elements
// (a multiple of the row length, so per-row structure such as kappa's unit norm is kept).
void* DeviceBf16(i64 n, i64 period, const std::vector<float>& pattern) {
  void* p = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * 2));
  std::vector<std::uint16_t> h(static_cast<std::size_t>(period));
  for (i64 i = 0; i < period; ++i) h[static_cast<std::size_t>(i)] = F32ToBf16(pattern[static_cast<std::size_t>(i)]);
  for (i64 off = 0; off < n; off += period) {
    const i64 m = n - off < period ? n - off : period;
    RADLADS_CUDA_CHECK(cudaMemcpy(static_cast<char*>(p) + off * 2, h.data(),
                                  static_cast<std::size_t>(m) * 2, cudaMemcpyHostToDevice));
  }
  return p;
}

float* DeviceF32(i64 n, float value_scale, Lcg& rng) {
  std::vector<float> h(static_cast<std::size_t>(n));
  for (auto& x : h) x = value_scale * (rng.Next() - 0.5f);
  float* p = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * 4));
  RADLADS_CUDA_CHECK(cudaMemcpy(p, h.data(), static_cast<std::size_t>(n) * 4, cudaMemcpyHostToDevice));
  return p;
}

int Run(const Options& o) {
  const cuda::DeviceProbe probe = cuda::ProbeDevices();
  if (probe.count == 0) {
    std::printf("SKIPPED: bench_gpu_dplr needs a CUDA device (%s)\n", probe.reason.c_str());
    return 77;
  }
  cuda::DplrCudaConfig cfg;
  cfg.form = o.simple ? cuda::DplrForm::kRecurrent : cuda::DplrForm::kChunked;
  cfg.dtype = cuda::DplrDType::kBf16;
  cfg.scale = 1.0f / std::sqrt(static_cast<float>(o.d.D));
  cfg.chunk = o.chunk;
  cfg.checkpoint = o.checkpoint;
  const std::string why = cuda::DplrCudaValidate(o.d, cfg);
  if (!why.empty()) Usage(why);
  const i64 D = o.d.D, n = o.d.B * o.d.T * o.d.H * D, ns = o.d.B * o.d.H * D * D;

  // Input patterns: 4096 rows (or fewer) tiled over the tensors.
  const i64 rows = n / D < 4096 ? n / D : 4096, period = rows * D;
  Lcg rng{12345};
  std::vector<float> pr(period), pg(period), pk(period), pv(period), pa(period), pb(period),
      pd(period);
  for (i64 i = 0; i < period; ++i) {
    pr[i] = 2.0f * rng.Next() - 1.0f;
    pk[i] = (2.0f * rng.Next() - 1.0f) / std::sqrt(static_cast<float>(D));
    pv[i] = 2.0f * rng.Next() - 1.0f;
    pd[i] = 2.0f * rng.Next() - 1.0f;
    pg[i] = -0.6065306597f / (1.0f + std::exp(-4.0f * (rng.Next() - 0.5f)));
  }
  for (i64 row = 0; row < rows; ++row) {
    double n2 = 0.0;
    for (i64 i = 0; i < D; ++i) {
      const float x = rng.Next() - 0.5f;
      pa[row * D + i] = x;
      n2 += static_cast<double>(x) * x;
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(n2));
    for (i64 i = 0; i < D; ++i) {
      const float kk = pa[row * D + i] * inv;
      pa[row * D + i] = -kk;
      pb[row * D + i] = kk * rng.Next();
    }
  }
  void* r = DeviceBf16(n, period, pr);
  void* g = DeviceBf16(n, period, pg);
  void* k = DeviceBf16(n, period, pk);
  void* v = DeviceBf16(n, period, pv);
  void* a = DeviceBf16(n, period, pa);
  void* b = DeviceBf16(n, period, pb);
  void* dout = DeviceBf16(n, period, pd);
  std::vector<void*> grads(6);
  for (auto& x : grads) {
    RADLADS_CUDA_CHECK(cudaMalloc(&x, static_cast<std::size_t>(n) * 2));
    RADLADS_CUDA_CHECK(cudaMemset(x, 0, static_cast<std::size_t>(n) * 2));
  }
  void* o_ = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&o_, static_cast<std::size_t>(n) * 2));
  float* h0 = DeviceF32(ns, 0.5f, rng);
  float* dhT = DeviceF32(ns, 1.0f, rng);
  float *hT = nullptr, *dh0 = nullptr;
  RADLADS_CUDA_CHECK(cudaMalloc(&hT, static_cast<std::size_t>(ns) * 4));
  RADLADS_CUDA_CHECK(cudaMalloc(&dh0, static_cast<std::size_t>(ns) * 4));
  RADLADS_CUDA_CHECK(cudaMemset(dh0, 0, static_cast<std::size_t>(ns) * 4));

  const std::size_t wf = cuda::DplrCudaForwardWorkspaceBytes(o.d, cfg);
  const std::size_t wb = cuda::DplrCudaBackwardWorkspaceBytes(o.d, cfg);
  const std::size_t wbytes = wf > wb ? wf : wb;
  void* ws = nullptr;
  if (wbytes > 0) RADLADS_CUDA_CHECK(cudaMalloc(&ws, wbytes));

  cuda::DplrCudaForwardArgs fa;
  fa.r = r, fa.g = g, fa.k = k, fa.v = v, fa.a = a, fa.b = b, fa.h0 = h0, fa.o = o_, fa.hT = hT;
  cuda::DplrCudaBackwardArgs ba;
  ba.r = r, ba.g = g, ba.k = k, ba.v = v, ba.a = a, ba.b = b, ba.h0 = h0, ba.dout = dout;
  ba.dhT = dhT, ba.dr = grads[0], ba.dg = grads[1], ba.dk = grads[2], ba.dv = grads[3];
  ba.da = grads[4], ba.db = grads[5], ba.dh0 = dh0;

  cudaStream_t stream = nullptr;
  RADLADS_CUDA_CHECK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  RADLADS_CUDA_CHECK(cudaEventCreate(&e0));
  RADLADS_CUDA_CHECK(cudaEventCreate(&e1));
  auto fwd = [&] { cuda::DplrCudaForward(o.d, cfg, fa, ws, wbytes, stream); };
  auto fwdbwd = [&] {
    fwd();
    cuda::DplrCudaBackward(o.d, cfg, ba, ws, wbytes, stream);
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
  RADLADS_CUDA_CHECK(cudaMemcpy(ho.data(), o_, ho.size() * 2, cudaMemcpyDeviceToHost));
  for (std::uint16_t x : ho) {
    if (!std::isfinite(Bf16ToF32(x))) {
      std::fprintf(stderr, "error: non-finite output\n");
      return 1;
    }
  }

  const i64 mb_fwd = cuda::dplr_plan::MinBytesForward(o.d, 2, true, true);
  const i64 mb_fwdbwd = mb_fwd + cuda::dplr_plan::MinBytesBackward(o.d, 2, true, true, true, false);
  std::printf("dplr %s B=%lld T=%lld H=%lld D=%lld: fwd %.3f ms, fwd+bwd %.3f ms (%s)\n",
              o.simple ? "recurrent" : "chunked", static_cast<long long>(o.d.B),
              static_cast<long long>(o.d.T), static_cast<long long>(o.d.H),
              static_cast<long long>(D), fwd_ms, fwdbwd_ms, probe.first_name.c_str());
  std::printf(
      "{\"row\":\"rwkv7\",\"impl\":\"%s\",\"B\":%lld,\"T\":%lld,\"H\":%lld,\"D\":%lld,"
      "\"fwd_ms\":%.4f,\"fwdbwd_ms\":%.4f,\"min_bytes_fwd\":%lld,\"min_bytes_fwdbwd\":%lld,"
      "\"chunk\":%lld,\"device\":\"%s\"}\n",
      o.simple ? "recurrent" : "chunked", static_cast<long long>(o.d.B),
      static_cast<long long>(o.d.T), static_cast<long long>(o.d.H), static_cast<long long>(D),
      fwd_ms, fwdbwd_ms, static_cast<long long>(mb_fwd), static_cast<long long>(mb_fwdbwd),
      static_cast<long long>(o.simple ? 0 : o.chunk), probe.first_name.c_str());

  for (void* x : {r, g, k, v, a, b, dout, o_}) cudaFree(x);
  for (void* x : grads) cudaFree(x);
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
