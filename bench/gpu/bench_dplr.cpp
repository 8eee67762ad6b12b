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
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench_util.h"
#include "kernels/cuda/dplr.h"
#include "kernels/cuda/dplr_plan.h"

namespace radlads {
namespace {

using i64 = std::int64_t;

constexpr char kUsage[] =
    "bench_gpu_dplr [--B n] [--T n] [--H n] [--D 32|64|128] [--chunk n] [--checkpoint n] "
    "[--iters n] [--warmup n] [--simple] [--smoke]";

[[noreturn]] void Usage(const std::string& msg) { gpu_bench::UsageExit(kUsage, msg); }

struct Options : gpu_bench::RecurrenceOptions {
  i64 chunk = 16, checkpoint = 16;
};

Options Parse(int argc, char** argv) {
  Options o;
  static_cast<gpu_bench::RecurrenceOptions&>(o) = gpu_bench::ParseRecurrenceOptions(
      argc, argv, kUsage, [&o](gpu_bench::Args& args, i64 v) {
        if (args.Is("--chunk")) o.chunk = v;
        else if (args.Is("--checkpoint")) o.checkpoint = v;
        else return false;
        return true;
      });
  return o;
}

int Run(const Options& o) {
  const cuda::DplrCudaDims dims{o.B, o.T, o.H, o.D};
  cuda::DeviceProbe probe;
  if (!gpu_bench::ProbeOrSkip("bench_gpu_dplr", &probe)) return gpu_bench::kSkipExit;
  cuda::DplrCudaConfig cfg;
  cfg.form = o.simple ? cuda::DplrForm::kRecurrent : cuda::DplrForm::kChunked;
  cfg.dtype = cuda::DplrDType::kBf16;
  cfg.scale = 1.0f / std::sqrt(static_cast<float>(o.D));
  cfg.chunk = o.chunk;
  cfg.checkpoint = o.checkpoint;
  const std::string why = cuda::DplrCudaValidate(dims, cfg);
  if (!why.empty()) Usage(why);
  const i64 D = o.D, n = o.B * o.T * o.H * D, ns = o.B * o.H * D * D;
  const std::size_t bf16_bytes = static_cast<std::size_t>(n) * 2;
  const std::size_t state_bytes = static_cast<std::size_t>(ns) * 4;

  // Input patterns: 4096 rows (or fewer) tiled over the tensors (whole rows, so kappa's unit
  // norm per row is kept).
  const i64 rows = n / D < 4096 ? n / D : 4096, period = rows * D;
  gpu_bench::Lcg rng{12345};
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
  gpu_bench::DeviceBuffers mem;
  void* r = mem.Bf16(n, pr);
  void* g = mem.Bf16(n, pg);
  void* k = mem.Bf16(n, pk);
  void* v = mem.Bf16(n, pv);
  void* a = mem.Bf16(n, pa);
  void* b = mem.Bf16(n, pb);
  void* dout = mem.Bf16(n, pd);
  std::vector<void*> grads(6);
  for (auto& x : grads) x = mem.Zeros(bf16_bytes);
  void* o_ = mem.Alloc(bf16_bytes);
  float* h0 = mem.F32(ns, 0.5f, rng);
  float* dhT = mem.F32(ns, 1.0f, rng);
  auto* hT = static_cast<float*>(mem.Alloc(state_bytes));
  auto* dh0 = static_cast<float*>(mem.Zeros(state_bytes));

  const std::size_t wf = cuda::DplrCudaForwardWorkspaceBytes(dims, cfg);
  const std::size_t wb = cuda::DplrCudaBackwardWorkspaceBytes(dims, cfg);
  const std::size_t wbytes = wf > wb ? wf : wb;
  void* ws = wbytes > 0 ? mem.Alloc(wbytes) : nullptr;

  cuda::DplrCudaForwardArgs fa;
  fa.r = r, fa.g = g, fa.k = k, fa.v = v, fa.a = a, fa.b = b, fa.h0 = h0, fa.o = o_, fa.hT = hT;
  cuda::DplrCudaBackwardArgs ba;
  ba.r = r, ba.g = g, ba.k = k, ba.v = v, ba.a = a, ba.b = b, ba.h0 = h0, ba.dout = dout;
  ba.dhT = dhT, ba.dr = grads[0], ba.dg = grads[1], ba.dk = grads[2], ba.dv = grads[3];
  ba.da = grads[4], ba.db = grads[5], ba.dh0 = dh0;

  gpu_bench::EventTimer timer;
  cudaStream_t stream = timer.stream();
  auto fwd = [&] { cuda::DplrCudaForward(dims, cfg, fa, ws, wbytes, stream); };
  auto fwdbwd = [&] {
    fwd();
    cuda::DplrCudaBackward(dims, cfg, ba, ws, wbytes, stream);
  };
  const double fwd_ms = timer.MeanMs(o.warmup, o.iters, fwd);
  const double fwdbwd_ms = timer.MeanMs(o.warmup, o.iters, fwdbwd);
  RADLADS_CUDA_CHECK(cudaGetLastError());
  if (!gpu_bench::FiniteBf16Output(o_, n)) return 1;

  const i64 mb_fwd = cuda::dplr_plan::MinBytesForward(dims, 2, true, true);
  const i64 mb_fwdbwd =
      mb_fwd + cuda::dplr_plan::MinBytesBackward(dims, 2, true, true, true, false);
  gpu_bench::ReportRecurrence("dplr", "rwkv7", o, fwd_ms, fwdbwd_ms, mb_fwd, mb_fwdbwd,
                              o.simple ? 0 : o.chunk, probe.first_name);
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Run(radlads::Parse(argc, argv)); }
