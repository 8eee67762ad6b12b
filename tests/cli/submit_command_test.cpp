// `radlads-coord submit --dry-run` (cli/submit_command.h): the job script it writes, line by
// line; what it refuses before anything is queued; --nodes; the template renderer.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "base/file.h"
#include "base/status.h"
#include "cli/submit_command.h"
#include "configs/cluster.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

const std::string kSrc = RADLADS_SOURCE_DIR;

// A run config for the shortened RAD-RWKV7 recipe on `cluster_yaml` (written beside it).
std::string WriteConfig(const testing::ScratchDir& dir, const std::string& cluster_yaml) {
  const std::string cluster = dir.File("cluster.yaml");
  testing::WriteBytes(cluster, cluster_yaml);
  const std::string data = kSrc + "/data/austen/";
  const std::string cfg = "teacher: " + kSrc + "/data/tiny-teacher\n" +
                          "recipe: " + testing::TestDataPath("run/recipe-rwkv7.yaml") + "\n" +
                          "cluster: " + cluster + "\n" + "data:\n  train: " + data + "northanger_abbey.txt.gz\n" +
                          "  heldout: " + data + "persuasion.txt.gz\n";
  const std::string path = dir.File("run.yaml");
  testing::WriteBytes(path, cfg);
  return path;
}

const char* kTwoNodes =
    "description: two test nodes\nnodes: 2\ngpus_per_node: 0\ncpu_workers: 1\nparallel:\n  tp: 1\n  pp: 1\n"
    "  dp: 2\ncache_disk_budget_gib: 1\ncheckpoint:\n  every_steps: 3\n  every_minutes: 0\n"
    "slurm:\n  partition: debug\n  account: proj7\n  time_limit: \"1:30:00\"\n  signal_lead_seconds: 90\n";

struct Submitted {
  int code = -1;
  std::string out, err;
};

Submitted DryRun(SubmitArgs a) {
  std::ostringstream out, err;
  a.dry_run = true;
  a.out = &out;
  a.err = &err;
  a.host_memory_gib = 16.0;
  a.coord_binary = "/opt/radlads/bin/radlads-coord";
  Submitted s;
  s.code = RunSubmitCommand(a);
  s.out = out.str();
  s.err = err.str();
  return s;
}

std::string Directive(const std::string& script, const std::string& name) {
  const std::string key = "#SBATCH --" + name + "=";
  const auto p = script.find(key);
  if (p == std::string::npos) return "(missing)";
  return script.substr(p + key.size(), script.find('\n', p) - p - key.size());
}

TEST(SubmitDryRun, TheJobScriptHasEveryDirectiveFromThePlanAndTheLayout) {
  testing::ScratchDir dir;
  SubmitArgs a;
  a.config = WriteConfig(dir, kTwoNodes);
  a.run_dir = dir.File("run");
  a.sbatch_args = {"--qos=high"};
  const Submitted s = DryRun(a);
  ASSERT_EQ(s.code, kExitOk) << s.err;
  auto written = ReadFileToString(dir.File("run/slurm/job.sbatch"));
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, s.out);  // what was printed is what the job runs
  const std::string& js = s.out;
  EXPECT_EQ(js.rfind("#!/usr/bin/env bash\n", 0), 0u);
  EXPECT_EQ(Directive(js, "job-name"), "radlads-run");
  EXPECT_EQ(Directive(js, "nodes"), "2");
  EXPECT_EQ(Directive(js, "ntasks-per-node"), "1");
  EXPECT_EQ(Directive(js, "partition"), "debug");
  EXPECT_EQ(Directive(js, "account"), "proj7");
  EXPECT_EQ(Directive(js, "time"), "1:30:00");
  EXPECT_EQ(Directive(js, "open-mode"), "append");
  EXPECT_EQ(Directive(js, "output"), dir.File("run") + "/slurm/job-%j.out");
  EXPECT_NE(js.find("\n#SBATCH --requeue\n"), std::string::npos);
  EXPECT_EQ(js.find("--gpus-per-node"), std::string::npos);  // a CPU cluster
  // The lead: the layout's 90 s is below the derived 2 x drain + 60 s, which wins.
  const std::string signal = Directive(js, "signal");
  ASSERT_EQ(signal.rfind("B:USR1@", 0), 0u) << signal;
  const int lead = std::stoi(signal.substr(7));
  EXPECT_GE(lead, 90 + 0);
  EXPECT_GE(lead, 60);
  EXPECT_LT(lead, 90 * 60);
  EXPECT_NE(js.find("drain: optimizer step <="), std::string::npos);
  // Every #SBATCH line is followed by its comment; nothing is left unrendered.
  std::istringstream lines(js);
  std::string line, prev;
  int directives = 0;
  while (std::getline(lines, line)) {
    if (prev.rfind("#SBATCH ", 0) == 0) {
      ++directives;
      EXPECT_EQ(line.rfind("# ", 0), 0u) << "no comment after: " << prev;
    }
    prev = line;
  }
  EXPECT_EQ(directives, 10);  // job-name nodes ntasks-per-node partition account time requeue signal open-mode output
  EXPECT_EQ(js.find("{{"), std::string::npos);
  // The coordinator: srun workers on both nodes, on this node's address, the binary given.
  EXPECT_NE(js.find("/opt/radlads/bin/radlads-coord}"), std::string::npos);
  EXPECT_NE(js.find("run " + a.config + " --run " + dir.File("run") + " --workers 2 --workers-per-node 1"),
            std::string::npos);
  EXPECT_NE(js.find("--launcher srun --listen \"$addr:0\""), std::string::npos);
  EXPECT_NE(js.find("--qos=high"), std::string::npos);  // recorded in a comment
  EXPECT_NE(js.find("trap on_usr1 USR1"), std::string::npos);
  EXPECT_LT(js.find("trap on_usr1 USR1"), js.find("\"$coord\" run"));  // the trap comes first
  EXPECT_NE(s.err.find("not submitted (--dry-run)"), std::string::npos);
}

TEST(SubmitDryRun, FlagsOverrideTheLayoutAndNodesScaleTheDataParallelDegree) {
  testing::ScratchDir dir;
  SubmitArgs a;
  a.config = WriteConfig(dir, kTwoNodes);
  a.run_dir = dir.File("run");
  a.nodes = 4;
  a.partition = "long";
  a.time = "2-00:00:00";
  a.job_name = "convert-7b";
  const Submitted s = DryRun(a);
  ASSERT_EQ(s.code, kExitOk) << s.err;
  EXPECT_EQ(Directive(s.out, "nodes"), "4");
  EXPECT_EQ(Directive(s.out, "partition"), "long");
  EXPECT_EQ(Directive(s.out, "time"), "2-00:00:00");
  EXPECT_EQ(Directive(s.out, "job-name"), "convert-7b");
  EXPECT_NE(s.out.find("--workers 4 --workers-per-node 1"), std::string::npos);
  EXPECT_NE(s.out.find("--cluster " + dir.File("run/slurm/cluster.yaml")), std::string::npos);
  Result<Cluster> c = LoadCluster(dir.File("run/slurm/cluster.yaml"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->nodes, 4);
  EXPECT_EQ(c->parallel.dp, 4);
  EXPECT_EQ(c->slurm->partition, "debug");  // the rest of the layout unchanged
}

TEST(SubmitDryRun, WhatCannotRunIsRefusedBeforeAnythingIsQueued) {
  testing::ScratchDir dir;
  SubmitArgs a;
  a.config = WriteConfig(dir, kTwoNodes);
  a.run_dir = dir.File("run");
  a.time = "1";  // one minute: shorter than the drain warning's lead
  Submitted s = DryRun(a);
  EXPECT_EQ(s.code, kExitInvalidInput);
  EXPECT_NE(s.err.find("before the time limit"), std::string::npos) << s.err;
  EXPECT_FALSE(PathExists(dir.File("run/slurm/job.sbatch")));
  a.time = "soon";
  s = DryRun(a);
  EXPECT_EQ(s.code, kExitInvalidInput);
  EXPECT_NE(s.err.find("--time 'soon'"), std::string::npos) << s.err;
  a.time = "";
  a.nodes = 3;  // dp 3 does not divide the distill batch of 8: refused by the planner
  s = DryRun(a);
  EXPECT_EQ(s.code, kExitInvalidInput);
  EXPECT_NE(s.err.find("dp"), std::string::npos) << s.err;
  a.nodes = 0;
  a.run_dir = dir.File("run with space");
  s = DryRun(a);
  EXPECT_EQ(s.code, kExitInvalidInput);
  EXPECT_NE(s.err.find("letters, digits"), std::string::npos) << s.err;
  a.run_dir = dir.File("run2");
  a.config = dir.File("missing.yaml");
  EXPECT_EQ(DryRun(a).code, kExitInvalidInput);
}

TEST(JobTemplate, RenderingRefusesUnknownAndUnusedPlaceholders) {
  EXPECT_EQ(*RenderTemplate("a {{X}} b {{X}}", {{"X", "1"}}), "a 1 b 1");
  EXPECT_EQ(RenderTemplate("a {{Y}}", {{"X", "1"}}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RenderTemplate("a", {{"X", "1"}}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(RenderTemplate("a {{X", {{"X", "1"}}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(std::string(BuiltinJobTemplate()).find("{{LEAD}}"), std::string::npos);
}

}  // namespace
}  // namespace radlads
