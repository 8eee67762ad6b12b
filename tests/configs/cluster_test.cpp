// Cluster layouts: worker counts, the parallel layout rule, optional blocks and bad input.
#include "configs/cluster.h"

#include <gtest/gtest.h>

#include "tests/configs/config_test_util.h"

namespace radlads {
namespace {

using radlads::testing::ErrorAt;

constexpr const char* kGpuCluster =
    "nodes: 2\n"                     // 1
    "gpus_per_node: 4\n"             // 2
    "gpu:\n"                         // 3
    "  name: Test GPU\n"             // 4
    "  memory_gib: 80\n"             // 5
    "  peak_tflops_bf16: 900\n"      // 6
    "cache_disk_budget_gib: 100\n";  // 7

std::string With(std::string_view from, std::string_view to, std::string text = kGpuCluster) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

Status Parse(const std::string& text) { return ParseClusterYaml(text, "c.yaml").status(); }

TEST(Cluster, DefaultsAndDerivedLayout) {
  auto c = ParseClusterYaml(kGpuCluster, "clusters/two.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "two");
  EXPECT_TRUE(c->HasGpus());
  EXPECT_EQ(c->WorkerCount(), 8);
  EXPECT_EQ(c->parallel.tp, 1);
  EXPECT_EQ(c->parallel.pp, 1);
  EXPECT_EQ(c->parallel.dp, 8) << "dp defaults to workers / (tp*pp)";
  EXPECT_EQ(c->checkpoint.every_steps, 0);
  EXPECT_EQ(c->checkpoint.every_minutes, 30);
  EXPECT_FALSE(c->cost_per_gpu_hour_usd.has_value());
  EXPECT_FALSE(c->slurm.has_value());
  EXPECT_FALSE(c->interconnect.has_value());
  ASSERT_TRUE(c->gpu.has_value());
  EXPECT_EQ(c->gpu->memory_gib, 80.0);

  auto tp = ParseClusterYaml(std::string(kGpuCluster) + "parallel:\n  tp: 4\n", "c.yaml");
  ASSERT_TRUE(tp.ok()) << tp.status().ToString();
  EXPECT_EQ(tp->parallel.dp, 2);
}

TEST(Cluster, OptionalBlocks) {
  auto c = ParseClusterYaml(std::string(kGpuCluster) +
                                "cost_per_gpu_hour_usd: 2.5\n"
                                "interconnect:\n  intra_node_gbps: 900\n"
                                "slurm:\n  partition: gpu\n  time_limit: \"1-12:00:00\"\n",
                            "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->cost_per_gpu_hour_usd, 2.5);
  EXPECT_EQ(c->interconnect->intra_node_gbps, 900.0);
  EXPECT_EQ(c->interconnect->inter_node_gbps, 0.0);
  EXPECT_EQ(c->slurm->partition, "gpu");
  EXPECT_EQ(c->slurm->time_limit, "1-12:00:00");
  EXPECT_TRUE(c->slurm->requeue);
  EXPECT_EQ(c->slurm->account, "");
  EXPECT_EQ(c->slurm->signal_lead_seconds, 300);
}

TEST(Cluster, LayoutMustCoverEveryWorker) {
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "parallel:\n  tp: 4\n  pp: 1\n  dp: 1\n"),
                      "c.yaml", 8, {"parallel: tp·pp·dp = 4·1·1 = 4 must equal the 8 workers"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "parallel:\n  tp: 3\n"), "c.yaml", 8,
                      {"parallel: tp·pp = 3 does not divide the 8 workers"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "parallel:\n  tp: 0\n"), "c.yaml", 9,
                      {"parallel.tp: expected an integer in [1, 1048576], got 0"}));
}

TEST(Cluster, GpuAndCpuWorkersAreExclusive) {
  EXPECT_TRUE(ErrorAt(Parse(With("gpu:\n  name: Test GPU\n  memory_gib: 80\n  "
                                 "peak_tflops_bf16: 900\n",
                                 "")),
                      "c.yaml", 1, {"missing required key `gpu`"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "cpu_workers: 2\n"), "c.yaml", 8,
                      {"cpu_workers: applies only when gpus_per_node is 0"}));
  const std::string cpu = "nodes: 1\ngpus_per_node: 0\ncache_disk_budget_gib: 1\n";
  EXPECT_TRUE(ErrorAt(Parse(cpu), "c.yaml", 1, {"cpu_workers", "needs cpu_workers >= 1"}));
  auto c = ParseClusterYaml(cpu + "cpu_workers: 2\n", "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->HasGpus());
  EXPECT_EQ(c->WorkerCount(), 2);
  EXPECT_EQ(c->parallel.dp, 2);
  EXPECT_TRUE(ErrorAt(Parse(cpu + "cpu_workers: 2\ngpu:\n  name: x\n  memory_gib: 1\n"
                                  "  peak_tflops_bf16: 1\n"),
                      "c.yaml", 5, {"gpu: gpus_per_node is 0"}));
}

TEST(Cluster, BadValues) {
  EXPECT_TRUE(ErrorAt(Parse(With("memory_gib: 80", "memory_gib: -1")), "c.yaml", 5,
                      {"gpu.memory_gib: expected a positive number, got -1"}));
  EXPECT_TRUE(ErrorAt(Parse(With("  name: Test GPU\n", "")), "c.yaml", 3,
                      {"gpu: missing required key `name`"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "slurm:\n  partition: p\n"
                                                       "  time_limit: \"1 day\"\n"),
                      "c.yaml", 10, {"slurm.time_limit: expected a Slurm time"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "checkpoint:\n  every_minutes: 0\n"),
                      "c.yaml", 8, {"checkpoint: every_steps and every_minutes are both 0"}));
  EXPECT_TRUE(ErrorAt(Parse(std::string(kGpuCluster) + "gpus_per_nodes: 8\n"), "c.yaml", 8,
                      {"did you mean `gpus_per_node`?"}));
  for (const char* ok : {"30", "30:00", "12:30:00", "2-00", "2-12:00", "2-12:00:00", "UNLIMITED"}) {
    EXPECT_TRUE(
        Parse(std::string(kGpuCluster) + "slurm:\n  partition: p\n  time_limit: \"" + ok + "\"\n")
            .ok())
        << ok;
  }
  for (const char* bad : {"", "1:2:3:4", "12:60x", "-1", "1-", "a"}) {
    EXPECT_FALSE(
        Parse(std::string(kGpuCluster) + "slurm:\n  partition: p\n  time_limit: \"" + bad + "\"\n")
            .ok())
        << bad;
  }
}

}  // namespace
}  // namespace radlads
