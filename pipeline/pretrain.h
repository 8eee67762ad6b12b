// Pretraining a Qwen2-architecture teacher from scratch with the project's own engine: the
// embedded default's tiny teacher (a tiny Qwen2-architecture model pretrained by this project on
// Austen; never a Qwen2.5 model). Next-token cross-entropy, AdamW, linear warmup then cosine
// decay, windows drawn by the RWKV magic-prime sampler. Deterministic for a seed and a thread
// count.
#pragma once

#include <cstdint>
#include <functional>

#include "base/status.h"
#include "pipeline/decoder.h"
#include "pipeline/param_set.h"
#include "storage/hf_config.h"
#include "storage/token_dataset.h"

namespace radlads {

// transformers' Qwen2 init: every matrix N(0, initializer_range^2), biases 0, norm weights 1.
void InitQwen2Params(ParamSet& params, double initializer_range, std::uint64_t seed);

struct PretrainOptions {
  std::int64_t tokens = 0;     // training tokens; rounded down to whole steps
  std::int64_t seq_len = 256;
  std::int64_t batch = 16;     // sequences per optimizer step
  double lr = 3e-3;
  double lr_final = 3e-4;
  std::int64_t warmup_steps = 100;
  double weight_decay = 0.0;
  double beta2 = 0.95;
  double grad_clip = 1.0;
  std::int64_t eval_every = 0;     // optimizer steps between held-out evaluations; 0 = end only
  std::int64_t eval_tokens = 0;    // held-out tokens per evaluation; 0 = all
  std::uint64_t seed = 1;          // data order; params are initialised by the caller
};

struct PretrainProgress {
  std::int64_t step = 0, steps = 0, tokens = 0;
  double train_loss = 0.0;    // mean CE of the last step, nats/token
  double heldout_loss = -1;   // latest held-out CE (nats/token), -1 until evaluated
  double lr = 0.0;
};

struct PretrainResult {
  std::int64_t steps = 0;
  std::int64_t tokens = 0;
  double final_train_loss = 0.0;
  double heldout_loss = 0.0;  // nats/token on the held-out data
  double seconds = 0.0;
};

// Trains every parameter of `model` (whose ParamSet must be SetTrainable) on `train`.
Result<PretrainResult> Pretrain(DecoderModel& model, ParamSet& params, const TokenDataset& train,
                                const TokenDataset& heldout, const PretrainOptions& opts,
                                const std::function<void(const PretrainProgress&)>& on_step = {});

// Mean next-token cross-entropy (nats/token) of `model` over `data` in consecutive windows of
// seq_len+1 tokens (each window predicts seq_len tokens; the remainder is dropped), at most
// max_tokens predicted tokens (0 = all), in batches of `batch` windows.
Result<double> EvaluateLoss(DecoderModel& model, const TokenDataset& data, std::int64_t seq_len,
                            std::int64_t batch, std::int64_t max_tokens);

}  // namespace radlads
