// The durable, event-sourced run state: the event codec (round trip, refusal of corrupt or
// unknown encodings), the store (one batch per transition, replay equality after a long random
// run, crash consistency with a killed child process, read-only access while another process
// writes, group commit).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "contract/codec.h"
#include "state/events.h"
#include "state/run_state.h"
#include "state/scheduler.h"
#include "state/state_store.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace radlads {
namespace {

using testing::Ckpt;
using testing::File;
using testing::MakePlan;
using testing::PlanShape;
using testing::RandomDriver;
using testing::ScratchDir;

// Process kills keep what reached the OS (RocksDB writes the WAL with write() before Write
// returns), so sync=false is enough for the crash tests and keeps them fast. The fsync path is
// exercised by GroupCommit* below and measured by bench/state_store_bench.cpp.
StateStoreOptions Fast() {
  StateStoreOptions o;
  o.sync = false;
  return o;
}

RunConfig Config(int retry_limit = 3, int window = 0) {
  RunConfig c;
  c.run_id = "test-run";
  c.lease_ttl_ms = 300'000;
  c.retry_limit = retry_limit;
  c.cache_window = window;
  return c;
}

std::unique_ptr<StateStore> OpenOrDie(const std::string& dir, StateStoreOptions o = Fast()) {
  auto r = StateStore::Open(dir, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

// Line-by-line diff of two canonical dumps, for readable failures.
std::string Diff(const std::string& a, const std::string& b) {
  std::size_t pa = 0, pb = 0;
  int line = 1;
  while (pa < a.size() || pb < b.size()) {
    const std::size_t ea = std::min(a.find('\n', pa), a.size());
    const std::size_t eb = std::min(b.find('\n', pb), b.size());
    if (a.compare(pa, ea - pa, b, pb, eb - pb) != 0) {
      return "line " + std::to_string(line) + ":\n  " + a.substr(pa, ea - pa) + "\n  " +
             b.substr(pb, eb - pb);
    }
    pa = ea + 1;
    pb = eb + 1;
    ++line;
  }
  return "identical";
}

#define EXPECT_SAME_STATE(a, b)                                              \
  do {                                                                       \
    const std::string _da = (a).CanonicalDump(), _db = (b).CanonicalDump(); \
    EXPECT_TRUE(_da == _db) << Diff(_da, _db);                               \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Event codec
// ---------------------------------------------------------------------------------------------

std::vector<Event> OneOfEachKind() {
  std::vector<Event> v;
  auto add = [&](EventBody b) {
    Event e;
    e.seq = v.size() + 1;
    e.at_ms = 1'700'000'000'000 + static_cast<TimeMs>(v.size());
    e.body = std::move(b);
    v.push_back(std::move(e));
  };
  PlanShape shape;
  add(RunCreated{Config(), MakePlan(shape)});
  WorkerInfo w = testing::Worker("node1/rank0", 4);
  w.members = {"node1/rank0", "node1/rank1", "node2/rank0", "node2/rank1"};
  w.capabilities = TaskTypeBit(TaskType::kDistill) | TaskTypeBit(TaskType::kFinetune);
  add(WorkerRegistered{w});
  add(WorkerLost{"node1/rank0", "lease 3 expired"});
  add(TaskReady{"transfer/L000"});
  add(TaskLeased{"transfer/L000", 7, "w1", 2, 1'700'000'300'000});
  Progress p;
  p.tokens = 123;
  p.step = 4;
  p.losses = {{"l2", 0.031}, {"kl", -0.0}};
  p.throughput = 5.5e4;
  add(TaskProgress{"transfer/L000", 7, 1'700'000'400'000, p});
  CheckpointRecord c = Ckpt("align/L000/S00000", 3, 600);
  c.files.push_back(File("ckpt/optimizer.bin", 1 << 30));
  add(CheckpointCommitted{"align/L000/S00000", 7, c, 600});
  add(TaskCompleted{"align/L000/S00000", 7, FinalRecord{c, {{"loss", 0.25}}}, 400});
  add(LeaseEnded{"distill", 9, LeaseEndCause::kCoordinatorRestart, "restart"});
  add(TaskFailed{"distill", "failed after 4 attempts"});
  add(RunFailed{"task 'distill' failed"});
  add(RunCompleted{});
  add(DrainRequested{"SIGUSR1"});
  add(DrainCompleted{});
  add(RunResumed{"job 123 restart 2"});
  add(SegmentEvictable{12, 3});
  add(SegmentEvicted{12, 3});
  add(RunRelaid{90'000, {GangSize{"distill", 4}}});
  add(JobStarted{JobStart{"slurm", "123", 2, "n[1-2]", 1'700'000'900'000, 17, "no progress in 3 restarts"}});
  add(RunCancelled{"radlads-coord cancel", "123"});
  add(RunReopened{"the same command again"});
  add(CheckpointDiscarded{"distill", 9, 6, 6144, 3072, "checksum mismatch"});
  return v;
}

TEST(EventCodec, RoundTripsEveryKind) {
  const auto events = OneOfEachKind();
  ASSERT_EQ(events.size(), static_cast<std::size_t>(EventKind::kCheckpointDiscarded));  // one of each, 1..22
  for (const Event& e : events) {
    const std::string bytes = EncodeEvent(e);
    Event back;
    ASSERT_TRUE(DecodeEvent(bytes, state_keys::Event(e.seq), &back).ok()) << DescribeEvent(e);
    back.seq = e.seq;
    EXPECT_EQ(KindOf(back.body), KindOf(e.body));
    EXPECT_EQ(DescribeEvent(back), DescribeEvent(e));
    EXPECT_EQ(EncodeEvent(back), bytes) << DescribeEvent(e);  // bit-exact, doubles included
  }
}

TEST(EventCodec, RefusesAnUnknownVersionNamingTheKey) {
  std::string bytes = EncodeEvent(OneOfEachKind()[3]);
  bytes[0] = static_cast<char>(kStateFormatVersion + 1);
  Event e;
  const Status st = DecodeEvent(bytes, "e/0000000000000004", &e);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("e/0000000000000004"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("state format version " + std::to_string(kStateFormatVersion + 1) +
                              "; this build reads versions 1 to " + std::to_string(kStateFormatVersion)),
            std::string::npos)
      << st.ToString();
}

// A value written by version 1 (before WorkerInfo had a rank, device, memory and gang) decodes,
// the later fields at their defaults; version 2 carries them.
TEST(EventCodec, OlderVersionsDecodeWithTheirOwnLayout) {
  Event e;
  e.at_ms = 7;
  WorkerInfo w;
  w.id = "node1/r3";
  w.rank = 3;
  w.device = "cpu";
  w.memory_bytes = 1 << 30;
  w.gang = "gang";
  e.body = WorkerRegistered{w};
  Event v1, v2;
  ASSERT_TRUE(DecodeEvent(EncodeEvent(e, 1), "e/1", &v1).ok());
  ASSERT_TRUE(DecodeEvent(EncodeEvent(e), "e/2", &v2).ok());
  const WorkerInfo& a = std::get<WorkerRegistered>(v1.body).worker;
  const WorkerInfo& b = std::get<WorkerRegistered>(v2.body).worker;
  EXPECT_EQ(a.id, w.id);
  EXPECT_EQ(a.rank, -1);
  EXPECT_TRUE(a.device.empty());
  EXPECT_EQ(a.memory_bytes, 0);
  EXPECT_TRUE(b == w);
  EXPECT_LT(EncodeEvent(e, 1).size(), EncodeEvent(e).size());
}

TEST(EventCodec, RefusesEveryTruncation) {
  for (const Event& ev : OneOfEachKind()) {
    const std::string bytes = EncodeEvent(ev);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      Event e;
      const Status st = DecodeEvent(std::string_view(bytes).substr(0, n), "e/key", &e);
      ASSERT_EQ(st.code(), Status::Code::kCorruption) << DescribeEvent(ev) << " cut at " << n;
      EXPECT_NE(st.message().find("e/key"), std::string::npos) << st.ToString();
    }
  }
}

TEST(EventCodec, RefusesEveryFlippedByte) {
  const std::string bytes = EncodeEvent(OneOfEachKind()[6]);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    Event e;
    EXPECT_EQ(DecodeEvent(bad, "e/key", &e).code(), Status::Code::kCorruption) << "byte " << i;
  }
}

TEST(EventCodec, RefusesUnknownKindsTrailingBytesAndAbsurdLengths) {
  Event e;
  codec::VarintOut w;
  w.ZigZag(5);
  Status st = DecodeEvent(state_codec::Frame(99, w.out()), "e/x", &e);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("unknown event kind 99"), std::string::npos) << st.ToString();

  codec::VarintOut t;
  t.ZigZag(5);
  t.Str("task", "task", kMaxIdBytes);
  t.Str("extra", "extra", kMaxIdBytes);
  st = DecodeEvent(state_codec::Frame(static_cast<std::uint8_t>(EventKind::kTaskReady), t.out()),
                   "e/y", &e);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("trailing"), std::string::npos) << st.ToString();

  // A run_created whose task count claims 2^40 entries: refused before any allocation.
  codec::VarintOut h;
  h.ZigZag(5);
  h.Rec("config", Config());
  h.Varint(std::uint64_t{1} << 40);
  st = DecodeEvent(state_codec::Frame(static_cast<std::uint8_t>(EventKind::kRunCreated), h.out()),
                   "e/z", &e);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("exceeds"), std::string::npos) << st.ToString();
}

// ---------------------------------------------------------------------------------------------
// Store basics
// ---------------------------------------------------------------------------------------------

TEST(StateStore, AnEmptyStoreOpensEmpty) {
  ScratchDir dir;
  auto store = OpenOrDie(dir.File("state"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Snapshot().phase(), RunPhase::kEmpty);
  EXPECT_EQ(store->Snapshot().last_seq(), 0u);
}

TEST(StateStore, ATransitionWritesItsEventsAndRowsTogether) {
  ScratchDir dir;
  const std::string path = dir.File("state");
  FakeClock clock;
  {
    auto store = OpenOrDie(path);
    Scheduler sched(store.get(), &clock);
    ASSERT_TRUE(sched.CreateRun(Config(), MakePlan(PlanShape{})).ok());
    ASSERT_TRUE(sched.RegisterWorker(testing::Worker("w0")).ok());
    auto lease = sched.Lease("w0");
    ASSERT_TRUE(lease.ok());
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(o, path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string v;
  for (const std::string& key :
       {std::string(state_keys::kFormat), std::string(state_keys::kRun),
        std::string(state_keys::kLedger), state_keys::Plan("transfer/L000"),
        state_keys::Task("transfer/L000"), state_keys::Event(1), state_keys::Worker("w0"),
        state_keys::Lease(1)}) {
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), key, &v).ok()) << key;
  }
}

// The heart of event sourcing: after a long random run, (a) reopening the store loads the same
// state from the tables, and (b) replaying only the event log rebuilds the same state.
TEST(StateStore, ReplayRebuildsTheStateAfterALongRandomRun) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    ScratchDir dir;
    const std::string path = dir.File("state");
    FakeClock clock;
    RunState live;
    {
      auto store = OpenOrDie(path);
      Scheduler sched(store.get(), &clock);
      PlanShape shape;
      shape.layers = 3;
      shape.segments = 4;
      shape.stages = 2;
      shape.distill_workers = 2;
      shape.finetune = true;
      ASSERT_TRUE(sched.CreateRun(Config(/*retry_limit=*/6, /*window=*/2), MakePlan(shape)).ok());
      RandomDriver driver(&sched, &clock, seed, /*workers=*/4, /*gang=*/2);
      ASSERT_TRUE(driver.Run(2500));
      live = store->Snapshot();
      ASSERT_TRUE(live.CheckInvariants().ok()) << live.CheckInvariants().ToString();
      auto replayed = store->ReplayLog();
      ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
      EXPECT_SAME_STATE(live, *replayed);
      EXPECT_GT(live.metrics().events, 400);
      EXPECT_GT(live.metrics().checkpoints_committed, 15);
      EXPECT_GT(driver.duplicates_acked(), 0);
    }
    for (auto verify : {StateStoreOptions::Verify::kReplay, StateStoreOptions::Verify::kTables}) {
      StateStoreOptions o = Fast();
      o.verify = verify;
      auto store = OpenOrDie(path, o);
      ASSERT_NE(store, nullptr);
      EXPECT_SAME_STATE(live, store->Snapshot());
    }
    auto ro = StateStore::ReadSnapshot(path, /*verify_replay=*/true);
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_SAME_STATE(live, *ro);
  }
}

TEST(StateStore, ReadEventsDecodesTheLogInOrder) {
  ScratchDir dir;
  FakeClock clock;
  auto store = OpenOrDie(dir.File("state"));
  Scheduler sched(store.get(), &clock);
  ASSERT_TRUE(sched.CreateRun(Config(), MakePlan(PlanShape{})).ok());
  auto events = store->ReadEvents(1, 3);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ(KindOf((*events)[0].body), EventKind::kRunCreated);
  EXPECT_EQ(KindOf((*events)[1].body), EventKind::kTaskReady);
  EXPECT_EQ((*events)[2].seq, 3u);
}

// ---------------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------------

// Builds a small store with some history, closes it, and returns its path.
std::string BuildStore(const ScratchDir& dir) {
  const std::string path = dir.File("state");
  FakeClock clock;
  auto store = OpenOrDie(path);
  Scheduler sched(store.get(), &clock);
  EXPECT_TRUE(sched.CreateRun(Config(), MakePlan(PlanShape{})).ok());
  RandomDriver driver(&sched, &clock, 7, 3);
  EXPECT_TRUE(driver.Run(200, /*allow_drain=*/false));
  return path;
}

void RawPut(const std::string& path, const std::string& key, const std::string& value) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  ASSERT_TRUE(rocksdb::DB::Open(o, path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
}

std::string RawGet(const std::string& path, const std::string& key) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(o, path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string v;
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), key, &v).ok()) << key;
  return v;
}

void RawDelete(const std::string& path, const std::string& key) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  ASSERT_TRUE(rocksdb::DB::Open(o, path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), key).ok());
}

void ExpectCorruptionNaming(const std::string& path, const std::string& key,
                            const std::string& what, bool replay = true) {
  StateStoreOptions o = Fast();
  o.verify = replay ? StateStoreOptions::Verify::kReplay : StateStoreOptions::Verify::kTables;
  auto r = StateStore::Open(path, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().ToString();
}

TEST(StateStoreCorruption, ATableRowWithAnUnknownVersionIsNamed) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  const std::string key = state_keys::Task("transfer/L001");
  std::string v = RawGet(path, key);
  v[0] = 9;
  RawPut(path, key, v);
  ExpectCorruptionNaming(path, key, "version 9", /*replay=*/false);
  auto ro = StateStore::ReadSnapshot(path);
  EXPECT_EQ(ro.status().code(), Status::Code::kCorruption);
  EXPECT_NE(ro.status().message().find(key), std::string::npos) << ro.status().ToString();
}

TEST(StateStoreCorruption, ATruncatedRunRowIsNamed) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  const std::string key(state_keys::kRun);
  RawPut(path, key, RawGet(path, key).substr(0, 17));
  ExpectCorruptionNaming(path, key, "checksum", /*replay=*/false);
}

TEST(StateStoreCorruption, ATruncatedEventIsNamedByReplay) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  const std::string key = state_keys::Event(5);
  RawPut(path, key, RawGet(path, key).substr(0, 6));
  ExpectCorruptionNaming(path, key, "truncated");
  // The tables alone still load (status works), but a replay refuses.
  EXPECT_TRUE(StateStore::ReadSnapshot(path).ok());
  EXPECT_EQ(StateStore::ReadSnapshot(path, true).status().code(), Status::Code::kCorruption);
}

TEST(StateStoreCorruption, AMissingEventIsCaught) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  // A hole in the middle: the replay finds it at the next key.
  RawDelete(path, state_keys::Event(3));
  ExpectCorruptionNaming(path, state_keys::Event(4), "expected sequence number 3");
  // A lost tail: the fast path already sees that r/run's last_seq has no event.
  auto snap = StateStore::ReadSnapshot(path);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  RawDelete(path, state_keys::Event(snap->last_seq()));
  ExpectCorruptionNaming(path, "r/run", "event log runs from", /*replay=*/false);
}

TEST(StateStoreCorruption, TablesThatDisagreeWithTheLogAreCaught) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  // Swap the ledger for the run row's bytes: a valid frame of the wrong kind.
  RawPut(path, std::string(state_keys::kLedger), RawGet(path, std::string(state_keys::kRun)));
  ExpectCorruptionNaming(path, "r/ledger", "row kind", /*replay=*/false);
}

TEST(StateStoreCorruption, AStaleButWellFormedRowIsCaughtByReplay) {
  ScratchDir dir;
  const std::string path = dir.File("state");
  FakeClock clock;
  std::string old_row;
  {
    auto store = OpenOrDie(path);
    Scheduler sched(store.get(), &clock);
    ASSERT_TRUE(sched.CreateRun(Config(), MakePlan(PlanShape{})).ok());
    ASSERT_TRUE(sched.RegisterWorker(testing::Worker("w0")).ok());
  }
  old_row = RawGet(path, state_keys::Task("transfer/L000"));
  {
    auto store = OpenOrDie(path);
    Scheduler sched(store.get(), &clock);
    auto g = sched.Lease("w0");
    ASSERT_TRUE(g.ok() && g->grant);
    ASSERT_TRUE(sched.Heartbeat(g->grant->lease, Progress{}).ok());
  }
  // Put the pre-lease task row back: well formed, consistent-looking, but not what the log says.
  RawPut(path, state_keys::Task("transfer/L000"), old_row);
  auto r = StateStore::Open(path, Fast());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
}

TEST(StateStoreCorruption, AnUnknownKeyPrefixIsNamed) {
  ScratchDir dir;
  const std::string path = BuildStore(dir);
  RawPut(path, "zz/unknown", "x");
  ExpectCorruptionNaming(path, "zz/unknown", "unknown key prefix", false);
}

// ---------------------------------------------------------------------------------------------
// Crashes and other processes
// ---------------------------------------------------------------------------------------------

// The writer processes below are fresh copies of this test binary (fork + exec of
// /proc/self/exe running the disabled test StateStoreChild.DISABLED_RandomWriter), not bare
// forks: this process already runs RocksDB's background threads, and a forked child of a
// multi-threaded process must not use them (ThreadSanitizer refuses it outright).
struct Child {
  pid_t pid = -1;
  int read_fd = -1;
};

// mode "acks": after every acknowledged operation the child writes its last_seq (8 bytes);
// mode "ready": it writes one byte once the store is open, then works at a moderate pace.
Child SpawnWriter(const std::string& path, std::uint64_t seed, const std::string& mode) {
  Child c;
  int fds[2];
  if (::pipe(fds) != 0) return c;
  // Everything the child needs is built before fork(): between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<std::string> env_strings = {
      "RADLADS_STATE_CHILD_DIR=" + path, "RADLADS_STATE_CHILD_SEED=" + std::to_string(seed),
      "RADLADS_STATE_CHILD_FD=" + std::to_string(fds[1]), "RADLADS_STATE_CHILD_MODE=" + mode};
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string a0 = "/proc/self/exe", a1 = "--gtest_also_run_disabled_tests",
              a2 = "--gtest_filter=StateStoreChild.DISABLED_RandomWriter";
  char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
  const int devnull = ::open("/dev/null", O_WRONLY);
  c.pid = ::fork();
  if (c.pid == 0) {
    ::close(fds[0]);
    if (devnull >= 0) ::dup2(devnull, STDOUT_FILENO);  // keep the parent's log quiet
    ::execve(argv[0], argv, envp.data());
    ::_exit(127);
  }
  if (devnull >= 0) ::close(devnull);
  ::close(fds[1]);
  c.read_fd = fds[0];
  return c;
}

// Kills the child and reaps it; true if it was still running (killed by the signal).
bool KillChild(Child& c) {
  ::kill(c.pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(c.pid, &wstatus, 0);
  if (c.read_fd >= 0) ::close(c.read_fd);
  return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
}

// The body of the writer process (runs only when spawned by SpawnWriter).
TEST(StateStoreChild, DISABLED_RandomWriter) {
  const char* dir = std::getenv("RADLADS_STATE_CHILD_DIR");
  const char* seed = std::getenv("RADLADS_STATE_CHILD_SEED");
  const char* fd_text = std::getenv("RADLADS_STATE_CHILD_FD");
  const char* mode = std::getenv("RADLADS_STATE_CHILD_MODE");
  if (!dir || !seed || !fd_text || !mode) GTEST_SKIP() << "only run by SpawnWriter";
  const int fd = std::atoi(fd_text);
  const bool acks = std::string(mode) == "acks";
  auto r = StateStore::Open(dir, Fast());
  if (!r.ok()) ::_exit(2);
  auto store = std::move(r).value();
  FakeClock clock(FakeClock::kDefaultStartMs + 1000);
  Scheduler sched(store.get(), &clock);
  RandomDriver driver(&sched, &clock, std::strtoull(seed, nullptr, 10), 4);
  if (acks) {
    driver.on_ack = [&](std::int64_t seq) {
      if (::write(fd, &seq, sizeof(seq)) != sizeof(seq)) ::_exit(3);
    };
  } else {
    const char ready = 'r';
    if (::write(fd, &ready, 1) != 1) ::_exit(3);
  }
  for (;;) {
    if (!driver.Step(false)) ::_exit(4);
    if (!acks) ::usleep(300);  // a busy coordinator, not a runaway log
  }
}

// A writer process runs random operations and reports, after each acknowledged transition, the
// last sequence number through a pipe; the parent kills it with SIGKILL at a random moment.
// Reopening must find every acknowledged transition, tables that match the log, and a state the
// scheduler can carry on from.
TEST(StateStoreCrash, AKilledWriterLosesNoAcknowledgedTransition) {
  for (std::uint64_t trial = 0; trial < 3; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    ScratchDir dir;
    const std::string path = dir.File("state");
    FakeClock clock;
    {
      auto store = OpenOrDie(path);
      Scheduler sched(store.get(), &clock);
      PlanShape shape;
      shape.layers = 4;
      shape.segments = 6;
      ASSERT_TRUE(sched.CreateRun(Config(100), MakePlan(shape)).ok());
    }
    Child child = SpawnWriter(path, 100 + trial, "acks");
    ASSERT_GT(child.pid, 0);
    const int wanted = 100 + static_cast<int>(trial) * 137;
    std::int64_t acked = 0;
    for (int got = 0; got < wanted;) {
      std::int64_t seq = 0;
      const ssize_t n = ::read(child.read_fd, &seq, sizeof(seq));
      if (n != static_cast<ssize_t>(sizeof(seq))) {
        KillChild(child);
        FAIL() << "the writer died early";
      }
      acked = std::max(acked, seq);
      ++got;
    }
    ASSERT_TRUE(KillChild(child)) << "the writer was not running any more";

    auto store = OpenOrDie(path);  // verifies tables against a full replay
    ASSERT_NE(store, nullptr);
    const RunState after = store->Snapshot();
    EXPECT_GE(after.last_seq(), static_cast<std::uint64_t>(acked));
    EXPECT_GT(after.last_seq(), 20u);
    EXPECT_TRUE(after.CheckInvariants().ok()) << after.CheckInvariants().ToString();
    // The coordinator restarts on it and carries on.
    Scheduler sched(store.get(), &clock);
    ASSERT_TRUE(sched.Resume("after crash").ok());
    RandomDriver driver(&sched, &clock, 500 + trial, 3);
    ASSERT_TRUE(driver.Run(200, false));
    auto replayed = store->ReplayLog();
    ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
    EXPECT_SAME_STATE(store->Snapshot(), *replayed);
  }
}

TEST(StateStoreReadOnly, ReadsWhileAnotherProcessWrites) {
  ScratchDir dir;
  const std::string path = dir.File("state");
  {
    FakeClock clock;
    auto store = OpenOrDie(path);
    Scheduler sched(store.get(), &clock);
    PlanShape shape;
    shape.layers = 4;
    shape.segments = 8;
    ASSERT_TRUE(sched.CreateRun(Config(100), MakePlan(shape)).ok());
  }
  Child child = SpawnWriter(path, 42, "ready");
  ASSERT_GT(child.pid, 0);
  char c = 0;
  if (::read(child.read_fd, &c, 1) != 1) {
    KillChild(child);
    FAIL() << "the writer did not start";
  }

  // The writer holds the store: a second read-write open is refused, clearly.
  auto second = StateStore::Open(path, Fast());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kUnavailable) << second.status().ToString();

  std::uint64_t last = 0;
  for (int i = 0; i < 12; ++i) {
    auto snap = StateStore::ReadSnapshot(path, /*verify_replay=*/i % 4 == 3);
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    EXPECT_TRUE(snap->CheckInvariants().ok()) << snap->CheckInvariants().ToString();
    EXPECT_GE(snap->last_seq(), last);
    last = snap->last_seq();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(last, 1u);
  ASSERT_TRUE(KillChild(child)) << "the writer exited on its own";
  auto store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  auto snap = StateStore::ReadSnapshot(path);
  ASSERT_TRUE(snap.ok());
  EXPECT_SAME_STATE(store->Snapshot(), *snap);  // a secondary beside a live primary
}

TEST(StateStoreReadOnly, AMissingStoreIsNotFound) {
  ScratchDir dir;
  auto r = StateStore::ReadSnapshot(dir.File("nothing"));
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound) << r.status().ToString();
}

// ---------------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------------

// Threads heartbeating concurrently with sync=true: every transition is durable and in the log
// once, in an order replay accepts, and the committer batched them.
TEST(GroupCommit, ConcurrentSyncedTransitionsAreBatchedAndReplayable) {
  ScratchDir dir;
  const std::string path = dir.File("state");
  FakeClock clock;
  constexpr int kThreads = 8, kBeats = 25;
  RunState live;
  std::uint64_t writes = 0, durable = 0;
  {
    StateStoreOptions o;  // sync=true, group commit on
    auto store = OpenOrDie(path, o);
    Scheduler sched(store.get(), &clock);
    PlanShape shape;
    shape.layers = kThreads;
    shape.segments = 1;
    ASSERT_TRUE(sched.CreateRun(Config(), MakePlan(shape)).ok());
    std::vector<LeaseId> leases;
    for (int i = 0; i < kThreads; ++i) {
      const std::string id = "w" + std::to_string(i);
      ASSERT_TRUE(sched.RegisterWorker(testing::Worker(id)).ok());
      auto g = sched.Lease(id);
      ASSERT_TRUE(g.ok() && g->grant);
      leases.push_back(g->grant->lease);
    }
    const std::uint64_t before = store->transitions_durable();
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        for (int k = 0; k < kBeats; ++k) {
          Progress p;
          p.step = k;
          if (!sched.Heartbeat(leases[i], p).ok()) ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    durable = store->transitions_durable() - before;
    writes = store->writes_issued();
    live = store->Snapshot();
    EXPECT_EQ(live.metrics().heartbeats, kThreads * kBeats);
  }
  EXPECT_EQ(durable, static_cast<std::uint64_t>(kThreads * kBeats));
  EXPECT_LT(writes, durable) << "no two transitions shared a synced write";
  auto store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  EXPECT_SAME_STATE(live, store->Snapshot());
}

TEST(GroupCommit, AsyncTransitionsCompleteInOrderOnceDurable) {
  ScratchDir dir;
  FakeClock clock;
  auto store = OpenOrDie(dir.File("state"), StateStoreOptions{});
  Scheduler sched(store.get(), &clock);
  PlanShape shape;
  ASSERT_TRUE(sched.CreateRun(Config(), MakePlan(shape)).ok());
  ASSERT_TRUE(sched.RegisterWorker(testing::Worker("w0")).ok());
  auto g = sched.Lease("w0");
  ASSERT_TRUE(g.ok() && g->grant);
  constexpr int kN = 200;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TimeMs> order;
  int errors = 0;
  for (int k = 0; k < kN; ++k) {
    clock.Advance(1);
    Progress p;
    p.step = k;
    sched.HeartbeatAsync(g->grant->lease, p, [&](Result<HeartbeatReply> r) {
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok()) order.push_back(r->deadline_ms);
      else ++errors;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] {
    return static_cast<int>(order.size()) + errors == kN;
  }));
  EXPECT_EQ(errors, 0);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_LT(store->writes_issued(), static_cast<std::uint64_t>(kN));
}

}  // namespace
}  // namespace radlads
