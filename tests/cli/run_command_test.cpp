// `radlads-coord run`: a shortened embedded default end to end for both architectures (real
// binary, real HDF5 cache, real RocksDB state), a drain + resume that must reproduce the
// uninterrupted result exactly, and the bad-input cases that must leave nothing behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/checksum.h"
#include "base/file.h"
#include "contract/run_layout.h"
#include "pipeline/model_io.h"
#include "pipeline/student_model.h"
#include "pipeline/train_steps.h"
#include "state/state_store.h"
#include "storage/activation_cache.h"
#include "tests/testing/test_util.h"
#include "worker/checkpoint_io.h"
#include "worker/eval_report.h"

namespace radlads {
namespace {

const std::string kCoord = RADLADS_COORD_BIN;
const std::string kSrc = RADLADS_SOURCE_DIR;

using RunResult = testing::CommandResult;
RunResult Exec(const std::string& cmd) { return testing::RunCommand(cmd); }

// `radlads-coord run CFG --run RUN` as a child process, its output discarded.
pid_t StartRun(const std::string& cfg, const std::string& run) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    ::execl(kCoord.c_str(), kCoord.c_str(), "run", cfg.c_str(), "--run", run.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

// A run config in `dir` for the test recipe of `arch`, training on one novel.
std::string WriteConfig(const testing::ScratchDir& dir, const std::string& arch, const std::string& recipe = "",
                        const std::string& teacher = "", const std::string& train = "") {
  const std::string data = kSrc + "/data/austen/";
  std::string cfg = "teacher: " + (teacher.empty() ? kSrc + "/data/tiny-teacher" : teacher) + "\n" +
                    "recipe: " + (recipe.empty() ? testing::TestDataPath("run/recipe-" + arch + ".yaml") : recipe) + "\n" +
                    "cluster: " + testing::TestDataPath("run/cluster.yaml") + "\n" +
                    "data:\n  train: " + (train.empty() ? data + "northanger_abbey.txt.gz" : train) + "\n" +
                    "  heldout: " + data + "persuasion.txt.gz\n" +
                    "eval:\n  max_tokens: 4096\n  seq_len: 64\n  batch: 16\n  generate_tokens: 8\n";
  const std::string path = dir.File("run-" + arch + ".yaml");
  testing::WriteBytes(path, cfg);
  return path;
}

Result<std::unique_ptr<ParamSet>> LayerParams(const RunLayout& run, const StudentConfig& cfg, int layer,
                                              const std::string& rel) {
  auto p = std::make_unique<ParamSet>();
  DeclareStudentMixerParams(cfg, layer, *p);
  RADLADS_RETURN_IF_ERROR(LoadTrainingCheckpoint(run.dir, FileRecord{rel, 0, ""}, *p, true).status());
  return p;
}

// The layer's state after step 1: the last segment's final checkpoint (names sort by segment,
// then step).
std::string LastAlignFile(const RunLayout& run, int layer) {
  const std::string dir = DirName(RunLayout::TransferFile(layer));
  std::string last;
  for (const auto& e : std::filesystem::directory_iterator(run.Abs(dir))) {
    std::string name = e.path().filename().string();
    if (name[0] == 'S' && name > last) last = name;
  }
  return dir + "/" + last;
}

// The micro-batch step 1 ran at: the align step's entry in the run's plan.json (0 if absent).
std::int64_t AlignMicroBatch(const RunLayout& run) {
  auto text = ReadFileToString(run.Abs("plan.json"));
  if (!text.ok()) return 0;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("steps")) return 0;
  for (const auto& s : j["steps"]) {
    if (s.value("kind", "") == "align") return s.value("micro_batch", std::int64_t{0});
  }
  return 0;
}

class LocalRun : public ::testing::TestWithParam<std::string> {};

TEST_P(LocalRun, WholeProtocolEarnsEachStepAndExportsExactly) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir, GetParam());
  const RunLayout run{dir.File("run")};
  const auto started = std::chrono::steady_clock::now();
  RunResult r = Exec(kCoord + " run " + cfg + " --run " + run.dir);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("greedy continuation"), std::string::npos) << r.out;

  // The phase profile (worker/run_profile.h): every phase the run went through, each op family
  // where it runs, and the phases of the one process adding up to its wall time.
  {
    EXPECT_NE(r.out.find("profile: "), std::string::npos) << r.out;
    auto text = ReadFileToString(run.Abs(RunLayout::ProfileFile()));
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    const auto prof = nlohmann::json::parse(*text);
    EXPECT_EQ(prof.at("processes"), 1);
    EXPECT_TRUE(prof.at("skipped").empty()) << *text;
    const double run_wall = prof.at("wall_seconds").get<double>();
    EXPECT_LE(run_wall, wall) << "measured inside the command";
    EXPECT_GT(run_wall, 0.5 * wall) << *text;
    std::map<std::string, nlohmann::json> phases;
    double sum = 0;
    for (const auto& p : prof.at("phases")) {
      phases[p.at("phase").get<std::string>()] = p;
      sum += p.at("seconds").get<double>();
      double families = 0;
      for (const auto& [fam, s] : p.at("families").items()) families += s.get<double>();
      EXPECT_NEAR(families, p.at("seconds").get<double>(), 1e-3) << p.dump() << ": families and other add up";
    }
    EXPECT_LE(sum, run_wall + 1e-3) << *text;
    EXPECT_GT(sum, 0.95 * run_wall) << *text;
    for (const char* name : {"setup", "transfer", "cache", "align", "distill", "eval", "export", "scheduling"}) {
      ASSERT_TRUE(phases.count(name)) << name << " missing: " << *text;
    }
    const auto fam = [&](const char* phase, const char* family) {
      return phases.at(phase).at("families").at(family).get<double>();
    };
    for (const char* f : {"gemm", "recurrence", "head_loss", "optimizer", "scheduling"}) {
      EXPECT_GT(fam("distill", f), 0) << f << ": " << *text;
    }
    EXPECT_GT(fam("align", "recurrence"), 0) << *text;
    EXPECT_GT(fam("cache", "attention"), 0) << *text;
    EXPECT_GT(fam("cache", "io"), 0) << *text;
    EXPECT_GT(fam("eval", "head_loss"), 0) << *text;
    EXPECT_EQ(phases.at("distill").at("tasks"), 1);
  }

  // eval.json: step 1 lowers the KL, step 2 lowers it further.
  auto text = ReadFileToString(run.Abs(RunLayout::EvalFile()));
  ASSERT_TRUE(text.ok());
  auto rep = ParseEvalReport(*text, "eval.json");
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_LT(rep->after_step1.kl, 0.7 * rep->after_step0.kl) << *text;
  EXPECT_LT(rep->student.kl, rep->after_step1.kl) << *text;
  EXPECT_EQ(rep->tokens_conversion, 8192 + 4096);
  EXPECT_GT(rep->tokens_teacher_pretraining, 0);

  // Bounded disk: what the plan estimated (plan.json "disk") is what the checkpoints take once
  // the run has completed, within the safetensors headers (a few KiB per file).
  {
    auto plan_text = ReadFileToString(run.Abs(RunLayout::PlanFile()));
    ASSERT_TRUE(plan_text.ok());
    const auto disk = nlohmann::json::parse(*plan_text).at("disk");
    std::int64_t measured = 0, files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(run.Abs("checkpoints"))) {
      if (e.is_regular_file()) {
        measured += static_cast<std::int64_t>(e.file_size());
        ++files;
      }
    }
    const auto estimate = disk.at("checkpoint_bytes").get<std::int64_t>();
    constexpr std::int64_t kHeaderBytesPerFile = 16 * 1024;
    EXPECT_GE(measured, estimate) << "the estimate counts tensor bytes only";
    EXPECT_LE(measured, estimate + files * kHeaderBytesPerFile) << files << " files";
    EXPECT_LE(measured, disk.at("checkpoint_peak_bytes").get<std::int64_t>() + files * kHeaderBytesPerFile);
  }

  // The HDF5 cache round-trips: the teacher's mixer inputs/outputs, recomputed from the cached
  // tokens, equal what the cache holds, bit for bit. Like with like: the recomputation runs the
  // first micro-batch of segment 0 at the run's own micro-batch (plan.json), because GEMM
  // results may differ in the last bits between batch shapes (docs/conversion.md, "Determinism").
  auto teacher = LoadQwen2Teacher(kSrc + "/data/tiny-teacher");
  ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
  const std::int64_t mb = AlignMicroBatch(run);
  ASSERT_GT(mb, 0);
  auto cache = ActivationCacheReader::Open(run.Abs(RunLayout::CacheFile(0, 0)));
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  const ActivationCacheMeta& m = (*cache)->meta();
  ASSERT_GE(m.samples, mb);
  Tensor hidden = Tensor::Empty({mb, m.seq_len, m.hidden});
  Tensor tokens = Tensor::Empty({mb, m.seq_len}, DType::kI32);
  ASSERT_TRUE((*cache)->ReadStageOutput(0, hidden, tokens).ok());
  std::vector<Tensor> ins(static_cast<std::size_t>(m.layers())), outs(ins.size());
  DecoderForwardOptions fo;
  fo.hook = [&](int l, const Tensor& in, const Tensor& out, const Tensor&) {
    ins[static_cast<std::size_t>(l)] = in.Clone();
    outs[static_cast<std::size_t>(l)] = out.Clone();
  };
  Tensor x = teacher->model->Embed(tokens);
  Tensor y = teacher->model->RunLayers(x, 0, static_cast<int>(m.last_layer), fo);
  ASSERT_EQ(std::memcmp(y.raw(), hidden.raw(), y.nbytes()), 0) << "stage output";
  for (std::int64_t l = 0; l < m.layers(); ++l) {
    Tensor in = Tensor::Empty({mb, m.seq_len, m.hidden}), out = Tensor::Empty({mb, m.seq_len, m.hidden});
    ASSERT_TRUE((*cache)->ReadLayer(l, 0, in, out).ok());
    EXPECT_EQ(std::memcmp(in.raw(), ins[static_cast<std::size_t>(l)].raw(), in.nbytes()), 0) << "layer " << l;
    EXPECT_EQ(std::memcmp(out.raw(), outs[static_cast<std::size_t>(l)].raw(), out.nbytes()), 0) << "layer " << l;
  }

  // Step 1 lowers the alignment loss of every layer on its cached pairs.
  auto student_cfg = LoadStudentConfig(run.Abs(RunLayout::OutputModelDir()));
  ASSERT_TRUE(student_cfg.ok());
  for (int l = 0; l < static_cast<int>(m.layers()); ++l) {
    Tensor in = Tensor::Empty({m.samples, m.seq_len, m.hidden}), out = Tensor::Empty({m.samples, m.seq_len, m.hidden});
    ASSERT_TRUE((*cache)->ReadLayer(l, 0, in, out).ok());
    Tensor vf;
    if (student_cfg->arch == StudentArch::kRwkv7 && l > 0) {
      vf = Tensor::Empty({m.samples, m.seq_len, m.value_first_width});
      ASSERT_TRUE((*cache)->ReadValueFirst(0, vf).ok());
    }
    double loss[2];
    const std::string files[2] = {RunLayout::TransferFile(l), LastAlignFile(run, l)};
    for (int k = 0; k < 2; ++k) {
      auto p = LayerParams(run, *student_cfg, l, files[k]);
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      auto mixer = MakeStudentMixer(*student_cfg, l, **p, {});
      AlignTrainer t(*student_cfg, l, **p, *mixer, OptimizerSettings{});
      loss[k] = t.Evaluate(in, out, vf);
    }
    EXPECT_LT(loss[1], loss[0]) << "layer " << l;
  }

  // The exported model reloads to exactly the logits of the trained student.
  auto exported = LoadStudent(run.Abs(RunLayout::OutputModelDir()));
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  auto trained = std::make_unique<ParamSet>();
  DeclareParams(StudentParamSpecs(*student_cfg), *trained);
  ASSERT_TRUE(LoadTrainingCheckpoint(run.dir, FileRecord{RunLayout::GangFile("distill", 8), 0, ""}, *trained, true).ok());
  StudentModel mem = MakeStudentModel(*student_cfg, std::move(trained));
  Tensor ids = tokens.Rows(0, 1);
  Tensor a = exported->model->Logits(exported->model->Forward(ids, {}));
  Tensor b = mem.model->Logits(mem.model->Forward(ids, {}));
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
  EXPECT_TRUE(PathExists(run.Abs("output/model/tokenizer.json")));

  // Re-running a finished run is a no-op that succeeds; its own few seconds join the profile.
  RunResult again = Exec(kCoord + " run " + cfg + " --run " + run.dir);
  EXPECT_EQ(again.code, 0) << again.out;
  auto text2 = ReadFileToString(run.Abs(RunLayout::ProfileFile()));
  ASSERT_TRUE(text2.ok());
  EXPECT_EQ(nlohmann::json::parse(*text2).at("processes"), 2);
}

INSTANTIATE_TEST_SUITE_P(Architectures, LocalRun, ::testing::Values("rwkv6", "rwkv7"));

TEST(LocalRunDrain, InterruptedRunResumesToTheSameResult) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir, "rwkv7");
  // Reference: uninterrupted.
  RunResult ref = Exec(kCoord + " run " + cfg + " --run " + dir.File("ref"));
  ASSERT_EQ(ref.code, 0) << ref.out;
  // Interrupted: SIGTERM as soon as each milestone file appears (mid step 1, mid step 2, during
  // export/eval), then resume until done. Milestones, not sleeps, so a fast machine still drains.
  const std::string run = dir.File("cut");
  const std::string milestones[] = {RunLayout::CacheFile(2, 0), RunLayout::GangFile("distill", 3),
                                    RunLayout::OutputModelDir() + "/config.json"};
  int drains = 0;
  for (const std::string& milestone : milestones) {
    const pid_t pid = StartRun(cfg, run);
    int status = 0;
    bool exited = false;
    const std::string watched = run + "/" + milestone;
    while (!PathExists(watched)) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!exited) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, &status, 0);
    }
    ASSERT_TRUE(WIFEXITED(status)) << milestone;
    const int code = WEXITSTATUS(status);
    ASSERT_TRUE(code == 0 || code == 3) << "exit " << code << " at " << milestone;
    if (code == 0) break;
    ++drains;
  }
  EXPECT_GE(drains, 2) << "the run outran the SIGTERMs; the test interrupted it only " << drains << " times";
  RunResult fin = Exec(kCoord + " run " + cfg + " --run " + run);
  ASSERT_EQ(fin.code, 0) << fin.out;
  auto a = ParseEvalReport(*ReadFileToString(dir.File("ref/output/eval.json")), "ref");
  auto b = ParseEvalReport(*ReadFileToString(run + "/output/eval.json"), "cut");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->student.ce, b->student.ce);
  EXPECT_EQ(a->student.kl, b->student.kl);
  EXPECT_EQ(a->after_step1.kl, b->after_step1.kl);
  EXPECT_EQ(a->student_continuation, b->student_continuation);
  // The exported weights are bit-identical.
  auto wa = ReadFileToString(dir.File("ref/output/model/model.safetensors"));
  auto wb = ReadFileToString(run + "/output/model/model.safetensors");
  ASSERT_TRUE(wa.ok() && wb.ok());
  EXPECT_EQ(Checksum64(*wa), Checksum64(*wb));
}

// `radlads-coord drain` and `cancel` reach an in-process run (it serves its run too), and a
// drain signal sent the moment the process exists drains it rather than killing it (the drain
// signals are blocked from its first instruction: slurm/radlads-job.sbatch.in relies on it).
TEST(LocalRunControl, DrainCancelAndAnEarlySignalStopTheRunAndItResumesToTheSameWeights) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir, "rwkv7");
  RunResult ref = Exec(kCoord + " run " + cfg + " --run " + dir.File("ref"));
  ASSERT_EQ(ref.code, 0) << ref.out;
  const std::string run = dir.File("cut");
  auto start = [&] { return StartRun(cfg, run); };
  auto exit_code = [](pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  };
  // 1. SIGUSR1 as soon as the new image holds it (SigBlk), long before any handler exists.
  {
    const pid_t pid = start();
    const std::string proc = "/proc/" + std::to_string(pid) + "/status";
    for (int i = 0; i < 20000; ++i) {
      auto text = ReadFileToString(proc);
      ASSERT_TRUE(text.ok());
      const auto p = text->find("SigBlk:\t");
      ASSERT_NE(p, std::string::npos);
      if ((std::stoull(text->substr(p + 8, 16), nullptr, 16) >> 9) & 1) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    ::kill(pid, SIGUSR1);
    EXPECT_EQ(exit_code(pid), kExitRequeue);
  }
  // 2. `drain` in step 1: the run exits 3, the command 0.
  {
    const pid_t pid = start();
    while (!PathExists(run + "/" + RunLayout::CacheFile(1, 0))) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    RunResult d = Exec(kCoord + " drain " + run + " --wait 60");
    EXPECT_EQ(d.code, 0) << d.out;
    EXPECT_NE(d.out.find("drained: the coordinator exited"), std::string::npos) << d.out;
    EXPECT_EQ(exit_code(pid), kExitRequeue);
  }
  // 3. `cancel` in step 2: the run exits 4, status says so, the cancel names who.
  {
    const pid_t pid = start();
    while (!PathExists(run + "/" + RunLayout::GangFile("distill", 3))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    RunResult c = Exec(kCoord + " cancel " + run + " --wait 60");
    EXPECT_EQ(c.code, 0) << c.out;
    EXPECT_EQ(exit_code(pid), kExitCancelled);
    RunResult st = Exec(kCoord + " status " + run + " --json");
    EXPECT_NE(st.out.find("radlads-coord cancel by "), std::string::npos) << st.out;
    RunResult none = Exec(kCoord + " drain " + run + " --wait 5");
    EXPECT_EQ(none.code, 1) << none.out;
    EXPECT_NE(none.out.find("nothing is running to drain"), std::string::npos) << none.out;
  }
  // 4. The same command resumes; the weights are the uninterrupted run's.
  RunResult fin = Exec(kCoord + " run " + cfg + " --run " + run);
  ASSERT_EQ(fin.code, 0) << fin.out;
  auto wa = ReadFileToString(dir.File("ref/output/model/model.safetensors"));
  auto wb = ReadFileToString(run + "/output/model/model.safetensors");
  ASSERT_TRUE(wa.ok() && wb.ok());
  EXPECT_EQ(Checksum64(*wa), Checksum64(*wb));
  RunResult late = Exec(kCoord + " cancel " + run);
  EXPECT_EQ(late.code, kExitInvalidInput) << late.out;  // a completed run: nothing to cancel
}

// A full disk (injected in the file layer: base/fault_injection.h) while step 2 writes a
// checkpoint. Once: a transient error, retried after a backoff; the run completes with the
// uninterrupted run's weights. For good: the task fails after the run's retries, the run stops
// with exit 1 naming the file, the space it needs and the space there is, no temp file is left,
// and the same command, once the disk has room, resumes the failed run to the same weights.
TEST(LocalRunFaults, AFullDiskIsRetriedAndAFailedRunResumesOnceTheCauseIsGone) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir, "rwkv7");
  RunResult ref = Exec(kCoord + " run " + cfg + " --run " + dir.File("ref"));
  ASSERT_EQ(ref.code, 0) << ref.out;
  auto weights = [&](const std::string& run) {
    auto w = ReadFileToString(run + "/output/model/model.safetensors");
    return w.ok() ? Checksum64(*w) : 0;
  };
  const std::uint64_t want = weights(dir.File("ref"));
  // Once.
  const std::string once = dir.File("once");
  RunResult r = Exec("RADLADS_FAULTS=enospc:checkpoints/distill/step-000003=1 " + kCoord + " run " + cfg +
                     " --run " + once);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(weights(once), want);
  RunResult st = Exec(kCoord + " status " + once + " --json");
  EXPECT_NE(st.out.find("\"failures\":[{\"task\":\"distill\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("transient: IO error: checkpoint checkpoints/distill/step-000003.safetensors (needs about "),
            std::string::npos) << st.out;
  // For good (more full-disk writes than the run's retry limit of 3 allows).
  const std::string full = dir.File("full");
  r = Exec("RADLADS_FAULTS=enospc:checkpoints/distill/=100 " + kCoord + " run " + cfg + " --run " + full);
  EXPECT_EQ(r.code, kExitFailure) << r.out;
  for (const char* part : {"error: run failed: task 'distill' failed after 4 attempts",
                           "checkpoints/distill/step-000003.safetensors (needs about ",
                           "No space left on device (", " bytes free in ", "run the same command again"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(full)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  st = Exec(kCoord + " status " + full + " --json");
  EXPECT_NE(st.out.find("\"phase\":\"failed\""), std::string::npos) << st.out;
  r = Exec(kCoord + " run " + cfg + " --run " + full);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(weights(full), want);
}

// Checkpoint fallback end to end: the run stops (a full disk at step 2's final write, for good)
// with distill checkpoints at steps 3 and 6; step 6 is then corrupted. The same command resumes:
// step 6 is discarded, distill redoes steps 4-6 from step 3, and the weights are the
// uninterrupted run's; the ledger counts every distill token once and the interval as redone.
TEST(LocalRunFaults, ACorruptNewestCheckpointFallsBackToTheOneBefore) {
  testing::ScratchDir dir;
  const std::string cfg = WriteConfig(dir, "rwkv6");
  RunResult ref = Exec(kCoord + " run " + cfg + " --run " + dir.File("ref"));
  ASSERT_EQ(ref.code, 0) << ref.out;
  auto weights = [&](const std::string& run) {
    auto w = ReadFileToString(run + "/output/model/model.safetensors");
    return w.ok() ? Checksum64(*w) : 0;
  };
  const std::string run = dir.File("run");
  RunResult r = Exec("RADLADS_FAULTS=enospc:checkpoints/distill/step-000008=100 " + kCoord + " run " + cfg +
                     " --run " + run);
  ASSERT_EQ(r.code, kExitFailure) << r.out;
  const std::string newest = run + "/checkpoints/distill/step-000006.safetensors";
  ASSERT_TRUE(PathExists(newest)) << r.out;
  ASSERT_TRUE(PathExists(run + "/checkpoints/distill/step-000003.safetensors"));
  {
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff mid = f.tellg() / 2;
    f.seekg(mid);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(mid);
    f.write(&c, 1);
  }
  r = Exec(kCoord + " run " + cfg + " --run " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("its checkpoint at step 6 cannot be read"), std::string::npos) << r.out;
  EXPECT_EQ(weights(run), weights(dir.File("ref")));
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(run + "/state");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const RunState s = (*store)->Snapshot();
  const StepLedger& d = s.ledger().Of(TaskType::kDistill);
  EXPECT_EQ(d.credited, d.budget);
  EXPECT_EQ(d.redone, d.budget * 3 / 8) << "steps 4-6 of 8";
  const TaskRecord* t = s.FindTask("distill");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->discarded.size(), 1u);
  EXPECT_EQ(t->discarded[0].step, 6);
  EXPECT_NE(t->discarded[0].reason.find("does not match the committed"), std::string::npos) << t->discarded[0].reason;
  EXPECT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants().ToString();
  RunResult st = Exec(kCoord + " status " + run);
  EXPECT_NE(st.out.find("1 unreadable checkpoint discarded"), std::string::npos) << st.out;
}

TEST(LocalRunBadInput, ErrorsNameTheProblemAndLeaveNothingBehind) {
  testing::ScratchDir dir;
  auto expect_refused = [&](const std::string& cfg, const std::string& fragment) {
    const std::string run = dir.File("run-refused");
    RunResult r = Exec(kCoord + " run " + cfg + " --run " + run);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << "expected \"" << fragment << "\" in:\n" << r.out;
    EXPECT_FALSE(PathExists(run)) << "nothing may be written for refused input";
  };
  // Missing teacher directory.
  expect_refused(WriteConfig(dir, "rwkv7", "", dir.File("no-teacher")), "no-teacher");
  // Corrupt teacher: truncated weights.
  ASSERT_TRUE(CreateDirectories(dir.File("broken")).ok());
  auto cfg_json = ReadFileToString(kSrc + "/data/tiny-teacher/config.json");
  auto weights = ReadFileToString(kSrc + "/data/tiny-teacher/model.safetensors");
  ASSERT_TRUE(cfg_json.ok() && weights.ok());
  testing::WriteBytes(dir.File("broken/config.json"), *cfg_json);
  testing::WriteBytes(dir.File("broken/model.safetensors"), weights->substr(0, weights->size() / 2));
  expect_refused(WriteConfig(dir, "rwkv7", "", dir.File("broken")), "model.safetensors");
  // A recipe naming an unknown architecture: file, line and key.
  expect_refused(WriteConfig(dir, "rwkv7", testing::TestDataPath("run/recipe-bad-arch.yaml")),
                 "recipe-bad-arch.yaml:4: student.architecture");
  // A token budget larger than the dataset allows.
  testing::WriteBytes(dir.File("tiny.txt"), std::string(1000, 'a'));
  expect_refused(WriteConfig(dir, "rwkv7", "", "", dir.File("tiny.txt")), "windows");
  // A run config with an unknown key.
  testing::WriteBytes(dir.File("typo.yaml"), "teacher: x\nrecipe: y\nclustre: z\ndata:\n  train: a\n  heldout: b\n");
  expect_refused(dir.File("typo.yaml"), "typo.yaml:3: clustre");
}

}  // namespace
}  // namespace radlads
