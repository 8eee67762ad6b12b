// Bounded disk for checkpoints (docs/design.md §6): the coordinator deletes the checkpoint files
// no one will read again, once newer commits are durable in the state.
//
// Rule (PruneCheckpoints): the training tasks' commits form chains: step 1's align tasks of one
// layer, segment after segment (a segment resumes from the previous one's final commit); each
// transfer, distill and finetune task on its own. In each chain the last `keep_last` commits are
// kept (the newest to resume from, the older ones to fall back to), and so is the final commit
// of the chain's last task once it is done: the step's result (step 0's layer, step 1's layer
// after the last segment, step 2's or step 3's model). Every other commit's files are deleted,
// except a file that a kept commit also names. Only files under RUN/checkpoints/ are touched:
// cache segments have their own eviction (state/scheduler.h), outputs are never deleted.
// Deleting is idempotent (a file already gone is fine), so a crash between deletions is
// repaired by the next pass; the state's checkpoint index keeps every commit.
//
// A discarded commit (checkpoint fallback) is neither counted nor deleted by the pruning: its
// task redoes that interval and may be writing the same file name again.
//
// ListCheckpoints (`radlads-coord checkpoints RUN`): every commit of the training tasks with its
// role (resume: where the unfinished task resumes; result: the final commit of a chain's last task, a
// step's result, kept for good; older; discarded)
// and whether each file is present, then the unreferenced files: under RUN/checkpoints/ the ones
// no valid commit names (written but never committed: a process killed between the write and
// the commit; discarded commits' files), and temporary files ("*.tmp.*", a write cut short)
// anywhere under RUN/ except the state store. SweepUnreferenced deletes them, only once the run
// has completed (before that, a live worker may be about to commit such a file).
//
// CheckpointJanitor runs PruneCheckpoints on the durable state every `period_ms` on a thread of
// its own (and once more when it stops; then, if the run has completed, SweepUnreferenced).
// Thread-safety: the store's Snapshot is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "state/run_state.h"
#include "state/state_store.h"

namespace radlads {

struct PruneResult {
  std::int64_t files = 0;  // deleted now
  std::int64_t bytes = 0;  // their sizes as committed
};

Result<PruneResult> PruneCheckpoints(const RunState& state, const std::string& run_dir, int keep_last);

struct CheckpointListing {
  struct Commit {
    std::string task;
    std::int64_t step = 0;
    std::int64_t tokens = 0;
    std::string role;                // "resume", "result", "older", "discarded"
    std::vector<std::string> files;  // paths relative to RUN/
    std::vector<bool> present;       // per file
  };
  std::vector<Commit> commits;           // plan order, then commit order
  std::vector<std::string> unreferenced;  // relative to RUN/, sorted
};
Result<CheckpointListing> ListCheckpoints(const RunState& state, const std::string& run_dir);
// FailedPrecondition unless the run has completed.
Result<PruneResult> SweepUnreferenced(const RunState& state, const std::string& run_dir);

class CheckpointJanitor {
 public:
  CheckpointJanitor(StateStore* store, std::string run_dir, int keep_last, std::int64_t period_ms = 1000);
  ~CheckpointJanitor();  // Stop()
  CheckpointJanitor(const CheckpointJanitor&) = delete;
  CheckpointJanitor& operator=(const CheckpointJanitor&) = delete;
  void Stop();
  std::int64_t files_deleted() const { return files_.load(); }

 private:
  void Pass();
  StateStore* store_;
  std::string run_dir_;
  int keep_last_;
  std::int64_t period_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<std::int64_t> files_{0};
  std::thread thread_;
};

}  // namespace radlads
