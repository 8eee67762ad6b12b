// Public entry points of the CUDA DPLR recurrence (kernels/cuda/dplr.h): validation, workspace
// sizes, the T = 0 edge cases, and dispatch to the recurrent (dplr_recurrent.cu) or chunked
// (dplr_chunked.cu) form.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dplr_common.cuh"

namespace radlads::cuda {
namespace {

using dplr_detail::I64;

std::int64_t MaxSmemOptin() {
  int dev = 0, bytes = 0;
  RADLADS_CUDA_CHECK(cudaGetDevice(&dev));
  RADLADS_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return bytes;
}

__global__ void StateSetKernel(I64 n, const float* src, float* dst) {
  for (I64 i = blockIdx.x * static_cast<I64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I64>(gridDim.x) * blockDim.x) {
    dst[i] = src != nullptr ? src[i] : 0.0f;
  }
}

__global__ void StateAddKernel(I64 n, const float* src, float* dst) {
  for (I64 i = blockIdx.x * static_cast<I64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I64>(gridDim.x) * blockDim.x) {
    dst[i] += src[i];
  }
}

unsigned Blocks(I64 n) {
  const I64 b = (n + 255) / 256;
  return static_cast<unsigned>(b < 4096 ? (b < 1 ? 1 : b) : 4096);
}

void Require(const DplrCudaDims& d, const DplrCudaConfig& cfg) {
  const std::string why = DplrCudaValidate(d, cfg);
  RADLADS_DPLR_REQUIRE(why.empty(), why);
}

}  // namespace

std::size_t DplrCudaForwardWorkspaceBytes(const DplrCudaDims& d, const DplrCudaConfig& cfg) {
  Require(d, cfg);
  return dplr_plan::MakeForwardPlan(d, cfg, MaxSmemOptin()).workspace_bytes;
}

std::size_t DplrCudaBackwardWorkspaceBytes(const DplrCudaDims& d, const DplrCudaConfig& cfg) {
  Require(d, cfg);
  return dplr_plan::MakeBackwardPlan(d, cfg, MaxSmemOptin()).workspace_bytes;
}

void DplrCudaForward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                     const DplrCudaForwardArgs& args, void* workspace,
                     std::size_t workspace_bytes, cudaStream_t stream) {
  Require(d, cfg);
  const I64 BH = d.B * d.H, ns = BH * d.D * d.D;
  if (BH == 0) return;
  if (d.T == 0) {
    if (args.hT != nullptr) {
      StateSetKernel<<<Blocks(ns), 256, 0, stream>>>(ns, args.h0, args.hT);
      RADLADS_CUDA_CHECK(cudaGetLastError());
    }
    return;
  }
  RADLADS_DPLR_REQUIRE(args.r && args.g && args.k && args.v && args.a && args.b && args.o,
                       "forward: r, g, k, v, a, b and o must be non-null");
  if (cfg.form == DplrForm::kRecurrent) {
    dplr_detail::RecurrentForward(d, cfg, args, stream);
    return;
  }
  const dplr_plan::Plan p = dplr_plan::MakeForwardPlan(d, cfg, MaxSmemOptin());
  RADLADS_DPLR_REQUIRE(workspace_bytes >= p.workspace_bytes && (p.workspace_bytes == 0 || workspace),
                       "forward workspace too small: need " + std::to_string(p.workspace_bytes) +
                           " bytes, got " + std::to_string(workspace_bytes));
  dplr_detail::ChunkedForward(d, cfg, p, args, static_cast<char*>(workspace), stream);
}

void DplrCudaBackward(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      const DplrCudaBackwardArgs& args, void* workspace,
                      std::size_t workspace_bytes, cudaStream_t stream) {
  Require(d, cfg);
  const I64 BH = d.B * d.H, ns = BH * d.D * d.D;
  if (BH == 0) return;
  if (d.T == 0) {
    if (args.dh0 != nullptr && args.dhT != nullptr) {
      StateAddKernel<<<Blocks(ns), 256, 0, stream>>>(ns, args.dhT, args.dh0);
      RADLADS_CUDA_CHECK(cudaGetLastError());
    }
    return;
  }
  RADLADS_DPLR_REQUIRE(args.r && args.g && args.k && args.v && args.a && args.b && args.dout &&
                           args.dr && args.dg && args.dk && args.dv && args.da && args.db,
                       "backward: inputs, dout and the six gradients must be non-null");
  const dplr_plan::Plan p = dplr_plan::MakeBackwardPlan(d, cfg, MaxSmemOptin());
  RADLADS_DPLR_REQUIRE(workspace_bytes >= p.workspace_bytes && (p.workspace_bytes == 0 || workspace),
                       "backward workspace too small: need " + std::to_string(p.workspace_bytes) +
                           " bytes, got " + std::to_string(workspace_bytes));
  char* ws = static_cast<char*>(workspace);
  if (cfg.form == DplrForm::kRecurrent) {
    dplr_detail::RecurrentBackward(d, cfg, p, args, ws, stream);
  } else {
    dplr_detail::ChunkedBackward(d, cfg, p, args, ws, stream);
  }
}

}  // namespace radlads::cuda
