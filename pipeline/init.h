// Deterministic parameter initialisers (docs/spec.md §3.3-3.4 inits). All draw from a
// caller-owned std::mt19937_64, so an initialisation is a pure function of its seed and the
// order of calls.
#pragma once

#include <cstdint>
#include <random>

#include "kernels/tensor.h"

namespace radlads {

using InitRng = std::mt19937_64;

// U(lo, hi) into every element of an F32 tensor.
void InitUniform(Tensor& t, float lo, float hi, InitRng& rng);
// N(0, std^2).
void InitNormal(Tensor& t, float std, InitRng& rng);
// "orth x s" of the RWKV code: a (semi-)orthogonal matrix (QR of a Gaussian matrix, computed in
// fp64, signs fixed so the factorisation is unique) times s * sqrt(rows/cols) when rows > cols,
// else times s. `t` is [rows, cols] (any rank >= 2 is viewed as [prod(leading), last]).
void InitOrthogonal(Tensor& t, double s, InitRng& rng);

}  // namespace radlads
