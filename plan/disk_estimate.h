// How much of RUN/ a run fills, from the plan (docs/planner.md "Disk"): the checkpoints the
// coordinator keeps (cli/checkpoint_janitor.h: per chain the last `checkpoint.keep_last`
// commits, the newest being the step's result), the step-1 cache within its window, and the
// exported model.
//
//   transfer     one file per layer: the initial mixer, fp32 values only (4 bytes/parameter)
//   align        per layer, keep_last commits of one mixer: fp32 values + Adam m and v (12)
//   distill,     keep_last commits of the whole student (its shards add up to it), 12 bytes
//   finetune     per parameter, when the step is enabled
//   cache        the whole step-1 cache when kept, else W segments of the largest size
//   export       the student in fp32
// checkpoint_bytes is what stays once the run has completed; checkpoint_peak_bytes adds the
// largest commit that can be written before the janitor deletes the one it replaces (a gang's
// whole-student commit, or one mixer per worker in step 1). Safetensors headers (a few KiB per
// file) are not counted. Pure functions of the plan.
#pragma once

#include <cstdint>

#include "plan/plan.h"

namespace radlads {

struct DiskEstimate {
  std::int64_t keep_last = 0;
  std::int64_t transfer_bytes = 0;
  std::int64_t align_bytes = 0;
  std::int64_t distill_bytes = 0;
  std::int64_t finetune_bytes = 0;
  std::int64_t checkpoint_bytes = 0;       // the sum of the four above
  std::int64_t checkpoint_peak_bytes = 0;  // + the largest commit written before a deletion
  std::int64_t cache_bytes = 0;
  std::int64_t export_bytes = 0;
  std::int64_t total_peak_bytes = 0;       // checkpoint peak + cache + export
};

DiskEstimate EstimateDisk(const Plan& plan);

}  // namespace radlads
