#include "storage/activation_cache.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "base/checksum.h"
#include "base/file.h"
#include "base/profile.h"

namespace radlads {
namespace {

// HDF5 prints its error stack to stderr by default; we report errors through Status instead.
void SilenceHdf5() {
  static bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

// Closes an HDF5 handle on scope exit.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    Reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~H5Handle() { Reset(); }
  void Reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

std::string LayerGroup(std::int64_t layer) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/layers/L%03lld", static_cast<long long>(layer));
  return buf;
}

Status H5Error(const std::string& path, const std::string& what) {
  return Status::IOError(path + ": HDF5 " + what + " failed");
}

Status WriteAttrI64(hid_t loc, const char* name, std::int64_t v) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(loc, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), H5T_NATIVE_INT64, &v) < 0) return Status::IOError(name);
  return Status::Ok();
}

Status WriteAttrStr(hid_t loc, const char* name, const std::string& v) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), v.size());
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), v.data()) < 0) return Status::IOError(name);
  return Status::Ok();
}

bool ReadAttrI64(hid_t loc, const char* name, std::int64_t* v) {
  if (H5Aexists(loc, name) <= 0) return false;
  H5Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  return attr.ok() && H5Aread(attr.get(), H5T_NATIVE_INT64, v) >= 0;
}

bool ReadAttrStr(hid_t loc, const char* name, std::string* v) {
  if (H5Aexists(loc, name) <= 0) return false;
  H5Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return false;
  H5Handle type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) return false;
  std::size_t n = H5Tget_size(type.get());
  if (n > 4096) return false;
  std::string s(n, '\0');
  H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), n);
  if (H5Aread(attr.get(), mem.get(), s.data()) < 0) return false;
  while (!s.empty() && s.back() == '\0') s.pop_back();
  *v = s;
  return true;
}

Result<std::uint64_t> FileChecksum(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open to checksum");
  Checksum64Stream h;
  std::vector<std::byte> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      ::close(fd);
      return Status::IOError(path + ": read failed while checksumming");
    }
    if (n == 0) break;
    h.Update(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return h.Digest();
}

// Element conversion between F32 tensors and the stored type.
std::vector<std::uint16_t> ToBf16(const float* src, std::int64_t n) {
  std::vector<std::uint16_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = F32ToBf16(src[i]);
  return out;
}

}  // namespace

std::int64_t ActivationCacheMeta::PayloadBytes() const {
  const std::int64_t elem = static_cast<std::int64_t>(DTypeSize(dtype));
  const std::int64_t per = samples * seq_len * hidden * elem;
  return per * (2 * layers() + 1) + samples * seq_len * (4 + value_first_width * elem);
}

bool operator==(const ActivationCacheMeta& a, const ActivationCacheMeta& b) {
  return a.segment == b.segment && a.stage == b.stage && a.first_layer == b.first_layer &&
         a.last_layer == b.last_layer && a.samples == b.samples && a.seq_len == b.seq_len &&
         a.hidden == b.hidden && a.sample_begin == b.sample_begin && a.dtype == b.dtype &&
         a.value_first_width == b.value_first_width;
}

// ---------------------------------------------------------------------------------------------

struct ActivationCacheWriter::Impl {
  std::string path, tmp;
  ActivationCacheMeta meta;
  H5Handle file;
  std::vector<std::vector<bool>> written;  // per layer (+1 for the stage output), per sample
  bool finished = false;

  hid_t StoredType() const { return meta.dtype == DType::kBF16 ? H5T_STD_U16LE : H5T_IEEE_F32LE; }
  hid_t MemType() const { return meta.dtype == DType::kBF16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT; }

  Status CreateDataset(const std::string& name, hid_t type, int rank, std::int64_t width = 0) {
    if (width == 0) width = meta.hidden;
    hsize_t dims[3] = {static_cast<hsize_t>(meta.samples), static_cast<hsize_t>(meta.seq_len),
                       static_cast<hsize_t>(width)};
    hsize_t chunk[3] = {1, static_cast<hsize_t>(meta.seq_len), static_cast<hsize_t>(width)};
    H5Handle space(H5Screate_simple(rank, dims, nullptr), H5Sclose);
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (meta.samples > 0) {
      H5Pset_chunk(dcpl.get(), rank, chunk);
      H5Pset_fletcher32(dcpl.get());
    }
    H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    H5Handle ds(H5Dcreate2(file.get(), name.c_str(), type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                H5Dclose);
    if (!ds.ok()) return H5Error(path, "create dataset " + name);
    return Status::Ok();
  }

  Status WriteRows(const std::string& name, std::int64_t first, std::int64_t n, int rank, hid_t mem_type,
                   const void* data, std::int64_t width = 0) {
    if (width == 0) width = meta.hidden;
    H5Handle ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) return H5Error(path, "open dataset " + name);
    hsize_t start[3] = {static_cast<hsize_t>(first), 0, 0};
    hsize_t count[3] = {static_cast<hsize_t>(n), static_cast<hsize_t>(meta.seq_len),
                        static_cast<hsize_t>(width)};
    H5Handle fspace(H5Dget_space(ds.get()), H5Sclose);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    H5Handle mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
    if (H5Dwrite(ds.get(), mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data) < 0) {
      return H5Error(path, "write " + name);
    }
    return Status::Ok();
  }

  Status CheckRange(const char* what, std::int64_t first, const Tensor& t, std::int64_t last_dim) {
    const std::int64_t n = t.defined() && t.rank() >= 1 ? t.dim(0) : -1;
    Shape want = {n, meta.seq_len};
    if (last_dim > 0) want.push_back(last_dim);
    if (n < 0 || first < 0 || first + n > meta.samples || t.shape() != want) {
      return Status::InvalidArgument(path + ": " + what + ": samples [" + std::to_string(first) + ", " +
                                     std::to_string(first + n) + ") of shape " + ShapeToString(t.shape()) +
                                     " do not fit the cache's " + std::to_string(meta.samples) + " x " +
                                     std::to_string(meta.seq_len) + " x " + std::to_string(meta.hidden));
    }
    return Status::Ok();
  }

  Status WriteFloats(const std::string& name, std::int64_t first, const Tensor& t) {
    const std::int64_t width = t.dim(-1);
    if (meta.dtype == DType::kBF16) {
      std::vector<std::uint16_t> b = ToBf16(t.f32(), t.numel());
      return WriteRows(name, first, t.dim(0), 3, H5T_NATIVE_UINT16, b.data(), width);
    }
    return WriteRows(name, first, t.dim(0), 3, H5T_NATIVE_FLOAT, t.f32(), width);
  }
};

ActivationCacheWriter::ActivationCacheWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ActivationCacheWriter::~ActivationCacheWriter() {
  if (impl_ && !impl_->finished) {
    impl_->file.Reset();
    ::unlink(impl_->tmp.c_str());
  }
}

Result<std::unique_ptr<ActivationCacheWriter>> ActivationCacheWriter::Create(
    const std::string& path, const ActivationCacheMeta& meta) {
  SilenceHdf5();
  if (meta.dtype != DType::kF32 && meta.dtype != DType::kBF16) {
    return Status::InvalidArgument(path + ": activation cache dtype must be F32 or BF16");
  }
  if (meta.samples < 0 || meta.seq_len <= 0 || meta.hidden <= 0 || meta.first_layer < 0 ||
      meta.last_layer <= meta.first_layer) {
    return Status::InvalidArgument(path + ": activation cache shape is invalid");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->tmp = path + ".tmp." + std::to_string(::getpid());
  impl->meta = meta;
  ::unlink(impl->tmp.c_str());
  impl->file = H5Handle(H5Fcreate(impl->tmp.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!impl->file.ok()) return H5Error(impl->tmp, "create file");
  hid_t root = impl->file.get();
  RADLADS_RETURN_IF_ERROR(WriteAttrStr(root, "magic", kActivationCacheMagic));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "version", kActivationCacheVersion));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "segment", meta.segment));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "stage", meta.stage));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "first_layer", meta.first_layer));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "last_layer", meta.last_layer));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "samples", meta.samples));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "seq_len", meta.seq_len));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "hidden", meta.hidden));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "sample_begin", meta.sample_begin));
  RADLADS_RETURN_IF_ERROR(WriteAttrStr(root, "dtype", std::string(DTypeName(meta.dtype))));
  RADLADS_RETURN_IF_ERROR(WriteAttrI64(root, "value_first_width", meta.value_first_width));
  for (std::int64_t l = meta.first_layer; l < meta.last_layer; ++l) {
    RADLADS_RETURN_IF_ERROR(impl->CreateDataset(LayerGroup(l) + "/mixer_in", impl->StoredType(), 3));
    RADLADS_RETURN_IF_ERROR(impl->CreateDataset(LayerGroup(l) + "/mixer_out", impl->StoredType(), 3));
  }
  RADLADS_RETURN_IF_ERROR(impl->CreateDataset("/stage_out", impl->StoredType(), 3));
  RADLADS_RETURN_IF_ERROR(impl->CreateDataset("/tokens", H5T_STD_I32LE, 2));
  if (meta.value_first_width > 0) {
    RADLADS_RETURN_IF_ERROR(
        impl->CreateDataset("/value_first", impl->StoredType(), 3, meta.value_first_width));
  }
  impl->written.assign(static_cast<std::size_t>(meta.layers() + 1 + (meta.value_first_width > 0 ? 1 : 0)),
                       std::vector<bool>(static_cast<std::size_t>(meta.samples), false));
  return std::unique_ptr<ActivationCacheWriter>(new ActivationCacheWriter(std::move(impl)));
}

Status ActivationCacheWriter::WriteLayer(std::int64_t layer, std::int64_t first, const Tensor& mixer_in,
                                         const Tensor& mixer_out) {
  const profile::Scope profile_scope(profile::Family::kIo);
  Impl& m = *impl_;
  if (layer < m.meta.first_layer || layer >= m.meta.last_layer) {
    return Status::InvalidArgument(m.path + ": layer " + std::to_string(layer) + " is not in this stage");
  }
  RADLADS_RETURN_IF_ERROR(m.CheckRange("mixer_in", first, mixer_in, m.meta.hidden));
  RADLADS_RETURN_IF_ERROR(m.CheckRange("mixer_out", first, mixer_out, m.meta.hidden));
  if (mixer_in.dim(0) != mixer_out.dim(0)) return Status::InvalidArgument(m.path + ": mixer_in/out sizes differ");
  RADLADS_RETURN_IF_ERROR(m.WriteFloats(LayerGroup(layer) + "/mixer_in", first, mixer_in));
  RADLADS_RETURN_IF_ERROR(m.WriteFloats(LayerGroup(layer) + "/mixer_out", first, mixer_out));
  auto& w = m.written[static_cast<std::size_t>(layer - m.meta.first_layer)];
  for (std::int64_t i = first; i < first + mixer_in.dim(0); ++i) w[static_cast<std::size_t>(i)] = true;
  return Status::Ok();
}

Status ActivationCacheWriter::WriteStageOutput(std::int64_t first, const Tensor& hidden, const Tensor& tokens) {
  const profile::Scope profile_scope(profile::Family::kIo);
  Impl& m = *impl_;
  RADLADS_RETURN_IF_ERROR(m.CheckRange("stage_out", first, hidden, m.meta.hidden));
  RADLADS_RETURN_IF_ERROR(m.CheckRange("tokens", first, tokens, 0));
  if (tokens.dtype() != DType::kI32) return Status::InvalidArgument(m.path + ": tokens must be I32");
  RADLADS_RETURN_IF_ERROR(m.WriteFloats("/stage_out", first, hidden));
  RADLADS_RETURN_IF_ERROR(m.WriteRows("/tokens", first, tokens.dim(0), 2, H5T_NATIVE_INT32, tokens.raw()));
  auto& w = m.written[static_cast<std::size_t>(m.meta.layers())];
  for (std::int64_t i = first; i < first + hidden.dim(0); ++i) w[static_cast<std::size_t>(i)] = true;
  return Status::Ok();
}

Status ActivationCacheWriter::WriteValueFirst(std::int64_t first, const Tensor& v_first) {
  const profile::Scope profile_scope(profile::Family::kIo);
  Impl& m = *impl_;
  if (m.meta.value_first_width == 0) {
    return Status::InvalidArgument(m.path + ": this cache has no value_first dataset");
  }
  RADLADS_RETURN_IF_ERROR(m.CheckRange("value_first", first, v_first, m.meta.value_first_width));
  RADLADS_RETURN_IF_ERROR(m.WriteFloats("/value_first", first, v_first));
  auto& w = m.written.back();
  for (std::int64_t i = first; i < first + v_first.dim(0); ++i) w[static_cast<std::size_t>(i)] = true;
  return Status::Ok();
}

Result<std::uint64_t> ActivationCacheWriter::Finish() {
  const profile::Scope profile_scope(profile::Family::kIo);
  Impl& m = *impl_;
  for (std::size_t k = 0; k < m.written.size(); ++k) {
    for (std::size_t i = 0; i < m.written[k].size(); ++i) {
      if (!m.written[k][i]) {
        const auto layers = static_cast<std::size_t>(m.meta.layers());
        std::string what = k == layers       ? std::string("stage output")
                           : k > layers      ? std::string("value_first")
                                             : "layer " + std::to_string(m.meta.first_layer + static_cast<std::int64_t>(k));
        return Status::FailedPrecondition(m.path + ": " + what + " sample " + std::to_string(i) +
                                          " was never written");
      }
    }
  }
  if (H5Fflush(m.file.get(), H5F_SCOPE_GLOBAL) < 0) return H5Error(m.tmp, "flush");
  m.file.Reset();
  int fd = ::open(m.tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::IOError(m.tmp + ": fsync failed");
  }
  ::close(fd);
  RADLADS_ASSIGN_OR_RETURN(std::uint64_t sum, FileChecksum(m.tmp));
  if (::rename(m.tmp.c_str(), m.path.c_str()) != 0) return Status::IOError(m.path + ": rename failed");
  m.finished = true;
  RADLADS_RETURN_IF_ERROR(FsyncDirectory(DirName(m.path)));
  return sum;
}

// ---------------------------------------------------------------------------------------------

struct ActivationCacheReader::Impl {
  std::string path;
  ActivationCacheMeta meta;
  H5Handle file;

  Status ReadRows(const std::string& name, std::int64_t first, std::int64_t n, int rank, Tensor& out,
                  std::int64_t width = 0) const {
    if (width == 0) width = meta.hidden;
    H5Handle ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) return Status::Corruption(path + ": dataset " + name + " is missing");
    hsize_t start[3] = {static_cast<hsize_t>(first), 0, 0};
    hsize_t count[3] = {static_cast<hsize_t>(n), static_cast<hsize_t>(meta.seq_len),
                        static_cast<hsize_t>(width)};
    H5Handle fspace(H5Dget_space(ds.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(fspace.get()) != rank) {
      return Status::Corruption(path + ": dataset " + name + " has the wrong rank");
    }
    hsize_t dims[3] = {0, 0, 0};
    H5Sget_simple_extent_dims(fspace.get(), dims, nullptr);
    if (dims[0] != static_cast<hsize_t>(meta.samples) || dims[1] != static_cast<hsize_t>(meta.seq_len) ||
        (rank == 3 && dims[2] != static_cast<hsize_t>(width))) {
      return Status::Corruption(path + ": dataset " + name + " disagrees with the file's shape attributes");
    }
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    H5Handle mspace(H5Screate_simple(rank, count, nullptr), H5Sclose);
    herr_t rc;
    if (rank == 2) {
      rc = H5Dread(ds.get(), H5T_NATIVE_INT32, mspace.get(), fspace.get(), H5P_DEFAULT, out.raw());
    } else if (meta.dtype == DType::kBF16) {
      std::vector<std::uint16_t> b(static_cast<std::size_t>(out.numel()));
      rc = H5Dread(ds.get(), H5T_NATIVE_UINT16, mspace.get(), fspace.get(), H5P_DEFAULT, b.data());
      if (rc >= 0) ConvertToF32(DType::kBF16, b.data(), out.f32(), b.size());
    } else {
      rc = H5Dread(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT, out.raw());
    }
    if (rc < 0) {
      return Status::Corruption(path + ": reading " + name + " samples [" + std::to_string(first) + ", " +
                                std::to_string(first + n) + ") failed its Fletcher32 checksum or is unreadable");
    }
    return Status::Ok();
  }

  Status CheckOut(const char* what, std::int64_t first, const Tensor& t, std::int64_t last_dim) const {
    const std::int64_t n = t.defined() && t.rank() >= 1 ? t.dim(0) : -1;
    Shape want = {n, meta.seq_len};
    if (last_dim > 0) want.push_back(last_dim);
    if (n < 0 || first < 0 || first + n > meta.samples || t.shape() != want) {
      return Status::InvalidArgument(path + ": " + what + ": cannot read samples [" + std::to_string(first) +
                                     ", " + std::to_string(first + n) + ") into " + ShapeToString(t.shape()));
    }
    return Status::Ok();
  }
};

ActivationCacheReader::ActivationCacheReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ActivationCacheReader::~ActivationCacheReader() = default;

const ActivationCacheMeta& ActivationCacheReader::meta() const { return impl_->meta; }

Result<std::unique_ptr<ActivationCacheReader>> ActivationCacheReader::Open(
    const std::string& path, const std::optional<ActivationCacheMeta>& expect,
    std::optional<std::uint64_t> checksum) {
  SilenceHdf5();
  if (!PathExists(path)) return Status::NotFound(path + ": activation cache file is missing");
  if (checksum) {
    RADLADS_ASSIGN_OR_RETURN(std::uint64_t got, FileChecksum(path));
    if (got != *checksum) {
      return Status::Corruption(path + ": checksum " + FormatChecksum(got) + " does not match the recorded " +
                                FormatChecksum(*checksum));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (H5Fis_hdf5(path.c_str()) <= 0) return Status::Corruption(path + ": not an HDF5 file");
  impl->file = H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!impl->file.ok()) return Status::Corruption(path + ": HDF5 cannot open the file");
  hid_t root = impl->file.get();
  std::string magic, dtype;
  std::int64_t version = 0;
  if (!ReadAttrStr(root, "magic", &magic) || magic != kActivationCacheMagic) {
    return Status::Corruption(path + ": magic: expected \"" + std::string(kActivationCacheMagic) + "\"");
  }
  if (!ReadAttrI64(root, "version", &version) || version != kActivationCacheVersion) {
    return Status::Corruption(path + ": version: " + std::to_string(version) + ", expected " +
                              std::to_string(kActivationCacheVersion));
  }
  ActivationCacheMeta& m = impl->meta;
  struct Field { const char* name; std::int64_t* v; };
  for (Field f : {Field{"segment", &m.segment}, Field{"stage", &m.stage}, Field{"first_layer", &m.first_layer},
                  Field{"last_layer", &m.last_layer}, Field{"samples", &m.samples}, Field{"seq_len", &m.seq_len},
                  Field{"hidden", &m.hidden}, Field{"sample_begin", &m.sample_begin}}) {
    if (!ReadAttrI64(root, f.name, f.v)) return Status::Corruption(path + ": attribute " + f.name + " is missing");
  }
  if (!ReadAttrI64(root, "value_first_width", &m.value_first_width) || m.value_first_width < 0) {
    return Status::Corruption(path + ": attribute value_first_width is missing or negative");
  }
  if (!ReadAttrStr(root, "dtype", &dtype) || (dtype != "F32" && dtype != "BF16")) {
    return Status::Corruption(path + ": dtype attribute: expected F32 or BF16");
  }
  m.dtype = dtype == "BF16" ? DType::kBF16 : DType::kF32;
  if (m.samples < 0 || m.seq_len <= 0 || m.hidden <= 0 || m.last_layer <= m.first_layer) {
    return Status::Corruption(path + ": shape attributes are invalid");
  }
  if (expect && !(*expect == m)) {
    return Status::Corruption(path + ": holds segment " + std::to_string(m.segment) + " stage " +
                              std::to_string(m.stage) + " layers [" + std::to_string(m.first_layer) + ", " +
                              std::to_string(m.last_layer) + ") " + std::to_string(m.samples) + "x" +
                              std::to_string(m.seq_len) + "x" + std::to_string(m.hidden) +
                              ", which is not the cache the plan expects");
  }
  return std::unique_ptr<ActivationCacheReader>(new ActivationCacheReader(std::move(impl)));
}

Status ActivationCacheReader::ReadLayer(std::int64_t layer, std::int64_t first, Tensor& mixer_in,
                                        Tensor& mixer_out) const {
  const profile::Scope profile_scope(profile::Family::kIo);
  const Impl& m = *impl_;
  if (layer < m.meta.first_layer || layer >= m.meta.last_layer) {
    return Status::InvalidArgument(m.path + ": layer " + std::to_string(layer) + " is not in this stage");
  }
  RADLADS_RETURN_IF_ERROR(m.CheckOut("mixer_in", first, mixer_in, m.meta.hidden));
  RADLADS_RETURN_IF_ERROR(m.CheckOut("mixer_out", first, mixer_out, m.meta.hidden));
  RADLADS_RETURN_IF_ERROR(m.ReadRows(LayerGroup(layer) + "/mixer_in", first, mixer_in.dim(0), 3, mixer_in));
  return m.ReadRows(LayerGroup(layer) + "/mixer_out", first, mixer_out.dim(0), 3, mixer_out);
}

Status ActivationCacheReader::ReadValueFirst(std::int64_t first, Tensor& v_first) const {
  const profile::Scope profile_scope(profile::Family::kIo);
  const Impl& m = *impl_;
  if (m.meta.value_first_width == 0) {
    return Status::InvalidArgument(m.path + ": this cache has no value_first dataset");
  }
  RADLADS_RETURN_IF_ERROR(m.CheckOut("value_first", first, v_first, m.meta.value_first_width));
  return m.ReadRows("/value_first", first, v_first.dim(0), 3, v_first, m.meta.value_first_width);
}

Status ActivationCacheReader::ReadStageOutput(std::int64_t first, Tensor& hidden, Tensor& tokens) const {
  const profile::Scope profile_scope(profile::Family::kIo);
  const Impl& m = *impl_;
  RADLADS_RETURN_IF_ERROR(m.CheckOut("stage_out", first, hidden, m.meta.hidden));
  RADLADS_RETURN_IF_ERROR(m.CheckOut("tokens", first, tokens, 0));
  RADLADS_RETURN_IF_ERROR(m.ReadRows("/stage_out", first, hidden.dim(0), 3, hidden));
  return m.ReadRows("/tokens", first, tokens.dim(0), 2, tokens);
}

}  // namespace radlads
