// How long a drain takes, from the plan: the time between Slurm's warning signal and the
// coordinator's exit. A worker finishes the optimizer step it is in, writes its checkpoint and
// releases its lease; `radlads-coord submit` sets the job's --signal lead from this.
//
//   step_seconds      the longest optimizer step of any enabled step (the cost model's
//                     StepEstimate::optimizer_step_seconds; step 1's is its whole-step figure
//                     per optimizer step, an upper bound for one align task)
//   checkpoint_bytes  the most one node writes at once: its workers' checkpoints together
//                     (fp32 weights + two Adam moments = 12 bytes per trained parameter: a gang
//                     rank holds the student / (tp * pp), an align task one mixer)
//   write_seconds     checkpoint_bytes at the plan's storage bandwidth per node
//                     (--storage-gbps), else at kAssumedWriteGbps
//   seconds           step_seconds + write_seconds
// SignalLeadSeconds: max(floor, ceil(2 * seconds) + kDrainMarginSeconds): twice the estimate
// (the cost model's utilisation is a guess) plus a fixed margin for the coordinator's own exit
// and Slurm's signal resolution (it may send the warning up to a minute late or early).
// Pure functions of the plan.
#pragma once

#include <cstdint>
#include <string>

#include "plan/plan.h"

namespace radlads {

inline constexpr double kAssumedWriteGbps = 0.5;  // GB/s per node when the plan does not say
inline constexpr std::int64_t kDrainMarginSeconds = 60;

struct DrainEstimate {
  double step_seconds = 0.0;
  double checkpoint_bytes = 0.0;
  double write_gbps = 0.0;
  double write_seconds = 0.0;
  double seconds = 0.0;
  // "optimizer step <= 2.1 s + checkpoint 1.2 GB per node at 0.5 GB/s 2.4 s = 4.5 s"
  std::string Describe() const;
};

DrainEstimate EstimateDrain(const Plan& plan);
std::int64_t SignalLeadSeconds(const DrainEstimate& drain, std::int64_t floor_seconds);

}  // namespace radlads
