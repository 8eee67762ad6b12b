#include "storage/binidx.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "base/file.h"

namespace radlads {
namespace {

static_assert(std::endian::native == std::endian::little, "binidx I/O assumes a little-endian host");

template <typename T>
T LoadLE(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void AppendLE(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

std::string DefaultBinName(std::string_view idx_name) {
  std::string s(idx_name);
  if (s.size() >= 4 && s.compare(s.size() - 4, 4, ".idx") == 0) {
    s.replace(s.size() - 4, 4, ".bin");
  } else {
    s += " (.bin)";
  }
  return s;
}

DType TokenDTypeFor(std::uint8_t code) {
  switch (code) {
    case 1: return DType::kU8;
    case 2: return DType::kI8;
    case 3: return DType::kI16;
    case 5: return DType::kI64;
    case 8: return DType::kU16;
    default: return DType::kI32;
  }
}

std::string Str(std::uint64_t v) { return std::to_string(v); }
std::string Str(std::int64_t v) { return std::to_string(v); }

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  std::string msg = path + ": " + what + " failed: " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

std::atomic<std::uint64_t> g_writer_counter{0};

constexpr std::size_t kWriteBufferBytes = 1 << 20;

}  // namespace

std::vector<std::uint64_t> BinidxIndex::DocumentStartTokens() const {
  std::vector<std::uint64_t> starts;
  if (token_count == 0) return starts;
  const std::size_t s_count = sizes.size();
  auto push = [&](std::uint64_t tok) {
    // Empty sequences map several indices to one token offset; an offset equal to token_count
    // (trailing empty sequences) starts nothing.
    if (tok >= token_count) return;
    if (starts.empty() || starts.back() != tok) starts.push_back(tok);
  };
  push(0);
  if (doc_idx.empty()) {
    for (std::size_t i = 0; i < s_count; ++i) push(static_cast<std::uint64_t>(pointers[i]) / item_size);
  } else {
    for (std::int64_t d : doc_idx) {
      if (static_cast<std::uint64_t>(d) < s_count) {
        push(static_cast<std::uint64_t>(pointers[static_cast<std::size_t>(d)]) / item_size);
      }
    }
  }
  return starts;
}

Result<BinidxIndex> ParseBinidxIndex(std::span<const std::byte> idx, std::uint64_t bin_bytes,
                                     std::string_view idx_name, std::string_view bin_name_in) {
  const std::string name(idx_name);
  const std::string bin_name = bin_name_in.empty() ? DefaultBinName(idx_name) : std::string(bin_name_in);
  const std::uint64_t n = idx.size();
  const std::byte* p = idx.data();

  if (n < kBinidxHeaderSize) {
    return Status::Corruption(name + ": header: file has " + Str(n) +
                              " bytes, expected at least " + Str(std::uint64_t{kBinidxHeaderSize}) +
                              " (magic, version, dtype, sequence count, doc_idx count)");
  }
  if (std::memcmp(p, kBinidxMagic.data(), kBinidxMagic.size()) != 0) {
    return Status::Corruption(name + ": magic: expected \"MMIDIDX\\0\\0\" (a Megatron binidx index)");
  }
  const auto version = LoadLE<std::uint64_t>(p + kBinidxVersionOffset);
  if (version != kBinidxVersion) {
    return Status::Corruption(name + ": version: " + Str(version) + ", expected " + Str(kBinidxVersion));
  }
  const auto code = static_cast<std::uint8_t>(p[kBinidxDTypeOffset]);
  const auto item = BinidxTokenItemSize(code);
  if (!item) {
    if (code == 6 || code == 7) {
      return Status::Corruption(name + ": dtype code " + Str(std::uint64_t{code}) + " (" +
                                std::string(BinidxDTypeName(code)) +
                                ") is a float type; tokens must be integers (codes 1-5 or 8)");
    }
    return Status::Corruption(name + ": dtype code " + Str(std::uint64_t{code}) +
                              " is unknown; expected 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64 or 8 uint16");
  }
  const std::uint64_t item_size = *item;
  const auto s_count = LoadLE<std::uint64_t>(p + kBinidxSequenceCountOffset);
  const auto d_count = LoadLE<std::uint64_t>(p + kBinidxDocCountOffset);

  // Bound the counts by the bytes present before multiplying anything.
  const std::uint64_t body = n - kBinidxHeaderSize;
  if (s_count > body / 12) {
    return Status::Corruption(name + ": sequence count S=" + Str(s_count) + " needs " +
                              (s_count > std::numeric_limits<std::uint64_t>::max() / 12
                                   ? std::string("more than 2^64")
                                   : Str(s_count * 12)) +
                              " bytes of sizes and pointers but only " + Str(body) +
                              " bytes follow the 34-byte header");
  }
  const std::uint64_t after_seq = body - s_count * 12;
  if (d_count > after_seq / 8) {
    return Status::Corruption(name + ": doc_idx count D=" + Str(d_count) + " needs " +
                              (d_count > std::numeric_limits<std::uint64_t>::max() / 8
                                   ? std::string("more than 2^64")
                                   : Str(d_count * 8)) +
                              " bytes but only " + Str(after_seq) +
                              " bytes follow the sizes and pointers");
  }
  const std::uint64_t trailing = after_seq - d_count * 8;
  if (trailing != 0 && trailing != s_count) {
    return Status::Corruption(name + ": " + Str(trailing) +
                              " bytes follow doc_idx; expected 0 or S=" + Str(s_count) +
                              " (a multimodal modes array)");
  }
  if (bin_bytes % item_size != 0) {
    return Status::Corruption(bin_name + ": size " + Str(bin_bytes) + " bytes is not a multiple of " +
                              Str(item_size) + " (itemsize of dtype " +
                              std::string(BinidxDTypeName(code)) + " from " + name + ")");
  }

  BinidxIndex out;
  out.dtype_code = static_cast<BinidxDTypeCode>(code);
  out.token_dtype = TokenDTypeFor(code);
  out.item_size = static_cast<std::size_t>(item_size);
  out.has_modes = trailing != 0 && s_count != 0;

  const std::byte* sizes_p = p + kBinidxHeaderSize;
  const std::byte* pointers_p = sizes_p + 4 * s_count;
  const std::byte* doc_p = pointers_p + 8 * s_count;
  out.sizes.resize(static_cast<std::size_t>(s_count));
  out.pointers.resize(static_cast<std::size_t>(s_count));

  std::uint64_t running = 0;  // bytes; always <= bin_bytes
  for (std::uint64_t i = 0; i < s_count; ++i) {
    const auto size = LoadLE<std::int32_t>(sizes_p + 4 * i);
    const auto ptr = LoadLE<std::int64_t>(pointers_p + 8 * i);
    if (size < 0) {
      return Status::Corruption(name + ": sizes[" + Str(i) + "]=" + Str(std::int64_t{size}) +
                                " is negative; expected a token count >= 0");
    }
    if (ptr < 0 || static_cast<std::uint64_t>(ptr) != running) {
      return Status::Corruption(name + ": pointers[" + Str(i) + "]=" + Str(ptr) + " expected " +
                                Str(running) + " (the running sum of sizes[0.." + Str(i) +
                                ") x itemsize " + Str(item_size) + ")");
    }
    const std::uint64_t seq_bytes = static_cast<std::uint64_t>(size) * item_size;
    if (seq_bytes > bin_bytes - running) {
      return Status::Corruption(name + ": sizes[" + Str(i) + "]=" + Str(std::int64_t{size}) +
                                " tokens at pointer " + Str(running) + " runs past the end of " +
                                bin_name + " (" + Str(bin_bytes) + " bytes)");
    }
    running += seq_bytes;
    out.sizes[static_cast<std::size_t>(i)] = size;
    out.pointers[static_cast<std::size_t>(i)] = ptr;
  }
  if (running != bin_bytes) {
    return Status::Corruption(bin_name + ": has " + Str(bin_bytes) + " bytes but " + name +
                              " covers " + Str(running) + " (sum of sizes x itemsize " +
                              Str(item_size) + "); the .bin and .idx do not belong together");
  }
  out.token_count = running / item_size;

  out.doc_idx.resize(static_cast<std::size_t>(d_count));
  std::int64_t prev = 0;
  for (std::uint64_t j = 0; j < d_count; ++j) {
    const auto d = LoadLE<std::int64_t>(doc_p + 8 * j);
    if (d < 0 || static_cast<std::uint64_t>(d) > s_count) {
      return Status::Corruption(name + ": doc_idx[" + Str(j) + "]=" + Str(d) +
                                " is outside [0, S=" + Str(s_count) + "]");
    }
    if (j > 0 && d < prev) {
      return Status::Corruption(name + ": doc_idx[" + Str(j) + "]=" + Str(d) +
                                " is less than doc_idx[" + Str(j - 1) + "]=" + Str(prev) +
                                "; expected non-decreasing sequence indices");
    }
    prev = d;
    out.doc_idx[static_cast<std::size_t>(j)] = d;
  }
  return out;
}

Result<BinidxIndex> ReadBinidxIndex(const std::string& prefix) {
  const std::string idx_path = prefix + ".idx";
  const std::string bin_path = prefix + ".bin";
  RADLADS_ASSIGN_OR_RETURN(MappedFile idx, MappedFile::Open(idx_path));
  RADLADS_ASSIGN_OR_RETURN(MappedFile bin, MappedFile::Open(bin_path));
  return ParseBinidxIndex(idx.bytes(), bin.size(), idx_path, bin_path);
}

// ---------------------------------------------------------------------------------------------
// Writer

Result<BinidxWriter> BinidxWriter::Create(const std::string& prefix,
                                          const BinidxWriterOptions& options) {
  if (prefix.empty()) return Status::InvalidArgument("binidx writer: empty output prefix");
  if (options.vocab_size == 0) {
    return Status::InvalidArgument(prefix + ".bin: vocab_size must be >= 1");
  }
  if (options.vocab_size > std::uint64_t{std::numeric_limits<std::int32_t>::max()} + 1) {
    return Status::InvalidArgument(prefix + ".bin: vocab_size " + Str(options.vocab_size) +
                                   " does not fit int32 token ids (max 2^31)");
  }
  if (options.eos_id && *options.eos_id >= options.vocab_size) {
    return Status::InvalidArgument(prefix + ".bin: eos_id " + Str(std::uint64_t{*options.eos_id}) +
                                   " is >= vocab_size " + Str(options.vocab_size));
  }
  BinidxWriter w;
  w.prefix_ = prefix;
  w.options_ = options;
  w.dtype_code_ = BinidxWriterDTypeFor(options.vocab_size);
  w.item_size_ = *BinidxTokenItemSize(static_cast<std::uint8_t>(w.dtype_code_));
  w.tmp_bin_ = prefix + ".bin.tmp." + std::to_string(::getpid()) + "." +
               std::to_string(g_writer_counter.fetch_add(1));
  w.fd_ = ::open(w.tmp_bin_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (w.fd_ < 0) return ErrnoStatus("create", w.tmp_bin_, errno);
  w.buffer_.reserve(kWriteBufferBytes);
  return w;
}

BinidxWriter::BinidxWriter(BinidxWriter&& other) noexcept { *this = std::move(other); }

BinidxWriter& BinidxWriter::operator=(BinidxWriter&& other) noexcept {
  if (this != &other) {
    Abandon();
    prefix_ = std::move(other.prefix_);
    tmp_bin_ = std::move(other.tmp_bin_);
    fd_ = std::exchange(other.fd_, -1);
    options_ = other.options_;
    dtype_code_ = other.dtype_code_;
    item_size_ = other.item_size_;
    buffer_ = std::move(other.buffer_);
    sizes_ = std::move(other.sizes_);
    pointers_ = std::move(other.pointers_);
    token_count_ = other.token_count_;
    error_ = std::move(other.error_);
    finished_ = std::exchange(other.finished_, true);
    other.tmp_bin_.clear();
  }
  return *this;
}

BinidxWriter::~BinidxWriter() { Abandon(); }

void BinidxWriter::Abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!finished_ && !tmp_bin_.empty()) ::unlink(tmp_bin_.c_str());
  tmp_bin_.clear();
}

Status BinidxWriter::Flush() {
  const std::byte* p = buffer_.data();
  std::size_t left = buffer_.size();
  while (left > 0) {
    ssize_t k = ::write(fd_, p, left);
    if (k < 0) {
      if (errno == EINTR) continue;
      error_ = ErrnoStatus("write", tmp_bin_, errno);
      return error_;
    }
    p += k;
    left -= static_cast<std::size_t>(k);
  }
  buffer_.clear();
  return Status::Ok();
}

Status BinidxWriter::AppendDocument(std::span<const std::uint32_t> tokens) {
  if (!error_.ok()) return error_;
  if (finished_) return Status::FailedPrecondition(prefix_ + ".bin: AppendDocument after Finish");
  const std::uint64_t doc = sizes_.size();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= options_.vocab_size) {
      return Status::InvalidArgument(prefix_ + ".bin: document " + Str(doc) + " token[" + Str(std::uint64_t{i}) +
                                     "]=" + Str(std::uint64_t{tokens[i]}) + " is >= vocab_size " +
                                     Str(options_.vocab_size));
    }
  }
  const std::uint64_t count = tokens.size() + (options_.eos_id ? 1 : 0);
  if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) {
    return Status::InvalidArgument(prefix_ + ".bin: document " + Str(doc) + " has " + Str(count) +
                                   " tokens; a binidx sequence holds at most 2^31-1");
  }
  auto put = [&](std::uint32_t t) {
    if (item_size_ == 2) {
      const auto v = static_cast<std::uint16_t>(t);
      const auto* b = reinterpret_cast<const std::byte*>(&v);
      buffer_.insert(buffer_.end(), b, b + 2);
    } else {
      const auto v = static_cast<std::int32_t>(t);
      const auto* b = reinterpret_cast<const std::byte*>(&v);
      buffer_.insert(buffer_.end(), b, b + 4);
    }
  };
  for (std::uint32_t t : tokens) {
    put(t);
    if (buffer_.size() >= kWriteBufferBytes) RADLADS_RETURN_IF_ERROR(Flush());
  }
  if (options_.eos_id) put(*options_.eos_id);
  pointers_.push_back(static_cast<std::int64_t>(token_count_ * item_size_));
  sizes_.push_back(static_cast<std::int32_t>(count));
  token_count_ += count;
  return Status::Ok();
}

Status BinidxWriter::Finish() {
  if (!error_.ok()) return error_;
  if (finished_) return Status::FailedPrecondition(prefix_ + ".bin: Finish called twice");
  RADLADS_RETURN_IF_ERROR(Flush());
  const std::string bin_path = prefix_ + ".bin";
  const std::string idx_path = prefix_ + ".idx";
  if (::fsync(fd_) != 0) return error_ = ErrnoStatus("fsync", tmp_bin_, errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return error_ = ErrnoStatus("close", tmp_bin_, errno);
  // An old .idx must not outlive the .bin it describes: remove it before the new .bin lands.
  if (::unlink(idx_path.c_str()) != 0 && errno != ENOENT) {
    return error_ = ErrnoStatus("remove old index", idx_path, errno);
  }
  if (::rename(tmp_bin_.c_str(), bin_path.c_str()) != 0) {
    return error_ = ErrnoStatus("rename", bin_path, errno);
  }
  finished_ = true;
  tmp_bin_.clear();
  RADLADS_RETURN_IF_ERROR(error_ = FsyncDirectory(DirName(bin_path)));

  const std::uint64_t s = sizes_.size();
  std::string idx;
  idx.reserve(kBinidxHeaderSize + 20 * s + 8);
  idx.append(kBinidxMagic.data(), kBinidxMagic.size());
  AppendLE<std::uint64_t>(idx, kBinidxVersion);
  AppendLE<std::uint8_t>(idx, static_cast<std::uint8_t>(dtype_code_));
  AppendLE<std::uint64_t>(idx, s);
  AppendLE<std::uint64_t>(idx, s + 1);
  for (std::int32_t v : sizes_) AppendLE(idx, v);
  for (std::int64_t v : pointers_) AppendLE(idx, v);
  for (std::uint64_t d = 0; d <= s; ++d) AppendLE<std::int64_t>(idx, static_cast<std::int64_t>(d));
  error_ = AtomicWriteFile(idx_path, idx);
  return error_;
}

}  // namespace radlads
