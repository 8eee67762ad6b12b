#include "kernels/cuda/attention_plan.h"

namespace radlads::cuda {
namespace {

constexpr std::int64_t kMaxGridYZ = 65535;
constexpr std::int64_t kMaxGridX = 2147483647;
constexpr std::int64_t kFlashBlockQ = 64;  // AttentionFlashPlan::block_q

std::string Dims(const AttentionShape& s) {
  return "B=" + std::to_string(s.b) + " T=" + std::to_string(s.t) + " H=" + std::to_string(s.h) +
         " Hkv=" + std::to_string(s.hkv) + " D=" + std::to_string(s.d);
}

}  // namespace

std::string AttentionShapeError(const AttentionShape& s, AttentionImpl impl) {
  const std::string where = "cuda attention (" + Dims(s) + "): ";
  if (s.b < 0 || s.t < 0) return where + "B and T must be >= 0";
  if (s.h <= 0 || s.hkv <= 0 || s.d <= 0) return where + "H, Hkv and D must be > 0";
  if (s.h % s.hkv != 0) return where + "H must be a multiple of Hkv";
  if (s.b > kMaxGridYZ || s.h > kMaxGridYZ) return where + "B and H must be at most 65535";
  if (s.t > kMaxGridX) return where + "T must be below 2^31";
  if (impl == AttentionImpl::kFlash) {
    if (s.d != 32 && s.d != 64 && s.d != 128) return where + "the flash kernel needs D in {32, 64, 128}";
    if (s.t > kMaxGridYZ * kFlashBlockQ) return where + "the flash kernel needs T <= 65535 * 64";
  } else if (s.d > kAttentionSimpleMaxD) {
    return where + "the simple kernel needs D <= " + std::to_string(kAttentionSimpleMaxD);
  }
  return "";
}

AttentionFlashPlan PlanAttentionFlash(const AttentionShape& s) {
  AttentionFlashPlan p;
  p.smem_row = static_cast<int>(s.d) + 8;
  // Q, K and V tiles: block_q + 2 * block_k rows.
  p.smem_bytes = static_cast<std::size_t>(p.block_q + 2 * p.block_k) *
                 static_cast<std::size_t>(p.smem_row) * 2;
  p.grid_x = s.h;
  p.grid_y = s.b;
  p.grid_z = (s.t + p.block_q - 1) / p.block_q;
  return p;
}

AttentionSimplePlan PlanAttentionSimple(const AttentionShape& s) {
  AttentionSimplePlan p;
  p.smem_bytes = static_cast<std::size_t>(s.d + p.threads + 32) * sizeof(float);
  p.grid_x = s.t;
  p.grid_y = s.h;
  p.grid_z = s.b;
  return p;
}

double AttentionForwardFlops(const AttentionShape& s) {
  const double pairs = static_cast<double>(s.t) * static_cast<double>(s.t + 1) / 2.0;
  return 4.0 * static_cast<double>(s.b) * static_cast<double>(s.h) * static_cast<double>(s.d) * pairs;
}

double AttentionForwardMinBytes(const AttentionShape& s, bool with_lse) {
  const double rows = static_cast<double>(s.b) * static_cast<double>(s.t);
  const double q_elems = rows * static_cast<double>(s.h * s.d);
  const double kv_elems = rows * static_cast<double>(s.hkv * s.d);
  double bytes = 2.0 * (2.0 * q_elems + 2.0 * kv_elems);  // q and o; k and v
  if (with_lse) bytes += 4.0 * rows * static_cast<double>(s.h);
  return bytes;
}

}  // namespace radlads::cuda
