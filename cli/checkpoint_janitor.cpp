#include "cli/checkpoint_janitor.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
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

// Chain -> the index of its last task (plan order): its final commit is the step's result.
std::map<std::string, int> LastTaskOfEachChain(const RunState& state) {
  std::map<std::string, int> last;
  for (const TaskRecord& t : state.tasks()) {
    if (Trained(t.spec.type)) last[ChainOf(t.spec)] = t.index;
  }
  return last;
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
  std::map<std::string, int> last_task = LastTaskOfEachChain(state);
  for (const TaskRecord& t : state.tasks()) {
    if (!Trained(t.spec.type)) continue;
    const std::string chain = ChainOf(t.spec);
    const auto& list = state.Checkpoints(t.index);
    for (std::size_t k = 0; k < list.size(); ++k) {
      // A discarded commit neither counts nor is deleted here: its task is redoing that interval
      // and may be writing the same file name again (the completion sweep removes what is left).
      if (!state.IsDiscarded(t.index, k)) chains[chain].push_back(Commit{&list[k], t.index});
    }
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

namespace {

bool IsTempName(const std::string& name) { return name.find(".tmp.") != std::string::npos; }

}  // namespace

Result<CheckpointListing> ListCheckpoints(const RunState& state, const std::string& run_dir) {
  CheckpointListing out;
  std::set<std::string> named;  // by valid commits
  std::map<std::string, int> last_task = LastTaskOfEachChain(state);
  for (const TaskRecord& t : state.tasks()) {
    if (!Trained(t.spec.type)) continue;
    const auto& list = state.Checkpoints(t.index);
    const std::int64_t resume = t.state == TaskState::kDone ? -1 : state.LastValidPosition(t.index);
    for (std::size_t k = 0; k < list.size(); ++k) {
      const CommittedCheckpoint& c = list[k];
      CheckpointListing::Commit row;
      row.task = t.spec.id;
      row.step = c.record.step;
      row.tokens = c.record.tokens_consumed;
      const bool discarded = state.IsDiscarded(t.index, k);
      row.role = discarded ? "discarded"
                 : static_cast<std::int64_t>(k) == resume ? "resume"
                 : c.final && last_task[ChainOf(t.spec)] == t.index ? "result"
                                                                    : "older";
      for (const FileRecord& f : c.record.files) {
        row.files.push_back(f.path);
        row.present.push_back(PathExists(JoinPath(run_dir, f.path)));
        if (!discarded) named.insert(f.path);
      }
      out.commits.push_back(std::move(row));
    }
  }
  // Files no valid commit names under checkpoints/, and temporary files anywhere but the state
  // store (RocksDB's own).
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(run_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = std::filesystem::relative(it->path(), run_dir, ec).generic_string();
    if (rel == "state") {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const bool temp = IsTempName(it->path().filename().string());
    if (temp || (rel.rfind("checkpoints/", 0) == 0 && named.count(rel) == 0)) out.unreferenced.push_back(rel);
  }
  if (ec) return Status::IOError(run_dir + ": listing files: " + ec.message());
  std::sort(out.unreferenced.begin(), out.unreferenced.end());
  return out;
}

Result<PruneResult> SweepUnreferenced(const RunState& state, const std::string& run_dir) {
  if (state.phase() != RunPhase::kCompleted) {
    return Status::FailedPrecondition("sweeping " + run_dir + ": the run is " +
                                      std::string(RunPhaseName(state.phase())) + ", not completed");
  }
  RADLADS_ASSIGN_OR_RETURN(const CheckpointListing l, ListCheckpoints(state, run_dir));
  PruneResult r;
  for (const std::string& rel : l.unreferenced) {
    const std::string path = JoinPath(run_dir, rel);
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    RADLADS_RETURN_IF_ERROR(RemoveFile(path));
    ++r.files;
    r.bytes += ec ? 0 : static_cast<std::int64_t>(bytes);
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
  const RunState state = store_->Snapshot();
  if (state.phase() != RunPhase::kCompleted) return;
  Result<PruneResult> swept = SweepUnreferenced(state, run_dir_);
  if (!swept.ok()) {
    log::Warn("checkpoints: removing unreferenced files failed (`radlads-coord checkpoints " + run_dir_ +
              "` lists them): " + swept.status().ToString());
  } else if (swept->files > 0) {
    log::Info("checkpoints: removed " + std::to_string(swept->files) + " files no commit names (" +
              std::to_string(swept->bytes) + " bytes: writes cut short or never committed)");
  }
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
