#include "plan/drain_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace radlads {

DrainEstimate EstimateDrain(const Plan& plan) {
  DrainEstimate d;
  for (const StepEstimate& e : plan.estimate.steps) d.step_seconds = std::max(d.step_seconds, e.optimizer_step_seconds);
  const double per_param = 12.0;  // fp32 weights + Adam m and v
  const double shards = static_cast<double>(std::max<std::int64_t>(1, plan.layout.tp * plan.layout.pp));
  const double gang_rank = static_cast<double>(plan.sizes.StudentTotal()) / shards * per_param;
  const double align_task = static_cast<double>(plan.sizes.mixer) * per_param;
  bool gang = false;
  for (const StepPlan& s : plan.steps) gang = gang || s.kind != RecipeStepKind::kAlign;
  const double per_worker = std::max(gang ? gang_rank : 0.0, align_task);
  d.checkpoint_bytes = per_worker * static_cast<double>(std::max<std::int64_t>(1, plan.cluster.WorkersPerNode()));
  d.write_gbps = plan.cost.storage_gbps_per_node > 0.0 ? plan.cost.storage_gbps_per_node : kAssumedWriteGbps;
  d.write_seconds = d.checkpoint_bytes / (d.write_gbps * 1e9);
  d.seconds = d.step_seconds + d.write_seconds;
  return d;
}

std::int64_t SignalLeadSeconds(const DrainEstimate& drain, std::int64_t floor_seconds) {
  const auto derived = static_cast<std::int64_t>(std::ceil(2.0 * drain.seconds)) + kDrainMarginSeconds;
  return std::max(floor_seconds, derived);
}

std::string DrainEstimate::Describe() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "optimizer step <= %.1f s + checkpoint %.3g GB per node at %.3g GB/s %.1f s = %.1f s",
                step_seconds, checkpoint_bytes / 1e9, write_gbps, write_seconds, seconds);
  return buf;
}

}  // namespace radlads
