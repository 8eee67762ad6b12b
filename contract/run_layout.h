// Where a run keeps its files. RUN/ is the run directory; every path below is relative to it,
// which is how the state store records them. Written once here; coordinator, workers and
// commands all take their names from this header.
//   format                        the run-directory format version (kRunFormatVersion)
//   plan.json, inputs/            the planner's output (cli/run_directory.h)
//   state/                        RocksDB run state (docs/formats/state.md)
//   secret                        the per-run key of the coordinator protocol (mode 0600)
//   coordinator.addr              where the serving coordinator listens (while it serves)
//   started_at                    when the run first started (Unix ms), for its total time
//   device                        the training device it started with ("cpu" / "cuda"; absent:
//                                 cpu), kept by `run --device` (cli/run_command.h)
//   data/                         train and heldout token datasets, binidx (when the run config
//                                 gives text)
//   cache/S{s:05d}_P{p:02d}.h5    step-1 activation cache (docs/formats/activation_cache.md)
//   checkpoints/layers/L{l:03d}/transfer.safetensors       step 0: layer l's mixer
//   checkpoints/layers/L{l:03d}/S{s:05d}-{step:06d}.safetensors  step 1: layer l after segment s
//   checkpoints/{distill,finetune}/step-{n:06d}.safetensors      steps 2-3: the whole student
//   output/model/                 the exported student (rwkv6qwen2 / rwkv7qwen2 layout)
//   output/eval.json, output/summary.txt
//
// Versions (docs/formats/versions.md): RUN/format holds "radlads-run <N>". A directory with a
// plan.json but no format file was written before the file existed: format 1. A reader refuses
// any other version than its own with an error naming both, so an old directory is never
// misread.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace radlads {

// 2: plan.json became radlads.plan version 2 (every task field written, the planning host's
// memory recorded as an input) and RUN/format appeared.
inline constexpr int kRunFormatVersion = 2;

struct RunLayout {
  std::string dir;  // RUN/

  std::string Abs(const std::string& rel) const;  // RUN/<rel>
  static std::string FormatFile() { return "format"; }
  static std::string PlanFile() { return "plan.json"; }
  static std::string InputsDir() { return "inputs"; }
  static std::string StateDir() { return "state"; }
  static std::string SecretFile() { return "secret"; }
  static std::string AddressFile() { return "coordinator.addr"; }
  static std::string StartedAtFile() { return "started_at"; }
  static std::string DeviceFile() { return "device"; }
  static std::string DataDir() { return "data"; }
  static std::string TrainPrefix() { return "data/train"; }
  static std::string HeldoutPrefix() { return "data/heldout"; }
  static std::string CacheFile(int segment, int stage);
  static std::string TransferFile(int layer);
  static std::string AlignFile(int layer, int segment, std::int64_t step);
  static std::string GangFile(const std::string& step_name, std::int64_t step);
  // One model-parallel rank's shard of a gang checkpoint (GangFile when tp = pp = 1):
  // checkpoints/<step>/step-000012-tp1of2-pp0of2.safetensors.
  static std::string GangShardFile(const std::string& step_name, std::int64_t step, int tp, int tp_rank, int pp,
                                   int pp_rank);
  static std::string OutputModelDir() { return "output/model"; }
  static std::string EvalFile() { return "output/eval.json"; }
  static std::string SummaryFile() { return "output/summary.txt"; }
  static std::string ProfileFile() { return "output/profile.json"; }  // worker/run_profile.h
};

// OK when RUN/ has no plan yet, or its format is kRunFormatVersion. InvalidArgument naming
// both versions otherwise (a plan.json without RUN/format is format 1); Corruption when RUN/format
// exists but does not read "radlads-run <N>".
Status CheckRunFormat(const std::string& run_dir);
// Writes RUN/format atomically (idempotent).
Status WriteRunFormat(const std::string& run_dir);

}  // namespace radlads
