#include "state/state_store.h"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <unordered_map>

#include "base/file.h"

namespace radlads {


namespace {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  const std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return Status::Unavailable(msg + " (another process holds the state open read-write: is a "
                                     "coordinator running?)");
  }
  if (s.IsIOError()) return Status::IOError(msg);
  return Status::Internal(msg);
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Parses a 16-hex-digit suffix.
bool ParseHex16(std::string_view s, std::uint64_t* out) {
  if (s.size() != 16) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<std::uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint64_t>(c - 'a' + 10);
    else return false;
  }
  *out = v;
  return true;
}

// The whole store read through one iterator (one consistent view).
struct LoadedTables {
  bool has_meta = false;
  bool has_run = false;
  std::uint64_t first_event = 0, last_event = 0;
};

}  // namespace

// Loader with access to RunState's internals (friend). Lives here so the row formats stay in
// one file.
class StateStoreLoader {
 public:
  static Status Load(rocksdb::Iterator* it, RunState* out, LoadedTables* info);
  static Status Replay(rocksdb::Iterator* it, RunState* out);
};

}  // namespace radlads

// RunState befriends StateStore; the loader borrows that friendship through a tiny shim.
namespace radlads {

class StateStoreAccess {
 public:
  static RunConfig& config(RunState& s) { return s.config_; }
  static RunStatus& status(RunState& s) { return s.status_; }
  static std::uint64_t& last_seq(RunState& s) { return s.last_seq_; }
  static LeaseId& next_lease(RunState& s) { return s.next_lease_id_; }
  static std::vector<TaskRecord>& tasks(RunState& s) { return s.tasks_; }
  static std::map<LeaseId, LeaseRecord>& leases(RunState& s) { return s.leases_; }
  static std::map<std::string, WorkerRecord, std::less<>>& workers(RunState& s) {
    return s.workers_;
  }
  static std::vector<std::vector<CommittedCheckpoint>>& ckpts(RunState& s) { return s.ckpts_; }
  static std::map<std::pair<int, int>, SegmentRecord>& segments(RunState& s) {
    return s.segments_;
  }
  static TokenLedger& ledger(RunState& s) { return s.ledger_; }
  static RunMetrics& metrics(RunState& s) { return s.metrics_; }
  static Status Rebuild(RunState& s) { return s.RebuildIndexes(); }
};

}  // namespace radlads

namespace radlads {

Status StateStoreLoader::Load(rocksdb::Iterator* it, RunState* out, LoadedTables* info) {
  using A = StateStoreAccess;
  RunState s;
  std::map<int, TaskRecord> plan;                // by index
  std::map<std::string, TaskRecord> dyn;         // task rows by id
  std::map<std::string, std::vector<std::pair<std::uint64_t, CommittedCheckpoint>>> ckpts;
  // Keys sort as c/ e/ l/ m/ p/ r/ s/ t/ w/. The event log is not read here (that is what makes
  // this the fast path): only its first and last keys, which must be 1 and r/run's last_seq.
  bool events_seen = false;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (StartsWith(std::string_view(it->key().data(), it->key().size()),
                   state_keys::kEventPrefix)) {
      events_seen = true;
      for (std::uint64_t* out : {&info->first_event, &info->last_event}) {
        if (out == &info->last_event) {
          it->SeekForPrev(std::string(state_keys::kEventPrefix) + "ffffffffffffffff");
          if (!it->Valid()) return Status::Corruption("e/: the event log vanished while reading");
        }
        const std::string_view k(it->key().data(), it->key().size());
        if (!StartsWith(k, state_keys::kEventPrefix) || !ParseHex16(k.substr(2), out) ||
            *out == 0) {
          return Status::Corruption(std::string(k) + ": malformed event key");
        }
      }
      RADLADS_RETURN_IF_ERROR(FromRocks(it->status(), "seeking the event log"));
      it->Seek("e0");  // the first key after every "e/..." key
      if (!it->Valid()) break;
    }
    const std::string_view key(it->key().data(), it->key().size());
    const std::string_view value(it->value().data(), it->value().size());
    if (StartsWith(key, state_keys::kEventPrefix)) {
      return Status::Corruption(std::string(key) + ": event keys out of order");
    }
    if (key == state_keys::kFormat) {
      RADLADS_RETURN_IF_ERROR(DecodeMetaRow(value, key));
      info->has_meta = true;
    } else if (key == state_keys::kRun) {
      RunRow row;
      RADLADS_RETURN_IF_ERROR(DecodeRunRow(value, key, &row));
      A::config(s) = std::move(row.config);
      A::status(s) = std::move(row.status);
      A::last_seq(s) = row.last_seq;
      A::next_lease(s) = row.next_lease;
      A::metrics(s) = row.metrics;
      info->has_run = true;
    } else if (key == state_keys::kLedger) {
      RADLADS_RETURN_IF_ERROR(DecodeLedgerRow(value, key, &A::ledger(s)));
    } else if (StartsWith(key, "p/")) {
      TaskRecord t;
      RADLADS_RETURN_IF_ERROR(DecodePlanRow(value, key, &t));
      if (t.spec.id != key.substr(2)) {
        return Status::Corruption(std::string(key) + ": plan row names task '" + t.spec.id + "'");
      }
      if (t.index < 0 || !plan.emplace(t.index, std::move(t)).second) {
        return Status::Corruption(std::string(key) + ": bad or duplicate plan index");
      }
    } else if (StartsWith(key, "t/")) {
      TaskRecord t;
      RADLADS_RETURN_IF_ERROR(DecodeTaskRow(value, key, &t));
      dyn.emplace(std::string(key.substr(2)), std::move(t));
    } else if (StartsWith(key, "l/")) {
      LeaseRecord l;
      RADLADS_RETURN_IF_ERROR(DecodeLeaseRow(value, key, &l));
      if (key != state_keys::Lease(l.id)) {
        return Status::Corruption(std::string(key) + ": lease row names lease " +
                                  std::to_string(l.id));
      }
      A::leases(s)[l.id] = std::move(l);
    } else if (StartsWith(key, "w/")) {
      WorkerRecord w;
      RADLADS_RETURN_IF_ERROR(DecodeWorkerRow(value, key, &w));
      if (w.info.id != key.substr(2)) {
        return Status::Corruption(std::string(key) + ": worker row names '" + w.info.id + "'");
      }
      A::workers(s)[w.info.id] = std::move(w);
    } else if (StartsWith(key, "c/")) {
      const std::size_t hash = key.rfind('#');
      std::uint64_t ordinal = 0;
      if (hash == std::string_view::npos || !ParseHex16(key.substr(hash + 1), &ordinal)) {
        return Status::Corruption(std::string(key) + ": malformed checkpoint key");
      }
      CommittedCheckpoint c;
      RADLADS_RETURN_IF_ERROR(DecodeCheckpointRow(value, key, &c));
      if (c.task != key.substr(2, hash - 2)) {
        return Status::Corruption(std::string(key) + ": checkpoint row names task '" + c.task +
                                  "'");
      }
      std::string task = c.task;
      ckpts[task].emplace_back(ordinal, std::move(c));
    } else if (StartsWith(key, "s/")) {
      SegmentRecord seg;
      RADLADS_RETURN_IF_ERROR(DecodeSegmentRow(value, key, &seg));
      if (key != state_keys::Segment(seg.stage, seg.segment)) {
        return Status::Corruption(std::string(key) + ": segment row names another segment");
      }
      A::segments(s)[{seg.stage, seg.segment}] = std::move(seg);
    } else {
      return Status::Corruption(std::string(key) + ": unknown key prefix");
    }
  }
  RADLADS_RETURN_IF_ERROR(FromRocks(it->status(), "iterating the state"));

  if (!info->has_run) {
    if (info->has_meta || events_seen || !plan.empty() || !dyn.empty()) {
      return Status::Corruption(std::string(state_keys::kRun) +
                                ": missing, but the store holds other rows");
    }
    *out = RunState();  // a fresh, empty store
    return Status::Ok();
  }
  if (!info->has_meta) {
    return Status::Corruption(std::string(state_keys::kFormat) + ": missing");
  }
  // The run row's last_seq must be the last event: the tables and the log come from the same
  // batches, so anything else means lost or foreign writes.
  // (A gap in the middle of the log is found by the replay check, not here.)
  if (info->last_event != A::last_seq(s) || info->first_event != 1) {
    return Status::Corruption("r/run: last_seq " + std::to_string(A::last_seq(s)) +
                              " but the event log runs from " + std::to_string(info->first_event) +
                              " to " + std::to_string(info->last_event));
  }
  auto& tasks = A::tasks(s);
  tasks.clear();
  tasks.reserve(plan.size());
  for (auto& [index, p] : plan) {
    if (index != static_cast<int>(tasks.size())) {
      return Status::Corruption("p/: plan indexes are not 0..n-1 (missing index " +
                                std::to_string(tasks.size()) + ")");
    }
    auto dit = dyn.find(p.spec.id);
    if (dit == dyn.end()) {
      return Status::Corruption(state_keys::Task(p.spec.id) + ": missing (the plan has it)");
    }
    TaskRecord t = std::move(dit->second);
    dyn.erase(dit);
    t.spec = std::move(p.spec);
    t.index = index;
    tasks.push_back(std::move(t));
  }
  if (!dyn.empty()) {
    return Status::Corruption(state_keys::Task(dyn.begin()->first) + ": not in the plan");
  }
  auto& cks = A::ckpts(s);
  cks.assign(tasks.size(), {});
  std::unordered_map<std::string_view, int> by_id;
  by_id.reserve(tasks.size());
  for (const auto& t : tasks) by_id.emplace(t.spec.id, t.index);
  for (auto& [task, list] : ckpts) {
    auto found = by_id.find(task);
    if (found == by_id.end()) {
      return Status::Corruption(state_keys::Checkpoint(task, 0) + ": unknown task");
    }
    const int index = found->second;
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (list[k].first != k) {
        return Status::Corruption(state_keys::Checkpoint(task, k) + ": missing");
      }
      cks[index].push_back(std::move(list[k].second));
    }
    if (static_cast<std::int64_t>(cks[index].size()) != tasks[index].checkpoints) {
      return Status::Corruption(state_keys::Task(task) + ": counts " +
                                std::to_string(tasks[index].checkpoints) +
                                " checkpoints, the index holds " +
                                std::to_string(cks[index].size()));
    }
  }
  RADLADS_RETURN_IF_ERROR(A::Rebuild(s).WithContext("loading the tables"));
  RADLADS_RETURN_IF_ERROR(s.CheckInvariants());
  *out = std::move(s);
  return Status::Ok();
}

// Decodes the event log from sequence `first` on (0: every entry under the prefix, malformed
// keys included), in order, handing each event and its key to
// `fn` (a Status; false from `more` stops early). Corruption names the key of a bad entry.
template <typename Fn, typename More>
Status ForEachEvent(rocksdb::Iterator* it, std::uint64_t first, More&& more, Fn&& fn) {
  const std::string prefix(state_keys::kEventPrefix);
  for (it->Seek(first == 0 ? prefix : state_keys::Event(first)); it->Valid() && more(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!StartsWith(key, prefix)) break;
    std::uint64_t seq = 0;
    if (!ParseHex16(key.substr(2), &seq)) {
      return Status::Corruption(std::string(key) + ": malformed event key");
    }
    Event e;
    RADLADS_RETURN_IF_ERROR(
        DecodeEvent(std::string_view(it->value().data(), it->value().size()), key, &e));
    e.seq = seq;
    RADLADS_RETURN_IF_ERROR(fn(std::move(e), key));
  }
  return FromRocks(it->status(), "iterating the event log");
}

Status StateStoreLoader::Replay(rocksdb::Iterator* it, RunState* out) {
  RunState s;
  RADLADS_RETURN_IF_ERROR(ForEachEvent(
      it, 0, [] { return true; },
      [&](Event e, std::string_view key) { return s.Apply(e).WithContext(std::string(key)); }));
  *out = std::move(s);
  return Status::Ok();
}

namespace {

// First differing line of two dumps, for messages.
std::string FirstDifference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  int line = 0;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    ++line;
    if (!ga && !gb) return "identical";
    if (!ga || !gb || la != lb) {
      return "line " + std::to_string(line) + ": tables say '" + (ga ? la : "<end>") +
             "', the log says '" + (gb ? lb : "<end>") + "'";
    }
  }
}

rocksdb::Options BaseOptions() {
  rocksdb::Options o;
  o.max_background_jobs = 2;
  o.keep_log_file_num = 4;
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  o.paranoid_checks = true;
  // Bounds the WAL a crash recovery replays (~15 us per transition) to a few seconds' worth.
  o.write_buffer_size = 16 << 20;
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Open / close
// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir,
                                                     const StateStoreOptions& options) {
  RADLADS_RETURN_IF_ERROR(CreateDirectories(dir));
  rocksdb::Options o = BaseOptions();
  o.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  RADLADS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(o, dir, &db), dir));
  std::unique_ptr<StateStore> store(new StateStore(dir, db, options));
  RunState loaded;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    LoadedTables info;
    RADLADS_RETURN_IF_ERROR(StateStoreLoader::Load(it.get(), &loaded, &info).WithContext(dir));
  }
  if (options.verify == StateStoreOptions::Verify::kReplay) {
    RunState replayed;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    RADLADS_RETURN_IF_ERROR(StateStoreLoader::Replay(it.get(), &replayed).WithContext(dir));
    const std::string a = loaded.CanonicalDump(), b = replayed.CanonicalDump();
    if (a != b) {
      return Status::Corruption(dir + ": the tables and the event log disagree: " +
                                FirstDifference(a, b));
    }
  }
  store->state_ = std::move(loaded);
  return store;
}

StateStore::StateStore(std::string dir, rocksdb::DB* db, const StateStoreOptions& options)
    : dir_(std::move(dir)), db_(db), options_(options) {
  if (options_.group_commit) committer_ = std::thread([this] { CommitterLoop(); });
}

StateStore::~StateStore() {
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    stop_ = true;
  }
  commit_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  // A clean close flushes the memtable so the next Open need not replay the WAL (which takes
  // about 15 us per transition). Best effort: the WAL already holds everything durably.
  if (health().ok()) db_->Flush(rocksdb::FlushOptions()).PermitUncheckedError();
  delete db_;
}

Result<RunState> StateStore::ReadSnapshot(const std::string& dir, bool verify_replay) {
  if (!PathExists(JoinPath(dir, "CURRENT"))) {
    return Status::NotFound(dir + ": no state store here (RUN/state/CURRENT is missing)");
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/radlads-state-reader-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError("cannot create a scratch directory " + tmpl);
  }
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } cleanup{tmpl};
  rocksdb::Options o = BaseOptions();
  o.create_if_missing = false;
  o.max_open_files = -1;  // required by secondary instances
  rocksdb::DB* raw = nullptr;
  RADLADS_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::OpenAsSecondary(o, dir, tmpl, &raw), dir + " (read-only)"));
  std::unique_ptr<rocksdb::DB> db(raw);
  RADLADS_RETURN_IF_ERROR(FromRocks(db->TryCatchUpWithPrimary(), dir + " (catching up)"));
  RunState loaded;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    LoadedTables info;
    RADLADS_RETURN_IF_ERROR(StateStoreLoader::Load(it.get(), &loaded, &info).WithContext(dir));
  }
  if (verify_replay) {
    RunState replayed;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    RADLADS_RETURN_IF_ERROR(StateStoreLoader::Replay(it.get(), &replayed).WithContext(dir));
    // The iterators may see different catch-up points only if TryCatchUpWithPrimary ran in
    // between; it did not, so both views are the same version.
    const std::string a = loaded.CanonicalDump(), b = replayed.CanonicalDump();
    if (a != b) {
      return Status::Corruption(dir + ": the tables and the event log disagree: " +
                                FirstDifference(a, b));
    }
  }
  return loaded;
}

Result<RunState> StateStore::ReplayLog() const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  RunState s;
  RADLADS_RETURN_IF_ERROR(StateStoreLoader::Replay(it.get(), &s).WithContext(dir_));
  return s;
}

Result<std::vector<Event>> StateStore::ReadEvents(std::uint64_t first, std::size_t limit) const {
  std::vector<Event> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  RADLADS_RETURN_IF_ERROR(ForEachEvent(
      it.get(), first, [&] { return out.size() < limit; },
      [&](Event e, std::string_view) {
        out.push_back(std::move(e));
        return Status::Ok();
      }).WithContext(dir_));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

Status StateStore::Txn::Append(TimeMs at_ms, EventBody body) {
  if (!error_.ok()) return error_;
  Event e;
  e.seq = state_->last_seq() + 1;
  e.at_ms = at_ms;
  e.body = std::move(body);
  Status st = state_->Apply(e, &changes_);
  if (!st.ok()) {
    error_ = Status::Internal("the scheduler produced an event that does not fit the state: " +
                              st.message());
    return error_;
  }
  events_.emplace_back(state_keys::Event(e.seq), EncodeEvent(e));
  return Status::Ok();
}

void StateStore::EncodeRows(
    const RowChanges& c,
    std::vector<std::pair<std::string, std::optional<std::string>>>* ops) const {
  const RunState& s = state_;
  if (c.plan) {
    ops->emplace_back(std::string(state_keys::kFormat), EncodeMetaRow());
    for (const auto& t : s.tasks()) ops->emplace_back(state_keys::Plan(t.spec.id), EncodePlanRow(t));
  }
  if (c.run) {
    ops->emplace_back(std::string(state_keys::kRun),
                      EncodeRunRow(RunRow{s.config(), s.status(), s.last_seq(),
                                          s.next_lease_id(), s.metrics()}));
  }
  if (c.ledger) ops->emplace_back(std::string(state_keys::kLedger), EncodeLedgerRow(s.ledger()));
  for (int i : c.tasks) {
    const TaskRecord& t = s.tasks()[i];
    ops->emplace_back(state_keys::Task(t.spec.id), EncodeTaskRow(t));
  }
  for (LeaseId id : c.leases) {
    const LeaseRecord* l = s.FindLease(id);
    if (l) ops->emplace_back(state_keys::Lease(id), EncodeLeaseRow(*l));
    else ops->emplace_back(state_keys::Lease(id), std::nullopt);
  }
  for (const auto& w : c.workers) {
    const WorkerRecord* wr = s.FindWorker(w);
    if (wr) ops->emplace_back(state_keys::Worker(w), EncodeWorkerRow(*wr));
  }
  for (const auto& [stage, segment] : c.segments) {
    const SegmentRecord* seg = s.FindSegment(segment, stage);
    if (seg) ops->emplace_back(state_keys::Segment(stage, segment), EncodeSegmentRow(*seg));
  }
  for (const auto& [index, pos] : c.checkpoints) {
    const auto& list = s.Checkpoints(index);
    ops->emplace_back(state_keys::Checkpoint(list[pos].task, pos), EncodeCheckpointRow(list[pos]));
  }
}

Status StateStore::BeginAndRun(const std::function<void(Txn&)>& run, std::uint64_t* ticket,
                               DoneFn done) {
  auto fail = [&](Status s) {
    if (done) done(s);
    return s;
  };
  if (options_.group_commit) {
    std::unique_lock<std::mutex> cl(commit_mu_);
    durable_cv_.wait(cl, [&] { return queue_.size() < options_.max_pending || !poison_.ok(); });
    if (!poison_.ok()) return fail(poison_);
  }
  std::unique_lock<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> cl(commit_mu_);
    if (!poison_.ok()) return fail(poison_);
  }
  Txn tx(&state_);
  run(tx);
  Pending p;
  if (!tx.events_.empty()) {
    p.ops.reserve(tx.events_.size() + 8);
    for (auto& [k, v] : tx.events_) p.ops.emplace_back(std::move(k), std::move(v));
    EncodeRows(tx.changes_, &p.ops);
  }
  if (!tx.error_.ok() && tx.events_.empty()) {
    // Nothing was applied; report the bug without writing.
    lock.unlock();
    return fail(tx.error_);
  }
  // Events applied before a failed Append are persisted anyway (the in-memory state includes
  // them); fn's own result carries the Internal error to the caller.
  std::uint64_t t = 0;
  if (!options_.group_commit) {
    // Inline mode: write under the state mutex; durable (or poisoned) when WriteOps returns.
    Status result;
    {
      std::lock_guard<std::mutex> cl(commit_mu_);
      t = p.ops.empty() ? enqueued_ticket_ : ++enqueued_ticket_;
    }
    if (!p.ops.empty()) {
      Status w = WriteOps({&p});
      std::lock_guard<std::mutex> cl(commit_mu_);
      if (!w.ok()) {
        if (poison_.ok()) poison_ = w;
      } else {
        durable_ticket_ = t;
        ++transitions_durable_;
        ++writes_issued_;
      }
      result = durable_ticket_ >= t ? Status::Ok() : poison_;
    }
    lock.unlock();
    *ticket = t;
    if (done) done(result);
    return Status::Ok();
  }
  bool call_now = false;
  Status now_status;
  {
    std::lock_guard<std::mutex> cl(commit_mu_);
    if (!p.ops.empty()) {
      t = ++enqueued_ticket_;
      p.ticket = t;
      queue_.push_back(std::move(p));
    } else {
      t = enqueued_ticket_;
    }
    if (done) {
      if (durable_ticket_ >= t) {
        call_now = true;
      } else if (!poison_.ok()) {
        call_now = true;
        now_status = poison_;
      } else {
        callbacks_.emplace(t, std::move(done));
      }
    }
  }
  lock.unlock();
  commit_cv_.notify_one();
  *ticket = t;
  if (call_now) done(now_status);
  return Status::Ok();
}

Status StateStore::WaitDurable(std::uint64_t ticket) {
  std::unique_lock<std::mutex> cl(commit_mu_);
  durable_cv_.wait(cl, [&] { return durable_ticket_ >= ticket || !poison_.ok(); });
  if (durable_ticket_ >= ticket) return Status::Ok();
  return poison_;
}

Status StateStore::WriteOps(const std::vector<const Pending*>& items) {
  rocksdb::WriteBatch batch;
  for (const Pending* p : items) {
    for (const auto& [key, value] : p->ops) {
      rocksdb::Status s = value ? batch.Put(key, *value) : batch.Delete(key);
      if (!s.ok()) return FromRocks(s, dir_ + ": building the write batch");
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) {
    return Status::IOError(dir_ + ": a synced state write failed, the coordinator must restart: " +
                           s.ToString());
  }
  return Status::Ok();
}

void StateStore::CommitterLoop() {
  std::unique_lock<std::mutex> cl(commit_mu_);
  while (true) {
    commit_cv_.wait(cl, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stop_ and drained
    std::deque<Pending> items;
    items.swap(queue_);
    const Status poisoned = poison_;
    cl.unlock();
    durable_cv_.notify_all();  // room in the queue
    Status s = poisoned;
    if (s.ok()) {
      std::vector<const Pending*> ptrs;
      ptrs.reserve(items.size());
      for (const auto& p : items) ptrs.push_back(&p);
      s = WriteOps(ptrs);
    }
    cl.lock();
    const std::uint64_t last = items.back().ticket;
    if (s.ok()) {
      durable_ticket_ = last;
      transitions_durable_ += items.size();
      ++writes_issued_;
    } else if (poison_.ok()) {
      poison_ = s;
    }
    std::vector<DoneFn> ready;
    // On poison every waiting callback fails (nothing later will ever become durable).
    auto end = poison_.ok() ? callbacks_.upper_bound(last) : callbacks_.end();
    for (auto it = callbacks_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    callbacks_.erase(callbacks_.begin(), end);
    const Status result = poison_.ok() ? Status::Ok() : poison_;
    durable_cv_.notify_all();
    if (!ready.empty()) {
      cl.unlock();
      for (auto& cb : ready) cb(result);
      cl.lock();
    }
  }
}

Status StateStore::health() const {
  std::lock_guard<std::mutex> cl(commit_mu_);
  return poison_;
}

std::uint64_t StateStore::transitions_durable() const {
  std::lock_guard<std::mutex> cl(commit_mu_);
  return transitions_durable_;
}

std::uint64_t StateStore::writes_issued() const {
  std::lock_guard<std::mutex> cl(commit_mu_);
  return writes_issued_;
}

}  // namespace radlads
