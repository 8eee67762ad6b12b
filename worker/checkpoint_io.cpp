#include "worker/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/checksum.h"
#include "base/file.h"
#include "base/profile.h"
#include "pipeline/model_shard.h"
#include "storage/safetensors.h"
#include "storage/safetensors_writer.h"

namespace radlads {
namespace {

constexpr char kMomentM[] = "::adam_m";
constexpr char kMomentV[] = "::adam_v";

SafetensorsWriteTensor View(const std::string& name, const Tensor& t) {
  SafetensorsWriteTensor w;
  w.name = name;
  w.dtype = DType::kF32;
  w.shape = std::vector<std::int64_t>(t.shape().begin(), t.shape().end());
  w.data = std::span<const std::byte>(static_cast<const std::byte*>(t.raw()), t.nbytes());
  return w;
}

Result<std::int64_t> MetaInt(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) return Status::Corruption(f.path() + ": checkpoint metadata lacks " + key);
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0') {
    return Status::Corruption(f.path() + ": checkpoint metadata " + key + " is not an integer");
  }
  return static_cast<std::int64_t>(v);
}

Status CopyInto(const SafetensorsFile& f, const SafetensorsTensorInfo& info, Tensor& dst) {
  Shape shape(info.shape.begin(), info.shape.end());
  if (shape != dst.shape() || info.dtype != DType::kF32) {
    return Status::Corruption(f.path() + ": tensor '" + info.name + "' is " + std::string(DTypeName(info.dtype)) +
                              " " + ShapeToString(shape) + ", expected F32 " + ShapeToString(dst.shape()));
  }
  std::span<const std::byte> data = f.Data(info);
  std::memcpy(dst.raw(), data.data(), data.size());
  return Status::Ok();
}

}  // namespace

Result<FileRecord> RecordFile(const std::string& run_dir, const std::string& rel_path) {
  const profile::Scope profile_scope(profile::Family::kIo);
  const std::string path = JoinPath(run_dir, rel_path);
  RADLADS_ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  FileRecord r;
  r.path = rel_path;
  r.bytes = static_cast<std::int64_t>(m.size());
  r.checksum = FormatChecksum(Checksum64(m.bytes()));
  return r;
}

Status VerifyCheckpointFile(const std::string& run_dir, const FileRecord& file) {
  const profile::Scope profile_scope(profile::Family::kIo);
  const std::string path = JoinPath(run_dir, file.path);
  RADLADS_ASSIGN_OR_RETURN(FileRecord now, RecordFile(run_dir, file.path));
  if (now.checksum != file.checksum || now.bytes != file.bytes) {
    return Status::Corruption(path + ": checksum " + now.checksum + " (" + std::to_string(now.bytes) +
                              " bytes) does not match the committed " + file.checksum + " (" +
                              std::to_string(file.bytes) + " bytes)");
  }
  return Status::Ok();
}

Result<FileRecord> SaveTrainingCheckpoint(const std::string& run_dir, const std::string& rel_path,
                                          const ParamSet& params, const TrainingState& state,
                                          const std::function<bool(const std::string&)>& filter) {
  const profile::Scope profile_scope(profile::Family::kIo);
  std::vector<SafetensorsWriteTensor> tensors;
  for (const Param* p : params.params()) {
    if (filter && !filter(p->name)) continue;
    tensors.push_back(View(p->name, p->value));
    if (p->adam_m.defined()) {
      tensors.push_back(View(p->name + kMomentM, p->adam_m));
      tensors.push_back(View(p->name + kMomentV, p->adam_v));
    }
  }
  SafetensorsMetadata meta = state.extra;
  meta["radlads_checkpoint"] = std::to_string(kCheckpointFormatVersion);
  meta["optimizer_step"] = std::to_string(state.optimizer_step);
  meta["tokens"] = std::to_string(state.tokens);
  meta["sample_cursor"] = std::to_string(state.sample_cursor);
  const std::string path = JoinPath(run_dir, rel_path);
  RADLADS_RETURN_IF_ERROR(CreateDirectories(DirName(path)));
  RADLADS_RETURN_IF_ERROR(ValidateSafetensorsTensors(tensors, meta).WithContext(path));
  // The record's checksum is taken from the bytes as they are written (one pass over them, not
  // a second read after the fsync: bench/README.md "Checkpoint writes").
  Checksum64Stream sum;
  FileRecord r;
  r.path = rel_path;
  Status written = AtomicWriteFileWith(path, [&](const WriteFn& write) {
    const WriteFn counted = [&](std::span<const std::byte> bytes) {
      sum.Update(bytes);
      r.bytes += static_cast<std::int64_t>(bytes.size());
      return write(bytes);
    };
    return WriteSafetensorsTo(counted, tensors, meta).WithContext(path);
  });
  if (!written.ok()) {  // e.g. a full disk: say how much the checkpoint needs; the previous one is intact
    std::int64_t need = 0;
    for (const SafetensorsWriteTensor& t : tensors) need += static_cast<std::int64_t>(t.data.size());
    return written.WithContext("checkpoint " + rel_path + " (needs about " + std::to_string(need) +
                               " bytes; the previous checkpoint is intact)");
  }
  r.checksum = FormatChecksum(sum.Digest());
  return r;
}

namespace {

// Opens RUN/<file.path> after verifying its recorded checksum (when given) and format version.
Result<SafetensorsFile> OpenCheckpoint(const std::string& run_dir, const FileRecord& file) {
  const std::string path = JoinPath(run_dir, file.path);
  if (!file.checksum.empty()) RADLADS_RETURN_IF_ERROR(VerifyCheckpointFile(run_dir, file));
  RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  auto version = f.metadata().find("radlads_checkpoint");
  if (version == f.metadata().end()) {
    return Status::Corruption(path + ": not a radlads training checkpoint (no radlads_checkpoint metadata)");
  }
  if (version->second != std::to_string(kCheckpointFormatVersion)) {
    return Status::InvalidArgument(path + ": training checkpoint format " + version->second +
                                   "; this build reads format " + std::to_string(kCheckpointFormatVersion));
  }
  return f;
}

Result<TrainingState> ReadState(const SafetensorsFile& f) {
  TrainingState st;
  RADLADS_ASSIGN_OR_RETURN(st.optimizer_step, MetaInt(f, "optimizer_step"));
  RADLADS_ASSIGN_OR_RETURN(st.tokens, MetaInt(f, "tokens"));
  RADLADS_ASSIGN_OR_RETURN(st.sample_cursor, MetaInt(f, "sample_cursor"));
  for (const auto& [k, v] : f.metadata()) {
    if (k != "radlads_checkpoint" && k != "optimizer_step" && k != "tokens" && k != "sample_cursor") st.extra[k] = v;
  }
  return st;
}

Result<Tensor> ReadTensor(const SafetensorsFile& f, const SafetensorsTensorInfo& info) {
  Tensor t = Tensor::Empty(Shape(info.shape.begin(), info.shape.end()));
  RADLADS_RETURN_IF_ERROR(CopyInto(f, info, t));
  return t;
}

// A shard file and where it sits in its layout.
struct Shard {
  SafetensorsFile file;
  int tp = 1, tp_rank = 0;
};

Result<int> ShardInt(const SafetensorsFile& f, const char* key, int fallback) {
  if (f.metadata().find(key) == f.metadata().end()) return fallback;
  RADLADS_ASSIGN_OR_RETURN(std::int64_t v, MetaInt(f, key));
  return static_cast<int>(v);
}

// The whole tensor `name` (+ `suffix`: a moment) assembled from the shards; NotFound when no
// shard holds it.
Result<Tensor> AssembleWhole(const std::vector<Shard>& shards, const std::string& name, const Shape& full) {
  std::vector<Tensor> pieces;
  int pieces_tp = 0;
  for (const Shard& s : shards) {
    const SafetensorsTensorInfo* info = s.file.Find(name);
    if (info == nullptr) continue;
    const Shape shape(info->shape.begin(), info->shape.end());
    if (shape == full) return ReadTensor(s.file, *info);
    if (s.tp == 1) {  // a whole-model file holding another shape: the wrong model
      return Status::Corruption(s.file.path() + ": tensor '" + name + "' is " + std::string(DTypeName(info->dtype)) +
                                " " + ShapeToString(shape) + ", expected F32 " + ShapeToString(full));
    }
    if (pieces_tp == 0) {
      pieces_tp = s.tp;
      pieces.resize(static_cast<std::size_t>(s.tp));
    }
    if (s.tp != pieces_tp || s.tp_rank < 0 || s.tp_rank >= s.tp) {
      return Status::Corruption(s.file.path() + ": shard tp_rank " + std::to_string(s.tp_rank) + " of " +
                                std::to_string(s.tp) + " does not fit the other shards of '" + name + "' (tp " +
                                std::to_string(pieces_tp) + ")");
    }
    RADLADS_ASSIGN_OR_RETURN(pieces[static_cast<std::size_t>(s.tp_rank)], ReadTensor(s.file, *info));
  }
  if (pieces_tp == 0) return Status::NotFound("'" + name + "'");
  for (std::size_t r = 0; r < pieces.size(); ++r) {
    if (!pieces[r].defined()) {
      return Status::Corruption("the checkpoint's shards lack tp rank " + std::to_string(r) + " of " +
                                std::to_string(pieces_tp) + " of '" + name + "'");
    }
  }
  RADLADS_ASSIGN_OR_RETURN(int dim, TpSplitDim(full, pieces[0].shape(), pieces_tp));
  Tensor whole = Tensor::Empty(full);
  TpJoin(pieces, dim, whole);
  return whole;
}

}  // namespace

std::map<std::string, std::string> ShardMetadata(int tp, int tp_rank, int pp, int pp_rank) {
  return {{"shard_tp", std::to_string(tp)},
          {"shard_tp_rank", std::to_string(tp_rank)},
          {"shard_pp", std::to_string(pp)},
          {"shard_pp_rank", std::to_string(pp_rank)}};
}

Result<TrainingState> LoadTrainingCheckpoint(const std::string& run_dir, const FileRecord& file,
                                             ParamSet& params, bool require_all) {
  const profile::Scope profile_scope(profile::Family::kIo);
  return LoadCheckpointShards(run_dir, {file}, params, 1, 0, {}, require_all);
}

Result<TrainingState> LoadCheckpointShards(const std::string& run_dir, const std::vector<FileRecord>& files,
                                           ParamSet& params, int tp, int tp_rank,
                                           const std::map<std::string, Shape, std::less<>>& full_shapes,
                                           bool require_all) {
  const profile::Scope profile_scope(profile::Family::kIo);
  if (files.empty()) return Status::InvalidArgument("a checkpoint with no files");
  std::vector<Shard> shards;
  TrainingState st;
  for (std::size_t i = 0; i < files.size(); ++i) {
    RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, OpenCheckpoint(run_dir, files[i]));
    RADLADS_ASSIGN_OR_RETURN(TrainingState s, ReadState(f));
    if (i == 0) {
      st = s;
    } else if (s.optimizer_step != st.optimizer_step || s.tokens != st.tokens || s.sample_cursor != st.sample_cursor) {
      return Status::Corruption(f.path() + ": shard at optimizer step " + std::to_string(s.optimizer_step) +
                                " (sample " + std::to_string(s.sample_cursor) + ") in a checkpoint at step " +
                                std::to_string(st.optimizer_step) + " (sample " + std::to_string(st.sample_cursor) +
                                ")");
    }
    Shard sh{std::move(f), 1, 0};
    RADLADS_ASSIGN_OR_RETURN(sh.tp, ShardInt(sh.file, "shard_tp", 1));
    RADLADS_ASSIGN_OR_RETURN(sh.tp_rank, ShardInt(sh.file, "shard_tp_rank", 0));
    shards.push_back(std::move(sh));
  }
  for (const char* k : {"shard_tp", "shard_tp_rank", "shard_pp", "shard_pp_rank"}) st.extra.erase(k);
  const std::string where = files.size() == 1 ? JoinPath(run_dir, files[0].path)
                                              : "the " + std::to_string(files.size()) + " shards of " +
                                                    JoinPath(run_dir, DirName(files[0].path));
  for (Param* p : params.params()) {
    auto it = full_shapes.find(p->name);
    const Shape full = it != full_shapes.end() ? it->second : p->value.shape();
    Result<Tensor> value = AssembleWhole(shards, p->name, full);
    if (!value.ok()) {
      if (value.status().code() == Status::Code::kNotFound) {
        if (!require_all) continue;
        return Status::Corruption(where + ": tensor '" + p->name + "' is missing");
      }
      return value.status();
    }
    RADLADS_ASSIGN_OR_RETURN(int dim, TpSplitDim(full, p->value.shape(), tp));
    (void)dim;
    auto put = [&](const Tensor& whole, Tensor& dst) { TpSliceInto(whole, p->value.shape(), tp, tp_rank, dst); };
    put(*value, p->value);
    Result<Tensor> m = AssembleWhole(shards, p->name + kMomentM, full);
    Result<Tensor> v = AssembleWhole(shards, p->name + kMomentV, full);
    if (m.ok() && v.ok()) {
      put(*m, p->adam_m);
      put(*v, p->adam_v);
    } else if (!m.ok() && m.status().code() != Status::Code::kNotFound) {
      return m.status();
    } else if (!v.ok() && v.status().code() != Status::Code::kNotFound) {
      return v.status();
    }  // no moments (or only one of the two): the parameter has none from this checkpoint
  }
  return st;
}

}  // namespace radlads
