// Helpers for the state store and scheduler tests: a small RADLADS-shaped plan, file records,
// and a seeded random driver that plays workers (including stale and duplicating ones) against
// a Scheduler.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/checksum.h"
#include "base/clock.h"
#include "contract/task.h"
#include "state/scheduler.h"
#include "state/state_store.h"

namespace radlads::testing {

struct PlanShape {
  int layers = 2;
  int segments = 3;
  int stages = 1;            // layers split evenly over stages
  std::int64_t segment_tokens = 1000;
  bool distill = true;
  int distill_workers = 1;   // gang size of distill/finetune
  std::int64_t distill_tokens = 4000;
  bool finetune = false;
  std::int64_t finetune_tokens = 2000;
};

// transfer(l); cache(s, p) <- cache(s, p-1); align(l, s) <- cache(s, stage(l)), align(l, s-1) or
// transfer(l); distill <- align(l, S-1) for all l; finetune <- distill; export; eval.
// Plan order is segment-major so earlier segments are leased first.
inline std::vector<TaskSpec> MakePlan(const PlanShape& p) {
  std::vector<TaskSpec> tasks;
  const int per_stage = (p.layers + p.stages - 1) / p.stages;
  auto stage_of = [&](int l) { return l / per_stage; };
  for (int l = 0; l < p.layers; ++l) {
    TaskSpec t;
    t.id = TransferTaskId(l);
    t.type = TaskType::kTransfer;
    t.layer = l;
    tasks.push_back(t);
  }
  for (int s = 0; s < p.segments; ++s) {
    for (int st = 0; st < p.stages; ++st) {
      TaskSpec t;
      t.id = CacheTaskId(s, st);
      t.type = TaskType::kCache;
      t.segment = s;
      t.stage = st;
      t.first_layer = st * per_stage;
      t.last_layer = std::min(p.layers, (st + 1) * per_stage);
      if (st > 0) t.deps.push_back(CacheTaskId(s, st - 1));
      tasks.push_back(t);
    }
    for (int l = 0; l < p.layers; ++l) {
      TaskSpec t;
      t.id = AlignTaskId(l, s);
      t.type = TaskType::kAlign;
      t.layer = l;
      t.segment = s;
      t.stage = stage_of(l);
      t.tokens = p.segment_tokens;
      t.sample_begin = s * 10;
      t.sample_end = (s + 1) * 10;
      t.optimizer_steps = 5;
      t.deps.push_back(CacheTaskId(s, stage_of(l)));
      t.deps.push_back(s == 0 ? TransferTaskId(l) : AlignTaskId(l, s - 1));
      tasks.push_back(t);
    }
  }
  std::string last;
  if (p.distill) {
    TaskSpec t;
    t.id = "distill";
    t.type = TaskType::kDistill;
    t.tokens = p.distill_tokens;
    t.workers = p.distill_workers;
    t.optimizer_steps = 40;
    for (int l = 0; l < p.layers; ++l) t.deps.push_back(AlignTaskId(l, p.segments - 1));
    tasks.push_back(t);
    last = t.id;
  }
  if (p.finetune) {
    TaskSpec t;
    t.id = "finetune";
    t.type = TaskType::kFinetune;
    t.tokens = p.finetune_tokens;
    t.workers = p.distill_workers;
    t.deps.push_back(last);
    tasks.push_back(t);
    last = t.id;
  }
  if (!last.empty()) {
    TaskSpec e;
    e.id = "export";
    e.type = TaskType::kExport;
    e.deps.push_back(last);
    tasks.push_back(e);
    TaskSpec v;
    v.id = "eval";
    v.type = TaskType::kEval;
    v.deps.push_back("export");
    tasks.push_back(v);
  }
  return tasks;
}

inline FileRecord File(const std::string& path, std::int64_t bytes = 100) {
  return FileRecord{path, bytes, FormatChecksum(Checksum64(path))};
}

inline CheckpointRecord Ckpt(const std::string& task, std::int64_t step, std::int64_t tokens) {
  CheckpointRecord c;
  c.step = step;
  c.tokens_consumed = tokens;
  c.files.push_back(File("ckpt/" + task + "/step" + std::to_string(step) + ".safetensors"));
  return c;
}

inline WorkerInfo Worker(const std::string& id, int group_size = 1) {
  WorkerInfo w;
  w.id = id;
  w.host = "node0";
  w.pid = 1000;
  w.group_size = group_size;
  return w;
}

// Statuses a random driver may legitimately get back.
inline bool Expected(const Status& s) {
  return s.ok() || s.code() == Status::Code::kFailedPrecondition ||
         s.code() == Status::Code::kNotFound || s.code() == Status::Code::kInvalidArgument;
}

// Plays workers against a scheduler with a seeded RNG: registrations, leases, heartbeats,
// commits (also duplicated and late ones from stale workers), completions, failures, releases,
// expiries (by moving the fake clock), drains, resumes and evictions. `on_ack` is called with
// the state's last_seq after every acknowledged transition (for the crash test).
class RandomDriver {
 public:
  RandomDriver(Scheduler* sched, FakeClock* clock, std::uint64_t seed, int workers, int gang = 1)
      : sched_(sched), clock_(clock), rng_(seed) {
    for (int i = 0; i < workers; ++i) sims_.push_back(Sim{"w" + std::to_string(i), 1});
    if (gang > 1) sims_.push_back(Sim{"gang0", gang});
  }

  // Runs `ops` random operations. Returns false (after ADD_FAILURE) on an unexpected status.
  bool Run(int ops, bool allow_drain = true) {
    for (int k = 0; k < ops; ++k) {
      if (!Step(allow_drain)) return false;
    }
    return true;
  }

  std::int64_t acked_events() const { return acked_; }
  int stale_rejections() const { return stale_rejections_; }
  int duplicates_acked() const { return duplicates_; }
  int continued() const { return continued_; }  // held chains extended (layer affinity)
  int discards() const { return discards_; }    // checkpoints discarded (fallbacks)

  bool Step(bool allow_drain) {
    const int op = Pick(100);
    Sim& w = sims_[Pick(static_cast<int>(sims_.size()))];
    Status st;
    if (op < 3) {
      clock_->Advance(Pick(3) == 0 ? 400'000 : 20'000);  // sometimes past the 300 s ttl
      auto r = sched_->ExpireLeases();
      st = r.status();
    } else if (op < 5 && allow_drain) {
      st = sched_->Drain("test drain");
    } else if (op < 7 && allow_drain) {
      st = sched_->Resume("test resume");
      if (st.ok()) {
        for (auto& s : sims_) s.registered = false;
      }
    } else if (op < 9) {
      st = EvictSome();
    } else if (!w.registered || op < 11) {
      WorkerInfo info = Worker(w.id, w.group);
      info.pid = Pick(100000);
      st = sched_->RegisterWorker(info);
      if (st.ok()) {
        w.registered = true;
        w.grant.reset();
      }
    } else if (!w.grant) {
      auto r = sched_->Lease(w.id);
      st = r.status();
      if (r.ok() && r->outcome == LeaseOutcome::kGranted) {
        if (w.grant && w.grant->lease == r->grant->lease) {
          // same lease again
        } else {
          w.grant = *r->grant;
          w.cursor = w.grant->resume_from ? w.grant->resume_from->record.tokens_consumed : 0;
          w.step = w.grant->resume_from ? w.grant->resume_from->record.step : 0;
          w.last_commit.reset();
          if (w.grant->resume_from && Pick(3) == 0) {
            // Checkpoint fallback: the worker finds its resume point unreadable.
            st = sched_->DiscardCheckpoint(w.grant->lease, w.grant->resume_from->record.step,
                                           "simulated corruption");
            if (st.ok()) {
              w.grant.reset();
              ++discards_;
            } else if (st.code() == Status::Code::kCorruption) {
              st = Status::Ok();  // nothing to fall back to (behind a held segment): no event
            }
          }
        }
      }
      if (!r.ok() && r.status().code() == Status::Code::kFailedPrecondition) w.registered = false;
    } else if (op < 40) {
      Progress p;
      p.tokens = std::min(w.grant->task.tokens, w.cursor + Pick(50));
      p.step = w.step;
      p.losses = {{"loss", 1.0 / (1 + w.step)}};
      p.throughput = 1234.5;
      auto r = sched_->Heartbeat(w.grant->lease, p);
      st = r.status();
      Stale(w, st);
    } else if (op < 65) {
      const std::int64_t budget = w.grant->task.tokens;
      const std::int64_t chunk = budget == 0 ? 0 : 1 + Pick(static_cast<int>(budget / 3 + 1));
      CheckpointRecord c = Ckpt(w.grant->task.id, w.step + 1, std::min(budget, w.cursor + chunk));
      auto r = sched_->CommitCheckpoint(w.grant->lease, c);
      st = r.status();
      if (r.ok()) {
        w.cursor = c.tokens_consumed;
        w.step = c.step;
        w.last_commit = c;
        w.stale_commit = {w.grant->lease, c};
      }
      Stale(w, st);
    } else if (op < 72 && w.last_commit) {
      auto r = sched_->CommitCheckpoint(w.grant->lease, *w.last_commit);  // duplicate
      st = r.status();
      if (r.ok()) {
        EXPECT_TRUE(r->duplicate);
        EXPECT_EQ(r->tokens_credited, 0);
        ++duplicates_;
      }
      Stale(w, st);
    } else if (op < 74 && w.stale_commit) {
      // A late commit of a newer step on an old lease (a stale worker).
      CheckpointRecord c = w.stale_commit->second;
      c.step += 1000 + (++late_commits_);  // never identical to an earlier (acked) one
      auto r = sched_->CommitCheckpoint(w.stale_commit->first, c);
      st = r.status();
      if (w.grant && w.stale_commit->first == w.grant->lease) {
        if (r.ok()) {
          w.cursor = c.tokens_consumed;
          w.step = c.step;
          w.last_commit = c;
        }
      } else {
        EXPECT_FALSE(r.ok()) << "a stale lease committed: " << w.stale_commit->first;
        if (!r.ok()) ++stale_rejections_;
      }
    } else if (op < 80 && w.grant->task.type == TaskType::kAlign) {
      // Layer affinity: hold the state and go on with the layer's next segment when possible.
      FinalRecord f;
      f.checkpoint.step = w.step + 1;
      f.checkpoint.tokens_consumed = w.grant->task.tokens;
      auto r = sched_->CompleteAndContinue(w.grant->lease, f);
      st = r.status();
      if (r.ok() && r->outcome == LeaseOutcome::kGranted) {
        w.grant = *r->grant;
        w.cursor = 0;
        w.step = f.checkpoint.step;
        w.last_commit.reset();
        ++continued_;
      }
      Stale(w, st);
    } else if (op < 88) {
      FinalRecord f;
      f.checkpoint = Ckpt(w.grant->task.id, w.step + 1, w.grant->task.tokens);
      f.metrics = {{"final_loss", 0.5}};
      auto r = sched_->Complete(w.grant->lease, f);
      st = r.status();
      if (r.ok()) {
        if (Pick(4) == 0) {  // a duplicate completion (lost reply)
          auto d = sched_->Complete(w.grant->lease, f);
          EXPECT_TRUE(d.ok()) << d.status().ToString();
          if (d.ok()) {
            EXPECT_TRUE(d->duplicate);
          }
        }
        w.grant.reset();
      }
      Stale(w, st);
    } else if (op < 93) {
      st = sched_->Fail(w.grant->lease, "simulated failure", Pick(20) != 0);
      if (st.ok()) w.grant.reset();
      Stale(w, st);
    } else {
      st = sched_->Release(w.grant->lease, "simulated release");
      if (st.ok()) w.grant.reset();
      Stale(w, st);
    }
    if (!Expected(st)) {
      ADD_FAILURE() << "unexpected status: " << st.ToString();
      return false;
    }
    acked_ = sched_->store()->Read([](const RunState& s) { return s.last_seq(); });
    if (on_ack) on_ack(acked_);
    return true;
  }

  std::function<void(std::int64_t)> on_ack;

 private:
  struct Sim {
    std::string id;
    int group = 1;
    bool registered = false;
    std::optional<LeaseGrant> grant;
    std::int64_t cursor = 0, step = 0;
    std::optional<CheckpointRecord> last_commit;
    std::optional<std::pair<LeaseId, CheckpointRecord>> stale_commit;
  };

  int Pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }

  // The lease is gone (expired, ended by a restart): forget it, like a worker told to stop.
  void Stale(Sim& w, const Status& st) {
    if (!st.ok() && st.code() == Status::Code::kFailedPrecondition &&
        st.message().find("not outstanding") != std::string::npos) {
      w.grant.reset();
    }
    if (!st.ok() && st.code() == Status::Code::kFailedPrecondition &&
        st.message().find("deadline") != std::string::npos) {
      w.grant.reset();
    }
  }

  Status EvictSome() {
    auto evictable = sched_->store()->Read([](const RunState& s) {
      std::vector<std::pair<int, int>> v;
      for (const auto& [k, seg] : s.segments()) {
        if (seg.state == SegmentState::kEvictable) v.emplace_back(seg.segment, seg.stage);
      }
      return v;
    });
    if (evictable.empty()) return Status::Ok();
    const auto& [seg, stage] = evictable[Pick(static_cast<int>(evictable.size()))];
    return sched_->EvictSegment(seg, stage);
  }

  Scheduler* sched_;
  FakeClock* clock_;
  std::mt19937_64 rng_;
  std::vector<Sim> sims_;
  std::int64_t acked_ = 0;
  int stale_rejections_ = 0;
  int duplicates_ = 0;
  int late_commits_ = 0;
  int continued_ = 0;
  int discards_ = 0;
};

}  // namespace radlads::testing
