#include "kernels/ops/linear.h"

#include <cstring>

#include "base/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"
#include "kernels/ops/elementwise.h"

namespace radlads::ops {
namespace {

struct Dims {
  std::int64_t n, in, out;
};

Dims CheckShapes(const Tensor& x, const Tensor& w, const char* what) {
  RADLADS_CHECK(w.rank() == 2) << what << " W: want [out, in], got " << w.DebugString();
  Dims d{0, w.dim(1), w.dim(0)};
  CheckF32Shape(w, {d.out, d.in}, what);
  d.n = RowsOf(x, d.in, what);
  return d;
}

}  // namespace

void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const Dims d = CheckShapes(x, w, "LinearForward");
  RADLADS_CHECK(RowsOf(y, d.out, "LinearForward y") == d.n)
      << "LinearForward: y " << y.DebugString() << " for x " << x.DebugString();
  float* yp = y.f32();
  RADLADS_CHECK(static_cast<const void*>(yp) != x.raw()) << "LinearForward: y aliases x";
  float beta = 0.0f;
  if (b.defined()) {
    CheckF32Shape(b, {d.out}, "LinearForward b");
    const float* bp = b.f32();
    cpu::ParallelFor(d.n, RowGrain(d.out), [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r)
        std::memcpy(yp + r * d.out, bp, static_cast<std::size_t>(d.out) * sizeof(float));
    });
    beta = 1.0f;
  }
  Gemm(false, true, d.n, d.out, d.in, 1.0f, x.f32(), d.in, w.f32(), d.in, beta, yp, d.out);
}

void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db) {
  const Dims d = CheckShapes(x, w, "LinearBackward");
  RADLADS_CHECK(RowsOf(dy, d.out, "LinearBackward dy") == d.n)
      << "LinearBackward: dy " << dy.DebugString() << " for x " << x.DebugString();
  const float* gp = dy.f32();
  if (dx != nullptr) {
    CheckF32Shape(*dx, x.shape(), "LinearBackward dx");
    Gemm(false, false, d.n, d.in, d.out, 1.0f, gp, d.out, w.f32(), d.in, 1.0f, dx->f32(), d.in);
  }
  if (dw != nullptr) {
    CheckF32Shape(*dw, w.shape(), "LinearBackward dW");
    Gemm(true, false, d.out, d.in, d.n, 1.0f, gp, d.out, x.f32(), d.in, 1.0f, dw->f32(), d.in);
  }
  if (db != nullptr) {
    CheckF32Shape(*db, {d.out}, "LinearBackward db");
    SumRows(dy.View({d.n, d.out}), *db);
  }
}

}  // namespace radlads::ops
