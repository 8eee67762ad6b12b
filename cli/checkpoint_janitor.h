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
// CheckpointJanitor runs PruneCheckpoints on the durable state every `period_ms` on a thread of
// its own (and once more when it stops). Thread-safety: the store's Snapshot is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"
#include "state/run_state.h"
#include "state/state_store.h"

namespace radlads {

struct PruneResult {
  std::int64_t files = 0;  // deleted now
  std::int64_t bytes = 0;  // their sizes as committed
};

Result<PruneResult> PruneCheckpoints(const RunState& state, const std::string& run_dir, int keep_last);

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
