#include "worker/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/checksum.h"
#include "base/file.h"
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
  const std::string path = JoinPath(run_dir, rel_path);
  RADLADS_ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  FileRecord r;
  r.path = rel_path;
  r.bytes = static_cast<std::int64_t>(m.size());
  r.checksum = FormatChecksum(Checksum64(m.bytes()));
  return r;
}

Result<FileRecord> SaveTrainingCheckpoint(const std::string& run_dir, const std::string& rel_path,
                                          const ParamSet& params, const TrainingState& state,
                                          const std::function<bool(const std::string&)>& filter) {
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
  RADLADS_RETURN_IF_ERROR(WriteSafetensors(path, tensors, meta));
  return RecordFile(run_dir, rel_path);
}

Result<TrainingState> LoadTrainingCheckpoint(const std::string& run_dir, const FileRecord& file,
                                             ParamSet& params, bool require_all) {
  const std::string path = JoinPath(run_dir, file.path);
  if (!file.checksum.empty()) {
    RADLADS_ASSIGN_OR_RETURN(FileRecord now, RecordFile(run_dir, file.path));
    if (now.checksum != file.checksum || now.bytes != file.bytes) {
      return Status::Corruption(path + ": checksum " + now.checksum + " (" + std::to_string(now.bytes) +
                                " bytes) does not match the committed " + file.checksum + " (" +
                                std::to_string(file.bytes) + " bytes)");
    }
  }
  RADLADS_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  auto version = f.metadata().find("radlads_checkpoint");
  if (version == f.metadata().end()) {
    return Status::Corruption(path + ": not a radlads training checkpoint (no radlads_checkpoint metadata)");
  }
  if (version->second != std::to_string(kCheckpointFormatVersion)) {
    return Status::InvalidArgument(path + ": training checkpoint format " + version->second +
                                   "; this build reads format " + std::to_string(kCheckpointFormatVersion));
  }
  TrainingState st;
  RADLADS_ASSIGN_OR_RETURN(st.optimizer_step, MetaInt(f, "optimizer_step"));
  RADLADS_ASSIGN_OR_RETURN(st.tokens, MetaInt(f, "tokens"));
  RADLADS_ASSIGN_OR_RETURN(st.sample_cursor, MetaInt(f, "sample_cursor"));
  for (const auto& [k, v] : f.metadata()) {
    if (k != "radlads_checkpoint" && k != "optimizer_step" && k != "tokens" && k != "sample_cursor") st.extra[k] = v;
  }
  for (Param* p : params.params()) {
    const SafetensorsTensorInfo* info = f.Find(p->name);
    if (info == nullptr) {
      if (require_all) return Status::Corruption(path + ": tensor '" + p->name + "' is missing");
      continue;
    }
    RADLADS_RETURN_IF_ERROR(CopyInto(f, *info, p->value));
    const SafetensorsTensorInfo* m = f.Find(p->name + kMomentM);
    const SafetensorsTensorInfo* v = f.Find(p->name + kMomentV);
    if (m != nullptr && v != nullptr) {
      if (!p->adam_m.defined()) {
        p->adam_m = Tensor::Zeros(p->value.shape());
        p->adam_v = Tensor::Zeros(p->value.shape());
      }
      RADLADS_RETURN_IF_ERROR(CopyInto(f, *m, p->adam_m));
      RADLADS_RETURN_IF_ERROR(CopyInto(f, *v, p->adam_v));
    }
  }
  return st;
}

}  // namespace radlads
