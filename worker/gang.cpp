#include "worker/gang.h"

#include <utility>

#include "contract/codec.h"

namespace radlads {

Result<std::unique_ptr<GangContext>> GangContext::Create(Communicator* gang, const GangLayout& layout) {
  if (layout.tp < 1 || layout.pp < 1 || layout.dp < 1 || layout.size() != gang->size()) {
    return Status::InvalidArgument("gang of " + std::to_string(gang->size()) + " ranks cannot be laid out as tp " +
                                   std::to_string(layout.tp) + " x pp " + std::to_string(layout.pp) + " x dp " +
                                   std::to_string(layout.dp));
  }
  auto g = std::make_unique<GangContext>();
  g->layout = layout;
  g->all = gang;
  const int r = gang->rank();
  g->tp_rank = r % layout.tp;
  g->pp_rank = (r / layout.tp) % layout.pp;
  g->dp_rank = r / (layout.tp * layout.pp);
  // Each Split is collective over the gang; colors name the group, keys order it.
  g->tp = gang->Split(g->dp_rank * layout.pp + g->pp_rank, g->tp_rank);
  g->pp = gang->Split(g->dp_rank * layout.tp + g->tp_rank, g->pp_rank);
  g->dp = gang->Split(g->pp_rank * layout.tp + g->tp_rank, g->dp_rank);
  g->mp = gang->Split(g->dp_rank, g->pp_rank * layout.tp + g->tp_rank);
  return g;
}

GangReporter::GangReporter(Communicator& gang, TaskReporter* inner, std::function<bool()> local_stop)
    : gang_(gang), inner_(inner), local_stop_(std::move(local_stop)) {}

bool GangReporter::Heartbeat(const Progress& progress) {
  double stop = 0.0;
  if (inner_ != nullptr && inner_->Heartbeat(progress)) stop = 1.0;
  if (local_stop_ && local_stop_()) stop = 1.0;
  gang_.AllReduceMax(&stop, 1);
  return stop > 0.0;
}

Status GangReporter::Commit(const CheckpointRecord& checkpoint) {
  std::vector<std::string> all = gang_.AllGather(codec::EncodeWire(checkpoint));
  double failed = 0.0;
  Status st;
  if (inner_ != nullptr) {
    CheckpointRecord merged = checkpoint;
    merged.files.clear();
    for (std::size_t r = 0; r < all.size(); ++r) {
      CheckpointRecord part;
      st = codec::DecodeWire(all[r], &part, "checkpoint of gang rank " + std::to_string(r));
      if (!st.ok()) break;
      merged.files.insert(merged.files.end(), part.files.begin(), part.files.end());
    }
    if (st.ok()) st = inner_->Commit(merged);
    // 1: the lease is no longer ours (every rank stops and drops the task); 2: another failure.
    if (!st.ok()) failed = st.code() == Status::Code::kFailedPrecondition ? 1.0 : 2.0;
  }
  gang_.AllReduceMax(&failed, 1);
  if (failed == 1.0 && st.ok()) st = Status::FailedPrecondition("the gang's lease is no longer held");
  if (failed == 2.0 && st.ok()) st = Status::Unavailable("the gang's leader could not commit the checkpoint");
  return st;
}

FinalRecord GatherFinalRecord(Communicator& gang, const FinalRecord& mine) {
  std::vector<std::string> all = gang.AllGather(codec::EncodeWire(mine.checkpoint));
  if (gang.rank() != 0) return mine;
  FinalRecord out = mine;
  out.checkpoint.files.clear();
  for (std::size_t r = 0; r < all.size(); ++r) {
    CheckpointRecord part;
    Status st = codec::DecodeWire(all[r], &part, "final checkpoint of gang rank " + std::to_string(r));
    if (!st.ok()) gang.Abort(1);  // our own bytes: cannot happen unless memory is corrupt
    out.checkpoint.files.insert(out.checkpoint.files.end(), part.files.begin(), part.files.end());
  }
  return out;
}

}  // namespace radlads
