// Gemm's own kernel (kernels/cpu/tile_gemm.h) against OpenBLAS (cblas_sgemm, GemmOpenBlas) on
// the GEMM shapes of a linear layer's forward (X W^T), input gradient (dY W) and weight
// gradient (dY^T X), at the widths of the tiny model and of Qwen2.5-0.5B. Both run on the same
// inputs with the same thread count, interleaved call by call; each row prints the medians,
// the ratio (OpenBLAS time / ours: > 1 means ours is faster) and the largest difference between
// the two results divided by K (a check that both computed the same product).
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
  std::vector<std::string> rows;
  double log_sum = 0;
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    const Shape& sh = shapes[s];
    const std::int64_t lda = sh.ta ? sh.m : sh.k, ldb = sh.tb ? sh.k : sh.n;
    std::vector<float> A(static_cast<std::size_t>(sh.m * sh.k)), B(static_cast<std::size_t>(sh.k * sh.n));
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    std::vector<float> c1(static_cast<std::size_t>(sh.m * sh.n)), c2(c1.size());
    std::vector<double> t1, t2;
    auto timed = [](auto&& fn) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto ours_call = [&] {
      cpu::TileGemm(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1.f, A.data(), lda, B.data(), ldb, 0.f, c1.data(), sh.n);
    };
    auto peer_call = [&] {
      GemmOpenBlas(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1.f, A.data(), lda, B.data(), ldb, 0.f, c2.data(), sh.n);
    };
    for (std::int64_t it = 0; it < iters + 2; ++it) {  // alternating which side goes first
      double a1, a2;
      if (it % 2 == 0) {
        a1 = timed(ours_call);
        a2 = timed(peer_call);
      } else {
        a2 = timed(peer_call);
        a1 = timed(ours_call);
      }
      if (it >= 2) {  // two warm-up calls each
        t1.push_back(a1);
        t2.push_back(a2);
      }
    }
    // The largest |c1 - c2| divided by K, the size of sum_k |a b| for unit normals (up to 2/pi).
    double diff = 0;
    for (std::size_t i = 0; i < c1.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(c1[i] - c2[i])));
    diff /= static_cast<double>(sh.k);
    const double ours = bench::Median(t1), peer = bench::Median(t2), ratio = peer / ours;
    log_sum += std::log(ratio);
    std::printf("%-12s %6lld %6lld %6lld %10.3f %10.3f %6.2fx %9.1e\n", sh.what, static_cast<long long>(sh.m),
                static_cast<long long>(sh.n), static_cast<long long>(sh.k), ours * 1e3, peer * 1e3, ratio, diff);
    rows.push_back(bench::Json()
                       .Str("gemm", sh.what)
                       .Int("m", sh.m)
                       .Int("n", sh.n)
                       .Int("k", sh.k)
                       .Num("ours_s", ours)
                       .Num("openblas_s", peer)
                       .Num("ratio", ratio)
                       .Num("rel_diff", diff)
                       .str());
  }
  const double geo = std::exp(log_sum / static_cast<double>(shapes.size()));
  std::printf("geometric mean ratio (OpenBLAS time / ours): %.2fx\n", geo);
  std::printf("%s\n", bench::Json()
                         .Str("bench", "gemm")
                         .Int("threads", cpu::NumThreads())
                         .Objects("rows", rows)
                         .Num("geomean_ratio", geo)
                         .Str("load", bench::LoadAvg())
                         .str()
                         .c_str());
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) {
  radlads::bench::EnsurePassiveWait(argv);
  return radlads::Main(argc, argv);
}
