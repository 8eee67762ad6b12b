// Teacher forward throughput on the CPU: the Qwen2 decoder (pipeline/decoder.h with the
// attention mixer) from token ids to the final-normed hidden states [B,T,C], inference only (no
// activations kept) — what steps 1 and 2 run for every teacher batch. The LM head is not
// included (step 2 applies it chunk by chunk inside the fused KL).
//
//   bench_teacher_forward [--batch 8] [--time 256] [--threads 2] [--warmup 2] [--iters 10]
//                         [--layers 4 --hidden 128 --heads 4 --kv-heads 2 --head-dim 32
//                          --mlp 384 --vocab 320] [--seed 1] [--dump DIR] [--no-mallopt]
//                         [--smoke]
// Parameters: transformers' Qwen2 init (N(0, 0.02^2), biases 0, norms 1) from --seed; ids
// uniform over the vocabulary. --dump DIR writes the parameters plus "bench.ids" (F32) as
// DIR/model.safetensors for the PyTorch peer (bench/peers/teacher_forward.py), which recomputes
// `check` (mean |hidden|) on the same inputs. --smoke: tiny shapes, 1 iteration (ctest).
// Prints one JSON line (bench/bench_util.h).
#include <cmath>
#include <cstdio>
#include <random>

#include "bench/bench_util.h"
#include "pipeline/model_io.h"
#include "pipeline/pretrain.h"

using namespace radlads;

int main(int argc, char** argv) {
  bench::EnsurePassiveWait(argv);
  bench::Args args(argc, argv, bench::CommonKeys(), bench::CommonFlags());
  const bool smoke = args.Has("smoke");
  bench::TuneMalloc(args);
  bench::SetThreads(args);
  const std::string load_start = bench::LoadAvg();

  Qwen2Config cfg = bench::TinyConfig(args);
  const std::int64_t B = args.Int("batch", smoke ? 2 : 8);
  const std::int64_t T = args.Int("time", smoke ? 16 : 256);
  const int warmup = static_cast<int>(args.Int("warmup", smoke ? 0 : 2));
  const int iters = static_cast<int>(args.Int("iters", smoke ? 1 : 10));
  const auto seed = static_cast<std::uint64_t>(args.Int("seed", 1));

  auto params = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(cfg), *params);
  InitQwen2Params(*params, 0.02, seed);
  Tensor ids = Tensor::Empty({B, T}, DType::kI32);
  {
    std::mt19937_64 rng(seed + 1000);
    for (std::int64_t i = 0; i < ids.numel(); ++i)
      ids.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(cfg.vocab_size));
  }
  if (args.Has("dump")) {
    ParamSet dump;
    for (const Param* p : params->params()) dump.Add(p->name, p->value);
    dump.Add("bench.ids", ids.ToF32());
    Status st = SaveParams(dump, args.Str("dump", ""), DType::kF32, 1ull << 40);
    if (!st.ok()) bench::Args::Fail(st.ToString());
  }
  Qwen2Teacher teacher = MakeQwen2Teacher(cfg, std::move(params));

  DecoderForwardOptions opts;  // inference: need_backward = false
  Tensor hidden = teacher.model->Forward(ids, opts);
  double check = 0;
  for (std::int64_t i = 0; i < hidden.numel(); ++i) check += std::fabs(hidden.f32()[i]);
  check /= static_cast<double>(hidden.numel());

  bench::Timing t = bench::Time(warmup, iters, [&] { hidden = teacher.model->Forward(ids, opts); });

  bench::Json j;
  j.Str("bench", "teacher_forward")
      .Str("impl", "radlads")
      .Int("B", B)
      .Int("T", T)
      .Int("C", cfg.hidden_size)
      .Int("layers", cfg.num_hidden_layers)
      .Int("threads", cpu::NumThreads())
      .Int("warmup", warmup);
  bench::AddTiming(j, t, B * T);
  j.Num("check", check).Str("load_start", load_start).Str("load_end", bench::LoadAvg());
  std::printf("%s\n", j.str().c_str());
  return 0;
}
