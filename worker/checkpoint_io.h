// Training checkpoints: a set of parameters with their AdamW moments and the optimizer state,
// in one safetensors file written atomically, and its file record (path relative to RUN/,
// bytes, XXH3 checksum) for the state store's commit (docs/design.md §6).
//
// Tensor names: "<param>" (value), "<param>::adam_m", "<param>::adam_v" (present once the
// optimizer has stepped). __metadata__: "radlads_checkpoint" = the format version
// (kCheckpointFormatVersion), "optimizer_step", "tokens", "sample_cursor", plus caller entries.
// Loading verifies the recorded checksum (when given), refuses another format version naming
// both, and checks that every parameter of the target set is present with its shape.
//
// Sharded checkpoints (a gang's step 2-3 state, docs/design.md §5): every model-parallel rank
// writes the parameters it holds, in their local shapes, with the metadata "shard_tp",
// "shard_tp_rank", "shard_pp", "shard_pp_rank" (ShardMetadata); the commit lists every shard.
// LoadCheckpointShards reads such a set into any other layout: each parameter is assembled
// whole from the shards that hold it (the tp blocks joined in rank order) and sliced for the
// target's tp rank, one parameter at a time. Every file's checksum is verified and the shards
// must agree on the training state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "contract/records.h"
#include "pipeline/param_set.h"

namespace radlads {

inline constexpr int kCheckpointFormatVersion = 1;

struct TrainingState {
  std::int64_t optimizer_step = 0;  // optimizer steps taken so far in this protocol step
  std::int64_t tokens = 0;          // tokens consumed so far by the task
  std::int64_t sample_cursor = 0;   // next global sample index
  std::map<std::string, std::string> extra;
};

// Writes the parameters selected by `filter` (all when empty) of `params` to RUN/<rel_path>.
Result<FileRecord> SaveTrainingCheckpoint(const std::string& run_dir, const std::string& rel_path,
                                          const ParamSet& params, const TrainingState& state,
                                          const std::function<bool(const std::string&)>& filter = {});

// Reads RUN/<file.path> into every parameter of `params` that the file holds (values and, when
// present, moments); fails when `require_all` and a parameter is missing. Returns the state.
// (LoadCheckpointShards of one whole-model file.)
Result<TrainingState> LoadTrainingCheckpoint(const std::string& run_dir, const FileRecord& file,
                                             ParamSet& params, bool require_all);

// The metadata of a shard of model-parallel rank (tp_rank of tp, pp_rank of pp).
std::map<std::string, std::string> ShardMetadata(int tp, int tp_rank, int pp, int pp_rank);

// Reads the checkpoint `files` (one whole-model file or the shards of any layout) into
// `params`, whose parameters have local shapes for rank `tp_rank` of `tp`; `full_shapes` gives
// each parameter's whole shape (a parameter not in it is taken as whole). Every parameter of
// `params` must be found (else Corruption naming it) unless !require_all (the parameters the
// files do not hold are left as they are); moments are loaded where present.
Result<TrainingState> LoadCheckpointShards(const std::string& run_dir, const std::vector<FileRecord>& files,
                                           ParamSet& params, int tp, int tp_rank,
                                           const std::map<std::string, Shape, std::less<>>& full_shapes,
                                           bool require_all = true);

// The record of an existing file under RUN/ (size and checksum).
Result<FileRecord> RecordFile(const std::string& run_dir, const std::string& rel_path);

// Checks RUN/<file.path> against its committed size and checksum: Corruption naming the file and
// both values when they differ, NotFound when it is gone, IOError when it cannot be read.
Status VerifyCheckpointFile(const std::string& run_dir, const FileRecord& file);

}  // namespace radlads
