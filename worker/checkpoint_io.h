// Training checkpoints: a set of parameters with their AdamW moments and the optimizer state,
// in one safetensors file written atomically, and its file record (path relative to RUN/,
// bytes, XXH3 checksum) for the state store's commit (docs/design.md §6).
//
// Tensor names: "<param>" (value), "<param>::adam_m", "<param>::adam_v" (present once the
// optimizer has stepped). __metadata__: "radlads_checkpoint" = the format version
// (kCheckpointFormatVersion), "optimizer_step", "tokens", "sample_cursor", plus caller entries.
// Loading verifies the recorded checksum (when given), refuses another format version naming
// both, and checks that every parameter of the target set is present with its shape.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

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
Result<TrainingState> LoadTrainingCheckpoint(const std::string& run_dir, const FileRecord& file,
                                             ParamSet& params, bool require_all);

// The record of an existing file under RUN/ (size and checksum).
Result<FileRecord> RecordFile(const std::string& run_dir, const std::string& rel_path);

}  // namespace radlads
