#include "cli/checkpoint_janitor.h"

#include <chrono>
#include <map>
#include <set>
#include <vector>

#include "base/file.h"
#include "base/log.h"

namespace radlads {
namespace {

bool Trained(TaskType t) {
  return t == TaskType::kTransfer || t == TaskType::kAlign || t == TaskType::kDistill || t == TaskType::kFinetune;
}

std::string ChainOf(const TaskSpec& t) {
  return t.type == TaskType::kAlign ? "align/L" + std::to_string(t.layer) : t.id;
}

}  // namespace

Result<PruneResult> PruneCheckpoints(const RunState& state, const std::string& run_dir, int keep_last) {
  if (keep_last < 1) return Status::InvalidArgument("keep_last must be >= 1");
  struct Commit {
    const CommittedCheckpoint* c;
    int task;
  };
  // Chains in plan order; within a chain, tasks in plan order (align: segment order) and each
  // task's commits in commit order.
  std::map<std::string, std::vector<Commit>> chains;
  std::map<std::string, int> last_task;  // chain -> its last task's index
  for (const TaskRecord& t : state.tasks()) {
    if (!Trained(t.spec.type)) continue;
    const std::string chain = ChainOf(t.spec);
    last_task[chain] = t.index;
    for (const CommittedCheckpoint& c : state.Checkpoints(t.index)) chains[chain].push_back(Commit{&c, t.index});
  }
  std::set<std::string> kept_files;
  std::vector<const CommittedCheckpoint*> pruned;
  for (const auto& [chain, commits] : chains) {
    const int last = last_task[chain];
    for (std::size_t k = 0; k < commits.size(); ++k) {
      const bool recent = k + static_cast<std::size_t>(keep_last) >= commits.size();
      const bool result = commits[k].task == last && commits[k].c->final;
      if (recent || result) {
        for (const FileRecord& f : commits[k].c->record.files) kept_files.insert(f.path);
      } else {
        pruned.push_back(commits[k].c);
      }
    }
  }
  PruneResult r;
  for (const CommittedCheckpoint* c : pruned) {
    for (const FileRecord& f : c->record.files) {
      if (kept_files.count(f.path) != 0 || f.path.rfind("checkpoints/", 0) != 0) continue;
      const std::string path = JoinPath(run_dir, f.path);
      if (!PathExists(path)) continue;
      RADLADS_RETURN_IF_ERROR(RemoveFile(path));
      ++r.files;
      r.bytes += f.bytes;
    }
  }
  return r;
}

CheckpointJanitor::CheckpointJanitor(StateStore* store, std::string run_dir, int keep_last, std::int64_t period_ms)
    : store_(store), run_dir_(std::move(run_dir)), keep_last_(keep_last), period_ms_(period_ms) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(period_ms_));
      lock.unlock();
      Pass();
      lock.lock();
    }
  });
}

CheckpointJanitor::~CheckpointJanitor() { Stop(); }

void CheckpointJanitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  Pass();  // what the last commits made deletable
}

void CheckpointJanitor::Pass() {
  Result<PruneResult> r = PruneCheckpoints(store_->Snapshot(), run_dir_, keep_last_);
  if (!r.ok()) {
    log::Warn("checkpoints: pruning old checkpoints failed (it is tried again): " + r.status().ToString());
    return;
  }
  if (r->files > 0) {
    files_ += r->files;
    log::Debug("checkpoints: deleted " + std::to_string(r->files) + " old checkpoint files (" +
               std::to_string(r->bytes) + " bytes); keeping the last " + std::to_string(keep_last_) + " per chain");
  }
}

}  // namespace radlads
