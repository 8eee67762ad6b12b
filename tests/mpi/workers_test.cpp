// `radlads-coord run` with a job of radlads-worker ranks (mpirun, started by `run` itself; this
// test is not run under mpiexec), on the shortened test recipes: one architecture per layout.
// - `--workers 2` at dp 2, tp 2 and pp 2, `--workers 4` at tp 2 x pp 2 complete; eval within
//   kEvalTol of the single-process run; a rerun of the same layout exports bit-identical
//   weights (one architecture per layout; RADLADS_TEST_ALL_LAYOUTS=1: both on every layout).
// - SIGKILL of a worker during step 1 and again during step 2: the run completes (the lease
//   expires at the run's TTL, `run` starts the job again) and exports exactly the weights of
//   the uninterrupted run of the same layout. Without restarts left, the run fails with the
//   reason, and the same command resumes it.
// - A step-2 checkpoint written at dp 2 resumes at dp 1 and one written at dp 1 resumes at dp 2:
//   the token ledger is exact and the eval within kEvalTol of the run that never changed.
// - SIGTERM to `run` drains coordinator and workers (exit 3); the same command resumes to the
//   same weights. A coordinator killed outright: the old job's workers reconnect to the next one.
// - Regressions: a run config without `cluster:` (local-cpu, dp 2) and a cache budget smaller
//   than the step-1 cache both run to the end (segments are evicted).
// Stops what it starts, by pid.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/checksum.h"
#include "base/file.h"
#include "contract/run_layout.h"
#include "state/state_store.h"
#include "tests/testing/test_util.h"
#include "worker/eval_report.h"

namespace radlads {
namespace {

const std::string kCoord = RADLADS_COORD_BIN;
const std::string kSrc = RADLADS_SOURCE_DIR;

// Eval of a layout against the single process, relative: the split arithmetic adds the same
// terms in other orders (fp32), through 32 align steps and 8 distill steps. Measured: within
// 7e-8 for every layout here; the limit allows for other CPUs' kernels.
constexpr double kEvalTol = 1e-5;
// Lease TTL for the fault tests: a killed gang's task is leased again this long after.
constexpr int kTtlMs = 2000;

using Outcome = testing::CommandResult;
Outcome Exec(const std::string& cmd) { return testing::RunCommand(cmd); }

// `run` in the background (output to `log`).
pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (std::freopen(log.c_str(), "w", stdout) == nullptr) std::_Exit(126);
    ::dup2(::fileno(stdout), 2);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  return pid;
}

// Waits until `path` exists or `pid` exits (false then; *status set).
bool WaitForFile(const std::string& path, pid_t pid, int* status) {
  while (!PathExists(path)) {
    if (::waitpid(pid, status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

int WaitExit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Processes whose command line contains both `a` and `b`.
std::vector<pid_t> ProcessesWith(const std::string& a, const std::string& b) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(a) != std::string::npos && cmd.find(b) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

class Workers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // mpirun as root (CI runs as root) and on 2 cores.
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    dir_ = new testing::ScratchDir();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void TearDown() override {
    // Whatever a failed test left running under the scratch directory.
    for (pid_t p : ProcessesWith(dir_->path(), "radlads")) ::kill(p, SIGKILL);
    for (pid_t p : ProcessesWith(dir_->path(), "mpirun")) ::kill(p, SIGKILL);
  }

  // A run config for `arch` on cluster `cluster` (a file under tests/data/run, or "" for none).
  static std::string Config(const std::string& arch, const std::string& cluster, const std::string& name) {
    const std::string data = kSrc + "/data/austen/";
    std::string cfg = "teacher: " + kSrc + "/data/tiny-teacher\n" + "recipe: " +
                      testing::TestDataPath("run/recipe-" + arch + ".yaml") + "\n";
    if (!cluster.empty()) cfg += "cluster: " + testing::TestDataPath("run/" + cluster) + "\n";
    cfg += "data:\n  train: " + data + "northanger_abbey.txt.gz\n  heldout: " + data + "persuasion.txt.gz\n" +
           "eval:\n  max_tokens: 4096\n  seq_len: 64\n  batch: 16\n  generate_tokens: 8\n";
    const std::string path = dir_->File(name + ".yaml");
    testing::WriteBytes(path, cfg);
    return path;
  }
  static std::string Run(const std::string& name) { return dir_->File(name); }

  // Runs to the end (exit 0 expected) and returns the run directory.
  static std::string RunToEnd(const std::string& arch, const std::string& cluster, const std::string& name,
                              const std::string& extra = "") {
    const std::string run = Run(name);
    Outcome r = Exec(kCoord + " run " + Config(arch, cluster, name) + " --run " + run + " " + extra);
    EXPECT_EQ(r.code, 0) << r.out;
    return run;
  }

  static EvalReport Eval(const std::string& run) {
    Result<std::string> text = ReadFileToString(run + "/output/eval.json");
    EXPECT_TRUE(text.ok()) << run;
    Result<EvalReport> e = ParseEvalReport(text.ok() ? *text : "{}", run);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? *e : EvalReport{};
  }
  static std::uint64_t Weights(const std::string& run) {
    Result<std::string> w = ReadFileToString(run + "/output/model/model.safetensors");
    EXPECT_TRUE(w.ok()) << run;
    return w.ok() ? Checksum64(*w) : 0;
  }
  static void ExpectClose(const EvalReport& got, const EvalReport& want, const std::string& what) {
    for (auto [g, w, name] : {std::tuple{got.student.ce, want.student.ce, "student CE"},
                              std::tuple{got.student.kl, want.student.kl, "student KL"},
                              std::tuple{got.after_step1.kl, want.after_step1.kl, "after step 1 KL"}}) {
      EXPECT_NEAR(g, w, kEvalTol * std::fabs(w)) << what << ": " << name;
    }
  }

  // `--workers N` for a test cluster: its tp x pp x dp (cluster.yaml: one process, none).
  static std::string WorkersFlag(const std::string& cluster) {
    if (cluster == "cluster-tp2pp2.yaml") return "--workers 4";
    if (cluster == "cluster.yaml") return "";
    return "--workers 2";
  }
  // The single-process run of `arch`, and each layout's uninterrupted run, computed once.
  static const std::string& Reference(const std::string& arch, const std::string& cluster) {
    const std::string key = arch + "/" + cluster;
    auto it = refs_.find(key);
    if (it == refs_.end()) {
      const std::string name = "ref-" + arch + "-" + cluster.substr(0, cluster.find('.'));
      it = refs_.emplace(key, RunToEnd(arch, cluster, name, WorkersFlag(cluster))).first;
    }
    return it->second;
  }

  static testing::ScratchDir* dir_;
  static std::map<std::string, std::string> refs_;
};

testing::ScratchDir* Workers::dir_ = nullptr;
std::map<std::string, std::string> Workers::refs_;

// One architecture per layout; RADLADS_TEST_ALL_LAYOUTS=1 runs both architectures on every
// layout (the fuller matrix, about twice as long).
TEST_F(Workers, EveryLayoutMatchesOneProcessAndRerunsBitIdentical) {
  std::vector<std::pair<const char*, const char*>> layouts = {{"cluster-dp2.yaml", "rwkv6"},
                                                              {"cluster-tp2.yaml", "rwkv7"},
                                                              {"cluster-pp2.yaml", "rwkv6"},
                                                              {"cluster-tp2pp2.yaml", "rwkv7"}};
  if (const char* all = std::getenv("RADLADS_TEST_ALL_LAYOUTS"); all != nullptr && all[0] == '1') {
    for (auto [cluster, arch] : std::vector(layouts)) {
      layouts.push_back({cluster, std::string(arch) == "rwkv6" ? "rwkv7" : "rwkv6"});
    }
  }
  for (auto [cluster, arch] : layouts) {
    const std::string one = Reference(arch, "cluster.yaml");
    const std::string run = Reference(arch, cluster);
    ASSERT_TRUE(PathExists(run + "/output/eval.json")) << cluster;
    ExpectClose(Eval(run), Eval(one), cluster);
    // The distill checkpoint is written as one shard per model-parallel rank.
    const std::string layout = std::string(cluster).substr(8);
    if (layout.starts_with("tp2")) {
      EXPECT_TRUE(PathExists(run + "/checkpoints/distill/step-000008-tp1of2-pp0of" +
                             std::string(layout.find("pp2") != std::string::npos ? "2" : "1") + ".safetensors"))
          << cluster;
    }
    const std::string again = RunToEnd(arch, cluster, "again-" + std::string(arch) + "-" + cluster,
                                       WorkersFlag(cluster));
    EXPECT_EQ(Weights(again), Weights(run)) << cluster << ": a rerun of the same layout";
  }
}

TEST_F(Workers, KilledWorkersCostTimeNotResults) {
  const std::string ref = Reference("rwkv6", "cluster-pp2.yaml");
  const std::string run = Run("killed");
  const pid_t pid = Spawn({kCoord, "run", Config("rwkv6", "cluster-pp2.yaml", "killed"), "--run", run,
                           "--lease-ttl-ms", std::to_string(kTtlMs), "--max-worker-restarts", "3"},
                          dir_->File("killed.log"));
  int status = 0;
  int kills = 0;
  for (const std::string& milestone :
       {RunLayout::CacheFile(2, 0), RunLayout::GangShardFile("distill", 3, 1, 0, 2, 1)}) {
    if (!WaitForFile(run + "/" + milestone, pid, &status)) break;
    const std::vector<pid_t> workers = ProcessesWith("radlads-worker", run);
    ASSERT_FALSE(workers.empty()) << "no worker process at " << milestone;
    ::kill(workers.back(), SIGKILL);
    ++kills;
  }
  const int code = kills == 2 ? WaitExit(pid) : (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  ASSERT_EQ(kills, 2) << "the run ended before both kills";
  ASSERT_EQ(code, 0) << *ReadFileToString(dir_->File("killed.log"));
  EXPECT_EQ(Weights(run), Weights(ref)) << "the exported weights differ from the uninterrupted pp 2 run";
  Result<std::string> log = ReadFileToString(dir_->File("killed.log"));
  EXPECT_NE(log->find("starting it again"), std::string::npos) << *log;
}

TEST_F(Workers, RestartsAreBoundedAndTheRunFailsWithTheReason) {
  const std::string run = Run("no-restarts");
  const std::string cfg = Config("rwkv7", "cluster-dp2.yaml", "no-restarts");
  const pid_t pid = Spawn({kCoord, "run", cfg, "--run", run, "--max-worker-restarts", "0"},
                          dir_->File("no-restarts.log"));
  int status = 0;
  ASSERT_TRUE(WaitForFile(run + "/" + RunLayout::CacheFile(1, 0), pid, &status));
  const std::vector<pid_t> workers = ProcessesWith("radlads-worker", run);
  ASSERT_FALSE(workers.empty());
  ::kill(workers.front(), SIGKILL);
  EXPECT_EQ(WaitExit(pid), 1);
  Result<std::string> log = ReadFileToString(dir_->File("no-restarts.log"));
  EXPECT_NE(log->find("the worker job ended 1 times while the run had work"), std::string::npos) << *log;
  EXPECT_NE(log->find("run the same command again to resume"), std::string::npos) << *log;
  // Nothing committed was lost: the same command finishes the run.
  Outcome r = Exec(kCoord + " run " + cfg + " --run " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Weights(run), Weights(Reference("rwkv7", "cluster-dp2.yaml")));
}

TEST_F(Workers, Step2CheckpointResumesOnAnotherDataParallelSize) {
  const std::string ref = Reference("rwkv7", "cluster.yaml");
  for (auto [first, second] : {std::pair{"cluster-dp2.yaml", "cluster.yaml"}, std::pair{"cluster.yaml", "cluster-dp2.yaml"}}) {
    const std::string name = std::string("relaid-") + first;
    const std::string run = Run(name);
    const std::string cfg = Config("rwkv7", first, name);
    const pid_t pid = Spawn({kCoord, "run", cfg, "--run", run}, dir_->File(name + ".log"));
    int status = 0;
    ASSERT_TRUE(WaitForFile(run + "/" + RunLayout::GangFile("distill", 3), pid, &status)) << first;
    ::kill(pid, SIGTERM);
    ASSERT_EQ(WaitExit(pid), 3) << *ReadFileToString(dir_->File(name + ".log"));
    Outcome r = Exec(kCoord + " run " + cfg + " --run " + run + " --cluster " + testing::TestDataPath(std::string("run/") + second));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("it continues as"), std::string::npos) << r.out;
    ExpectClose(Eval(run), Eval(ref), name);
    // The ledger: every distill token credited exactly once.
    Result<std::unique_ptr<StateStore>> store = StateStore::Open(run + "/state");
    ASSERT_TRUE(store.ok()) << store.status().message();
    const RunState s = (*store)->Snapshot();
    const StepLedger& d = s.ledger().Of(TaskType::kDistill);
    EXPECT_EQ(d.credited, d.budget) << name;
    EXPECT_GT(d.budget, 0);
  }
}

TEST_F(Workers, SigtermDrainsCoordinatorAndWorkersAndTheSameCommandResumes) {
  const std::string ref = Reference("rwkv7", "cluster-tp2.yaml");
  const std::string run = Run("drained");
  const std::string cfg = Config("rwkv7", "cluster-tp2.yaml", "drained");
  int drains = 0;
  for (const std::string& milestone : {RunLayout::CacheFile(2, 0), RunLayout::GangShardFile("distill", 3, 2, 1, 1, 0)}) {
    const pid_t pid = Spawn({kCoord, "run", cfg, "--run", run}, dir_->File("drained.log"));
    int status = 0;
    if (!WaitForFile(run + "/" + milestone, pid, &status)) continue;
    ::kill(pid, SIGTERM);
    const int code = WaitExit(pid);
    ASSERT_EQ(code, 3) << milestone << "\n" << *ReadFileToString(dir_->File("drained.log"));
    EXPECT_TRUE(ProcessesWith("radlads-worker", run).empty()) << "workers outlived the drain";
    ++drains;
  }
  EXPECT_EQ(drains, 2);
  Outcome r = Exec(kCoord + " run " + cfg + " --run " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Weights(run), Weights(ref));
}

TEST_F(Workers, WorkersReconnectToARestartedCoordinator) {
  const std::string ref = Reference("rwkv6", "cluster-dp2.yaml");
  const std::string run = Run("restarted");
  const std::string cfg = Config("rwkv6", "cluster-dp2.yaml", "restarted");
  const pid_t pid = Spawn({kCoord, "run", cfg, "--run", run}, dir_->File("restarted.log"));
  int status = 0;
  ASSERT_TRUE(WaitForFile(run + "/" + RunLayout::GangFile("distill", 3), pid, &status));
  ::kill(pid, SIGKILL);  // the coordinator dies mid step 2; its worker job (own process group) lives on
  WaitExit(pid);
  const std::vector<pid_t> job = ProcessesWith("mpirun", run);
  ASSERT_EQ(job.size(), 1u) << "the worker job did not outlive its coordinator";
  // A new coordinator for the same run directory (as a requeued Slurm job would start): the
  // workers find it through RUN/coordinator.addr, join it, finish the run, hear that it is over
  // and leave; the coordinator exits once every worker has heard it.
  Outcome r = Exec(kCoord + " serve " + run + " --expiry-period-ms 200");
  EXPECT_EQ(r.code, 0) << r.out;
  for (int i = 0; i < 300 && !ProcessesWith("mpirun", run).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ProcessesWith("mpirun", run).empty()) << "the worker job did not leave when the run was over";
  EXPECT_EQ(Weights(run), Weights(ref));
  Result<std::string> log = ReadFileToString(run + "/logs/worker-job-0.log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("registering again"), std::string::npos) << *log;
}

TEST_F(Workers, DefaultClusterAndSmallCacheWindowRunToTheEnd) {
  // No `cluster:`: local-cpu, two workers at dp 2; `run` starts them.
  const std::string plain = RunToEnd("rwkv7", "", "no-cluster");
  ExpectClose(Eval(plain), Eval(Reference("rwkv7", "cluster.yaml")), "local-cpu");
  // A cache window smaller than the step-1 cache: consumed segments are evicted as it streams.
  const std::string run = RunToEnd("rwkv7", "cluster-small-cache.yaml", "small-cache");
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(run + "/state");
  ASSERT_TRUE(store.ok()) << store.status().message();
  const RunState s = (*store)->Snapshot();
  EXPECT_GT(s.config().cache_window, 0);
  EXPECT_GT(s.metrics().segments_evicted, 0);
  ExpectClose(Eval(run), Eval(Reference("rwkv7", "cluster.yaml")), "small cache window");
}

}  // namespace
}  // namespace radlads
