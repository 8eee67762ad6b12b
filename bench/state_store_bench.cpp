// Durable transitions per second of the coordinator's state store (state/state_store.h)
// on this machine's disk: every transition is one event plus its table rows in a synced RocksDB
// WriteBatch, acknowledged only once durable.
//
//   state_store_bench [--dir DIR] [--seconds S] [--threads 1,4,16,64] [--window 256] [--smoke]
//
// Prints one human-readable line per mode, then (last line) one JSON object with every mode's
// transitions per second. --smoke runs each mode for 0.2 s with threads 1,4 and window 16 (the
// ctest form: it checks the program works, its figures mean nothing).
//
// Modes (heartbeats are the commonest transition: event + lease, task, worker and run rows;
// "commit" cycles checkpoint commits: event + task, ledger, checkpoint-index and run rows):
//   inline-sync      group commit off: one fsynced Write per transition, one caller.
//   group-sync Tn    group commit on, n threads each blocking on its own transitions.
//   async-sync Wk    group commit on, one thread keeping k asynchronous transitions in flight
//                    (how an event-loop server would drive it).
//   inline-nosync    sync=false, for reference only: NOT durable against power loss.
// DIR must be on the disk you care about (default: a fresh directory under $TMPDIR or /tmp).
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "state/scheduler.h"
#include "state/state_store.h"

namespace radlads {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string dir;
  double seconds = 3.0;
  std::vector<int> threads = {1, 4, 16, 64};
  int window = 256;
};

// A run with `n` ready align tasks, `n` registered workers each holding one lease.
struct Fixture {
  std::string path;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Scheduler> sched;
  std::vector<LeaseId> leases;
  SystemClock* clock = SystemClock::Default();

  bool Init(const std::string& root, const std::string& name, const StateStoreOptions& o, int n) {
    path = root + "/" + name;
    auto r = StateStore::Open(path, o);
    if (!r.ok()) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(), r.status().ToString().c_str());
      return false;
    }
    store = std::move(r).value();
    sched = std::make_unique<Scheduler>(store.get(), clock);
    std::vector<TaskSpec> tasks;
    for (int l = 0; l < n; ++l) {
      TaskSpec t;
      t.id = AlignTaskId(l, 0);
      t.type = TaskType::kAlign;
      t.layer = l;
      t.segment = 0;
      t.tokens = std::int64_t{1} << 40;
      tasks.push_back(t);
    }
    RunConfig c;
    c.run_id = "bench";
    c.lease_ttl_ms = 3'600'000;
    if (Status s = sched->CreateRun(c, tasks); !s.ok()) {
      std::fprintf(stderr, "create: %s\n", s.ToString().c_str());
      return false;
    }
    for (int i = 0; i < n; ++i) {
      WorkerInfo w;
      w.id = "w" + std::to_string(i);
      w.host = "bench";
      if (!sched->RegisterWorker(w).ok()) return false;
      auto g = sched->Lease(w.id);
      if (!g.ok() || !g->grant) return false;
      leases.push_back(g->grant->lease);
    }
    return true;
  }
};

Progress Beat(std::int64_t k) {
  Progress p;
  p.tokens = k;
  p.step = k;
  p.losses = {{"l2", 0.01}};
  p.throughput = 1e5;
  return p;
}

CheckpointRecord Commit(std::int64_t k) {
  CheckpointRecord c;
  c.step = k;
  c.tokens_consumed = k * 1024;
  c.files.push_back(FileRecord{"ckpt/layer.safetensors." + std::to_string(k), 1 << 20,
                               "xxh3:0123456789abcdef"});
  return c;
}

// (mode + detail, transitions per second), for the final JSON line.
std::vector<std::pair<std::string, double>> g_results;

void Report(const char* mode, const std::string& detail, std::uint64_t n, double secs,
            const StateStore& store, std::uint64_t writes0) {
  const std::uint64_t writes = store.writes_issued() - writes0;
  g_results.emplace_back(std::string(mode) + " " + detail, n / secs);
  std::printf("%-14s %-10s %9llu transitions %6.2f s %10.0f /s  %8.0f synced writes/s  %6.1f "
              "per write\n",
              mode, detail.c_str(), static_cast<unsigned long long>(n), secs, n / secs,
              writes / secs, writes ? static_cast<double>(n) / writes : 0.0);
  std::fflush(stdout);
}

// n threads, each heartbeating (or committing) on its own lease until the time is up.
void RunBlocking(const std::string& root, const char* mode, bool sync, bool group, int threads,
                 bool commits, double seconds) {
  StateStoreOptions o;
  o.sync = sync;
  o.group_commit = group;
  o.verify = StateStoreOptions::Verify::kTables;
  Fixture f;
  const std::string name = std::string(mode) + "-" + std::to_string(threads) +
                           (commits ? "-commit" : "-hb");
  if (!f.Init(root, name, o, threads)) std::exit(1);
  const std::uint64_t writes0 = f.store->writes_issued();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      for (std::int64_t k = 1; !stop.load(std::memory_order_relaxed); ++k) {
        Status s = commits ? f.sched->CommitCheckpoint(f.leases[i], Commit(k)).status()
                           : f.sched->Heartbeat(f.leases[i], Beat(k)).status();
        if (!s.ok()) {
          if (errors++ == 0) std::fprintf(stderr, "%s\n", s.ToString().c_str());
          return;
        }
        done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  Report(mode, (commits ? "commit T" : "hb T") + std::to_string(threads), done.load(), secs,
         *f.store, writes0);
}

// One thread keeps `window` asynchronous heartbeats in flight.
void RunAsync(const std::string& root, int window, double seconds) {
  StateStoreOptions o;
  o.verify = StateStoreOptions::Verify::kTables;
  Fixture f;
  if (!f.Init(root, "async-" + std::to_string(window), o, 16)) std::exit(1);
  const std::uint64_t writes0 = f.store->writes_issued();
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t in_flight = 0, done = 0;
  int errors = 0;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  for (std::int64_t k = 1; Clock::now() < end; ++k) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < static_cast<std::uint64_t>(window); });
      ++in_flight;
    }
    f.sched->HeartbeatAsync(f.leases[k % f.leases.size()], Beat(k),
                            [&](Result<HeartbeatReply> r) {
                              std::lock_guard<std::mutex> lock(mu);
                              --in_flight;
                              ++done;
                              if (!r.ok()) ++errors;
                              cv.notify_all();
                            });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (errors) std::fprintf(stderr, "%d async errors\n", errors);
  Report("async-sync", "W" + std::to_string(window), done, secs, *f.store, writes0);
}

int Main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--dir") {
      a.dir = next();
    } else if (arg == "--seconds") {
      a.seconds = std::stod(next());
    } else if (arg == "--window") {
      a.window = std::stoi(next());
    } else if (arg == "--smoke") {
      a.seconds = 0.2;
      a.threads = {1, 4};
      a.window = 16;
    } else if (arg == "--threads") {
      a.threads.clear();
      std::stringstream ss(next());
      std::string t;
      while (std::getline(ss, t, ',')) a.threads.push_back(std::stoi(t));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--dir DIR] [--seconds S] [--threads 1,4,16] [--window K] "
                   "[--smoke]\n",
                   argv[0]);
      return 2;
    }
  }
  bool made = false;
  if (a.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/radlads-state-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return 1;
    a.dir = tmpl;
    made = true;
  }
  std::printf("state store bench: dir %s, %.1f s per mode, %u hardware threads\n", a.dir.c_str(),
              a.seconds, std::thread::hardware_concurrency());
  RunBlocking(a.dir, "inline-sync", true, false, 1, false, a.seconds);
  for (int t : a.threads) RunBlocking(a.dir, "group-sync", true, true, t, false, a.seconds);
  RunBlocking(a.dir, "group-sync", true, true, a.threads.back(), true, a.seconds);
  RunAsync(a.dir, a.window, a.seconds);
  RunBlocking(a.dir, "inline-nosync", false, false, 1, false, a.seconds);
  std::printf("{\"bench\": \"state_store\", \"seconds_per_mode\": %.2f, \"transitions_per_s\": {",
              a.seconds);
  for (std::size_t i = 0; i < g_results.size(); ++i) {
    std::printf("%s\"%s\": %.0f", i ? ", " : "", g_results[i].first.c_str(),
                g_results[i].second);
  }
  std::printf("}}\n");
  if (made) {
    std::error_code ec;
    std::filesystem::remove_all(a.dir, ec);
  }
  return 0;
}

}  // namespace
}  // namespace radlads

int main(int argc, char** argv) { return radlads::Main(argc, argv); }
