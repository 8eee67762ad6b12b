#include "storage/token_dataset.h"

#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "storage/binidx.h"
#include "storage/npy.h"

namespace radlads {
namespace {

static_assert(std::endian::native == std::endian::little, "token I/O assumes a little-endian host");

std::string Str(std::uint64_t v) { return std::to_string(v); }
std::string Str(std::int64_t v) { return std::to_string(v); }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

template <typename T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Calls f(T{}) with T the stored element type.
template <typename F>
decltype(auto) DispatchTokenType(DType t, F&& f) {
  switch (t) {
    case DType::kU8: return f(std::uint8_t{});
    case DType::kI8: return f(std::int8_t{});
    case DType::kI16: return f(std::int16_t{});
    case DType::kU16: return f(std::uint16_t{});
    case DType::kI32: return f(std::int32_t{});
    case DType::kU32: return f(std::uint32_t{});
    default: return f(std::int64_t{});  // kI64; Open admits no other type
  }
}

Status RangeError(const std::string& name, std::uint64_t start, std::uint64_t n, std::uint64_t size) {
  return Status::InvalidArgument(name + ": tokens [" + Str(start) + ", " + Str(start) + "+" + Str(n) +
                                 ") are outside the dataset (" + Str(size) + " tokens)");
}

Status ValueError(const std::string& name, std::uint64_t index, std::int64_t value,
                  std::string_view expected) {
  return Status::Corruption(name + ": token[" + Str(index) + "]=" + Str(value) + " " +
                            std::string(expected));
}

template <typename Out, typename Stored>
Status CopyAs(const std::byte* data, std::uint64_t start, std::span<Out> out, const std::string& name) {
  const std::byte* p = data + start * sizeof(Stored);
  for (std::size_t i = 0; i < out.size(); ++i, p += sizeof(Stored)) {
    const Stored v = Load<Stored>(p);
    if constexpr (std::is_signed_v<Stored>) {
      if (v < 0) {
        return ValueError(name, start + i, static_cast<std::int64_t>(v), "is negative; token ids must be >= 0");
      }
    }
    if constexpr (sizeof(Stored) > sizeof(Out) ||
                  (sizeof(Stored) == sizeof(Out) && std::is_unsigned_v<Stored> && std::is_signed_v<Out>)) {
      if (static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<Out>::max())) {
        return ValueError(name, start + i, static_cast<std::int64_t>(v),
                          std::is_signed_v<Out> ? "does not fit int32" : "does not fit uint32");
      }
    }
    out[i] = static_cast<Out>(v);
  }
  return Status::Ok();
}

}  // namespace

std::string_view TokenFileFormatName(TokenFileFormat f) {
  switch (f) {
    case TokenFileFormat::kAuto: return "auto";
    case TokenFileFormat::kBinidx: return "binidx";
    case TokenFileFormat::kNpy: return "npy";
    case TokenFileFormat::kRawU32: return "u32";
    case TokenFileFormat::kRawU16: return "u16";
    case TokenFileFormat::kMemory: return "memory";
  }
  return "unknown";
}

Result<TokenFileFormat> ParseTokenFileFormat(std::string_view name) {
  for (auto f : {TokenFileFormat::kAuto, TokenFileFormat::kBinidx, TokenFileFormat::kNpy,
                 TokenFileFormat::kRawU32, TokenFileFormat::kRawU16}) {
    if (name == TokenFileFormatName(f)) return f;
  }
  return Status::InvalidArgument("token file format '" + std::string(name) +
                                 "' is unknown; expected auto, binidx, npy, u32 or u16");
}

Result<TokenDataset> TokenDataset::Open(const std::string& path, TokenFileFormat format) {
  std::string prefix = path;  // binidx prefix when format ends up kBinidx
  if (format == TokenFileFormat::kAuto || format == TokenFileFormat::kBinidx) {
    const bool tagged_pair = EndsWith(path, ".idx") || EndsWith(path, ".bin");
    const std::string stripped = tagged_pair ? path.substr(0, path.size() - 4) : path;
    if (format == TokenFileFormat::kAuto) {
      if (EndsWith(path, ".npy")) {
        format = TokenFileFormat::kNpy;
      } else if (EndsWith(path, ".u32")) {
        format = TokenFileFormat::kRawU32;
      } else if (PathExists(path + ".idx") && PathExists(path + ".bin")) {
        format = TokenFileFormat::kBinidx;
      } else if (tagged_pair && PathExists(stripped + ".idx") && PathExists(stripped + ".bin")) {
        format = TokenFileFormat::kBinidx;
        prefix = stripped;
      } else if (EndsWith(path, ".bin") && PathExists(path)) {
        return Status::InvalidArgument(
            path + ": cannot tell the token format: no " + stripped +
            ".idx beside it for binidx; for a raw nanoGPT uint16 file ask for format u16 explicitly");
      } else if (!PathExists(path) && !PathExists(path + ".idx") && !PathExists(path + ".bin")) {
        return Status::NotFound(path + ": no such token file (nor " + path + ".idx/.bin)");
      } else {
        return Status::InvalidArgument(
            path + ": cannot tell the token format; expected PREFIX with PREFIX.idx + PREFIX.bin "
                   "(binidx), *.npy, *.u32, or an explicit format (binidx, npy, u32, u16)");
      }
    } else if (!(PathExists(path + ".idx") && PathExists(path + ".bin")) && tagged_pair) {
      prefix = stripped;
    }
  }

  TokenDataset ds;
  ds.format_ = format;
  switch (format) {
    case TokenFileFormat::kBinidx: {
      const std::string idx_path = prefix + ".idx";
      const std::string bin_path = prefix + ".bin";
      RADLADS_ASSIGN_OR_RETURN(MappedFile idx, MappedFile::Open(idx_path));
      RADLADS_ASSIGN_OR_RETURN(ds.file_, MappedFile::Open(bin_path));
      RADLADS_ASSIGN_OR_RETURN(BinidxIndex index,
                               ParseBinidxIndex(idx.bytes(), ds.file_.size(), idx_path, bin_path));
      ds.dtype_ = index.token_dtype;
      ds.item_size_ = index.item_size;
      ds.count_ = index.token_count;
      ds.doc_starts_ = index.DocumentStartTokens();
      ds.name_ = bin_path;
      ds.data_ = ds.file_.data();
      return ds;
    }
    case TokenFileFormat::kNpy: {
      RADLADS_ASSIGN_OR_RETURN(ds.file_, MappedFile::Open(path));
      RADLADS_ASSIGN_OR_RETURN(NpyHeader h, ParseNpyFile(ds.file_.bytes(), path));
      if (h.shape.size() != 1) {
        return Status::InvalidArgument(path + ": shape has " + Str(std::uint64_t{h.shape.size()}) +
                                       " dimensions; a token file must be 1-D");
      }
      if (h.dtype == DType::kF32) {
        return Status::InvalidArgument(path + ": descr '<f4' is a float type; tokens must be integers");
      }
      ds.dtype_ = h.dtype;
      ds.item_size_ = DTypeSize(h.dtype);
      ds.count_ = h.element_count;
      ds.data_ = ds.file_.data() + h.data_offset;
      ds.name_ = path;
      return ds;
    }
    case TokenFileFormat::kRawU32:
    case TokenFileFormat::kRawU16: {
      RADLADS_ASSIGN_OR_RETURN(ds.file_, MappedFile::Open(path));
      ds.dtype_ = format == TokenFileFormat::kRawU32 ? DType::kU32 : DType::kU16;
      ds.item_size_ = DTypeSize(ds.dtype_);
      if (ds.file_.size() % ds.item_size_ != 0) {
        return Status::Corruption(path + ": size " + Str(std::uint64_t{ds.file_.size()}) +
                                  " bytes is not a multiple of " + Str(std::uint64_t{ds.item_size_}) +
                                  " (raw " + std::string(TokenFileFormatName(format)) + " tokens)");
      }
      ds.count_ = ds.file_.size() / ds.item_size_;
      ds.data_ = ds.file_.data();
      ds.name_ = path;
      return ds;
    }
    default:
      return Status::InvalidArgument(path + ": cannot open token format " +
                                     std::string(TokenFileFormatName(format)));
  }
}

TokenDataset TokenDataset::FromTokens(std::vector<std::uint32_t> tokens, std::string name) {
  TokenDataset ds;
  ds.format_ = TokenFileFormat::kMemory;
  ds.dtype_ = DType::kU32;
  ds.item_size_ = 4;
  ds.owned_ = std::move(tokens);
  ds.count_ = ds.owned_.size();
  ds.data_ = reinterpret_cast<const std::byte*>(ds.owned_.data());
  ds.name_ = std::move(name);
  return ds;
}

std::int64_t TokenDataset::RawTokenAt(std::uint64_t i) const {
  const std::byte* p = ElementPtr(i);
  return DispatchTokenType(dtype_, [&](auto tag) -> std::int64_t {
    using T = decltype(tag);
    return static_cast<std::int64_t>(Load<T>(p));
  });
}

Result<std::uint32_t> TokenDataset::TokenAt(std::uint64_t i) const {
  std::uint32_t v = 0;
  RADLADS_RETURN_IF_ERROR(CopyTokens(i, std::span<std::uint32_t>(&v, 1)));
  return v;
}

Status TokenDataset::CopyTokens(std::uint64_t start, std::span<std::uint32_t> out) const {
  if (start > count_ || out.size() > count_ - start) return RangeError(name_, start, out.size(), count_);
  return DispatchTokenType(dtype_, [&](auto tag) {
    return CopyAs<std::uint32_t, decltype(tag)>(data_, start, out, name_);
  });
}

Status TokenDataset::CopyTokens(std::uint64_t start, std::span<std::int32_t> out) const {
  if (start > count_ || out.size() > count_ - start) return RangeError(name_, start, out.size(), count_);
  return DispatchTokenType(dtype_, [&](auto tag) {
    return CopyAs<std::int32_t, decltype(tag)>(data_, start, out, name_);
  });
}

Result<std::uint64_t> TokenDataset::MaxTokenId() const {
  if (count_ == 0) return Status::InvalidArgument(name_ + ": has no tokens, so no maximum token id");
  return DispatchTokenType(dtype_, [&](auto tag) -> Result<std::uint64_t> {
    using T = decltype(tag);
    T best = 0;
    const std::byte* p = data_;
    for (std::uint64_t i = 0; i < count_; ++i, p += sizeof(T)) {
      const T v = Load<T>(p);
      if constexpr (std::is_signed_v<T>) {
        if (v < 0) {
          return ValueError(name_, i, static_cast<std::int64_t>(v), "is negative; token ids must be >= 0");
        }
      }
      if (v > best) best = v;
    }
    return static_cast<std::uint64_t>(best);
  });
}

Status TokenDataset::CheckVocabulary(std::uint64_t vocab_size) const {
  return DispatchTokenType(dtype_, [&](auto tag) -> Status {
    using T = decltype(tag);
    const std::byte* p = data_;
    for (std::uint64_t i = 0; i < count_; ++i, p += sizeof(T)) {
      const T v = Load<T>(p);
      bool bad = false;
      if constexpr (std::is_signed_v<T>) bad = v < 0;
      if (bad || static_cast<std::uint64_t>(v) >= vocab_size) {
        return Status::InvalidArgument(name_ + ": token[" + Str(i) + "]=" +
                                       Str(static_cast<std::int64_t>(v)) +
                                       " is outside the vocabulary [0, vocab_size=" + Str(vocab_size) + ")");
      }
    }
    return Status::Ok();
  });
}

}  // namespace radlads
