// pipeline/cuda/cuda_trainers.h in a build without the CUDA backend (RADLADS_HAVE_CUDA == 0):
// every trainer constructor throws and CudaTrainingUnavailableReason says why, so callers
// (radlads-coord run --device cuda) link either way and refuse before any work.
#include <stdexcept>

#include "pipeline/cuda/cuda_trainers.h"

namespace radlads::cuda {
namespace {

constexpr const char* kWhy = "built without the CUDA backend (configure with -DRADLADS_CUDA=ON or AUTO on a "
                             "machine with the CUDA toolkit)";

[[noreturn]] void Unavailable() { throw std::runtime_error(kWhy); }

}  // namespace

std::string CudaTrainingUnavailableReason() { return kWhy; }
DeviceMemoryStats CurrentDeviceMemory() { return {}; }
void ResetPeakDeviceMemory() {}
void ReleaseCachedDeviceMemory() {}

struct CudaAlignTrainer::Impl {};
CudaAlignTrainer::CudaAlignTrainer(const StudentConfig&, int, ParamSet&, const OptimizerSettings&) { Unavailable(); }
CudaAlignTrainer::~CudaAlignTrainer() = default;
AlignStepStats CudaAlignTrainer::Accumulate(const Tensor&, const Tensor&, const Tensor&, float) { Unavailable(); }
double CudaAlignTrainer::Evaluate(const Tensor&, const Tensor&, const Tensor&) { Unavailable(); }
OptimizerStepResult CudaAlignTrainer::Step(double) { Unavailable(); }
void CudaAlignTrainer::SyncToHost(ParamSet&) { Unavailable(); }
std::int64_t CudaAlignTrainer::optimizer_step() const { Unavailable(); }
void CudaAlignTrainer::set_optimizer_step(std::int64_t) { Unavailable(); }

struct CudaDistillTrainer::Impl {};
CudaDistillTrainer::CudaDistillTrainer(const StudentConfig&, ParamSet&, const Qwen2Config&, const ParamSet&,
                                       const OptimizerSettings&, std::int64_t) {
  Unavailable();
}
CudaDistillTrainer::~CudaDistillTrainer() = default;
DistillStepStats CudaDistillTrainer::Accumulate(const LmBatch&, float) { Unavailable(); }
DistillStepStats CudaDistillTrainer::Evaluate(const LmBatch&) { Unavailable(); }
OptimizerStepResult CudaDistillTrainer::Step(double, double) { Unavailable(); }
void CudaDistillTrainer::SyncToHost(ParamSet&) { Unavailable(); }
std::int64_t CudaDistillTrainer::optimizer_step() const { Unavailable(); }
void CudaDistillTrainer::set_optimizer_step(std::int64_t) { Unavailable(); }

struct CudaFinetuneTrainer::Impl {};
CudaFinetuneTrainer::CudaFinetuneTrainer(const StudentConfig&, ParamSet&, const OptimizerSettings&, std::int64_t) {
  Unavailable();
}
CudaFinetuneTrainer::~CudaFinetuneTrainer() = default;
FinetuneStepStats CudaFinetuneTrainer::Accumulate(const LmBatch&, float) { Unavailable(); }
OptimizerStepResult CudaFinetuneTrainer::Step(double, double) { Unavailable(); }
void CudaFinetuneTrainer::SyncToHost(ParamSet&) { Unavailable(); }
std::int64_t CudaFinetuneTrainer::optimizer_step() const { Unavailable(); }
void CudaFinetuneTrainer::set_optimizer_step(std::int64_t) { Unavailable(); }

}  // namespace radlads::cuda
