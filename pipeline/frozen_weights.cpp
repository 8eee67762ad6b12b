#include "pipeline/frozen_weights.h"

#include <atomic>
#include <cstdint>
#include <string>

#include "base/profile.h"
#include "kernels/cpu/parallel.h"
#include "pipeline/model_io.h"

namespace radlads {
namespace {

constexpr std::int64_t kConvertGrain = std::int64_t{1} << 16;  // elements per piece

}  // namespace

Result<FrozenBindStats> BindFrozenParams(const ModelWeights& weights, const std::vector<ParamSpec>& specs,
                                         bool tied_embeddings, ParamSet& params) {
  std::vector<Status> problems = CheckModelTensors(weights, specs, tied_embeddings);
  if (!problems.empty()) return problems.front();
  FrozenBindStats stats;
  for (const ParamSpec& spec : specs) {
    const ModelTensor* t = weights.Find(spec.name);
    const DType dt = t->info->dtype;
    const void* data = t->data.data();
    const bool aligned = reinterpret_cast<std::uintptr_t>(data) % DTypeSize(dt) == 0;
    if (aligned && dt == DType::kF32) {
      params.AddFrozen(spec.name, Tensor::BorrowConst(data, spec.shape, dt));
      stats.mapped_f32_bytes += t->data.size();
    } else if (aligned && (dt == DType::kBF16 || dt == DType::kF16)) {
      params.AddFrozen(spec.name, Tensor::BorrowConst(data, spec.shape, dt));
      stats.mapped_other_bytes += t->data.size();
    } else {  // F64, or an element that straddles its alignment: an owned fp32 copy
      Tensor v = Tensor::Empty(spec.shape);
      if (!ConvertToF32(dt, data, v.f32(), static_cast<std::size_t>(v.numel()))) {
        return Status::InvalidArgument(t->file->path() + ": tensor '" + spec.name + "' has dtype " +
                                       std::string(DTypeName(dt)) + ", which cannot be read as numbers");
      }
      params.AddFrozen(spec.name, v);
      stats.copied_bytes += v.nbytes();
    }
  }
  return stats;
}

Tensor ResidentF32(const Tensor& w) { return w.dtype() == DType::kF32 ? w : w.ToF32(); }

const Tensor& FrozenWeightScratch::AsF32(int slot, const Tensor& w) {
  if (w.dtype() == DType::kF32) return w;
  const profile::Scope profile_scope(profile::Family::kIo);
  if (slots_.size() <= static_cast<std::size_t>(slot)) slots_.resize(static_cast<std::size_t>(slot) + 1);
  Tensor& s = slots_[static_cast<std::size_t>(slot)];
  if (!s.defined() || s.numel() != w.numel()) {
    s = Tensor::Empty(w.shape());
  } else if (s.shape() != w.shape()) {
    s = s.View(w.shape());
  }
  // Converted in pieces over the threads: a 7B layer is ~230M elements. Element-wise, so
  // the bits do not depend on the split.
  const DType dt = w.dtype();
  const std::size_t esize = DTypeSize(dt);
  const auto* src = static_cast<const std::byte*>(w.raw());
  float* dst = s.f32();
  std::atomic<bool> ok{true};
  cpu::ParallelFor(w.numel(), kConvertGrain, [&](std::int64_t b, std::int64_t e) {
    if (!ConvertToF32(dt, src + static_cast<std::size_t>(b) * esize, dst + b, static_cast<std::size_t>(e - b))) ok = false;
  });
  RADLADS_CHECK(ok) << "frozen weight " << w.DebugString() << " cannot be converted to F32";
  return s;
}

std::uint64_t FrozenWeightScratch::bytes() const {
  std::uint64_t n = 0;
  for (const Tensor& s : slots_) n += s.defined() ? s.nbytes() : 0;
  return n;
}

}  // namespace radlads
