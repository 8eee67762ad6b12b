// One step-1 alignment step on the CPU (pipeline/train_steps.h AlignTrainer): the student mixer's
// forward, the alignment loss, the mixer backward, global-norm clipping and AdamW — exactly
// Accumulate + Step of the trainer, as the step-1 worker runs it per micro-batch.
//
//   bench_align_step --arch rwkv6|rwkv7 [--batch 8] [--time 128] [--layer 1] [--threads 2]
//                    [--warmup 2] [--iters 10] [--rank 32] [--chunk -1] [--lr 1e-4]
//                    [--layers 4 --hidden 128 --heads 4 --kv-heads 2 --head-dim 32 --mlp 384
//                     --vocab 320] [--seed 1] [--dump DIR] [--no-mallopt] [--smoke]
// Settings (the released ones per architecture, LoRA ranks --rank): rwkv6 tokenshift, full gate
// (gate_rank_type 1), balance_state, no RoPE, no GroupNorm; rwkv7 RoPE, LoRA gate, balance_state,
// no GroupNorm. --chunk: the recurrence form (-1: the engine default, StudentMixerOptions:
// GLA chunk 16, DPLR recurrent; 0 recurrent; n chunk length n).
// Inputs: a random tiny teacher (transformers' init, --seed), ids uniform; the layer's mixer
// input and attention output are captured from one teacher forward (the real step-1 targets),
// v_first (rwkv7, layer >= 1) with ValueFirstFromTeacher; the student layer from TransferLayer.
// --dump DIR writes the initial mixer parameters and bench.x / bench.target / bench.v_first to
// DIR/model.safetensors for the PyTorch peer (bench/peers/align_step.py). `check` is the loss
// before any step and `check_after` the loss after exactly one Accumulate + Step at --lr; the peer
// recomputes both. Prints one JSON line (bench/bench_util.h).
#include <cstdio>
#include <random>

#include "bench/bench_util.h"
#include "pipeline/model_io.h"
#include "pipeline/pretrain.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"

using namespace radlads;

int main(int argc, char** argv) {
  bench::EnsurePassiveWait(argv);
  std::vector<std::string> keys = bench::CommonKeys();
  for (const char* k : {"arch", "layer", "rank", "chunk", "lr"}) keys.emplace_back(k);
  bench::Args args(argc, argv, keys, bench::CommonFlags());
  const bool smoke = args.Has("smoke");
  bench::TuneMalloc(args);
  bench::SetThreads(args);
  const std::string load_start = bench::LoadAvg();

  const std::string arch_name = args.Str("arch", "rwkv7");
  if (arch_name != "rwkv6" && arch_name != "rwkv7") bench::Args::Fail("--arch must be rwkv6 or rwkv7");
  const StudentArch arch = arch_name == "rwkv6" ? StudentArch::kRwkv6 : StudentArch::kRwkv7;
  Qwen2Config base = bench::TinyConfig(args);
  const std::int64_t B = args.Int("batch", smoke ? 2 : 8);
  const std::int64_t T = args.Int("time", smoke ? 16 : 128);
  const int layer = static_cast<int>(args.Int("layer", 1));
  const int warmup = static_cast<int>(args.Int("warmup", smoke ? 0 : 2));
  const int iters = static_cast<int>(args.Int("iters", smoke ? 1 : 10));
  const std::int64_t rank = args.Int("rank", 32);
  const std::int64_t chunk = args.Int("chunk", -1);
  const double lr = args.Double("lr", 1e-4);
  const auto seed = static_cast<std::uint64_t>(args.Int("seed", 1));
  if (layer < 0 || layer >= base.num_hidden_layers) bench::Args::Fail("--layer out of range");

  StudentConfig cfg = StudentConfig::Defaults(arch, base);
  cfg.balance_state = true;
  cfg.groupnorm_att = false;
  cfg.lora_rank_decay = rank;
  if (arch == StudentArch::kRwkv6) {
    cfg.use_rope = false;
    cfg.use_tokenshift = true;
    cfg.gate_rank_type = 1;
    cfg.lora_rank_tokenshift = rank;
    cfg.lora_rank_gate = rank;
  } else {
    cfg.use_rope = true;
    cfg.gate_rank_type = 2;
    cfg.lora_rank_gate = rank;
    cfg.lora_rank_iclr = rank;
    cfg.lora_rank_value_residual_mix = rank;
  }
  StudentMixerOptions mo;
  if (chunk >= 0) mo.rwkv6_chunk = mo.rwkv7_chunk = chunk;

  // The teacher and the step-1 targets of `layer`.
  auto tparams = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(base), *tparams);
  InitQwen2Params(*tparams, 0.02, seed);
  Qwen2Teacher teacher = MakeQwen2Teacher(base, std::move(tparams));
  Tensor ids = Tensor::Empty({B, T}, DType::kI32);
  {
    std::mt19937_64 rng(seed + 1000);
    for (std::int64_t i = 0; i < ids.numel(); ++i)
      ids.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(base.vocab_size));
  }
  Tensor x, target, x0;
  DecoderForwardOptions fo;
  fo.hook = [&](int l, const Tensor& in, const Tensor& out, const Tensor&) {
    if (l == 0) x0 = in.Clone();
    if (l == layer) {
      x = in.Clone();
      target = out.Clone();
    }
  };
  teacher.model->Forward(ids, fo);
  Tensor v_first;
  if (arch == StudentArch::kRwkv7 && layer > 0) {
    const ParamSet& tp = *teacher.params;
    v_first = ValueFirstFromTeacher(cfg, tp.Get("model.layers.0.self_attn.v_proj.weight").value,
                                    tp.Get("model.layers.0.self_attn.v_proj.bias").value, x0);
  }

  ParamSet params;
  TransferLayer(*teacher.params, cfg, layer, seed, params);
  if (args.Has("dump")) {
    ParamSet dump;
    for (const Param* p : params.params()) dump.Add(p->name, p->value.Clone());
    dump.Add("bench.x", x);
    dump.Add("bench.target", target);
    if (v_first.defined()) dump.Add("bench.v_first", v_first.Clone());
    Status st = SaveParams(dump, args.Str("dump", ""), DType::kF32, 1ull << 40);
    if (!st.ok()) bench::Args::Fail(st.ToString());
  }
  params.SetTrainable([](const std::string&) { return true; });
  auto mixer = MakeStudentMixer(cfg, layer, params, mo);
  OptimizerSettings os;  // beta 0.9/0.95, eps 1e-8, no weight decay, clip 1.0
  AlignTrainer trainer(cfg, layer, params, *mixer, os);

  const double check = trainer.Evaluate(x, target, v_first);
  trainer.Accumulate(x, target, v_first, 1.0f);
  trainer.Step(lr);
  const double check_after = trainer.Evaluate(x, target, v_first);

  bench::Timing t = bench::Time(warmup, iters, [&] {
    trainer.Accumulate(x, target, v_first, 1.0f);
    trainer.Step(lr);
  });

  bench::Json j;
  j.Str("bench", "align_step_" + arch_name)
      .Str("impl", "radlads")
      .Int("B", B)
      .Int("T", T)
      .Int("C", base.hidden_size)
      .Int("H", base.num_attention_heads)
      .Int("KV", base.num_key_value_heads)
      .Int("N", base.head_dim)
      .Int("layer", layer)
      .Int("rank", rank)
      .Int("chunk", arch == StudentArch::kRwkv6 ? mo.rwkv6_chunk : mo.rwkv7_chunk)
      .Int("threads", cpu::NumThreads())
      .Int("warmup", warmup);
  bench::AddTiming(j, t, B * T);
  j.Num("check", check)
      .Num("check_after", check_after)
      .Str("load_start", load_start)
      .Str("load_end", bench::LoadAvg());
  std::printf("%s\n", j.str().c_str());
  return 0;
}
