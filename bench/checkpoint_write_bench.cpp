// Training-checkpoint write throughput (worker/checkpoint_io.h SaveTrainingCheckpoint: values
// and both Adam moments in one safetensors file, written to a temporary, fsynced, renamed, the
// directory fsynced, its XXH3 checksum taken as it is written) against `dd` copying that file
// (from the page cache) to the same directory with conv=fsync, interleaved round by round. Prints one JSON
// line: bytes per checkpoint, both sides' median MB/s, and ratio = ours / dd.
//   build/release/bench/checkpoint_write_bench --dir /path/on/the/disk --mib 256
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "base/file.h"
#include "bench/bench_util.h"
#include "pipeline/param_set.h"
#include "worker/checkpoint_io.h"

namespace radlads {
namespace {

int Main(int argc, char** argv) {
  bench::Args a(argc, argv, {"dir", "mib", "iters", "tensors"}, {"smoke"});
  const bool smoke = a.Has("smoke");
  const std::string dir = a.Str("dir", "build/checkpoint-bench");
  const std::int64_t mib = a.Int("mib", smoke ? 4 : 256);  // parameter values; the file holds 3x
  const int iters = static_cast<int>(a.Int("iters", smoke ? 1 : 5));
  const std::int64_t tensors = a.Int("tensors", 64);
  if (Status s = CreateDirectories(dir); !s.ok()) bench::Args::Fail(s.message());

  // `tensors` parameters of equal size with values and moments, random (incompressible).
  ParamSet params;
  const std::int64_t per = std::max<std::int64_t>(1, mib * 1024 * 1024 / 4 / tensors);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < tensors; ++i) {
    Tensor v = Tensor::Empty({per});
    for (std::int64_t k = 0; k < per; ++k) v.f32()[k] = ud(rng);
    params.Add("model.layers." + std::to_string(i) + ".w", v);
    Param& p = params.Get("model.layers." + std::to_string(i) + ".w");
    p.adam_m = v.Clone();
    p.adam_v = v.Clone();
  }
  std::int64_t bytes = 0;
  std::vector<double> ours, dd;
  for (int it = 0; it < iters; ++it) {
    TrainingState st;
    st.optimizer_step = it;
    const auto t0 = std::chrono::steady_clock::now();
    Result<FileRecord> f = SaveTrainingCheckpoint(dir, "ckpt.safetensors", params, st);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!f.ok()) bench::Args::Fail(f.status().message());
    bytes = f->bytes;
    ours.push_back(static_cast<double>(bytes) / s / 1e6);
    // dd: the same bytes (the checkpoint just written, read from the page cache: incompressible,
    // unlike /dev/zero, which a thin-provisioned virtual disk may store for free), fsynced
    // before it exits.
    const std::string cmd = "dd if=" + JoinPath(dir, "ckpt.safetensors") + " of=" + JoinPath(dir, "dd.bin") +
                            " bs=1M conv=fsync status=none";
    const auto d0 = std::chrono::steady_clock::now();
    const int rc = std::system(cmd.c_str());
    const double ds = std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
    if (rc != 0) bench::Args::Fail("dd failed: " + cmd);
    dd.push_back(static_cast<double>(bytes) / ds / 1e6);
  }
  (void)RemoveFile(JoinPath(dir, "ckpt.safetensors"));
  (void)RemoveFile(JoinPath(dir, "dd.bin"));
  bench::Json j;
  j.Str("bench", "checkpoint_write")
      .Str("dir", dir)
      .Int("bytes", bytes)
      .Int("iters", iters)
      .Nums("ours_mb_s", ours)
      .Nums("dd_mb_s", dd)
      .Num("ours_median_mb_s", bench::Median(ours))
      .Num("dd_median_mb_s", bench::Median(dd))
      .Num("ratio", bench::Median(dd) > 0 ? bench::Median(ours) / bench::Median(dd) : 0.0)
      .Str("load", bench::LoadAvg());
  std::printf("%s\n", j.str().c_str());
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Main(argc, argv); }
