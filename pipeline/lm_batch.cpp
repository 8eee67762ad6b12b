#include "pipeline/lm_batch.h"

#include <vector>

namespace radlads {

Result<LmBatch> ReadLmBatch(const TokenDataset& data, const WindowSampler& sampler,
                            std::uint64_t first_g, std::int64_t batch) {
  const auto T = static_cast<std::int64_t>(sampler.ctx_len());
  LmBatch b;
  b.inputs = Tensor::Empty({batch, T}, DType::kI32);
  b.targets = Tensor::Empty({batch * T}, DType::kI32);
  std::vector<std::int32_t> window(static_cast<std::size_t>(T + 1));
  std::int32_t* in = b.inputs.data<std::int32_t>();
  std::int32_t* tg = b.targets.data<std::int32_t>();
  for (std::int64_t i = 0; i < batch; ++i) {
    RADLADS_RETURN_IF_ERROR(sampler.ReadWindow(data, first_g + static_cast<std::uint64_t>(i), window));
    for (std::int64_t t = 0; t < T; ++t) {
      in[i * T + t] = window[static_cast<std::size_t>(t)];
      tg[i * T + t] = window[static_cast<std::size_t>(t + 1)];
    }
  }
  return b;
}

}  // namespace radlads
