// Step-2 (distill) optimizer steps of the tiny model on a gang of MPI ranks, as the workers run
// them (pipeline/gang_trainer.h: GPipe with recomputation, vocabulary-parallel loss, dp
// gradient all-reduce, AdamW with the global norm). Run under mpirun; the layout is
// tp x pp x dp = the world size (dp from the others). Rank 0 prints one JSON line: the layout,
// tokens per step, the step time (median), tok_per_s, and comm_share: the fraction of the
// timed steps that rank 0 spent inside the communicator (collectives and point-to-point,
// waiting included, so a pipeline bubble counts as communication).
//   mpirun -np 2 --oversubscribe build/release/bench/gang_step_bench --tp 2
// bench/run_gang_bench.py runs 1 and 2 ranks side by side and prints the ratios.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/collectives.h"
#include "pipeline/gang_trainer.h"
#include "pipeline/model_io.h"
#include "pipeline/model_shard.h"
#include "pipeline/student_model.h"
#include "worker/mpi_communicator.h"

namespace radlads {
namespace {

// Forwards to another communicator and adds the time spent in each call to *seconds.
class TimedCommunicator final : public Communicator {
 public:
  TimedCommunicator(std::unique_ptr<Communicator> inner, double* seconds)
      : owned_(std::move(inner)), inner_(owned_.get()), seconds_(seconds) {}
  TimedCommunicator(Communicator* inner, double* seconds) : inner_(inner), seconds_(seconds) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  void AllReduceSum(float* d, std::size_t n) override { Timed([&] { inner_->AllReduceSum(d, n); }); }
  void AllReduceSum(double* d, std::size_t n) override { Timed([&] { inner_->AllReduceSum(d, n); }); }
  void AllReduceMax(float* d, std::size_t n) override { Timed([&] { inner_->AllReduceMax(d, n); }); }
  void AllReduceMax(double* d, std::size_t n) override { Timed([&] { inner_->AllReduceMax(d, n); }); }
  void Broadcast(std::string& b, int root) override { Timed([&] { inner_->Broadcast(b, root); }); }
  std::vector<std::string> AllGather(const std::string& b) override {
    std::vector<std::string> out;
    Timed([&] { out = inner_->AllGather(b); });
    return out;
  }
  void Send(const float* d, std::size_t n, int peer, int tag) override { Timed([&] { inner_->Send(d, n, peer, tag); }); }
  void Recv(float* d, std::size_t n, int peer, int tag) override { Timed([&] { inner_->Recv(d, n, peer, tag); }); }
  void SendBytes(const std::string& b, int peer, int tag) override { Timed([&] { inner_->SendBytes(b, peer, tag); }); }
  bool TryRecvBytes(std::string* b, int peer, int tag) override { return inner_->TryRecvBytes(b, peer, tag); }
  void Barrier() override { Timed([&] { inner_->Barrier(); }); }
  [[noreturn]] void Abort(int code) override {
    inner_->Abort(code);
    std::abort();  // not reached
  }
  std::unique_ptr<Communicator> Split(int color, int key) override {
    return std::make_unique<TimedCommunicator>(inner_->Split(color, key), seconds_);
  }

 private:
  template <typename F>
  void Timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    *seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::unique_ptr<Communicator> owned_;
  Communicator* inner_;
  double* seconds_;
};

void FillNormal(ParamSet& p, float std, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, std);
  for (Param* q : p.params()) {
    float* v = q->value.f32();
    const bool norm = q->name.find("norm") != std::string::npos;
    for (std::int64_t i = 0; i < q->value.numel(); ++i) v[i] = norm ? 1.0f : nd(rng);
  }
}

int Main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  std::vector<std::string> keys = bench::CommonKeys();
  for (const char* k : {"tp", "pp", "micro-batch", "arch"}) keys.push_back(k);
  bench::Args a(argc, argv, keys, bench::CommonFlags());
  bench::TuneMalloc(a);
  const bool smoke = a.Has("smoke");
  const int world = mpi.world_size();
  const int tp = static_cast<int>(a.Int("tp", 1)), pp = static_cast<int>(a.Int("pp", 1));
  if (tp < 1 || pp < 1 || world % (tp * pp) != 0) bench::Args::Fail("tp x pp must divide the world size");
  const int dp = world / (tp * pp);
  const unsigned hc = std::max(1u, std::thread::hardware_concurrency());
  cpu::SetNumThreads(static_cast<int>(a.Int("threads", std::max<int>(1, static_cast<int>(hc) / world))));
  const std::int64_t T = a.Int("time", smoke ? 32 : 256), batch = a.Int("batch", smoke ? 4 : 16);
  const std::int64_t mb = a.Int("micro-batch", smoke ? 2 : 4);
  if (batch % dp != 0 || (batch / dp) % mb != 0) bench::Args::Fail("micro-batch must divide batch / dp");
  const std::int64_t per_replica = batch / dp, accum = per_replica / mb;

  Qwen2Config tcfg = bench::TinyConfig(a);
  const StudentArch arch = a.Str("arch", "rwkv7") == "rwkv6" ? StudentArch::kRwkv6 : StudentArch::kRwkv7;
  const StudentConfig scfg = StudentConfig::Defaults(arch, tcfg);  // the recipes' LoRA ranks
  ParamSet teacher_full;
  DeclareParams(Qwen2ParamSpecs(tcfg), teacher_full);
  FillNormal(teacher_full, 0.05f, a.Int("seed", 1));
  std::unique_ptr<ParamSet> student_full = TransferTeacher(teacher_full, scfg, a.Int("seed", 1));

  double comm_s = 0;
  std::unique_ptr<Communicator> mpi_world = MpiCommunicator::World();
  TimedCommunicator all(mpi_world.get(), &comm_s);
  const int r = all.rank();
  const int tp_rank = r % tp, pp_rank = (r / tp) % pp, dp_rank = r / (tp * pp);
  auto tp_comm = all.Split(dp_rank * pp + pp_rank, tp_rank);
  auto pp_comm = all.Split(dp_rank * tp + tp_rank, pp_rank);
  auto dp_comm = all.Split(pp_rank * tp + tp_rank, dp_rank);
  auto mp_comm = all.Split(dp_rank, pp_rank * tp + tp_rank);

  const int L = static_cast<int>(tcfg.num_hidden_layers);
  ModelShard ms;
  ms.tp = tp;
  ms.tp_rank = tp_rank;
  ms.pp = pp;
  ms.pp_rank = pp_rank;
  ms.first_layer = pp_rank * L / pp;
  ms.last_layer = (pp_rank + 1) * L / pp;
  Result<StudentConfig> slocal = TpSliceStudent(scfg, tp);
  Result<Qwen2Config> tlocal = TpSliceConfig(tcfg, tp);
  if (!slocal.ok() || !tlocal.ok()) bench::Args::Fail("tp " + std::to_string(tp) + " does not split the model");
  DecoderShard ds;
  ds.first_layer = ms.first_layer;
  ds.last_layer = ms.last_layer;
  ds.first_stage = ms.first_stage();
  ds.last_stage = ms.last_stage();
  ds.vocab_begin = tp_rank * slocal->base.vocab_size;
  ds.tp = tp > 1 ? tp_comm.get() : nullptr;
  auto sp = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(StudentParamSpecs(*slocal), ms), *sp);
  if (!SliceParams(*student_full, *sp, tp, tp_rank).ok()) bench::Args::Fail("slicing the student");
  sp->SetTrainable([](const std::string&) { return true; });
  StudentModel student = MakeStudentModel(*slocal, std::move(sp), {}, ds);
  auto tparams = std::make_unique<ParamSet>();
  DeclareParams(StageSpecs(Qwen2ParamSpecs(*tlocal), ms), *tparams);
  if (!SliceParams(teacher_full, *tparams, tp, tp_rank).ok()) bench::Args::Fail("slicing the teacher");
  Qwen2Teacher teacher = MakeQwen2Teacher(*tlocal, std::move(tparams), ds);
  ModelParallelGroups groups;
  if (!ms.whole()) {
    groups.tp = tp > 1 ? tp_comm.get() : nullptr;
    groups.pp = pp > 1 ? pp_comm.get() : nullptr;
    groups.mp = mp_comm.get();
    groups.full_vocab = tcfg.vocab_size;
  }
  GangTrainer trainer(*student.model, *student.params, teacher.model.get(), OptimizerSettings{}, 256, groups,
                      ShapesByName(StudentParamSpecs(scfg)));
  std::vector<Param*> trainable;
  for (Param* p : student.params->params()) trainable.push_back(p);

  std::mt19937 rng(static_cast<unsigned>(a.Int("seed", 1)));
  std::uniform_int_distribution<std::int32_t> tok(0, static_cast<std::int32_t>(tcfg.vocab_size) - 1);
  auto batches = [&]() {
    std::vector<LmBatch> out;
    for (std::int64_t j = 0; j < accum; ++j) {
      LmBatch b;
      b.inputs = Tensor::Empty({mb, T}, DType::kI32);
      b.targets = Tensor::Empty({mb * T}, DType::kI32);
      for (std::int64_t i = 0; i < mb * T; ++i) {
        b.inputs.data<std::int32_t>()[i] = tok(rng);
        b.targets.data<std::int32_t>()[i] = tok(rng);
      }
      out.push_back(std::move(b));
    }
    return out;
  };
  double kl = 0;
  auto step = [&] {
    const std::vector<LmBatch> mbs = batches();
    kl = trainer.AccumulateStep(mbs, 1.0f / static_cast<float>(accum * dp)).kl;
    if (dp > 1) {
      for (Param* p : trainable) dp_comm->AllReduceSum(p->grad.f32(), static_cast<std::size_t>(p->grad.numel()));
    }
    trainer.optimizer().Step(1e-4, 1e-4);
  };
  const int warmup = static_cast<int>(a.Int("warmup", smoke ? 0 : 2));
  const int iters = static_cast<int>(a.Int("iters", smoke ? 1 : 5));
  for (int i = 0; i < warmup; ++i) step();
  all.Barrier();
  comm_s = 0;
  bench::Timing t = bench::Time(0, iters, step);
  const double total = std::accumulate(t.samples.begin(), t.samples.end(), 0.0);
  if (r == 0) {
    bench::Json j;
    j.Str("bench", "gang_step")
        .Str("arch", a.Str("arch", "rwkv7"))
        .Int("ranks", world)
        .Int("tp", tp)
        .Int("pp", pp)
        .Int("dp", dp)
        .Int("B", batch)
        .Int("T", T)
        .Int("micro_batch", mb)
        .Int("threads_per_rank", cpu::NumThreads())
        .Int("warmup", warmup);
    bench::AddTiming(j, t, batch * T);
    j.Num("comm_share", total > 0 ? comm_s / total : 0.0).Num("check", kl).Str("load", bench::LoadAvg());
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) {
  radlads::bench::EnsurePassiveWait(argv);
  return radlads::Main(argc, argv);
}
