// Host-side planning for the CUDA DPLR kernels: kernels/cuda/dplr_plan.h.
#include "kernels/cuda/dplr_plan.h"

#include <algorithm>
#include <string>

namespace radlads::cuda {

std::string DplrCudaValidate(const DplrCudaDims& d, const DplrCudaConfig& cfg) {
  if (d.B < 0 || d.T < 0 || d.H < 0) return "B, T and H must be >= 0";
  if (d.D != 32 && d.D != 64 && d.D != 128) {
    return "head size D must be 32, 64 or 128, got " + std::to_string(d.D);
  }
  if (d.B * d.H > 2147483647LL) return "B*H exceeds the grid limit";
  if (cfg.form == DplrForm::kChunked && (cfg.chunk < 1 || cfg.chunk > dplr_plan::kMaxChunk)) {
    return "chunk must be in 1..64, got " + std::to_string(cfg.chunk);
  }
  if (cfg.form == DplrForm::kRecurrent && cfg.checkpoint < 1) {
    return "checkpoint must be >= 1, got " + std::to_string(cfg.checkpoint);
  }
  return {};
}

namespace dplr_plan {
namespace {

std::size_t Align256(std::size_t x) { return (x + 255) / 256 * 256; }

// Appends n floats (rounded up to a multiple of 32) to the layout and returns the offset.
std::int64_t Take(std::int64_t& top, std::int64_t n) {
  const std::int64_t off = top;
  top += (n + 31) / 32 * 32;
  return off;
}

}  // namespace

ChunkLayout MakeChunkLayout(std::int64_t C, std::int64_t D, bool backward) {
  ChunkLayout L;
  std::int64_t top = 0;
  const std::int64_t cd = C * (D + 1), cc = C * C;  // C x D rows padded to D + 1 (banks)
  for (std::int64_t* p : {&L.q, &L.k, &L.a, &L.b, &L.gc, &L.gs, &L.Qh, &L.Kh, &L.Bh, &L.W}) {
    *p = Take(top, cd);
  }
  L.Ah = backward ? Take(top, cd) : L.W;
  L.v = Take(top, cd);
  L.Vn = Take(top, cd);
  L.U = backward ? Take(top, cd) : L.Vn;
  for (std::int64_t* p : {&L.Aqk, &L.Aqb, &L.Aak, &L.Aab}) *p = Take(top, cc);
  if (backward) {
    for (std::int64_t* p : {&L.dQh, &L.dKh, &L.dBh, &L.dAh, &L.dO, &L.dVn, &L.dX, &L.dvl}) {
      *p = Take(top, cd);
    }
    for (std::int64_t* p : {&L.dAqk, &L.dAqb, &L.dAak, &L.dAab}) *p = Take(top, cc);
    L.dgt = Take(top, D);
  } else {
    L.O = Take(top, cd);
    L.S = Take(top, D * D);
  }
  L.floats = top;
  return L;
}

namespace {

Plan ChunkedPlan(const DplrCudaDims& d, const DplrCudaConfig& cfg, std::int64_t max_smem,
                 bool backward) {
  Plan p;
  const std::int64_t BH = d.B * d.H, DD = d.D * d.D;
  p.C = std::max<std::int64_t>(1, std::min(cfg.chunk, d.T));
  p.nchunks = d.T == 0 ? 0 : (d.T + p.C - 1) / p.C;
  p.layout = MakeChunkLayout(p.C, d.D, backward);
  const std::size_t layout_bytes = static_cast<std::size_t>(p.layout.floats) * sizeof(float);
  p.use_smem = static_cast<std::int64_t>(layout_bytes) <= max_smem;
  p.smem_bytes = p.use_smem ? layout_bytes : 0;
  std::size_t top = 0;
  if (!p.use_smem) {
    p.scratch_off = top;
    top = Align256(top + static_cast<std::size_t>(BH) * layout_bytes);
  }
  if (backward) {
    p.states_off = top;
    top = Align256(top + static_cast<std::size_t>(BH * p.nchunks * DD) * sizeof(float));
    p.dS_off = top;
    top = Align256(top + static_cast<std::size_t>(BH * DD) * sizeof(float));
  }
  p.workspace_bytes = d.T == 0 || BH == 0 ? 0 : top;
  return p;
}

}  // namespace

Plan MakeForwardPlan(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                     std::int64_t max_smem_bytes) {
  if (cfg.form == DplrForm::kChunked) return ChunkedPlan(d, cfg, max_smem_bytes, false);
  return Plan{};  // the recurrent forward keeps everything in registers
}

Plan MakeBackwardPlan(const DplrCudaDims& d, const DplrCudaConfig& cfg,
                      std::int64_t max_smem_bytes) {
  if (cfg.form == DplrForm::kChunked) return ChunkedPlan(d, cfg, max_smem_bytes, true);
  Plan p;
  const std::int64_t BH = d.B * d.H, DD = d.D * d.D;
  p.ckpt = std::max<std::int64_t>(1, std::min(cfg.checkpoint, d.T));
  p.nseg = d.T == 0 ? 0 : (d.T + p.ckpt - 1) / p.ckpt;
  std::size_t top = 0;
  p.ck_off = top;
  top = Align256(top + static_cast<std::size_t>(BH * p.nseg * DD) * sizeof(float));
  p.seg_off = top;
  top = Align256(top + static_cast<std::size_t>(BH * (p.ckpt + 1) * DD) * sizeof(float));
  p.sa_off = top;
  top = Align256(top + static_cast<std::size_t>(BH * p.ckpt * d.D) * sizeof(float));
  p.workspace_bytes = d.T == 0 || BH == 0 ? 0 : top;
  return p;
}

std::int64_t MinBytesForward(const DplrCudaDims& d, int elem_bytes, bool h0, bool hT) {
  const std::int64_t n = d.B * d.T * d.H * d.D, s = d.B * d.H * d.D * d.D * 4;
  return 7 * n * elem_bytes + (h0 ? s : 0) + (hT ? s : 0);
}

std::int64_t MinBytesBackward(const DplrCudaDims& d, int elem_bytes, bool h0, bool dhT, bool dh0,
                              bool accumulate_reads) {
  const std::int64_t n = d.B * d.T * d.H * d.D, s = d.B * d.H * d.D * d.D * 4;
  return (7 + 6 + (accumulate_reads ? 6 : 0)) * n * elem_bytes + (h0 ? s : 0) + (dhT ? s : 0) +
         (dh0 ? (accumulate_reads ? 2 : 1) * s : 0);
}

}  // namespace dplr_plan
}  // namespace radlads::cuda
