#include "kernels/ops/rope.h"

#include <cmath>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

// Checks x [B, T, H, D] against the table and the position range; returns B*T.
std::int64_t CheckShapes(const Tensor& x, const RopeTable& table, std::int64_t pos0,
                         const char* what) {
  RADLADS_CHECK(x.rank() == 4) << what << ": want [B, T, H, D], got " << x.DebugString();
  RADLADS_CHECK(table.cos.defined() && table.cos.rank() == 2 && table.sin.defined())
      << what << ": RopeTable not built (use MakeRopeTable)";
  CheckF32Shape(table.sin, table.cos.shape(), "RopeTable sin");
  (void)RowsOf(x, table.head_dim(), what);
  RADLADS_CHECK(pos0 >= 0 && pos0 + x.dim(1) <= table.max_positions())
      << what << ": positions [" << pos0 << ", " << pos0 + x.dim(1) << ") outside the table's "
      << table.max_positions();
  return x.dim(0) * x.dim(1);
}

// Rotates rows [r0, r1) of [B*T, H, D]; sign = +1 forward (y = R x), -1 backward (R^T).
// With accumulate, adds into out instead of writing it.
template <bool kAccumulate>
void Rotate(const float* in, float* out, const RopeTable& table, std::int64_t pos0,
            std::int64_t t_len, std::int64_t heads, float sign, std::int64_t r0, std::int64_t r1) {
  const std::int64_t half = table.cos.dim(1), d = 2 * half;
  const float* cos_p = table.cos.f32();
  const float* sin_p = table.sin.f32();
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t pos = pos0 + r % t_len;
    const float* cs = cos_p + pos * half;
    const float* sn = sin_p + pos * half;
    for (std::int64_t h = 0; h < heads; ++h) {
      const float* xi = in + (r * heads + h) * d;
      float* yo = out + (r * heads + h) * d;
#pragma omp simd
      for (std::int64_t i = 0; i < half; ++i) {
        const float x1 = xi[i], x2 = xi[i + half];
        const float s = sign * sn[i];
        const float y1 = x1 * cs[i] - x2 * s;
        const float y2 = x2 * cs[i] + x1 * s;
        if constexpr (kAccumulate) {
          yo[i] += y1;
          yo[i + half] += y2;
        } else {
          yo[i] = y1;
          yo[i + half] = y2;
        }
      }
    }
  }
}

}  // namespace

RopeTable MakeRopeTable(std::int64_t max_positions, std::int64_t head_dim, double theta) {
  RADLADS_CHECK(max_positions > 0 && head_dim > 0 && head_dim % 2 == 0 && theta > 0)
      << "MakeRopeTable: max_positions " << max_positions << ", head_dim " << head_dim
      << ", theta " << theta;
  const std::int64_t half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<std::size_t>(half));
  const float theta_f = static_cast<float>(theta);
  for (std::int64_t i = 0; i < half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const auto p = static_cast<float>(std::pow(static_cast<double>(theta_f), expo));
    inv_freq[static_cast<std::size_t>(i)] = 1.0f / p;
  }
  RopeTable table{Tensor::Empty({max_positions, half}), Tensor::Empty({max_positions, half})};
  float* cp = table.cos.f32();
  float* sp = table.sin.f32();
  cpu::ParallelFor(max_positions, RowGrain(half) / 8, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      for (std::int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(t) * inv_freq[static_cast<std::size_t>(i)];
        cp[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sp[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
  });
  return table;
}

void RopeForward(const Tensor& x, const RopeTable& table, std::int64_t pos0, Tensor& y) {
  const std::int64_t rows = CheckShapes(x, table, pos0, "RopeForward x");
  CheckF32Shape(y, x.shape(), "RopeForward y");
  const float* xp = x.f32();
  float* yp = y.f32();
  const std::int64_t t_len = x.dim(1), heads = x.dim(2);
  const std::int64_t grain = RowGrain(heads * table.head_dim());
  cpu::ParallelFor(rows, grain, [&](std::int64_t r0, std::int64_t r1) {
    Rotate<false>(xp, yp, table, pos0, t_len, heads, 1.0f, r0, r1);
  });
}

void RopeBackward(const Tensor& dy, const RopeTable& table, std::int64_t pos0, Tensor& dx) {
  const std::int64_t rows = CheckShapes(dy, table, pos0, "RopeBackward dy");
  CheckF32Shape(dx, dy.shape(), "RopeBackward dx");
  RADLADS_CHECK(dx.raw() != dy.raw()) << "RopeBackward: dx must not alias dy";
  const float* gp = dy.f32();
  float* dxp = dx.f32();
  const std::int64_t t_len = dy.dim(1), heads = dy.dim(2);
  const std::int64_t grain = RowGrain(heads * table.head_dim());
  cpu::ParallelFor(rows, grain, [&](std::int64_t r0, std::int64_t r1) {
    Rotate<true>(gp, dxp, table, pos0, t_len, heads, -1.0f, r0, r1);
  });
}

}  // namespace radlads::ops
