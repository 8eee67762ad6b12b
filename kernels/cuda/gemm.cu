// cuBLASLt GEMM (kernels/cuda/gemm.h): per-device handles, per-stream workspaces, an algorithm
// cache per shape, and the simple reference kernel that is also the fallback.
#include "kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemm_shape.h"

#define RADLADS_CUBLASLT_CHECK(call)                                                        \
  do {                                                                                      \
    cublasStatus_t _s = (call);                                                             \
    if (_s != CUBLAS_STATUS_SUCCESS) {                                                      \
      std::fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,        \
                   cublasLtGetStatusName(_s), cublasLtGetStatusString(_s));                 \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace radlads::cuda {
namespace {

constexpr std::size_t kLtWorkspaceBytes = std::size_t{32} << 20;  // Hopper's recommendation

// ---------------------------------------------------------------------------------------------
// Reference kernel: one thread per output element (grid-stride over batch * M * N), the fp32
// sum over k in order. Reads C only when beta != 0.

__device__ inline float LoadF(const float* p) { return *p; }
__device__ inline float LoadF(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void StoreF(float* p, float v) { *p = v; }
__device__ inline void StoreF(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <typename TC>
__global__ void GemmReferenceKernel(GemmDims d, float alpha, const __nv_bfloat16* __restrict__ a,
                                    const __nv_bfloat16* __restrict__ b, float beta, TC* c) {
  const std::int64_t per = d.m * d.n;
  const std::int64_t total = per * d.batch;
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t bz = idx / per, rem = idx - bz * per;
    const std::int64_t i = rem / d.n, j = rem - i * d.n;
    const __nv_bfloat16* ab = a + bz * d.stride_a;
    const __nv_bfloat16* bb = b + bz * d.stride_b;
    float acc = 0.0f;
    for (std::int64_t p = 0; p < d.k; ++p) {
      const float av = __bfloat162float(d.trans_a ? ab[p * d.lda + i] : ab[i * d.lda + p]);
      const float bv = __bfloat162float(d.trans_b ? bb[j * d.ldb + p] : bb[p * d.ldb + j]);
      acc = fmaf(av, bv, acc);
    }
    TC* cp = c + bz * d.stride_c + i * d.ldc + j;
    float out = alpha * acc;
    if (beta != 0.0f) out += beta * LoadF(cp);
    StoreF(cp, out);
  }
}

void CheckDimsOrDie(const GemmDims& d, const char* op) {
  std::string err = CheckGemmDims(d);
  if (err.empty() && d.batch > std::numeric_limits<std::int32_t>::max())
    err = "batch beyond int32";
  if (!err.empty()) {
    std::fprintf(stderr, "%s: %s\n", op, err.c_str());
    std::abort();
  }
}

template <typename TC>
void LaunchReference(const GemmDims& d, float alpha, const __nv_bfloat16* a,
                     const __nv_bfloat16* b, float beta, TC* c, cudaStream_t stream) {
  const std::int64_t total = d.m * d.n * d.batch;
  if (total == 0) return;
  constexpr int kThreads = 256;
  const std::int64_t want = (total + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < (1 << 20) ? want : (1 << 20));
  GemmReferenceKernel<TC><<<blocks, kThreads, 0, stream>>>(d, alpha, a, b, beta, c);
  RADLADS_CUDA_CHECK(cudaGetLastError());
}

// ---------------------------------------------------------------------------------------------
// cuBLASLt state.

using AlgoKey = std::tuple<int, int, bool, bool, std::int64_t, std::int64_t, std::int64_t,
                           std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                           std::int64_t, std::int64_t, std::uint32_t, std::uint32_t,
                           std::uint32_t>;

struct CachedAlgo {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
};

struct LtState {
  std::mutex mu;
  std::map<int, cublasLtHandle_t> handles;                         // per device
  std::map<std::pair<int, cudaStream_t>, void*> workspaces;        // per (device, stream)
  std::map<AlgoKey, CachedAlgo> algos;
};

LtState& State() {
  static LtState* s = new LtState;  // never destroyed: no teardown against a dead CUDA context
  return *s;
}

std::atomic<std::int64_t> g_fallbacks{0};

// The alignment of every matrix of a batch: the pointer's, and the stride's in bytes.
std::uint32_t BatchAlignment(const void* p, std::int64_t batch, std::int64_t stride,
                             std::size_t elem) {
  std::uint32_t al = PointerAlignment(p);
  if (batch > 1) {
    const auto sbytes = static_cast<std::uintptr_t>(stride) * elem;
    const std::uint32_t s = PointerAlignment(reinterpret_cast<const void*>(sbytes));
    if (s < al) al = s;
  }
  return al;
}

struct LayoutGuard {
  cublasLtMatrixLayout_t l = nullptr;
  LayoutGuard(cudaDataType_t type, const ColMajorOperand& o, std::int64_t batch) {
    RADLADS_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<std::uint64_t>(o.rows),
                                                      static_cast<std::uint64_t>(o.cols), o.ld));
    if (batch > 1) {
      const auto count = static_cast<std::int32_t>(batch);
      const std::int64_t stride = o.stride;
      RADLADS_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(
          l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      RADLADS_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(
          l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  ~LayoutGuard() { cublasLtMatrixLayoutDestroy(l); }
  LayoutGuard(const LayoutGuard&) = delete;
  LayoutGuard& operator=(const LayoutGuard&) = delete;
};

template <typename TC>
constexpr cudaDataType_t OutType() {
  return std::is_same_v<TC, float> ? CUDA_R_32F : CUDA_R_16BF;
}

template <typename TC>
void GemmImpl(const GemmDims& d, float alpha, const __nv_bfloat16* a, const __nv_bfloat16* b,
              float beta, TC* c, cudaStream_t stream) {
  CheckDimsOrDie(d, "GemmBf16");
  if (d.m == 0 || d.n == 0) return;
  if (d.k == 0) {  // C = beta C: cuBLASLt layouts need K >= 1
    g_fallbacks.fetch_add(1);
    LaunchReference(d, alpha, a, b, beta, c, stream);
    return;
  }
  const ColMajorGemm g = ToColumnMajor(d);
  const std::uint32_t al_a = BatchAlignment(b, d.batch, d.stride_b, sizeof(__nv_bfloat16));
  const std::uint32_t al_b = BatchAlignment(a, d.batch, d.stride_a, sizeof(__nv_bfloat16));
  const std::uint32_t al_c = BatchAlignment(c, d.batch, d.stride_c, sizeof(TC));

  int device = 0;
  RADLADS_CUDA_CHECK(cudaGetDevice(&device));
  LtState& st = State();
  std::lock_guard<std::mutex> lock(st.mu);
  cublasLtHandle_t& handle = st.handles[device];
  if (handle == nullptr) RADLADS_CUBLASLT_CHECK(cublasLtCreate(&handle));
  void*& ws = st.workspaces[{device, stream}];
  if (ws == nullptr) RADLADS_CUDA_CHECK(cudaMalloc(&ws, kLtWorkspaceBytes));

  cublasLtMatmulDesc_t op = nullptr;
  RADLADS_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = g.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  RADLADS_CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  RADLADS_CUBLASLT_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const LayoutGuard la(CUDA_R_16BF, g.a, g.batch), lb(CUDA_R_16BF, g.b, g.batch),
      lc(OutType<TC>(), g.c, g.batch);

  const AlgoKey key{device, std::is_same_v<TC, float> ? 0 : 1, d.trans_a, d.trans_b, d.m, d.n,
                    d.k, d.lda, d.ldb, d.ldc, d.batch, d.stride_a, d.stride_b, d.stride_c,
                    al_a, al_b, al_c};
  auto it = st.algos.find(key);
  if (it == st.algos.end()) {
    cublasLtMatmulPreference_t pref = nullptr;
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const std::uint64_t ws_bytes = kLtWorkspaceBytes;
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    RADLADS_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle, op, la.l, lb.l, lc.l, lc.l,
                                                            pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    CachedAlgo entry;
    entry.found = s == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (entry.found) entry.algo = res.algo;
    it = st.algos.emplace(key, entry).first;
  }
  if (it->second.found) {
    RADLADS_CUBLASLT_CHECK(cublasLtMatmul(handle, op, &alpha, b, la.l, a, lb.l, &beta, c, lc.l, c,
                                          lc.l, &it->second.algo, ws, kLtWorkspaceBytes, stream));
  } else {
    g_fallbacks.fetch_add(1);
    LaunchReference(d, alpha, a, b, beta, c, stream);
  }
  cublasLtMatmulDescDestroy(op);
}

}  // namespace

void GemmBf16(const GemmDims& d, float alpha, const __nv_bfloat16* a, const __nv_bfloat16* b,
              float beta, float* c, cudaStream_t stream) {
  GemmImpl(d, alpha, a, b, beta, c, stream);
}

void GemmBf16(const GemmDims& d, float alpha, const __nv_bfloat16* a, const __nv_bfloat16* b,
              float beta, __nv_bfloat16* c, cudaStream_t stream) {
  GemmImpl(d, alpha, a, b, beta, c, stream);
}

void GemmBf16Reference(const GemmDims& d, float alpha, const __nv_bfloat16* a,
                       const __nv_bfloat16* b, float beta, float* c, cudaStream_t stream) {
  CheckDimsOrDie(d, "GemmBf16Reference");
  LaunchReference(d, alpha, a, b, beta, c, stream);
}

void GemmBf16Reference(const GemmDims& d, float alpha, const __nv_bfloat16* a,
                       const __nv_bfloat16* b, float beta, __nv_bfloat16* c, cudaStream_t stream) {
  CheckDimsOrDie(d, "GemmBf16Reference");
  LaunchReference(d, alpha, a, b, beta, c, stream);
}

void GemmReleaseStream(cudaStream_t stream) {
  int device = 0;
  RADLADS_CUDA_CHECK(cudaGetDevice(&device));
  LtState& st = State();
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.workspaces.find({device, stream});
  if (it == st.workspaces.end()) return;
  RADLADS_CUDA_CHECK(cudaStreamSynchronize(stream));
  RADLADS_CUDA_CHECK(cudaFree(it->second));
  st.workspaces.erase(it);
}

std::int64_t GemmFallbackCount() { return g_fallbacks.load(); }

}  // namespace radlads::cuda
