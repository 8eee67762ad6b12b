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
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench_util.h"
#include "kernels/cuda/gla.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

constexpr char kUsage[] =
    "bench_gpu_gla [--B n] [--T n] [--H n] [--D 32|64|128] [--iters n] [--warmup n] [--simple] "
    "[--smoke]";

[[noreturn]] void Usage(const std::string& msg) { gpu_bench::UsageExit(kUsage, msg); }

using Options = gpu_bench::RecurrenceOptions;

Options Parse(int argc, char** argv) {
  return gpu_bench::ParseRecurrenceOptions(argc, argv, kUsage,
                                           [](gpu_bench::Args&, i64) { return false; });
}

int Run(const Options& o) {
  cuda::DeviceProbe probe;
  if (!gpu_bench::ProbeOrSkip("bench_gpu_gla", &probe)) return gpu_bench::kSkipExit;
  const cuda::GlaAlgo algo = o.simple ? cuda::GlaAlgo::kRecurrent : cuda::GlaAlgo::kChunked;
  const cuda::GlaShape shape{o.B, o.T, o.H, o.D, o.D};
  const std::string why = cuda::gla_plan::Validate(shape, algo);
  if (!why.empty()) Usage(why);
  const i64 D = o.D, n = o.B * o.T * o.H * D, ns = o.B * o.H * D * D;
  const std::size_t bf16_bytes = static_cast<std::size_t>(n) * 2;
  const std::size_t state_bytes = static_cast<std::size_t>(ns) * 4;

  const i64 rows = n / D < 4096 ? n / D : 4096, period = rows * D;
  gpu_bench::Lcg rng{4242};
  std::vector<float> pr(period), pk(period), pv(period), pg(period), pd(period);
  for (i64 i = 0; i < period; ++i) {
    pr[i] = 2.0f * rng.Next() - 1.0f;
    pk[i] = 2.0f * rng.Next() - 1.0f;
    pv[i] = 2.0f * rng.Next() - 1.0f;
    pd[i] = 2.0f * rng.Next() - 1.0f;
    pg[i] = std::fmax(-std::exp(4.6f * rng.Next() - 3.0f), -5.0f);
  }
  gpu_bench::DeviceBuffers mem;
  __nv_bfloat16* r = mem.Bf16(n, pr);
  __nv_bfloat16* k = mem.Bf16(n, pk);
  __nv_bfloat16* v = mem.Bf16(n, pv);
  __nv_bfloat16* g = mem.Bf16(n, pg);
  __nv_bfloat16* dout = mem.Bf16(n, pd);
  std::vector<__nv_bfloat16*> bufs(5);  // o, dr, dk, dv, dg
  for (auto& x : bufs) x = static_cast<__nv_bfloat16*>(mem.Zeros(bf16_bytes));
  float* h0 = mem.F32(ns, 0.5f, rng);
  float* dhT = mem.F32(ns, 1.0f, rng);
  auto* hT = static_cast<float*>(mem.Alloc(state_bytes));
  auto* dh0 = static_cast<float*>(mem.Zeros(state_bytes));
  const std::size_t wbytes = cuda::gla_plan::BackwardWorkspaceBytes(shape, algo);
  void* ws = wbytes > 0 ? mem.Alloc(wbytes) : nullptr;

  cuda::GlaForwardArgs fa;
  fa.shape = shape;
  fa.scale = 1.0f / std::sqrt(static_cast<float>(D));
  fa.r = r, fa.k = k, fa.v = v, fa.g = g, fa.h0 = h0, fa.o = bufs[0], fa.hT = hT;
  cuda::GlaBackwardArgs ba;
  ba.shape = shape;
  ba.scale = fa.scale;
  ba.r = r, ba.k = k, ba.v = v, ba.g = g, ba.h0 = h0, ba.d_o = dout, ba.dhT = dhT;
  ba.dr = bufs[1], ba.dk = bufs[2], ba.dv = bufs[3], ba.dg = bufs[4], ba.dh0 = dh0;

  gpu_bench::EventTimer timer;
  cudaStream_t stream = timer.stream();
  auto fwd = [&] { cuda::GlaForwardCuda(fa, algo, stream); };
  auto fwdbwd = [&] {
    fwd();
    cuda::GlaBackwardCuda(ba, algo, ws, wbytes, stream);
  };
  const double fwd_ms = timer.MeanMs(o.warmup, o.iters, fwd);
  const double fwdbwd_ms = timer.MeanMs(o.warmup, o.iters, fwdbwd);
  RADLADS_CUDA_CHECK(cudaGetLastError());
  if (!gpu_bench::FiniteBf16Output(bufs[0], n)) return 1;

  const i64 mb_fwd = cuda::gla_plan::MinBytesForward(shape, 2, true, true);
  const i64 mb_fwdbwd = mb_fwd + cuda::gla_plan::MinBytesBackward(shape, 2, false, true, true);
  gpu_bench::ReportRecurrence("gla", "rwkv6", o, fwd_ms, fwdbwd_ms, mb_fwd, mb_fwdbwd,
                              std::nullopt, probe.first_name);
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Run(radlads::Parse(argc, argv)); }
