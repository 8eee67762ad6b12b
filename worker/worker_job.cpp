#include "worker/worker_job.h"

#include <cstdlib>

#include "base/log.h"
#include "contract/codec.h"

namespace radlads {
namespace {

constexpr std::uint32_t kSingleTaskTypes =
    TaskTypeBit(TaskType::kTransfer) | TaskTypeBit(TaskType::kCache) | TaskTypeBit(TaskType::kAlign) |
    TaskTypeBit(TaskType::kExport) | TaskTypeBit(TaskType::kEval) | TaskTypeBit(TaskType::kDistill) |
    TaskTypeBit(TaskType::kFinetune);
constexpr std::uint32_t kGangTaskTypes = TaskTypeBit(TaskType::kDistill) | TaskTypeBit(TaskType::kFinetune);

std::string RankId(const std::string& host, int rank) { return host + "/r" + std::to_string(rank); }

}  // namespace

std::vector<WorkerIdentity> WorkerJobIdentities(const WorkerJobRank& r) {
  std::vector<WorkerIdentity> out;
  WorkerIdentity single;
  single.info.id = RankId(r.host, r.rank);
  single.info.host = r.host;
  single.info.pid = 0;
  single.info.rank = r.rank;
  single.info.device = "cpu";
  single.info.memory_bytes = r.memory_bytes;
  // A gang of one runs the distill/finetune tasks as a single worker (their group size is 1).
  single.caps.task_types = kSingleTaskTypes;
  single.info.capabilities = kSingleTaskTypes;
  if (r.gang.size() > 1 && r.rank < r.gang.size()) single.info.gang = "gang";
  out.push_back(single);
  if (r.gang.size() > 1 && r.rank == 0) {
    WorkerIdentity leader = single;
    leader.info.id = r.host + "/gang";
    leader.info.group_size = r.gang.size();
    leader.info.capabilities = kGangTaskTypes;
    leader.caps.task_types = kGangTaskTypes;
    leader.info.members.clear();
    for (int m = 0; m < r.gang.size(); ++m) leader.info.members.push_back(RankId(r.host, m));
    out.push_back(leader);
  }
  return out;
}

WorkerJobHooks::WorkerJobHooks(Communicator& world, GangContext* gang, const std::atomic<int>& stop)
    : world_(world), gang_(gang), stop_(stop) {}

void WorkerJobHooks::OnStart(const TaskSpec& task) {
  log::Info("rank " + std::to_string(world_.rank()) + ": " + task.id);
}

void WorkerJobHooks::OnComplete(const TaskSpec& task, const FinalRecord&) {
  log::Debug("rank " + std::to_string(world_.rank()) + ": " + task.id + " done");
}

Result<bool> WorkerJobHooks::OnIdle() {
  if (gang_ == nullptr || gang_->leader()) return true;
  std::string bytes;
  if (!gang_->all->TryRecvBytes(&bytes, 0, kGangStartTag)) return true;
  LeaseGrant grant;
  RADLADS_RETURN_IF_ERROR(codec::DecodeWire(bytes, &grant, "gang grant from the leader"));
  log::Info("rank " + std::to_string(world_.rank()) + ": " + grant.task.id + " (gang member)");
  TaskEnv env = *env_;
  env.gang = gang_;
  GangReporter reporter(*gang_->all, nullptr, [this] { return stop_.load() != 0; });
  if (profile_ != nullptr) profile_->Charge("scheduling");
  Result<TaskResult> r = RunTask(env, grant, reporter);
  if (profile_ != nullptr) {
    profile_->Charge(TaskTypeName(grant.task.type), 1);
    SaveProfile(*profile_);
  }
  if (!r.ok()) {
    if (r.status().code() == Status::Code::kFailedPrecondition) return false;  // the lease went
    FailGang(grant, r.status(), "rank " + std::to_string(world_.rank()));
  }
  if (r->outcome == TaskOutcome::kCompleted) (void)GatherFinalRecord(*gang_->all, r->final);
  return false;  // ask for work again at once
}

Result<TaskResult> WorkerJobHooks::RunGang(TaskEnv& env, const LeaseGrant& grant, TaskReporter& reporter) {
  if (gang_ == nullptr || !gang_->leader()) {
    return Status::Internal("a gang task was leased by a rank that does not lead a gang");
  }
  const std::string bytes = codec::EncodeWire(grant);
  for (int m = 1; m < gang_->all->size(); ++m) gang_->all->SendBytes(bytes, m, kGangStartTag);
  TaskEnv genv = env;
  genv.gang = gang_;
  GangReporter gang_reporter(*gang_->all, &reporter, [this] { return stop_.load() != 0; });
  Result<TaskResult> r = RunTask(genv, grant, gang_reporter);
  if (!r.ok() && r.status().code() != Status::Code::kFailedPrecondition) FailGang(grant, r.status(), "gang leader");
  return r;
}

void WorkerJobHooks::FailGang(const LeaseGrant& grant, const Status& error, const std::string& who) {
  log::Error(who + ": " + grant.task.id + " failed: " + error.ToString() +
             "; ending the worker job so no rank waits on this one");
  if (port_ != nullptr) {
    const FailureReport report = ReportFor(error, /*stop_on_task_error=*/false);
    (void)port_->Fail(grant.lease, report.reason, report.retryable);  // a lease already gone is fine
  }
  gang_->all->Abort(1);
  std::abort();  // not reached: Abort ends the job
}

Status WorkerJobHooks::FinishGang(const LeaseGrant&, FinalRecord* final_record) {
  if (gang_ != nullptr) *final_record = GatherFinalRecord(*gang_->all, *final_record);
  return Status::Ok();
}

}  // namespace radlads
