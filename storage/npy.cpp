#include "storage/npy.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

namespace radlads {
namespace {

static_assert(std::endian::native == std::endian::little, ".npy I/O assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr std::size_t kMagicSize = 6;

std::string Str(std::uint64_t v) { return std::to_string(v); }

struct DescrEntry {
  std::string_view descr;
  DType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"<u2", DType::kU16}, {"<u4", DType::kU32}, {"<i4", DType::kI32},
    {"<i8", DType::kI64}, {"<f4", DType::kF32}, {"|u1", DType::kU8},
};

// Python's repr of a shape tuple: "()", "(5,)", "(3, 4)".
std::string ShapeRepr(std::span<const std::uint64_t> shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

// A strict recursive-descent parser for the header dict. No escapes, no nesting beyond the
// shape tuple, no expressions.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view name) : s_(text), name_(name) {}

  Status Parse(NpyHeader& out) {
    SkipWs();
    if (!Eat('{')) return Error("header: expected a dict literal starting with '{'");
    bool have_descr = false, have_fortran = false, have_shape = false;
    std::string descr;
    bool fortran = false;
    SkipWs();
    while (!Peek('}')) {
      std::string key;
      RADLADS_RETURN_IF_ERROR(ParseString(key, "a key"));
      SkipWs();
      if (!Eat(':')) return Error("header: expected ':' after key '" + key + "'");
      SkipWs();
      if (key == "descr") {
        if (have_descr) return Error("header: duplicate key 'descr'");
        have_descr = true;
        RADLADS_RETURN_IF_ERROR(ParseString(descr, "the 'descr' string"));
      } else if (key == "fortran_order") {
        if (have_fortran) return Error("header: duplicate key 'fortran_order'");
        have_fortran = true;
        if (EatWord("True")) {
          fortran = true;
        } else if (EatWord("False")) {
          fortran = false;
        } else {
          return Error("header: 'fortran_order' must be True or False");
        }
      } else if (key == "shape") {
        if (have_shape) return Error("header: duplicate key 'shape'");
        have_shape = true;
        RADLADS_RETURN_IF_ERROR(ParseShape(out.shape));
      } else {
        return Error("header: unexpected key '" + key +
                     "'; expected only 'descr', 'fortran_order' and 'shape'");
      }
      SkipWs();
      if (Eat(',')) {
        SkipWs();
        continue;
      }
      if (!Peek('}')) return Error("header: expected ',' or '}' after the value of '" + key + "'");
    }
    Eat('}');
    SkipWs();
    if (pos_ != s_.size()) return Error("header: unexpected text after the closing '}'");
    if (!have_descr) return Error("header: missing key 'descr'");
    if (!have_fortran) return Error("header: missing key 'fortran_order'");
    if (!have_shape) return Error("header: missing key 'shape'");
    if (fortran) {
      return Error("header: fortran_order is True; only C-order (row-major) arrays are supported");
    }
    std::optional<DType> dt;
    for (const auto& e : kDescrs) {
      if (descr == e.descr) dt = e.dtype;
    }
    if (!dt) {
      if (!descr.empty() && descr[0] == '>') {
        return Error("header: descr '" + descr +
                     "' is big-endian; expected little-endian '<u2', '<u4', '<i4', '<i8', '<f4' or '|u1'");
      }
      return Error("header: descr '" + descr +
                   "' is not supported; expected '<u2', '<u4', '<i4', '<i8', '<f4' or '|u1'");
    }
    out.dtype = *dt;
    return Status::Ok();
  }

 private:
  Status Error(const std::string& msg) const {
    return Status::Corruption(std::string(name_) + ": " + msg);
  }
  bool Peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  bool Eat(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  bool EatWord(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    const std::size_t end = pos_ + w.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) {
      return false;
    }
    pos_ = end;
    return true;
  }
  void SkipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  Status ParseString(std::string& out, std::string_view what) {
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) {
      return Error("header: expected " + std::string(what) + " as a quoted string");
    }
    const char q = s_[pos_++];
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '\\' || c == '\n' || c < 0x20 || c >= 0x7f) {
        return Error("header: unsupported character in " + std::string(what));
      }
      ++pos_;
    }
    if (pos_ >= s_.size()) return Error("header: unterminated string in " + std::string(what));
    out.assign(s_.substr(start, pos_ - start));
    ++pos_;
    return Status::Ok();
  }
  Status ParseShape(std::vector<std::uint64_t>& shape) {
    if (!Eat('(')) return Error("header: 'shape' must be a tuple such as (n,)");
    SkipWs();
    bool saw_comma = false;
    while (!Peek(')')) {
      if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        return Error("header: 'shape' must hold non-negative integers");
      }
      const std::size_t start = pos_;
      std::uint64_t v = 0;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        const std::uint64_t digit = static_cast<std::uint64_t>(s_[pos_] - '0');
        if (v > (std::uint64_t{1} << 62) / 10) return Error("header: 'shape' dimension is too large");
        v = v * 10 + digit;
        ++pos_;
      }
      if (pos_ - start > 1 && s_[start] == '0') {
        return Error("header: 'shape' dimension has a leading zero");
      }
      Eat('L');  // Python 2 long suffix
      shape.push_back(v);
      SkipWs();
      saw_comma = Eat(',');
      SkipWs();
      if (!saw_comma && !Peek(')')) return Error("header: expected ',' or ')' in 'shape'");
    }
    Eat(')');
    if (shape.size() == 1 && !saw_comma) {
      return Error("header: 'shape' (n) is not a tuple; a 1-D shape is written (n,)");
    }
    return Status::Ok();
  }

  std::string_view s_;
  std::string_view name_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string_view NpyDescr(DType dtype) {
  for (const auto& e : kDescrs) {
    if (e.dtype == dtype) return e.descr;
  }
  return {};
}

Result<NpyHeader> ParseNpyHeader(std::span<const std::byte> bytes, std::string_view name_in) {
  const std::string name(name_in);
  const std::uint64_t n = bytes.size();
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (n < kMagicSize + 2 || std::memcmp(p, kMagic, kMagicSize) != 0) {
    return Status::Corruption(name + ": magic: expected \"\\x93NUMPY\" (a NumPy .npy file)");
  }
  const std::uint8_t major = p[6];
  const std::uint8_t minor = p[7];
  if (major < 1 || major > 3 || minor != 0) {
    return Status::Corruption(name + ": version: " + Str(major) + "." + Str(minor) +
                              ", expected 1.0, 2.0 or 3.0");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  const std::uint64_t len_off = kMagicSize + 2;
  if (n < len_off + len_bytes) {
    return Status::Corruption(name + ": header length: file has " + Str(n) +
                              " bytes, truncated before the HEADER_LEN field");
  }
  std::uint64_t header_len = 0;
  if (major == 1) {
    std::uint16_t v;
    std::memcpy(&v, p + len_off, 2);
    header_len = v;
  } else {
    std::uint32_t v;
    std::memcpy(&v, p + len_off, 4);
    header_len = v;
  }
  if (header_len > kNpyMaxHeaderBytes) {
    return Status::Corruption(name + ": header length " + Str(header_len) + " exceeds the " +
                              Str(kNpyMaxHeaderBytes) + "-byte limit");
  }
  const std::uint64_t text_off = len_off + len_bytes;
  if (n - text_off < header_len) {
    return Status::Corruption(name + ": header: truncated; HEADER_LEN says " + Str(header_len) +
                              " bytes but only " + Str(n - text_off) + " follow");
  }
  const std::string_view text(reinterpret_cast<const char*>(p + text_off), header_len);
  NpyHeader h;
  h.major_version = major;
  h.data_offset = text_off + header_len;
  HeaderParser parser(text, name);
  RADLADS_RETURN_IF_ERROR(parser.Parse(h));
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < h.shape.size(); ++i) {
    const std::uint64_t d = h.shape[i];
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d) {
      return Status::Corruption(name + ": shape: the element count overflows 64 bits at dimension " +
                                Str(i));
    }
    count *= d;
  }
  const std::uint64_t item = DTypeSize(h.dtype);
  if (count > (std::numeric_limits<std::uint64_t>::max() - h.data_offset) / item) {
    return Status::Corruption(name + ": shape: " + Str(count) + " elements overflow the file size");
  }
  h.element_count = count;
  h.data_bytes = count * item;
  return h;
}

Result<NpyHeader> ParseNpyFile(std::span<const std::byte> file, std::string_view name) {
  RADLADS_ASSIGN_OR_RETURN(NpyHeader h, ParseNpyHeader(file, name));
  const std::uint64_t want = h.data_offset + h.data_bytes;
  if (file.size() != want) {
    return Status::Corruption(std::string(name) + ": shape " + ShapeRepr(h.shape) + " of " +
                              std::string(NpyDescr(h.dtype)) + " needs " + Str(want) +
                              " bytes (header " + Str(h.data_offset) + " + data " +
                              Str(h.data_bytes) + ") but the file has " + Str(file.size()));
  }
  return h;
}

Result<NpyArray> NpyArray::Open(const std::string& path) {
  NpyArray a;
  RADLADS_ASSIGN_OR_RETURN(a.file_, MappedFile::Open(path));
  RADLADS_ASSIGN_OR_RETURN(a.header_, ParseNpyFile(a.file_.bytes(), path));
  return a;
}

Result<std::string> NpyPreamble(DType dtype, std::span<const std::uint64_t> shape) {
  std::string_view descr = NpyDescr(dtype);
  if (descr.empty()) {
    return Status::InvalidArgument(".npy writer: dtype " + std::string(DTypeName(dtype)) +
                                   " is not supported; expected F32, I32, I64, U32, U16 or U8");
  }
  const std::string dict = "{'descr': '" + std::string(descr) +
                           "', 'fortran_order': False, 'shape': " + ShapeRepr(shape) + ", }";
  // magic(6) + version(2) + len(2 or 4) + dict + padding + '\n' = multiple of 64.
  std::size_t prefix = kMagicSize + 2 + 2;
  std::uint8_t major = 1;
  auto padded = [&](std::size_t pre) {
    const std::size_t raw = pre + dict.size() + 1;
    return raw + (kNpyAlignment - raw % kNpyAlignment) % kNpyAlignment;
  };
  std::size_t total = padded(prefix);
  if (total - prefix > 0xffff) {
    major = 2;
    prefix = kMagicSize + 2 + 4;
    total = padded(prefix);
  }
  const std::size_t header_len = total - prefix;
  std::string out(kMagic, kMagicSize);
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  for (std::size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) {
    out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  }
  out += dict;
  out.append(total - out.size() - 1, ' ');
  out.push_back('\n');
  return out;
}

Status WriteNpyWith(const std::string& path, DType dtype, std::span<const std::uint64_t> shape,
                    const std::function<Status(const WriteFn&)>& fill) {
  RADLADS_ASSIGN_OR_RETURN(std::string pre, NpyPreamble(dtype, shape));
  std::uint64_t count = 1;
  for (std::uint64_t d : shape) {
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d / 8) {
      return Status::InvalidArgument(path + ": shape element count overflows");
    }
    count *= d;
  }
  const std::uint64_t want = count * DTypeSize(dtype);
  return AtomicWriteFileWith(path, [&](const WriteFn& write) -> Status {
    RADLADS_RETURN_IF_ERROR(write(std::as_bytes(std::span<const char>(pre.data(), pre.size()))));
    std::uint64_t written = 0;
    WriteFn counted = [&](std::span<const std::byte> data) {
      written += data.size();
      return write(data);
    };
    RADLADS_RETURN_IF_ERROR(fill(counted));
    if (written != want) {
      return Status::InvalidArgument(path + ": wrote " + Str(written) + " data bytes, shape needs " +
                                     Str(want));
    }
    return Status::Ok();
  });
}

Status WriteNpy(const std::string& path, DType dtype, std::span<const std::uint64_t> shape,
                std::span<const std::byte> data) {
  return WriteNpyWith(path, dtype, shape, [&](const WriteFn& write) { return write(data); });
}

Status WriteNpy(const std::string& path, std::span<const float> data,
                std::span<const std::uint64_t> shape) {
  return WriteNpy(path, DType::kF32, shape, std::as_bytes(data));
}
Status WriteNpy(const std::string& path, std::span<const std::int32_t> data,
                std::span<const std::uint64_t> shape) {
  return WriteNpy(path, DType::kI32, shape, std::as_bytes(data));
}
Status WriteNpy(const std::string& path, std::span<const std::uint32_t> data,
                std::span<const std::uint64_t> shape) {
  return WriteNpy(path, DType::kU32, shape, std::as_bytes(data));
}
Status WriteNpy(const std::string& path, std::span<const std::uint16_t> data,
                std::span<const std::uint64_t> shape) {
  return WriteNpy(path, DType::kU16, shape, std::as_bytes(data));
}

}  // namespace radlads
