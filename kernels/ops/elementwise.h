// Small elementwise ops and the helpers the other CPU ops share.
//
// Conventions (docs/kernels.md): F32 CPU tensors, contiguous row-major; forward functions
// write their outputs, backward functions ACCUMULATE (+=) into every gradient output, and a
// null gradient pointer skips that gradient. "[N, C]" means any tensor whose last dim is C,
// with N = the product of the leading dims (so [B, T, C] works as [B*T, C]).
// Outputs may alias inputs of the same shape (in-place use) unless a comment says otherwise.
// Every op is deterministic and independent of the thread count: elementwise work is split
// over elements, and reductions over rows (the broadcast gradients) are split over columns,
// each column summed in row order in fp64.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/tensor.h"

namespace radlads::ops {

// --- Helpers shared by the ops -----------------------------------------------------------

// Checks that `x` is a defined F32 CPU tensor with rank >= 1 and last dim `c`, and returns the
// number of rows N (product of the leading dims). `name` goes into the failure message.
std::int64_t RowsOf(const Tensor& x, std::int64_t c, const char* name);

// Checks that `x` is a defined F32 CPU tensor with exactly `shape`.
void CheckF32Shape(const Tensor& x, const Shape& shape, const char* name);

// Rows per ParallelFor range for row-wise ops on rows of `c` elements (about 16K elements).
std::int64_t RowGrain(std::int64_t c);

// Deterministic column sums: for every column j of a [rows, cols] reduction, out[j] += the sum
// over rows r = 0..rows-1 (in that order, fp64 accumulator) of what row_fn(r, c0, c1, acc)
// adds into acc[j - c0] for j in [c0, c1). Threads take disjoint column ranges, so the result
// does not depend on the thread count. row_fn must only add into acc[0 .. c1-c0).
void AccumulateColumnSums(
    std::int64_t rows, std::int64_t cols,
    const std::function<void(std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc)>&
        row_fn,
    float* out);

// out [C] += sum over rows of x [N, C] (the gradient of a broadcast bias).
void SumRows(const Tensor& x, Tensor& out);

// --- Elementwise ops ---------------------------------------------------------------------

// y = a + b. a, y: [N, C]; b: [N, C] (same shape as a) or [C] (broadcast over rows).
void Add(const Tensor& a, const Tensor& b, Tensor& y);

// y = a + alpha * b, all the same shape. With y == a this is the usual "y += alpha * b".
void AddScaled(const Tensor& a, float alpha, const Tensor& b, Tensor& y);

// y = s * x, same shape.
void Scale(const Tensor& x, float s, Tensor& y);

// y = a * b. a, y: [N, C]; b: [N, C] or [C] (broadcast over rows, e.g. RWKV-7's k * k_k).
void Mul(const Tensor& a, const Tensor& b, Tensor& y);
// da += dy * b; db += dy * a (summed over rows when b is a broadcast [C]).
void MulBackward(const Tensor& a, const Tensor& b, const Tensor& dy, Tensor* da, Tensor* db);

// Data-dependent lerp (RWKV-6 tokenshift): y = x + d * (mu + m).
// x, d, y: [N, C]; mu: [C] (broadcast); m: [N, C] or undefined (then mu alone).
void LerpForward(const Tensor& x, const Tensor& d, const Tensor& mu, const Tensor& m, Tensor& y);
// dx += dy; dd += dy * (mu + m); dmu [C] += sum over rows of dy * d; dm += dy * d.
// Pass the same (possibly undefined) m as the forward; dm must be null when m is undefined.
void LerpBackward(const Tensor& d, const Tensor& mu, const Tensor& m, const Tensor& dy,
                  Tensor* dx, Tensor* dd, Tensor* dmu, Tensor* dm);

// Token shift difference: delta[b, t] = x[b, t-1] - x[b, t], with x[b, -1] = 0 (the previous
// token of each window's first position is zero). x, delta: [B, T, C]; no aliasing.
void TokenShiftDeltaForward(const Tensor& x, Tensor& delta);
// dx[b, t] += ddelta[b, t+1] - ddelta[b, t] (the first term only for t < T-1).
void TokenShiftDeltaBackward(const Tensor& ddelta, Tensor& dx);

}  // namespace radlads::ops
