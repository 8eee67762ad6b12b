// The whole-model work of steps 2 and 3 and of evaluation on the CPU, on the tiny student of
// the tiny recipes (configs/recipes/tiny-rwkv{6,7}.yaml: the student's flags and LoRA ranks):
//   --stage distill   one step-2 optimizer step on one micro-batch, as DistillTrainer runs it
//                     (pipeline/train_steps.h): teacher forward, student forward, the fused KL
//                     head, student backward, global-norm clipping and AdamW. tok/s counts the
//                     micro-batch's tokens once.
//   --stage finetune  one step-3 optimizer step (FinetuneTrainer): student forward, fused
//                     next-token CE, backward, clipping, AdamW; meant for the longer context.
//   --stage eval      one batch of the evaluation pass (worker/eval_report.h
//                     EvaluateHeldoutBatch): teacher forward and CE, student forward, KL,
//                     student CE and top-1 agreement, no gradients.
//
//   bench_lm_step --stage distill|finetune|eval --arch rwkv6|rwkv7 [--batch 8] [--time 256]
//                 [--threads 2] [--warmup 2] [--iters 10] [--lr 1e-4] [--chunk 512]
//                 [--layers 4 --hidden 128 ...] [--seed 1] [--dump DIR] [--no-mallopt] [--smoke]
// Inputs: a random teacher (transformers' Qwen2 init, --seed), the student from it by step 0
// (TransferTeacher), ids uniform over the vocabulary, targets the next ids. --dump DIR writes
// the teacher's tensors (prefixed "teacher."), the student's, "bench.ids" [B,T] and
// "bench.targets" [B*T] (F32) to DIR/model.safetensors for the PyTorch peer
// (bench/peers/lm_step.py), which recomputes the checks:
//   distill:  check = KL per token before any step, check_after = after one step at --lr
//   finetune: check = CE per token before any step, check_after = after one step
//   eval:     check = KL per token, check_teacher_ce = the teacher's CE per token,
//             check_top1 = the top-1 agreement
// --chunk: the rows per chunk of the fused head losses (the recipes' loss.kl_chunk_tokens).
// Prints one JSON line (bench/bench_util.h).
#include <cstdio>
#include <random>

#include "bench/bench_util.h"
#include "configs/recipe.h"
#include "pipeline/model_io.h"
#include "pipeline/pretrain.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "plan/plan.h"
#include "worker/eval_report.h"

using namespace radlads;

int main(int argc, char** argv) {
  bench::EnsurePassiveWait(argv);
  std::vector<std::string> keys = bench::CommonKeys();
  for (const char* k : {"stage", "arch", "lr", "chunk"}) keys.emplace_back(k);
  bench::Args args(argc, argv, keys, bench::CommonFlags());
  const bool smoke = args.Has("smoke");
  bench::TuneMalloc(args);
  bench::SetThreads(args);
  const std::string load_start = bench::LoadAvg();

  const std::string stage = args.Str("stage", "distill");
  if (stage != "distill" && stage != "finetune" && stage != "eval") {
    bench::Args::Fail("--stage must be distill, finetune or eval");
  }
  const std::string arch_name = args.Str("arch", "rwkv7");
  if (arch_name != "rwkv6" && arch_name != "rwkv7") bench::Args::Fail("--arch must be rwkv6 or rwkv7");
  const Qwen2Config base = bench::TinyConfig(args);
  const std::int64_t B = args.Int("batch", smoke ? 2 : 8);
  const std::int64_t T = args.Int("time", smoke ? 16 : 256);
  const int warmup = static_cast<int>(args.Int("warmup", smoke ? 0 : 2));
  const int iters = static_cast<int>(args.Int("iters", smoke ? 1 : 10));
  const double lr = args.Double("lr", 1e-4);
  const std::int64_t chunk = args.Int("chunk", 512);
  const auto seed = static_cast<std::uint64_t>(args.Int("seed", 1));

  Result<Recipe> recipe = LoadRecipe("tiny-" + arch_name);
  if (!recipe.ok()) bench::Args::Fail(recipe.status().ToString());
  const StudentConfig cfg = StudentConfigFromRecipe(*recipe, base);
  // The flags the peer computes (bench/peers/lm_step.py, align_step.py's mixers).
  const bool v6 = cfg.arch == StudentArch::kRwkv6;
  if (!cfg.balance_state || cfg.groupnorm_att || cfg.attention_output_bias || cfg.use_rope == v6 ||
      cfg.use_tokenshift != v6 || cfg.gate_rank_type != (v6 ? 1 : 2)) {
    bench::Args::Fail("recipe tiny-" + arch_name + " sets student flags the PyTorch peer does not compute");
  }

  auto tparams = std::make_unique<ParamSet>();
  DeclareParams(Qwen2ParamSpecs(base), *tparams);
  InitQwen2Params(*tparams, 0.02, seed);
  std::unique_ptr<ParamSet> sparams = TransferTeacher(*tparams, cfg, seed);
  LmBatch batch;
  batch.inputs = Tensor::Empty({B, T}, DType::kI32);
  batch.targets = Tensor::Empty({B * T}, DType::kI32);
  {
    std::mt19937_64 rng(seed + 1000);
    std::vector<std::int32_t> window(static_cast<std::size_t>(T + 1));
    for (std::int64_t b = 0; b < B; ++b) {
      for (auto& id : window) id = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(base.vocab_size));
      for (std::int64_t t = 0; t < T; ++t) {
        batch.inputs.data<std::int32_t>()[b * T + t] = window[static_cast<std::size_t>(t)];
        batch.targets.data<std::int32_t>()[b * T + t] = window[static_cast<std::size_t>(t + 1)];
      }
    }
  }
  if (args.Has("dump")) {
    ParamSet dump;
    for (const Param* p : tparams->params()) dump.Add("teacher." + p->name, p->value.Clone());
    for (const Param* p : sparams->params()) dump.Add(p->name, p->value.Clone());
    dump.Add("bench.ids", batch.inputs.ToF32());
    dump.Add("bench.targets", batch.targets.ToF32());
    Status st = SaveParams(dump, args.Str("dump", ""), DType::kF32, 1ull << 40);
    if (!st.ok()) bench::Args::Fail(st.ToString());
  }

  const bool train = stage != "eval";
  if (train) sparams->SetTrainable([](const std::string&) { return true; });
  StudentModel student = MakeStudentModel(cfg, std::move(sparams));
  Qwen2Teacher teacher = MakeQwen2Teacher(base, std::move(tparams));
  OptimizerSettings os;  // the recipes': beta 0.9/0.95, eps 1e-8, no weight decay, clip 1.0

  bench::Json j;
  j.Str("bench", "lm_step_" + stage + "_" + arch_name)
      .Str("impl", "radlads")
      .Str("stage", stage)
      .Str("arch", arch_name)
      .Int("B", B)
      .Int("T", T)
      .Int("C", base.hidden_size)
      .Int("layers", base.num_hidden_layers)
      .Int("chunk", chunk)
      .Int("threads", cpu::NumThreads())
      .Int("warmup", warmup);
  bench::Timing t;
  if (stage == "distill") {
    DistillTrainer trainer(*student.model, *student.params, *teacher.model, os, chunk);
    j.Num("check", trainer.Evaluate(batch).kl);
    trainer.Accumulate(batch, 1.0f);
    trainer.Step(lr, lr);
    j.Num("check_after", trainer.Evaluate(batch).kl);
    t = bench::Time(warmup, iters, [&] {
      trainer.Accumulate(batch, 1.0f);
      trainer.Step(lr, lr);
    });
  } else if (stage == "finetune") {
    FinetuneTrainer trainer(*student.model, *student.params, os, chunk);
    auto ce = [&] {
      Tensor h = student.model->Forward(batch.inputs, {});
      return FinetuneHeadLoss(h, student.model->head_weight(), batch.targets, 0.0f, chunk, nullptr, HeadGrads{}).ce;
    };
    j.Num("check", ce());
    trainer.Accumulate(batch, 1.0f);
    trainer.Step(lr, lr);
    j.Num("check_after", ce());
    t = bench::Time(warmup, iters, [&] {
      trainer.Accumulate(batch, 1.0f);
      trainer.Step(lr, lr);
    });
  } else {
    const std::vector<DecoderModel*> students = {student.model.get()};
    const HeldoutBatchSums s = EvaluateHeldoutBatch(*teacher.model, students, batch);
    const double n = static_cast<double>(s.count);
    j.Num("check", s.students[0].kl / n)
        .Num("check_teacher_ce", s.teacher_ce / n)
        .Num("check_top1", static_cast<double>(s.students[0].agree) / n);
    t = bench::Time(warmup, iters, [&] { EvaluateHeldoutBatch(*teacher.model, students, batch); });
  }
  bench::AddTiming(j, t, B * T);
  j.Str("load_start", load_start).Str("load_end", bench::LoadAvg());
  std::printf("%s\n", j.str().c_str());
  return 0;
}
