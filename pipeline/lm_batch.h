// Language-model batches from a token dataset: B windows of T+1 tokens addressed by global
// sample indices (storage/window_sampler.h), split into inputs [B, T] and next-token targets
// [B*T]. Sample g of a batch starting at first_g is window first_g + b, so a resumed run that
// knows its sample cursor reads exactly the same batches on any worker count.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "kernels/tensor.h"
#include "storage/token_dataset.h"
#include "storage/window_sampler.h"

namespace radlads {

struct LmBatch {
  Tensor inputs;   // [B, T] I32
  Tensor targets;  // [B*T] I32
};

Result<LmBatch> ReadLmBatch(const TokenDataset& data, const WindowSampler& sampler,
                            std::uint64_t first_g, std::int64_t batch);

}  // namespace radlads
