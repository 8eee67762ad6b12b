// Where a run keeps its files (RUN/ is the run directory; every path below is relative to it,
// which is how the state store records them):
//   plan.json, inputs/            the planner's output (coordinator/plan_command.h)
//   state/                        RocksDB run state (docs/formats/state.md)
//   data/train.{bin,idx}          tokenized training data (when the run config gives text)
//   data/heldout.{bin,idx}        tokenized held-out data
//   cache/S{s:05d}_P{p:02d}.h5    step-1 activation cache (docs/formats/activation_cache.md)
//   checkpoints/layers/L{l:03d}/transfer.safetensors       step 0: layer l's mixer
//   checkpoints/layers/L{l:03d}/S{s:05d}-{step:06d}.safetensors  step 1: layer l after segment s
//   checkpoints/{distill,finetune}/step-{n:06d}.safetensors      steps 2-3: the whole student
//   output/model/                 the exported student (rwkv6qwen2 / rwkv7qwen2 layout)
//   output/eval.json, output/summary.txt
#pragma once

#include <cstdint>
#include <string>

namespace radlads {

struct RunLayout {
  std::string dir;  // RUN/

  std::string Abs(const std::string& rel) const;  // RUN/<rel>
  static std::string TrainPrefix() { return "data/train"; }
  static std::string HeldoutPrefix() { return "data/heldout"; }
  static std::string CacheFile(int segment, int stage);
  static std::string TransferFile(int layer);
  static std::string AlignFile(int layer, int segment, std::int64_t step);
  static std::string GangFile(const std::string& step_name, std::int64_t step);
  static std::string OutputModelDir() { return "output/model"; }
  static std::string EvalFile() { return "output/eval.json"; }
  static std::string SummaryFile() { return "output/summary.txt"; }
};

}  // namespace radlads
