// Host-side planning for the CUDA GLA kernels. Contract: gla_plan.h.
#include "kernels/cuda/gla_plan.h"

#include <limits>

namespace radlads::cuda::gla_plan {
namespace {

bool HeadSizeOk(std::int64_t d) { return d == 32 || d == 64 || d == 128; }

}  // namespace

std::int64_t ForwardVTile(std::int64_t V) { return V >= 64 ? 64 : V; }

std::string Validate(const GlaShape& s, GlaAlgo algo) {
  const char* name = algo == GlaAlgo::kChunked ? "chunked" : "recurrent";
  if (s.B < 1 || s.H < 1 || s.T < 0) {
    return std::string("Gla (CUDA ") + name + "): need B >= 1, H >= 1, T >= 0, got B=" +
           std::to_string(s.B) + " T=" + std::to_string(s.T) + " H=" + std::to_string(s.H);
  }
  if (!HeadSizeOk(s.K) || !HeadSizeOk(s.V)) {
    return std::string("Gla (CUDA ") + name + "): head sizes K and V must each be 32, 64 or " +
           "128, got K=" + std::to_string(s.K) + " V=" + std::to_string(s.V);
  }
  // Kernels index elements with 64-bit offsets, but the grid puts B*H in blockIdx.x and the
  // element counts must fit the int64 arithmetic comfortably; reject the absurd.
  constexpr std::int64_t kMaxElems = std::int64_t{1} << 40;
  const std::int64_t bh = s.B * s.H;
  if (bh > std::numeric_limits<std::int32_t>::max() || s.T > kMaxElems / bh / 128) {
    return std::string("Gla (CUDA ") + name + "): B*H*T too large (B*H=" + std::to_string(bh) +
           " T=" + std::to_string(s.T) + ")";
  }
  return "";
}

std::size_t BackwardWorkspaceBytes(const GlaShape& s, GlaAlgo algo) {
  static_assert(kChunk == kCheckpoint, "one snapshot interval for both algorithms");
  if (s.T <= 0) return 0;
  const std::int64_t snaps = (s.T + kChunk - 1) / kChunk;
  // The recurrent reverse sweep also keeps the 16 recomputed states of the current block.
  const std::int64_t n = algo == GlaAlgo::kRecurrent ? snaps + kCheckpoint : snaps;
  return static_cast<std::size_t>(n * s.B * s.H * s.K * s.V) * sizeof(float);
}

std::size_t ChunkedForwardSmemBytes(std::int64_t K, std::int64_t vtile) {
  // S [K][vt]; q, k, b, qin, kend [16][K]; v, o [16][vt]; A [16][16]; e^{b_last} [K].
  const std::int64_t floats = K * vtile + 5 * kChunk * K + 2 * kChunk * vtile +
                              kChunk * kChunk + K;
  return static_cast<std::size_t>(floats) * sizeof(float);
}

std::size_t ChunkedBackwardSmemBytes(std::int64_t K, std::int64_t V) {
  // dH [K][V]; q, k, b, qin, kend, dq, dk', dks [16][K]; v, do, dv [16][V]; A, dA [16][16];
  // dgs, e^{b_last} [K].
  const std::int64_t floats = K * V + 8 * kChunk * K + 3 * kChunk * V + 2 * kChunk * kChunk +
                              2 * K;
  return static_cast<std::size_t>(floats) * sizeof(float);
}

std::int64_t MinBytesForward(const GlaShape& s, int elem_bytes, bool h0, bool hT) {
  const std::int64_t tok = s.B * s.T * s.H, st = s.B * s.H * s.K * s.V * 4;
  return tok * (3 * s.K + 2 * s.V) * elem_bytes + (h0 ? st : 0) + (hT ? st : 0);
}

std::int64_t MinBytesBackward(const GlaShape& s, int elem_bytes, bool h0, bool dhT, bool dh0) {
  const std::int64_t tok = s.B * s.T * s.H, st = s.B * s.H * s.K * s.V * 4;
  // in: r, k, g, v, d_o; out: dr, dk, dg, dv.
  return tok * (6 * s.K + 3 * s.V) * elem_bytes + (h0 ? st : 0) + (dhT ? st : 0) +
         (dh0 ? st : 0);
}

}  // namespace radlads::cuda::gla_plan
