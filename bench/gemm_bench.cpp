// Gemm's own kernel (kernels/cpu/tile_gemm.h) against OpenBLAS (cblas_sgemm, GemmOpenBlas) on
// the GEMM shapes of a linear layer's forward (X W^T), input gradient (dY W) and weight
// gradient (dY^T X), at the widths of the tiny model and of Qwen2.5-0.5B. Both run on the same
// inputs with the same thread count, interleaved call by call; each row prints the medians,
// the ratio (OpenBLAS time / ours: > 1 means ours is faster) and the largest difference between
// the two results relative to sum |a||b| (a check that both computed the same product).
//   build/release/bench/gemm_bench [--threads 2] [--iters 30] [--tokens 1024] [--smoke]
// The last line is one JSON object with every row.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/gemm.h"

namespace radlads {
namespace {

struct Shape {
  const char* what;
  bool ta, tb;
  std::int64_t m, n, k;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  std::vector<std::string> keys = bench::CommonKeys();
  keys.push_back("tokens");
  bench::Args a(argc, argv, keys, bench::CommonFlags());
  const bool smoke = a.Has("smoke");
  bench::SetThreads(a);
  const std::int64_t iters = smoke ? 1 : a.Int("iters", 30);
  const std::int64_t T = smoke ? 64 : a.Int("tokens", 1024);
  // (in, out) of the layers: tiny (hidden 128, kv 64, MLP 384, LoRA 32, vocab 320) and
  // Qwen2.5-0.5B (hidden 896, kv 128, MLP 4864).
  const std::vector<std::pair<std::int64_t, std::int64_t>> layers =
      smoke ? std::vector<std::pair<std::int64_t, std::int64_t>>{{32, 48}}
            : std::vector<std::pair<std::int64_t, std::int64_t>>{
                  {128, 128}, {128, 64}, {128, 384}, {384, 128}, {128, 32}, {32, 128}, {128, 320},
                  {896, 896}, {896, 128}, {896, 4864}, {4864, 896}};
  std::vector<Shape> shapes;
  for (auto [in, out] : layers) {
    shapes.push_back({"fwd X W^T", false, true, T, out, in});
    shapes.push_back({"dX = dY W", false, false, T, in, out});
    shapes.push_back({"dW = dY^T X", true, false, out, in, T});
  }
  std::mt19937 rng(static_cast<unsigned>(a.Int("seed", 1)));
  std::normal_distribution<float> nd(0.f, 1.f);
  std::printf("%-12s %6s %6s %6s %10s %10s %7s %9s\n", "gemm", "M", "N", "K", "ours ms", "oblas ms", "ratio",
              "rel diff");
  std::string json = "{\"bench\": \"gemm\", \"threads\": " + std::to_string(cpu::NumThreads()) + ", \"rows\": [";
  double log_sum = 0;
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    const Shape& sh = shapes[s];
    const std::int64_t lda = sh.ta ? sh.m : sh.k, ldb = sh.tb ? sh.k : sh.n;
    std::vector<float> A(static_cast<std::size_t>(sh.m * sh.k)), B(static_cast<std::size_t>(sh.k * sh.n));
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    std::vector<float> c1(static_cast<std::size_t>(sh.m * sh.n)), c2(c1.size());
    std::vector<double> t1, t2;
    for (std::int64_t it = 0; it < iters + 2; ++it) {
      auto t0 = std::chrono::steady_clock::now();
      cpu::TileGemm(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1.f, A.data(), lda, B.data(), ldb, 0.f, c1.data(), sh.n);
      auto t1p = std::chrono::steady_clock::now();
      GemmOpenBlas(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1.f, A.data(), lda, B.data(), ldb, 0.f, c2.data(), sh.n);
      auto t2p = std::chrono::steady_clock::now();
      if (it >= 2) {  // two warm-up calls
        t1.push_back(std::chrono::duration<double>(t1p - t0).count());
        t2.push_back(std::chrono::duration<double>(t2p - t1p).count());
      }
    }
    // |c1 - c2| relative to sqrt(K) (the typical magnitude of sum |a||b| for unit normals is K;
    // fp32 rounding grows like sqrt(K) eps * that).
    double diff = 0;
    for (std::size_t i = 0; i < c1.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(c1[i] - c2[i])));
    diff /= static_cast<double>(sh.k);
    const double ours = Median(t1), peer = Median(t2), ratio = peer / ours;
    log_sum += std::log(ratio);
    std::printf("%-12s %6lld %6lld %6lld %10.3f %10.3f %6.2fx %9.1e\n", sh.what, static_cast<long long>(sh.m),
                static_cast<long long>(sh.n), static_cast<long long>(sh.k), ours * 1e3, peer * 1e3, ratio, diff);
    char row[256];
    std::snprintf(row, sizeof row,
                  "%s{\"gemm\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"ours_s\": %.6g, \"openblas_s\": %.6g, "
                  "\"ratio\": %.4g, \"rel_diff\": %.3g}",
                  s ? ", " : "", sh.what, static_cast<long long>(sh.m), static_cast<long long>(sh.n),
                  static_cast<long long>(sh.k), ours, peer, ratio, diff);
    json += row;
  }
  const double geo = std::exp(log_sum / static_cast<double>(shapes.size()));
  std::printf("geometric mean ratio (OpenBLAS time / ours): %.2fx\n", geo);
  char tail[96];
  std::snprintf(tail, sizeof tail, "], \"geomean_ratio\": %.4g}", geo);
  std::printf("%s%s\n", json.c_str(), tail);
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) {
  radlads::bench::EnsurePassiveWait(argv);
  return radlads::Main(argc, argv);
}
