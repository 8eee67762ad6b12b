#include "kernels/ops/elementwise.h"

#include <algorithm>
#include <vector>

#include "base/check.h"
#include "kernels/cpu/parallel.h"

namespace radlads::ops {
namespace {

constexpr std::int64_t kElemGrain = 1 << 15;  // elements per range for flat elementwise loops
constexpr std::int64_t kColGrain = 16;        // at least one cache line of floats per range

void CheckCpuF32(const Tensor& x, const char* name) {
  RADLADS_CHECK(x.defined() && x.device() == Device::kCpu && x.dtype() == DType::kF32)
      << name << ": want a defined F32 CPU tensor, got "
      << (x.defined() ? x.DebugString() : std::string("undefined"));
}

// True when b is a [C] vector broadcast over the rows of a [N, C] (and not simply a's shape).
bool IsRowBroadcast(const Tensor& a, const Tensor& b, const char* name) {
  CheckCpuF32(b, name);
  if (b.shape() == a.shape()) return false;
  RADLADS_CHECK(b.rank() == 1 && a.rank() >= 1 && b.dim(0) == a.dim(-1))
      << name << ": want " << ShapeToString(a.shape()) << " or [" << a.dim(-1) << "], got "
      << b.DebugString();
  return true;
}

}  // namespace

std::int64_t RowsOf(const Tensor& x, std::int64_t c, const char* name) {
  CheckCpuF32(x, name);
  RADLADS_CHECK(x.rank() >= 1 && x.dim(-1) == c)
      << name << ": want last dim " << c << ", got " << x.DebugString();
  std::int64_t rows = 1;
  for (int i = 0; i + 1 < x.rank(); ++i) rows *= x.dim(i);
  return rows;
}

void CheckF32Shape(const Tensor& x, const Shape& shape, const char* name) {
  CheckCpuF32(x, name);
  RADLADS_CHECK(x.shape() == shape)
      << name << ": want shape " << ShapeToString(shape) << ", got " << x.DebugString();
}

std::int64_t RowGrain(std::int64_t c) {
  return std::max<std::int64_t>(1, (1 << 14) / std::max<std::int64_t>(1, c));
}

void AccumulateColumnSums(
    std::int64_t rows, std::int64_t cols,
    const std::function<void(std::int64_t, std::int64_t, std::int64_t, double*)>& row_fn,
    float* out) {
  // Enough columns per range for ~16K elements of work: small reductions stay on one thread.
  const std::int64_t grain = std::max(kColGrain, (1 << 14) / std::max<std::int64_t>(1, rows));
  cpu::ParallelFor(cols, grain, [&](std::int64_t c0, std::int64_t c1) {
    std::vector<double> acc(static_cast<std::size_t>(c1 - c0), 0.0);
    for (std::int64_t r = 0; r < rows; ++r) row_fn(r, c0, c1, acc.data());
    for (std::int64_t j = c0; j < c1; ++j)
      out[j] = static_cast<float>(out[j] + acc[static_cast<std::size_t>(j - c0)]);
  });
}

void SumRows(const Tensor& x, Tensor& out) {
  CheckCpuF32(out, "SumRows out");
  RADLADS_CHECK(out.rank() == 1) << "SumRows out: want [C], got " << out.DebugString();
  const std::int64_t c = out.dim(0);
  const std::int64_t n = RowsOf(x, c, "SumRows x");
  const float* xp = x.f32();
  AccumulateColumnSums(
      n, c,
      [&](std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc) {
        const float* xr = xp + r * c;
        for (std::int64_t j = c0; j < c1; ++j) acc[j - c0] += xr[j];
      },
      out.f32());
}

void Add(const Tensor& a, const Tensor& b, Tensor& y) {
  CheckCpuF32(a, "Add a");
  CheckF32Shape(y, a.shape(), "Add y");
  const bool bcast = IsRowBroadcast(a, b, "Add b");
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
  if (bcast) {
    const std::int64_t c = b.dim(0);
    cpu::ParallelFor(RowsOf(a, c, "Add a"), RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) yp[r * c + j] = ap[r * c + j] + bp[j];
      }
    });
    return;
  }
  cpu::ParallelFor(a.numel(), kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = ap[i] + bp[i];
  });
}

void AddScaled(const Tensor& a, float alpha, const Tensor& b, Tensor& y) {
  CheckCpuF32(a, "AddScaled a");
  CheckF32Shape(b, a.shape(), "AddScaled b");
  CheckF32Shape(y, a.shape(), "AddScaled y");
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
  cpu::ParallelFor(a.numel(), kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = ap[i] + alpha * bp[i];
  });
}

void Scale(const Tensor& x, float s, Tensor& y) {
  CheckCpuF32(x, "Scale x");
  CheckF32Shape(y, x.shape(), "Scale y");
  const float* xp = x.f32();
  float* yp = y.f32();
  cpu::ParallelFor(x.numel(), kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = s * xp[i];
  });
}

void Mul(const Tensor& a, const Tensor& b, Tensor& y) {
  CheckCpuF32(a, "Mul a");
  CheckF32Shape(y, a.shape(), "Mul y");
  const bool bcast = IsRowBroadcast(a, b, "Mul b");
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
  if (bcast) {
    const std::int64_t c = b.dim(0);
    cpu::ParallelFor(RowsOf(a, c, "Mul a"), RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) yp[r * c + j] = ap[r * c + j] * bp[j];
      }
    });
    return;
  }
  cpu::ParallelFor(a.numel(), kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = ap[i] * bp[i];
  });
}

void MulBackward(const Tensor& a, const Tensor& b, const Tensor& dy, Tensor* da, Tensor* db) {
  CheckCpuF32(a, "MulBackward a");
  CheckF32Shape(dy, a.shape(), "MulBackward dy");
  const bool bcast = IsRowBroadcast(a, b, "MulBackward b");
  RADLADS_CHECK(a.rank() >= 1) << "MulBackward a: want [N, C], got " << a.DebugString();
  const std::int64_t c = a.dim(-1);
  const std::int64_t n = RowsOf(a, c, "MulBackward a");
  const float* ap = a.f32();
  const float* bp = b.f32();
  const float* gp = dy.f32();
  if (da != nullptr) {
    CheckF32Shape(*da, a.shape(), "MulBackward da");
    float* dap = da->f32();
    cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const float* br = bcast ? bp : bp + r * c;
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dap[r * c + j] += gp[r * c + j] * br[j];
      }
    });
  }
  if (db == nullptr) return;
  CheckF32Shape(*db, b.shape(), "MulBackward db");
  float* dbp = db->f32();
  if (bcast) {
    AccumulateColumnSums(
        n, c,
        [&](std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc) {
          for (std::int64_t j = c0; j < c1; ++j)
            acc[j - c0] += static_cast<double>(gp[r * c + j]) * ap[r * c + j];
        },
        dbp);
    return;
  }
  cpu::ParallelFor(a.numel(), kElemGrain, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) dbp[i] += gp[i] * ap[i];
  });
}

void LerpForward(const Tensor& x, const Tensor& d, const Tensor& mu, const Tensor& m, Tensor& y) {
  CheckCpuF32(mu, "Lerp mu");
  RADLADS_CHECK(mu.rank() == 1) << "Lerp mu: want [C], got " << mu.DebugString();
  const std::int64_t c = mu.dim(0);
  const std::int64_t n = RowsOf(x, c, "Lerp x");
  CheckF32Shape(d, x.shape(), "Lerp d");
  CheckF32Shape(y, x.shape(), "Lerp y");
  if (m.defined()) CheckF32Shape(m, x.shape(), "Lerp m");
  const float* xp = x.f32();
  const float* dp = d.f32();
  const float* mup = mu.f32();
  const float* mp = m.defined() ? m.f32() : nullptr;
  float* yp = y.f32();
  cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t o = r * c;
      if (mp != nullptr) {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j)
          yp[o + j] = xp[o + j] + dp[o + j] * (mup[j] + mp[o + j]);
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) yp[o + j] = xp[o + j] + dp[o + j] * mup[j];
      }
    }
  });
}

void LerpBackward(const Tensor& d, const Tensor& mu, const Tensor& m, const Tensor& dy,
                  Tensor* dx, Tensor* dd, Tensor* dmu, Tensor* dm) {
  CheckCpuF32(mu, "LerpBackward mu");
  RADLADS_CHECK(mu.rank() == 1) << "LerpBackward mu: want [C], got " << mu.DebugString();
  const std::int64_t c = mu.dim(0);
  const std::int64_t n = RowsOf(d, c, "LerpBackward d");
  CheckF32Shape(dy, d.shape(), "LerpBackward dy");
  if (m.defined()) CheckF32Shape(m, d.shape(), "LerpBackward m");
  RADLADS_CHECK(dm == nullptr || m.defined()) << "LerpBackward: dm requested without m";
  if (dx != nullptr) AddScaled(*dx, 1.0f, dy, *dx);
  const float* dp = d.f32();
  const float* mup = mu.f32();
  const float* mp = m.defined() ? m.f32() : nullptr;
  const float* gp = dy.f32();
  if (dd != nullptr || dm != nullptr) {
    if (dd != nullptr) CheckF32Shape(*dd, d.shape(), "LerpBackward dd");
    if (dm != nullptr) CheckF32Shape(*dm, d.shape(), "LerpBackward dm");
    float* ddp = dd != nullptr ? dd->f32() : nullptr;
    float* dmp = dm != nullptr ? dm->f32() : nullptr;
    cpu::ParallelFor(n, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t o = r * c;
        if (ddp != nullptr) {
#pragma omp simd
          for (std::int64_t j = 0; j < c; ++j)
            ddp[o + j] += gp[o + j] * (mup[j] + (mp != nullptr ? mp[o + j] : 0.0f));
        }
        if (dmp != nullptr) {
#pragma omp simd
          for (std::int64_t j = 0; j < c; ++j) dmp[o + j] += gp[o + j] * dp[o + j];
        }
      }
    });
  }
  if (dmu != nullptr) {
    CheckF32Shape(*dmu, mu.shape(), "LerpBackward dmu");
    AccumulateColumnSums(
        n, c,
        [&](std::int64_t r, std::int64_t c0, std::int64_t c1, double* acc) {
          for (std::int64_t j = c0; j < c1; ++j)
            acc[j - c0] += static_cast<double>(gp[r * c + j]) * dp[r * c + j];
        },
        dmu->f32());
  }
}

void TokenShiftDeltaForward(const Tensor& x, Tensor& delta) {
  CheckCpuF32(x, "TokenShiftDelta x");
  RADLADS_CHECK(x.rank() == 3) << "TokenShiftDelta x: want [B, T, C], got " << x.DebugString();
  CheckF32Shape(delta, x.shape(), "TokenShiftDelta delta");
  RADLADS_CHECK(x.raw() != delta.raw()) << "TokenShiftDelta: delta must not alias x";
  const std::int64_t t_len = x.dim(1), c = x.dim(2);
  const float* xp = x.f32();
  float* dp = delta.f32();
  cpu::ParallelFor(x.dim(0) * t_len, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* xr = xp + r * c;
      float* dr = dp + r * c;
      if (r % t_len == 0) {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dr[j] = -xr[j];
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dr[j] = xr[j - c] - xr[j];
      }
    }
  });
}

void TokenShiftDeltaBackward(const Tensor& ddelta, Tensor& dx) {
  CheckCpuF32(ddelta, "TokenShiftDeltaBackward ddelta");
  RADLADS_CHECK(ddelta.rank() == 3)
      << "TokenShiftDeltaBackward ddelta: want [B, T, C], got " << ddelta.DebugString();
  CheckF32Shape(dx, ddelta.shape(), "TokenShiftDeltaBackward dx");
  RADLADS_CHECK(ddelta.raw() != dx.raw()) << "TokenShiftDeltaBackward: dx must not alias ddelta";
  const std::int64_t t_len = ddelta.dim(1), c = ddelta.dim(2);
  const float* gp = ddelta.f32();
  float* dxp = dx.f32();
  cpu::ParallelFor(ddelta.dim(0) * t_len, RowGrain(c), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* gr = gp + r * c;
      float* dr = dxp + r * c;
      if ((r + 1) % t_len != 0) {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dr[j] += gr[j + c] - gr[j];
      } else {
#pragma omp simd
        for (std::int64_t j = 0; j < c; ++j) dr[j] -= gr[j];
      }
    }
  });
}

}  // namespace radlads::ops
