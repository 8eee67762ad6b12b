// fp64 reference of the whole RAD-RWKV6 mixer forward (pipeline/rwkv6_mixer.h), used only by
// tests. Plain loops over std::vector<double>, no threading, no kernels/ops calls, its own GLA
// recurrence loop and its own RoPE (angles (pos0 + t) * theta^(-2i/N) computed in double, not
// the fp32 transformers table the op uses: the two differ by ~1e-7 rad at small positions).
// Written to be read against docs/spec.md §3.3 / §9.3 step by step.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/student_config.h"

namespace radlads::ref {

// Parameters by name suffix under the layer prefix ("q_proj.weight", "time_maa_w2", ...), each
// row-major in the shape DeclareRwkv6MixerParams gives it. Only the names the config uses are
// read; a missing or mis-sized one is a RADLADS_CHECK failure.
using Rwkv6RefParams = std::map<std::string, std::vector<double>>;

// Intermediates of one forward, [B,T,C] or [B,T,A] row-major (filled when requested).
struct Rwkv6RefTrace {
  std::vector<double> xs[5];  // x_r, x_k, x_v, x_w, x_g (x itself without tokenshift)
  std::vector<double> d;      // decay pre-activation [B,T,A]
  std::vector<double> logw;   // max(-exp(d), -5) [B,T,A]
  std::vector<double> g;      // gate [B,T,A] (empty when gate_rank_type 0)
  std::vector<double> p;      // GLA output before GroupNorm and gate [B,T,A]
};

// y [B,T,C] of x [B,T,C]. pos0 is the RoPE position of t = 0.
std::vector<double> Rwkv6MixerForwardRef(const StudentConfig& cfg, const Rwkv6RefParams& params,
                                         const std::vector<double>& x, std::int64_t B,
                                         std::int64_t T, std::int64_t pos0 = 0,
                                         Rwkv6RefTrace* trace = nullptr);

}  // namespace radlads::ref
