#include "kernels/ops/gqa.h"

#include <cstring>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

struct Dims {
  std::int64_t rows, hkv, group, d;
};

// kv: [..., Hkv, D], q: [..., H, D] with the same leading dims.
Dims CheckShapes(const Tensor& kv, const Tensor& q, const char* what) {
  RADLADS_CHECK(kv.rank() >= 2 && q.rank() == kv.rank())
      << what << ": want [..., Hkv, D] and [..., H, D], got " << kv.DebugString() << " and "
      << q.DebugString();
  const std::int64_t d = kv.dim(-1), hkv = kv.dim(-2), h = q.dim(-2);
  RADLADS_CHECK(hkv > 0 && h % hkv == 0)
      << what << ": H = " << h << " is not a multiple of Hkv = " << hkv;
  Shape want = kv.shape();
  want[want.size() - 2] = h;
  CheckF32Shape(q, want, what);
  const std::int64_t rows = RowsOf(kv, d, what) / hkv;
  return Dims{rows, hkv, h / hkv, d};
}

}  // namespace

void GqaExpandForward(const Tensor& x, Tensor& y) {
  const Dims s = CheckShapes(x, y, "GqaExpandForward");
  const float* xp = x.f32();
  float* yp = y.f32();
  const std::int64_t in_row = s.hkv * s.d, out_row = in_row * s.group;
  const auto bytes = static_cast<std::size_t>(s.d) * sizeof(float);
  cpu::ParallelFor(s.rows, RowGrain(out_row), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t j = 0; j < s.hkv; ++j)
        for (std::int64_t g = 0; g < s.group; ++g)
          std::memcpy(yp + r * out_row + (j * s.group + g) * s.d, xp + r * in_row + j * s.d,
                      bytes);
  });
}

void GqaExpandBackward(const Tensor& dy, Tensor& dx) {
  const Dims s = CheckShapes(dx, dy, "GqaExpandBackward");
  const float* gp = dy.f32();
  float* dxp = dx.f32();
  const std::int64_t in_row = s.hkv * s.d, out_row = in_row * s.group;
  const std::int64_t d = s.d;
  cpu::ParallelFor(s.rows, RowGrain(out_row), [&](std::int64_t r0, std::int64_t r1) {
    std::vector<float> sum_buf(static_cast<std::size_t>(d));
    float* sum = sum_buf.data();
    for (std::int64_t r = r0; r < r1; ++r) {
      for (std::int64_t j = 0; j < s.hkv; ++j) {
        const float* g0 = gp + r * out_row + j * s.group * d;
        std::memcpy(sum, g0, static_cast<std::size_t>(d) * sizeof(float));
        for (std::int64_t g = 1; g < s.group; ++g) {
          const float* gg = g0 + g * d;
#pragma omp simd
          for (std::int64_t i = 0; i < d; ++i) sum[i] += gg[i];
        }
        float* out = dxp + r * in_row + j * d;
#pragma omp simd
        for (std::int64_t i = 0; i < d; ++i) out[i] += sum[i];
      }
    }
  });
}

}  // namespace radlads::ops
