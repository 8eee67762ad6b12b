// RMSNorm and GroupNorm kernels (contract: kernels/cuda/norms.h).
#include "kernels/cuda/norms.h"

#include "kernels/cuda/glue_common.cuh"

namespace radlads::cuda {
namespace {

using namespace glue;

constexpr int kRowThreads = 128;
constexpr i64 kMaxRowBlocks = 1 << 16;  // rows beyond this are strided
constexpr int kWarpsPerBlock = 4;       // GroupNorm: one warp per (row, group)

unsigned RowBlocks(i64 n) { return static_cast<unsigned>(n < kMaxRowBlocks ? n : kMaxRowBlocks); }

template <typename T>
__global__ void RmsNormForwardKernel(const T* x, const float* w, float eps, i64 n, i64 c, T* y,
                                     float* rstd) {
  __shared__ double scratch[32];
  for (i64 r = blockIdx.x; r < n; r += gridDim.x) {
    const T* xr = x + r * c;
    double ss = 0.0;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) {
      const float v = Ld(xr, j);
      ss += static_cast<double>(v) * v;
    }
    ss = BlockSum(ss, scratch);
    const float mean_sq = c > 0 ? static_cast<float>(ss / static_cast<double>(c)) : 0.0f;
    const float rs = 1.0f / sqrtf(mean_sq + eps);
    if (threadIdx.x == 0) rstd[r] = rs;
    T* yr = y + r * c;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) St(yr, j, w[j] * (Ld(xr, j) * rs));
  }
}

template <typename T>
__global__ void RmsNormBackwardDxKernel(const T* x, const float* w, const float* rstd,
                                        const T* dy, i64 n, i64 c, T* dx) {
  __shared__ double scratch[32];
  for (i64 r = blockIdx.x; r < n; r += gridDim.x) {
    const T* xr = x + r * c;
    const T* gr = dy + r * c;
    double dot = 0.0;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x)
      dot += static_cast<double>(w[j] * Ld(gr, j)) * Ld(xr, j);
    dot = BlockSum(dot, scratch);
    const float rs = rstd[r];
    const float coef = static_cast<float>(dot / static_cast<double>(c)) * rs * rs * rs;
    T* dr = dx + r * c;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x)
      Acc(dr, j, rs * (w[j] * Ld(gr, j)) - coef * Ld(xr, j));
  }
}

template <typename T>
struct RmsDw {
  const T* x;
  const T* dy;
  const float* rstd;
  i64 c;
  __device__ double operator()(i64 r, i64 j) const {
    return static_cast<double>(Ld(dy, r * c + j)) * (Ld(x, r * c + j) * rstd[r]);
  }
};

template <typename T>
void RmsForward(const T* x, const float* w, float eps, i64 n, i64 c, T* y, float* rstd,
                cudaStream_t s) {
  if (n <= 0) return;
  RmsNormForwardKernel<T><<<RowBlocks(n), kRowThreads, 0, s>>>(x, w, eps, n, c, y, rstd);
  CheckLaunch();
}

template <typename T>
void RmsBackward(const T* x, const float* w, const float* rstd, const T* dy, i64 n, i64 c, T* dx,
                 float* dw, double* ws, cudaStream_t s) {
  if (n <= 0 || c <= 0) return;
  if (dx != nullptr) {
    RmsNormBackwardDxKernel<T><<<RowBlocks(n), kRowThreads, 0, s>>>(x, w, rstd, dy, n, c, dx);
    CheckLaunch();
  }
  if (dw != nullptr) ColumnSum(n, c, RmsDw<T>{x, dy, rstd, c}, AccumulateF32{dw}, ws, s);
}

// --- GroupNorm ---------------------------------------------------------------------------------

template <typename T>
__global__ void GroupNormForwardKernel(const T* x, const float* w, const float* b, i64 n, i64 c,
                                       i64 groups, float eps, T* y, float* mean, float* rstd) {
  const int lane = threadIdx.x & 31;
  const i64 gs = c / groups, items = n * groups;
  const i64 step = static_cast<i64>(gridDim.x) * kWarpsPerBlock;
  for (i64 item = static_cast<i64>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       item < items; item += step) {
    const i64 r = item / groups, g = item % groups;
    const i64 o = r * c + g * gs;
    double sum = 0.0;
    for (i64 i = lane; i < gs; i += 32) sum += Ld(x, o + i);
    sum = WarpSum(sum);
    const auto mu = static_cast<float>(sum / static_cast<double>(gs));
    double sq = 0.0;
    for (i64 i = lane; i < gs; i += 32) {
      const double dv = static_cast<double>(Ld(x, o + i)) - mu;
      sq += dv * dv;
    }
    sq = WarpSum(sq);
    const float rs = 1.0f / sqrtf(static_cast<float>(sq / static_cast<double>(gs)) + eps);
    if (lane == 0) {
      mean[item] = mu;
      rstd[item] = rs;
    }
    for (i64 i = lane; i < gs; i += 32) {
      const i64 ch = g * gs + i;
      float v = (Ld(x, o + i) - mu) * rs * w[ch];
      if (b != nullptr) v += b[ch];
      St(y, o + i, v);
    }
  }
}

template <typename T>
__global__ void GroupNormBackwardDxKernel(const T* x, const float* w, const float* mean,
                                          const float* rstd, const T* dy, i64 n, i64 c,
                                          i64 groups, T* dx) {
  const int lane = threadIdx.x & 31;
  const i64 gs = c / groups, items = n * groups;
  const i64 step = static_cast<i64>(gridDim.x) * kWarpsPerBlock;
  for (i64 item = static_cast<i64>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       item < items; item += step) {
    const i64 r = item / groups, g = item % groups;
    const i64 o = r * c + g * gs;
    const float mu = mean[item], rs = rstd[item];
    double sum_g = 0.0, sum_gx = 0.0;
    for (i64 i = lane; i < gs; i += 32) {
      const float gw = Ld(dy, o + i) * w[g * gs + i];
      sum_g += gw;
      sum_gx += static_cast<double>(gw) * ((Ld(x, o + i) - mu) * rs);
    }
    sum_g = WarpSum(sum_g);
    sum_gx = WarpSum(sum_gx);
    const auto mean_g = static_cast<float>(sum_g / static_cast<double>(gs));
    const auto mean_gx = static_cast<float>(sum_gx / static_cast<double>(gs));
    for (i64 i = lane; i < gs; i += 32) {
      const float xi = Ld(x, o + i);
      Acc(dx, o + i, rs * (Ld(dy, o + i) * w[g * gs + i] - mean_g - (xi - mu) * rs * mean_gx));
    }
  }
}

template <typename T>
struct GnDw {
  const T* x;
  const T* dy;
  const float* mean;
  const float* rstd;
  i64 c, groups, gs;
  __device__ double operator()(i64 r, i64 j) const {
    const i64 s = r * groups + j / gs;
    return static_cast<double>(Ld(dy, r * c + j)) * ((Ld(x, r * c + j) - mean[s]) * rstd[s]);
  }
};

bool GroupsOk(i64 c, i64 groups) { return groups > 0 && c > 0 && c % groups == 0; }

unsigned GroupBlocks(i64 items) {
  const i64 b = (items + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return static_cast<unsigned>(b < kMaxRowBlocks ? b : kMaxRowBlocks);
}

void BadGroups(const char* what, i64 c, i64 groups) {
  std::fprintf(stderr, "%s: %lld channels do not split into %lld groups\n", what,
               static_cast<long long>(c), static_cast<long long>(groups));
  std::abort();
}

template <typename T>
void GnForward(const T* x, const float* w, const float* b, i64 n, i64 c, i64 groups, float eps,
               T* y, float* mean, float* rstd, cudaStream_t s) {
  if (!GroupsOk(c, groups)) BadGroups("GroupNormForward", c, groups);
  if (n <= 0) return;
  GroupNormForwardKernel<T><<<GroupBlocks(n * groups), 32 * kWarpsPerBlock, 0, s>>>(
      x, w, b, n, c, groups, eps, y, mean, rstd);
  CheckLaunch();
}

template <typename T>
void GnBackward(const T* x, const float* w, const float* mean, const float* rstd, const T* dy,
                i64 n, i64 c, i64 groups, T* dx, float* dw, float* db, double* ws,
                cudaStream_t s) {
  if (!GroupsOk(c, groups)) BadGroups("GroupNormBackward", c, groups);
  if (n <= 0) return;
  if (dx != nullptr) {
    GroupNormBackwardDxKernel<T><<<GroupBlocks(n * groups), 32 * kWarpsPerBlock, 0, s>>>(
        x, w, mean, rstd, dy, n, c, groups, dx);
    CheckLaunch();
  }
  if (dw != nullptr)
    ColumnSum(n, c, GnDw<T>{x, dy, mean, rstd, c, groups, c / groups}, AccumulateF32{dw}, ws, s);
  if (db != nullptr) ColumnSum(n, c, RowsOf<T>{dy, c}, AccumulateF32{db}, ws, s);
}

}  // namespace

void RmsNormForward(const float* x, const float* w, float eps, std::int64_t n, std::int64_t c,
                    float* y, float* rstd, cudaStream_t stream) {
  RmsForward(x, w, eps, n, c, y, rstd, stream);
}
void RmsNormForward(const __nv_bfloat16* x, const float* w, float eps, std::int64_t n,
                    std::int64_t c, __nv_bfloat16* y, float* rstd, cudaStream_t stream) {
  RmsForward(x, w, eps, n, c, y, rstd, stream);
}
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy,
                     std::int64_t n, std::int64_t c, float* dx, float* dw, double* ws,
                     cudaStream_t stream) {
  RmsBackward(x, w, rstd, dy, n, c, dx, dw, ws, stream);
}
void RmsNormBackward(const __nv_bfloat16* x, const float* w, const float* rstd,
                     const __nv_bfloat16* dy, std::int64_t n, std::int64_t c, __nv_bfloat16* dx,
                     float* dw, double* ws, cudaStream_t stream) {
  RmsBackward(x, w, rstd, dy, n, c, dx, dw, ws, stream);
}

void GroupNormForward(const float* x, const float* w, const float* b, std::int64_t n,
                      std::int64_t c, std::int64_t groups, float eps, float* y, float* mean,
                      float* rstd, cudaStream_t stream) {
  GnForward(x, w, b, n, c, groups, eps, y, mean, rstd, stream);
}
void GroupNormForward(const __nv_bfloat16* x, const float* w, const float* b, std::int64_t n,
                      std::int64_t c, std::int64_t groups, float eps, __nv_bfloat16* y,
                      float* mean, float* rstd, cudaStream_t stream) {
  GnForward(x, w, b, n, c, groups, eps, y, mean, rstd, stream);
}
void GroupNormBackward(const float* x, const float* w, const float* mean, const float* rstd,
                       const float* dy, std::int64_t n, std::int64_t c, std::int64_t groups,
                       float* dx, float* dw, float* db, double* ws, cudaStream_t stream) {
  GnBackward(x, w, mean, rstd, dy, n, c, groups, dx, dw, db, ws, stream);
}
void GroupNormBackward(const __nv_bfloat16* x, const float* w, const float* mean,
                       const float* rstd, const __nv_bfloat16* dy, std::int64_t n,
                       std::int64_t c, std::int64_t groups, __nv_bfloat16* dx, float* dw,
                       float* db, double* ws, cudaStream_t stream) {
  GnBackward(x, w, mean, rstd, dy, n, c, groups, dx, dw, db, ws, stream);
}

}  // namespace radlads::cuda
