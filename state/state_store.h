// The durable state of a run in RUN/state/ (RocksDB): an append-only event log plus the
// materialised tables the events produce (docs/formats/state.md has the key schema).
//
// Durability contract (docs/design.md §4, §6):
// - Every transition is ONE synced WriteBatch holding its events (e/<seq>) and every table row
//   they change (r/run, r/ledger, p/, t/, l/, w/, c/, s/). RocksDB applies a batch atomically and
//   the WAL is fsynced before Write returns, so a crash at any instant leaves the store at the
//   end of some transition: never half of one, never tables that disagree with the log.
// - A transition is acknowledged (Transact returns, or its `done` callback runs) only after its
//   batch is durable. With group commit (the default) a committer thread writes every
//   transition queued while the previous write was in flight as one synced WriteBatch, in the
//   order the transitions were applied; the merged batch is still all-or-nothing, and a
//   transition's rows and events never straddle two batches.
// - Reads (Read, Snapshot) see the in-memory state, which may include transitions whose write is
//   still in flight (early lock release). Every Transact, even one that appends nothing, waits
//   until everything it could have observed is durable before returning, so no caller acts on
//   a decision that a crash could undo.
// - A failed write (disk full, I/O error) poisons the store: the in-memory state is ahead of the
//   disk, so every later call returns that IOError and the coordinator must restart (Open
//   recovers the last durable state). RocksDB itself refuses writes after such an error.
//
// Open: creates RUN/state/ if missing; loads the tables (the fast path: the event log is not
// read, only its first and last keys are checked against r/run) and checks their
// cross-references (RunState::CheckInvariants). By default (Verify::kReplay) it also replays the
// whole event log into a fresh RunState and requires the two to be identical; Verify::kTables
// skips that replay (for very long logs: it costs about 1 s per ~500k events).
//
// Read-only access without a server (`radlads-coord status`): ReadSnapshot() opens the DB as a
// RocksDB *secondary instance* (DB::OpenAsSecondary, with its own scratch directory for the
// info log under $TMPDIR), catches up with the primary and loads the tables from one iterator.
// This works while another process holds RUN/state open read-write, and while none does. The
// plain OpenForReadOnly is NOT used: RocksDB 7.8 documents its behaviour as undefined while a
// primary is writing (db.h). A secondary instance never writes into RUN/state/.
//
// Thread-safety: all methods are thread-safe. Transact holds the state mutex while `fn` runs;
// `fn` must not call back into the store.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/status.h"
#include "state/events.h"
#include "state/run_state.h"
#include "state/state_rows.h"

namespace rocksdb {
class DB;
}

namespace radlads {


struct StateStoreOptions {
  enum class Verify { kTables, kReplay };
  Verify verify = Verify::kReplay;  // what Open checks after loading the tables
  bool sync = true;          // WriteOptions::sync. false only for benchmarks: NOT durable.
  bool group_commit = true;  // committer thread batching concurrent transitions
  std::size_t max_pending = 1 << 16;  // queued transitions before Transact blocks (backpressure)
};

class StateStore {
 public:
  // Handed to Transact's function: appends events, each applied to the state at once so the
  // function sees its effects (e.g. which dependents became ready after a TaskCompleted).
  class Txn {
   public:
    const RunState& state() const { return *state_; }
    // Applies the event (seq assigned here) and stages it for the batch. A non-OK result means
    // the event does not fit the state: a bug in the caller (Internal); nothing was applied.
    Status Append(TimeMs at_ms, EventBody body);
    std::size_t appended() const { return events_.size(); }

   private:
    friend class StateStore;
    explicit Txn(RunState* s) : state_(s) {}
    RunState* state_;
    RowChanges changes_;
    std::vector<std::pair<std::string, std::string>> events_;  // key, value
    Status error_;
  };

  using DoneFn = std::function<void(const Status& durable)>;

  // Opens (creating if missing) the store in `dir` (RUN/state). Unavailable if another process
  // holds it read-write; Corruption (naming the key) if a value does not decode or the tables
  // and log disagree.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& dir,
                                                  const StateStoreOptions& options = {});

  // Loads the state read-only (secondary instance, see above); replays the log too when
  // `verify_replay`. NotFound if `dir` holds no store.
  static Result<RunState> ReadSnapshot(const std::string& dir, bool verify_replay = false);

  ~StateStore();  // waits for queued transitions to become durable, then closes
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Runs fn(Txn&) under the state mutex, makes its events durable, and returns fn's result (a
  // Status or Result<T>) — or the write's error. See the durability contract above.
  template <typename F>
  auto Transact(F&& fn) -> std::invoke_result_t<F, Txn&> {
    std::optional<std::invoke_result_t<F, Txn&>> result;
    std::uint64_t ticket = 0;
    Status begin = BeginAndRun([&](Txn& tx) { result.emplace(fn(tx)); }, &ticket, nullptr);
    if (!begin.ok()) return begin;
    Status durable = WaitDurable(ticket);
    if (!durable.ok()) return durable;
    return std::move(*result);
  }

  // Asynchronous form for an event-loop server: fn runs now, under the mutex, on the calling
  // thread; `done(result)` runs once the transition is durable (on the committer thread, or
  // inline when nothing is pending). Keep `done` short: post to your loop.
  template <typename F, typename Done>
  void TransactAsync(F&& fn, Done&& done) {
    using R = std::invoke_result_t<F, Txn&>;
    auto result = std::make_shared<std::optional<R>>();
    std::uint64_t ticket = 0;
    Status begin = BeginAndRun([&](Txn& tx) { result->emplace(fn(tx)); }, &ticket,
                               [result, done = std::forward<Done>(done)](const Status& s) mutable {
                                 if (!s.ok()) {
                                   done(R(s));
                                 } else {
                                   done(std::move(**result));
                                 }
                               });
    (void)begin;  // on a begin error the callback has already run with it
  }

  // Calls fn(const RunState&) under the state mutex.
  template <typename F>
  auto Read(F&& fn) const -> std::invoke_result_t<F, const RunState&> {
    std::lock_guard<std::mutex> lock(mu_);
    return fn(state_);
  }
  RunState Snapshot() const {
    return Read([](const RunState& s) { return s; });
  }

  // Rebuilds a state from the event log alone (from the DB as it is on disk now).
  Result<RunState> ReplayLog() const;
  // Events with seq in [first, first + limit), decoded.
  Result<std::vector<Event>> ReadEvents(std::uint64_t first, std::size_t limit) const;

  // OK, or the write error that poisoned the store.
  Status health() const;
  const std::string& dir() const { return dir_; }
  // Transitions (Transact calls that appended events) made durable, and synced writes issued.
  std::uint64_t transitions_durable() const;
  std::uint64_t writes_issued() const;

 private:
  struct Pending {
    std::uint64_t ticket = 0;
    std::vector<std::pair<std::string, std::optional<std::string>>> ops;  // nullopt: delete
  };

  StateStore(std::string dir, rocksdb::DB* db, const StateStoreOptions& options);
  // Locks, runs `run`, encodes and queues (or writes) the batch. On error (poisoned store, a
  // bad event) `done` (if any) is called with it and the error returned.
  Status BeginAndRun(const std::function<void(Txn&)>& run, std::uint64_t* ticket, DoneFn done);
  Status WaitDurable(std::uint64_t ticket);
  void EncodeRows(const RowChanges& c, std::vector<std::pair<std::string, std::optional<std::string>>>* ops) const;
  Status WriteOps(const std::vector<const Pending*>& items);
  void CommitterLoop();

  std::string dir_;
  rocksdb::DB* db_;
  StateStoreOptions options_;

  mutable std::mutex mu_;  // guards state_; held while a transition is applied and queued
  RunState state_;

  mutable std::mutex commit_mu_;  // guards everything below
  std::condition_variable commit_cv_;   // the committer waits for work
  std::condition_variable durable_cv_;  // waiters wait for durability / queue room
  std::deque<Pending> queue_;
  std::uint64_t enqueued_ticket_ = 0;  // last ticket handed out (under mu_ and commit_mu_)
  std::uint64_t durable_ticket_ = 0;   // every ticket <= this is durable
  std::multimap<std::uint64_t, DoneFn> callbacks_;
  Status poison_;
  bool stop_ = false;
  std::uint64_t transitions_durable_ = 0;
  std::uint64_t writes_issued_ = 0;
  std::thread committer_;
};

}  // namespace radlads
