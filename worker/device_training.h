// Where a run's training steps execute (`radlads-coord run --device cpu|cuda`), and the trainers
// the step-1/2/3 task runners drive on either device.
//
// - cpu: the CPU trainers (pipeline/train_steps.h, pipeline/gang_trainer.h), every layout.
// - cuda: the one-GPU trainers (pipeline/cuda/cuda_trainers.h) on device 0, for the align,
//   distill and finetune tasks; the transfer, cache (the teacher's forward for the step-1
//   cache), export and eval tasks stay on the CPU. One process, one GPU: gangs of more than one
//   rank are refused (CheckPlanForDevice) before any work.
// The runners give both the same batches, learning rates and checkpoints: the trainers are
// built over the ParamSet restored from a checkpoint (moments included), SyncToHost brings the
// device's state back into that ParamSet before every checkpoint and at the end of a task, and
// the CPU code writes the files as before. The CPU and CUDA trainers agree to bf16 tolerance,
// not bit for bit, so a run keeps the device it started with (cli/run_command.h).
// Thread-safety: none; one trainer per task.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "contract/records.h"
#include "pipeline/gang_trainer.h"
#include "pipeline/lm_batch.h"
#include "pipeline/model_io.h"
#include "pipeline/optimizer.h"
#include "pipeline/param_set.h"
#include "pipeline/train_steps.h"
#include "plan/plan.h"
#include "storage/student_config.h"
#include "worker/task_env.h"

namespace radlads {

// "cpu", "cuda".
const char* TrainDeviceName(TrainDevice d);
// InvalidArgument naming the accepted values.
Result<TrainDevice> ParseTrainDevice(std::string_view name);

// "" when training on `d` can run in this process; else why not ("built without the CUDA
// backend", "no usable CUDA device: ...").
std::string TrainDeviceUnavailableReason(TrainDevice d);

// "cpu", or "cuda:0 (<the card's name>)".
std::string TrainDeviceDescription(TrainDevice d);

// OK when `plan` can run on `d`: on cuda every task must be one process's (no gang of more
// than one rank: tp x pp x dp = 1). InvalidArgument saying why and what to change.
Status CheckPlanForDevice(const Plan& plan, TrainDevice d);

// Step 1: one layer's mixer trainer on either device.
class AlignDeviceTrainer {
 public:
  virtual ~AlignDeviceTrainer() = default;
  virtual AlignStepStats Accumulate(const Tensor& mixer_in, const Tensor& target, const Tensor& v_first,
                                    float grad_scale) = 0;
  virtual OptimizerStepResult Step(double lr_mixer) = 0;
  virtual std::int64_t optimizer_step() const = 0;
  // Makes the ParamSet the trainer was built over current (values and moments); a no-op on the
  // CPU, whose trainer updates it in place.
  virtual void SyncToHost() = 0;
};

// `params`: this layer's mixer, restored from its checkpoint and trainable; `start_step`: the
// checkpoint's optimizer step (AdamW's bias correction continues from it). A CUDA trainer that
// cannot be built (no device, out of device memory) is an Internal error with the reason.
Result<std::unique_ptr<AlignDeviceTrainer>> MakeAlignDeviceTrainer(TrainDevice d, const StudentConfig& cfg, int layer,
                                                                   ParamSet& params, const OptimizerSettings& opt,
                                                                   std::int64_t start_step);

// Steps 2 and 3: one optimizer step's micro-batches on either device (the statistics are the
// mean over the micro-batches, as GangTrainer::AccumulateStep).
class LmDeviceTrainer {
 public:
  virtual ~LmDeviceTrainer() = default;
  virtual DistillStepStats AccumulateStep(const std::vector<LmBatch>& micro_batches, float grad_scale) = 0;
  virtual OptimizerStepResult Step(double lr_main, double lr_mixer) = 0;
  virtual std::int64_t optimizer_step() const = 0;
  // The CPU gang's gradients, for the dp all-reduce (empty on cuda: one rank, gradients on the
  // device).
  virtual std::vector<Param*> HostGradients() = 0;
  virtual void SyncToHost() = 0;  // as AlignDeviceTrainer::SyncToHost
};

// The CPU: the gang trainer of this rank, started at `start_step`.
std::unique_ptr<LmDeviceTrainer> WrapGangTrainer(std::unique_ptr<GangTrainer> trainer, ParamSet& params,
                                                 std::int64_t start_step);

// cuda, the whole model on one GPU: `params` the whole student (trainable); `teacher` the frozen
// teacher for step 2, null for step 3; `chunk` the head loss's token chunk.
Result<std::unique_ptr<LmDeviceTrainer>> MakeCudaLmTrainer(const StudentConfig& cfg, ParamSet& params,
                                                           const Qwen2Teacher* teacher, const OptimizerSettings& opt,
                                                           std::int64_t chunk, std::int64_t start_step);

// Task bracket (worker/task_dispatch.cpp RunTask): on cuda, a training task's device memory
// peak is measured from BeginDeviceTask and reported as the final metric "peak_gpu_mib" (the
// trainers' device allocations, what the one-GPU estimate of plan/gpu_memory.h is for).
bool TrainsOnDevice(const TaskEnv& env, TaskType type);
void BeginDeviceTask(const TaskEnv& env, TaskType type);
void EndDeviceTask(const TaskEnv& env, TaskType type, FinalRecord& final);

}  // namespace radlads
