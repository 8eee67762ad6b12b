#include "plan/disk_estimate.h"

#include <algorithm>
#include <map>

namespace radlads {

DiskEstimate EstimateDisk(const Plan& plan) {
  constexpr std::int64_t kValue = 4;      // fp32
  constexpr std::int64_t kTrained = 12;   // fp32 value + Adam m and v
  DiskEstimate d;
  d.keep_last = std::max<std::int64_t>(1, plan.cluster.checkpoint.keep_last);
  const std::map<TaskType, int> counts = plan.TaskCounts();
  auto count = [&](TaskType t) {
    auto it = counts.find(t);
    return it == counts.end() ? 0 : static_cast<std::int64_t>(it->second);
  };
  const std::int64_t mixer = plan.sizes.mixer;
  const std::int64_t student = plan.sizes.StudentTotal();
  d.transfer_bytes = count(TaskType::kTransfer) * mixer * kValue;
  const std::int64_t align_layers = count(TaskType::kAlign) > 0 ? count(TaskType::kTransfer) : 0;
  d.align_bytes = align_layers * d.keep_last * mixer * kTrained;
  d.distill_bytes = count(TaskType::kDistill) * d.keep_last * student * kTrained;
  d.finetune_bytes = count(TaskType::kFinetune) * d.keep_last * student * kTrained;
  d.checkpoint_bytes = d.transfer_bytes + d.align_bytes + d.distill_bytes + d.finetune_bytes;
  const bool gang = count(TaskType::kDistill) + count(TaskType::kFinetune) > 0;
  const std::int64_t workers = std::max<std::int64_t>(1, plan.cluster.WorkerCount());
  const std::int64_t largest_commit =
      std::max(gang ? student * kTrained : 0, align_layers > 0 ? std::min(workers, align_layers) * mixer * kTrained : 0);
  d.checkpoint_peak_bytes = d.checkpoint_bytes + largest_commit;
  const CachePlan& k = plan.cache;
  const std::int64_t window_bytes = k.window * k.max_segment_steps * k.step_bytes;
  d.cache_bytes = k.kept ? k.total_bytes : std::min(k.total_bytes, window_bytes);
  d.export_bytes = student * kValue;
  d.total_peak_bytes = d.checkpoint_peak_bytes + d.cache_bytes + d.export_bytes;
  return d;
}

}  // namespace radlads
