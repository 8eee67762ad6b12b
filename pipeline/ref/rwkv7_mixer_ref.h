// fp64 reference of the whole RAD-RWKV7 mixer forward (pipeline/rwkv7_mixer.h documents the
// math). Plain loops in doubles, no threading and no kernels/ops calls; the recurrence is its own
// loop in the spec's [value, key] state form (docs/spec.md §3.4 item 8):
//   S_t = S_{t-1} (diag(w_t) - kappa_t^T (a_t * kappa_t)) + v_t^T k~_t,  p_t = scale * S_t r_t^T
// RoPE uses the exact fp64 angles (pos0 + t) * theta^(-2i/N). Used only by tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/student_config.h"

namespace radlads::ref {

// Parameter values by suffix under the layer's "self_attn." prefix ("q_proj.weight", "w0",
// "g1", ...), row-major in the stored layout and shapes of pipeline/rwkv7_mixer.h. Parameters
// the config does not use may be absent.
using Rwkv7RefParams = std::map<std::string, std::vector<double>>;

struct Rwkv7RefResult {
  std::vector<double> y;            // [B, T, C]
  std::vector<double> v_first_out;  // [B, T, A]: layer 0's expanded value (empty for l >= 1)
};

// x [B, T, C]; v_first [B, T, A] (required for layer >= 1, ignored at layer 0).
Rwkv7RefResult Rwkv7MixerRefForward(const StudentConfig& cfg, int layer, const Rwkv7RefParams& p,
                                    std::int64_t B, std::int64_t T, std::int64_t pos0,
                                    const std::vector<double>& x,
                                    const std::vector<double>* v_first);

}  // namespace radlads::ref
