// The fixture of the scheduler tests (tests/state/scheduler_test.cpp,
// tests/state/layer_affinity_test.cpp): a Scheduler over a fresh state store in a scratch
// directory, stepped with a FakeClock, and helpers to lease and finish tasks.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "state/scheduler.h"
#include "state/state_store.h"
#include "tests/state/state_test_util.h"
#include "tests/testing/test_util.h"

namespace radlads {

using testing::Ckpt;
using testing::MakePlan;
using testing::PlanShape;
using testing::ScratchDir;

constexpr TimeMs kTtl = 60'000;

class SchedulerTest : public ::testing::Test {
 protected:
  void Start(const std::vector<TaskSpec>& plan, int retry_limit = 3, int window = 0) {
    StateStoreOptions o;
    o.sync = false;  // process-crash safe, fast; the fsync path is tested in state_test.cpp
    auto r = StateStore::Open(dir_.File("state"), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
    RunConfig c;
    c.run_id = "sched-test";
    c.lease_ttl_ms = kTtl;
    c.retry_limit = retry_limit;
    c.cache_window = window;
    ASSERT_TRUE(sched_->CreateRun(c, plan).ok());
  }

  void Reopen() {
    sched_.reset();
    store_.reset();
    auto r = StateStore::Open(dir_.File("state"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    sched_ = std::make_unique<Scheduler>(store_.get(), &clock_);
  }

  RunState State() const { return store_->Snapshot(); }
  const TaskRecord& Task(const RunState& s, const std::string& id) const {
    const TaskRecord* t = s.FindTask(id);
    EXPECT_NE(t, nullptr) << id;
    return *t;
  }
  TaskState StateOf(const std::string& id) const { return Task(State(), id).state; }

  void Register(const std::string& id, int group = 1) {
    ASSERT_TRUE(sched_->RegisterWorker(testing::Worker(id, group)).ok());
  }

  // Leases the next task for `worker`; fails the test if none is granted.
  LeaseGrant MustLease(const std::string& worker, Capabilities caps = {}) {
    auto r = sched_->Lease(worker, caps);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !r->grant) {
      ADD_FAILURE() << "no grant for " << worker << ": "
                    << (r.ok() ? LeaseOutcomeName(r->outcome) : "error");
      return LeaseGrant{};
    }
    return *r->grant;
  }

  Result<CommitReply> Finish(const LeaseGrant& g) {
    FinalRecord f;
    f.checkpoint = Ckpt(g.task.id, g.resume_from ? g.resume_from->record.step + 1 : 1, g.task.tokens);
    return sched_->Complete(g.lease, f);
  }

  // One layer, one step-1 segment of `tokens`; its cache (and transfer) done by "runner", so the
  // align task is the next one a newly registered worker "w" is given.
  void StartOneAlignTask(std::int64_t tokens) {
    PlanShape shape;
    shape.layers = 1;
    shape.segments = 1;
    shape.segment_tokens = tokens;
    Start(MakePlan(shape));
    RunUntilDone("cache/S00000/P00");
    Register("w");
  }

  // Leases and completes tasks until `id` is done (single worker "runner").
  void RunUntilDone(const std::string& id) {
    if (!State().FindWorker("runner")) Register("runner");
    for (int guard = 0; guard < 1000 && StateOf(id) != TaskState::kDone; ++guard) {
      LeaseGrant g = MustLease("runner");
      if (g.lease == 0) return;
      ASSERT_TRUE(Finish(g).ok());
    }
  }

  ScratchDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Scheduler> sched_;
};

}  // namespace radlads
