#include "worker/device_training.h"

#include <cmath>
#include <stdexcept>
#include <utility>

#include "kernels/cuda/device.h"
#include "pipeline/cuda/cuda_trainers.h"
#include "pipeline/student_model.h"

namespace radlads {
namespace {

// Constructing a CUDA trainer throws std::runtime_error when the device cannot do it (no
// backend, out of memory at upload): a fatal task error, with the reason.
template <typename F>
auto Construct(const char* what, F&& make) -> Result<decltype(make())> {
  try {
    return make();
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + ": " + e.what());
  }
}

class CpuAlign final : public AlignDeviceTrainer {
 public:
  CpuAlign(const StudentConfig& cfg, int layer, ParamSet& params, const OptimizerSettings& opt, std::int64_t step)
      : mixer_(MakeStudentMixer(cfg, layer, params, StudentMixerOptions{})),
        trainer_(cfg, layer, params, *mixer_, opt) {
    trainer_.optimizer().set_step(step);
  }
  AlignStepStats Accumulate(const Tensor& in, const Tensor& target, const Tensor& vf, float scale) override {
    return trainer_.Accumulate(in, target, vf, scale);
  }
  OptimizerStepResult Step(double lr) override { return trainer_.Step(lr); }
  std::int64_t optimizer_step() const override { return trainer_.optimizer().step(); }
  void SyncToHost() override {}

 private:
  std::unique_ptr<Mixer> mixer_;
  mutable AlignTrainer trainer_;  // optimizer() has no const form
};

class CudaAlign final : public AlignDeviceTrainer {
 public:
  CudaAlign(const StudentConfig& cfg, int layer, ParamSet& params, const OptimizerSettings& opt, std::int64_t step)
      : params_(params), trainer_(cfg, layer, params, opt) {
    trainer_.set_optimizer_step(step);
  }
  AlignStepStats Accumulate(const Tensor& in, const Tensor& target, const Tensor& vf, float scale) override {
    return trainer_.Accumulate(in, target, vf, scale);
  }
  OptimizerStepResult Step(double lr) override { return trainer_.Step(lr); }
  std::int64_t optimizer_step() const override { return trainer_.optimizer_step(); }
  void SyncToHost() override { trainer_.SyncToHost(params_); }

 private:
  ParamSet& params_;
  cuda::CudaAlignTrainer trainer_;
};

class CpuLm final : public LmDeviceTrainer {
 public:
  CpuLm(std::unique_ptr<GangTrainer> t, ParamSet& params, std::int64_t step) : trainer_(std::move(t)) {
    trainer_->optimizer().set_step(step);
    for (Param* p : params.params()) {
      if (p->trainable) trainable_.push_back(p);
    }
  }
  DistillStepStats AccumulateStep(const std::vector<LmBatch>& mbs, float scale) override {
    return trainer_->AccumulateStep(mbs, scale);
  }
  OptimizerStepResult Step(double lr_main, double lr_mixer) override {
    return trainer_->optimizer().Step(lr_main, lr_mixer);
  }
  std::int64_t optimizer_step() const override { return trainer_->optimizer().step(); }
  std::vector<Param*> HostGradients() override { return trainable_; }
  void SyncToHost() override {}

 private:
  std::unique_ptr<GangTrainer> trainer_;
  std::vector<Param*> trainable_;
};

// The mean of the micro-batches' statistics, token counts summed (GangTrainer::AccumulateStep).
void AddMean(DistillStepStats& total, const DistillStepStats& s, double m) {
  total.kl += s.kl / m;
  total.top1 += s.top1 / m;
  total.student_ce += s.student_ce / m;
  total.tokens += s.tokens;
}

class CudaDistill final : public LmDeviceTrainer {
 public:
  CudaDistill(const StudentConfig& cfg, ParamSet& params, const Qwen2Teacher& teacher, const OptimizerSettings& opt,
              std::int64_t chunk, std::int64_t step)
      : params_(params), trainer_(cfg, params, teacher.config, *teacher.params, opt, chunk) {
    trainer_.set_optimizer_step(step);
  }
  DistillStepStats AccumulateStep(const std::vector<LmBatch>& mbs, float scale) override {
    DistillStepStats total;
    for (const LmBatch& b : mbs) AddMean(total, trainer_.Accumulate(b, scale), static_cast<double>(mbs.size()));
    return total;
  }
  OptimizerStepResult Step(double lr_main, double lr_mixer) override { return trainer_.Step(lr_main, lr_mixer); }
  std::int64_t optimizer_step() const override { return trainer_.optimizer_step(); }
  std::vector<Param*> HostGradients() override { return {}; }
  void SyncToHost() override { trainer_.SyncToHost(params_); }

 private:
  ParamSet& params_;
  cuda::CudaDistillTrainer trainer_;
};

class CudaFinetune final : public LmDeviceTrainer {
 public:
  CudaFinetune(const StudentConfig& cfg, ParamSet& params, const OptimizerSettings& opt, std::int64_t chunk,
               std::int64_t step)
      : params_(params), trainer_(cfg, params, opt, chunk) {
    trainer_.set_optimizer_step(step);
  }
  DistillStepStats AccumulateStep(const std::vector<LmBatch>& mbs, float scale) override {
    DistillStepStats total;
    for (const LmBatch& b : mbs) {
      const FinetuneStepStats f = trainer_.Accumulate(b, scale);
      DistillStepStats s;  // a finetune step's statistics in the step-2 record (kl, top1 zero)
      s.student_ce = f.ce;
      s.tokens = f.tokens;
      AddMean(total, s, static_cast<double>(mbs.size()));
    }
    return total;
  }
  OptimizerStepResult Step(double lr_main, double lr_mixer) override { return trainer_.Step(lr_main, lr_mixer); }
  std::int64_t optimizer_step() const override { return trainer_.optimizer_step(); }
  std::vector<Param*> HostGradients() override { return {}; }
  void SyncToHost() override { trainer_.SyncToHost(params_); }

 private:
  ParamSet& params_;
  cuda::CudaFinetuneTrainer trainer_;
};

}  // namespace

const char* TrainDeviceName(TrainDevice d) { return d == TrainDevice::kCuda ? "cuda" : "cpu"; }

Result<TrainDevice> ParseTrainDevice(std::string_view name) {
  if (name == "cpu") return TrainDevice::kCpu;
  if (name == "cuda") return TrainDevice::kCuda;
  return Status::InvalidArgument("--device " + std::string(name) + ": expected cpu or cuda");
}

std::string TrainDeviceUnavailableReason(TrainDevice d) {
  if (d == TrainDevice::kCpu) return "";
  return cuda::CudaTrainingUnavailableReason();
}

std::string TrainDeviceDescription(TrainDevice d) {
  if (d == TrainDevice::kCpu) return "cpu";
  const cuda::DeviceProbe p = cuda::ProbeDevices();
  if (p.count > 0) return "cuda:0 (" + p.first_name + ")";
  return "cuda (no device: " + p.reason + ")";
}

Status CheckPlanForDevice(const Plan& plan, TrainDevice d) {
  if (d == TrainDevice::kCpu) return Status::Ok();
  for (const TaskSpec& t : plan.tasks) {
    if (t.workers <= 1) continue;
    return Status::InvalidArgument(
        "--device cuda trains on one GPU in this process, but the plan's " + std::string(TaskTypeName(t.type)) +
        " gang is tp " + std::to_string(plan.layout.tp) + " x pp " + std::to_string(plan.layout.pp) + " x dp " +
        std::to_string(plan.layout.dp) + " = " + std::to_string(t.workers) + " ranks (cluster " + plan.cluster_name +
        "): gangs on GPUs (NCCL) are not wired to `run` yet; use a one-worker cluster (--cluster local-process) or "
        "--device cpu");
  }
  return Status::Ok();
}

Result<std::unique_ptr<AlignDeviceTrainer>> MakeAlignDeviceTrainer(TrainDevice d, const StudentConfig& cfg, int layer,
                                                                   ParamSet& params, const OptimizerSettings& opt,
                                                                   std::int64_t start_step) {
  if (d == TrainDevice::kCpu) return std::unique_ptr<AlignDeviceTrainer>(new CpuAlign(cfg, layer, params, opt, start_step));
  RADLADS_ASSIGN_OR_RETURN(auto t, Construct("the CUDA align trainer", [&] {
                             return std::make_unique<CudaAlign>(cfg, layer, params, opt, start_step);
                           }));
  return std::unique_ptr<AlignDeviceTrainer>(std::move(t));
}

std::unique_ptr<LmDeviceTrainer> WrapGangTrainer(std::unique_ptr<GangTrainer> trainer, ParamSet& params,
                                                 std::int64_t start_step) {
  return std::make_unique<CpuLm>(std::move(trainer), params, start_step);
}

Result<std::unique_ptr<LmDeviceTrainer>> MakeCudaLmTrainer(const StudentConfig& cfg, ParamSet& params,
                                                           const Qwen2Teacher* teacher, const OptimizerSettings& opt,
                                                           std::int64_t chunk, std::int64_t start_step) {
  if (teacher != nullptr) {
    RADLADS_ASSIGN_OR_RETURN(auto t, Construct("the CUDA distill trainer", [&] {
                               return std::make_unique<CudaDistill>(cfg, params, *teacher, opt, chunk, start_step);
                             }));
    return std::unique_ptr<LmDeviceTrainer>(std::move(t));
  }
  RADLADS_ASSIGN_OR_RETURN(auto t, Construct("the CUDA finetune trainer", [&] {
                             return std::make_unique<CudaFinetune>(cfg, params, opt, chunk, start_step);
                           }));
  return std::unique_ptr<LmDeviceTrainer>(std::move(t));
}

bool TrainsOnDevice(const TaskEnv& env, TaskType type) {
  return env.device == TrainDevice::kCuda &&
         (type == TaskType::kAlign || type == TaskType::kDistill || type == TaskType::kFinetune);
}

void BeginDeviceTask(const TaskEnv& env, TaskType type) {
  if (TrainsOnDevice(env, type)) cuda::ResetPeakDeviceMemory();
}

void EndDeviceTask(const TaskEnv& env, TaskType type, FinalRecord& final) {
  if (!TrainsOnDevice(env, type)) return;
  const double mib = static_cast<double>(cuda::CurrentDeviceMemory().peak_bytes) / (1024.0 * 1024.0);
  final.metrics.push_back({"peak_gpu_mib", mib});
}

}  // namespace radlads
