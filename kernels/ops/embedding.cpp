#include "kernels/ops/embedding.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

void CheckIds(const Tensor& ids, const char* what) {
  RADLADS_CHECK(ids.defined() && ids.device() == Device::kCpu && ids.dtype() == DType::kI32)
      << what << " ids: want I32 CPU tensor, got "
      << (ids.defined() ? ids.DebugString() : std::string("undefined"));
}

void CheckId(std::int32_t id, std::int64_t pos, std::int64_t vocab, const char* what) {
  RADLADS_CHECK(id >= 0 && id < vocab)
      << what << ": token id " << id << " at position " << pos << " is outside [0, " << vocab
      << ")";
}

}  // namespace

void EmbeddingForward(const Tensor& ids, const Tensor& table, Tensor& out) {
  CheckIds(ids, "EmbeddingForward");
  RADLADS_CHECK(table.defined() && table.device() == Device::kCpu && table.rank() == 2 &&
                (table.dtype() == DType::kF32 || table.dtype() == DType::kBF16))
      << "EmbeddingForward table: want F32 or BF16 [Vc, C] on the CPU, got "
      << (table.defined() ? table.DebugString() : std::string("undefined"));
  const std::int64_t vocab = table.dim(0), c = table.dim(1), n = ids.numel();
  RADLADS_CHECK(RowsOf(out, c, "EmbeddingForward out") == n)
      << "EmbeddingForward: out " << out.DebugString() << " for " << n << " ids";
  const std::int32_t* idp = ids.data<std::int32_t>();
  float* op = out.f32();
  const bool bf16 = table.dtype() == DType::kBF16;
  const float* tf = bf16 ? nullptr : table.f32();
  const std::uint16_t* tb = bf16 ? table.data<std::uint16_t>() : nullptr;
  cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      const std::int32_t id = idp[i];
      CheckId(id, i, vocab, "EmbeddingForward");
      float* orow = op + i * c;
      if (!bf16) {
        std::memcpy(orow, tf + id * c, static_cast<std::size_t>(c) * sizeof(float));
      } else {
        const std::uint16_t* src = tb + id * c;
        // bf16 -> f32 is exact: the bf16 bits are the top half of the f32 (= Bf16ToF32).
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j)
          orow[j] = std::bit_cast<float>(static_cast<std::uint32_t>(src[j]) << 16);
      }
    }
  });
}

void EmbeddingBackward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  CheckIds(ids, "EmbeddingBackward");
  RADLADS_CHECK(dtable.rank() == 2)
      << "EmbeddingBackward dtable: want [Vc, C], got " << dtable.DebugString();
  const std::int64_t vocab = dtable.dim(0), c = dtable.dim(1), n = ids.numel();
  CheckF32Shape(dtable, {vocab, c}, "EmbeddingBackward dtable");
  RADLADS_CHECK(RowsOf(dout, c, "EmbeddingBackward dout") == n)
      << "EmbeddingBackward: dout " << dout.DebugString() << " for " << n << " ids";
  const std::int32_t* idp = ids.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i) CheckId(idp[i], i, vocab, "EmbeddingBackward");

  // Positions sorted by (id, position); `starts` marks where each distinct id's run begins.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return idp[a] < idp[b]; });
  std::vector<std::int64_t> starts;
  for (std::int64_t k = 0; k < n; ++k)
    if (k == 0 || idp[order[k]] != idp[order[k - 1]]) starts.push_back(k);
  starts.push_back(n);

  const float* gp = dout.f32();
  float* dtp = dtable.f32();
  const auto runs = static_cast<std::int64_t>(starts.size()) - 1;
  // Grain in runs worth about RowGrain(c) tokens, with the average run length.
  const std::int64_t grain =
      std::max<std::int64_t>(1, RowGrain(c) * runs / std::max<std::int64_t>(1, n));
  cpu::ParallelFor(runs, grain, [&](std::int64_t u0, std::int64_t u1) {
    std::vector<float> sum(static_cast<std::size_t>(c));
    for (std::int64_t u = u0; u < u1; ++u) {
      const std::int64_t k0 = starts[static_cast<std::size_t>(u)];
      const std::int64_t k1 = starts[static_cast<std::size_t>(u + 1)];
      // Sum the id's tokens in position order, then add once into its row.
      const float* first = gp + order[static_cast<std::size_t>(k0)] * c;
      std::copy(first, first + c, sum.begin());
      for (std::int64_t k = k0 + 1; k < k1; ++k) {
        const float* grow = gp + order[static_cast<std::size_t>(k)] * c;
        float* sp = sum.data();
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) sp[j] += grow[j];
      }
      float* drow = dtp + static_cast<std::int64_t>(idp[order[k0]]) * c;
      const float* sp = sum.data();
#pragma omp simd
      for (std::int64_t j = 0; j < c; ++j) drow[j] += sp[j];
    }
  });
}

}  // namespace radlads::ops
