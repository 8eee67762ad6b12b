#include "storage/safetensors.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <utility>

#include "storage/safetensors_format.h"

namespace radlads {
namespace {

constexpr std::size_t kMaxNameInMessage = 200;  // longer tensor names are cut in messages

std::string Quote(std::string_view name) { return QuoteTensorName(name); }

std::string ShapeString(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string RangeString(std::uint64_t begin, std::uint64_t end) {
  // Built by appending: GCC 12's -Wrestrict misfires on "[" + std::to_string(...) at -O3.
  std::string out = "[";
  out += std::to_string(begin);
  out += ", ";
  out += std::to_string(end);
  out += "]";
  return out;
}

std::string KnownDTypeNames() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(DType::kF8E5M2); ++i) {
    if (!out.empty()) out += ' ';
    out += DTypeName(static_cast<DType>(i));
  }
  return out;
}

// prod(shape) * elem_size, or false on 64-bit overflow.
bool CheckedByteSize(const std::vector<std::int64_t>& shape, std::uint64_t elem_size,
                     std::uint64_t* out) {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return false;
  }
  return !__builtin_mul_overflow(n, elem_size, out);
}

// Builds SafetensorsTensorInfo entries straight from nlohmann's SAX events: no DOM, and a
// duplicate key at any level is seen (the DOM would silently keep the last one). Stops at
// the first problem; status() then says what it was.
class HeaderSax {
 public:
  using json = nlohmann::json;

  HeaderSax(std::string_view source, std::uint64_t data_size, SafetensorsHeader* out)
      : source_(source), data_size_(data_size), out_(out) {}

  const Status& status() const { return status_; }

  bool null() { return WrongType("null"); }
  bool boolean(bool v) { return WrongType(v ? "true" : "false"); }
  bool number_integer(json::number_integer_t v) {
    if (v >= 0) return number_unsigned(static_cast<json::number_unsigned_t>(v));
    return WrongType(std::to_string(v));
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::kShape) {
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return Fail(TensorError(kSafetensorsShapeField,
                                "dimension " + std::to_string(v) + " exceeds 2^63-1"));
      }
      cur_.shape.push_back(static_cast<std::int64_t>(v));
      return true;
    }
    if (state_ == State::kOffsets) {
      if (offsets_count_ >= 2) {
        return Fail(TensorError(kSafetensorsOffsetsField,
                                "expected exactly 2 integers [begin, end], got more"));
      }
      (offsets_count_ == 0 ? cur_.begin : cur_.end) = v;
      ++offsets_count_;
      return true;
    }
    return WrongType(std::to_string(v));
  }
  bool number_float(json::number_float_t /*v*/, const json::string_t& text) {
    return WrongType(text);
  }
  bool string(json::string_t& v) {
    if (state_ == State::kEntry && field_ == Field::kDType) {
      std::optional<DType> t = DTypeFromName(v);
      if (!t) {
        return Fail(Status::InvalidArgument(Prefix() + "tensor " + Quote(cur_.name) +
                                            ": dtype: unknown dtype " + Quote(v) +
                                            ", expected one of " + KnownDTypeNames()));
      }
      cur_.dtype = *t;
      return true;
    }
    if (state_ == State::kMetadata) {
      out_->metadata.emplace(meta_key_, std::move(v));
      return true;
    }
    return WrongType("a string");
  }
  bool binary(json::binary_t& /*v*/) { return WrongType("binary data"); }

  bool start_object(std::size_t /*n*/) {
    if (state_ == State::kStart) {
      state_ = State::kTop;
      return true;
    }
    if (state_ != State::kTop) return WrongType("an object");
    if (key_ == kSafetensorsMetadataKey) {
      state_ = State::kMetadata;
      return true;
    }
    cur_ = SafetensorsTensorInfo{};
    cur_.name = key_;
    fields_seen_ = 0;
    offsets_count_ = 0;
    state_ = State::kEntry;
    return true;
  }

  bool key(json::string_t& k) {
    switch (state_) {
      case State::kTop:
        if (k == kSafetensorsMetadataKey) {
          if (seen_metadata_) {
            return Fail(Corrupt(std::string(kSafetensorsMetadataKey) + " appears twice"));
          }
          seen_metadata_ = true;
        }
        key_ = std::move(k);
        return true;
      case State::kEntry: {
        unsigned bit = 0;
        if (k == kSafetensorsDTypeField) {
          field_ = Field::kDType;
          bit = 1;
        } else if (k == kSafetensorsShapeField) {
          field_ = Field::kShape;
          bit = 2;
        } else if (k == kSafetensorsOffsetsField) {
          field_ = Field::kOffsets;
          bit = 4;
        } else {
          return Fail(Corrupt("tensor " + Quote(cur_.name) + ": unexpected field " + Quote(k) +
                              ", expected only dtype, shape and data_offsets"));
        }
        if (fields_seen_ & bit) {
          return Fail(
              Corrupt("tensor " + Quote(cur_.name) + ": field " + Quote(k) + " appears twice"));
        }
        fields_seen_ |= bit;
        return true;
      }
      case State::kMetadata:
        if (out_->metadata.count(k) != 0) {
          return Fail(Corrupt(std::string(kSafetensorsMetadataKey) + ": key " + Quote(k) +
                              " appears twice"));
        }
        meta_key_ = std::move(k);
        return true;
      default:
        return Fail(Status::Internal(Prefix() + "safetensors header parser: unexpected key"));
    }
  }

  bool end_object() {
    switch (state_) {
      case State::kEntry:
        state_ = State::kTop;
        return FinishEntry();
      case State::kMetadata:
        state_ = State::kTop;
        return true;
      case State::kTop:
        state_ = State::kDone;
        return true;
      default:
        return Fail(Status::Internal(Prefix() + "safetensors header parser: unexpected '}'"));
    }
  }

  bool start_array(std::size_t /*n*/) {
    if (state_ == State::kEntry && field_ == Field::kShape) {
      cur_.shape.clear();
      state_ = State::kShape;
      return true;
    }
    if (state_ == State::kEntry && field_ == Field::kOffsets) {
      offsets_count_ = 0;
      state_ = State::kOffsets;
      return true;
    }
    return WrongType("a list");
  }

  bool end_array() {
    if (state_ == State::kShape) {
      state_ = State::kEntry;
      return true;
    }
    if (state_ == State::kOffsets) {
      if (offsets_count_ != 2) {
        return Fail(TensorError(
            kSafetensorsOffsetsField,
            "expected exactly 2 integers [begin, end], got " + std::to_string(offsets_count_)));
      }
      state_ = State::kEntry;
      return true;
    }
    return Fail(Status::Internal(Prefix() + "safetensors header parser: unexpected ']'"));
  }

  bool parse_error(std::size_t /*pos*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    return Fail(Corrupt(std::string("header is not valid JSON: ") + ex.what()));
  }

 private:
  enum class State { kStart, kTop, kEntry, kMetadata, kShape, kOffsets, kDone };
  enum class Field { kDType, kShape, kOffsets };

  std::string Prefix() const { return std::string(source_) + ": "; }
  Status Corrupt(const std::string& msg) const { return Status::Corruption(Prefix() + msg); }
  Status TensorError(std::string_view field, const std::string& msg) const {
    return Corrupt("tensor " + Quote(cur_.name) + ": " + std::string(field) + ": " + msg);
  }
  bool Fail(Status s) {
    status_ = std::move(s);
    return false;
  }

  // A value of the wrong JSON type where the current state expects something else.
  bool WrongType(const std::string& got) {
    switch (state_) {
      case State::kStart:
        return Fail(Corrupt("header: expected a JSON object at the top level, got " + got));
      case State::kTop:
        if (key_ == kSafetensorsMetadataKey) {
          return Fail(Corrupt(std::string(kSafetensorsMetadataKey) +
                              ": expected an object of string to string, got " + got));
        }
        return Fail(Corrupt("tensor " + Quote(key_) +
                            ": expected an object with dtype, shape and data_offsets, got " + got));
      case State::kEntry:
        switch (field_) {
          case Field::kDType:
            return Fail(TensorError(kSafetensorsDTypeField, "expected a string, got " + got));
          case Field::kShape:
            return Fail(TensorError(kSafetensorsShapeField,
                                    "expected a list of non-negative integers, got " + got));
          case Field::kOffsets:
            return Fail(TensorError(kSafetensorsOffsetsField,
                                    "expected a list of 2 non-negative integers, got " + got));
        }
        break;
      case State::kMetadata:
        return Fail(Corrupt(std::string(kSafetensorsMetadataKey) + ": value of key " +
                            Quote(meta_key_) + ": expected a string, got " + got));
      case State::kShape:
        return Fail(TensorError(kSafetensorsShapeField,
                                "element " + std::to_string(cur_.shape.size()) +
                                    ": expected a non-negative integer below 2^63, got " + got));
      case State::kOffsets:
        return Fail(TensorError(kSafetensorsOffsetsField,
                                "element " + std::to_string(offsets_count_) +
                                    ": expected a non-negative integer below 2^64, got " + got));
      case State::kDone:
        break;
    }
    return Fail(Corrupt("header: unexpected " + got + " after the top-level object"));
  }

  // Checks one complete entry on its own: every field present, begin <= end, size agrees
  // with shape x dtype, and the range lies inside the data buffer.
  bool FinishEntry() {
    static constexpr std::pair<unsigned, std::string_view> kRequired[] = {
        {1, kSafetensorsDTypeField}, {2, kSafetensorsShapeField}, {4, kSafetensorsOffsetsField}};
    for (const auto& [bit, name] : kRequired) {
      if (!(fields_seen_ & bit)) {
        return Fail(
            Corrupt("tensor " + Quote(cur_.name) + ": missing field '" + std::string(name) + "'"));
      }
    }
    if (cur_.begin > cur_.end) {
      return Fail(TensorError(kSafetensorsOffsetsField,
                              "begin " + std::to_string(cur_.begin) + " is after end " +
                                  std::to_string(cur_.end) + ", expected begin <= end"));
    }
    std::uint64_t expected = 0;
    if (!CheckedByteSize(cur_.shape, DTypeSize(cur_.dtype), &expected)) {
      return Fail(TensorError(kSafetensorsShapeField, ShapeString(cur_.shape) + " of " +
                                                          std::string(DTypeName(cur_.dtype)) +
                                                          " needs more than 2^64 bytes"));
    }
    if (cur_.end - cur_.begin != expected) {
      return Fail(TensorError(
          kSafetensorsOffsetsField,
          RangeString(cur_.begin, cur_.end) + " spans " + std::to_string(cur_.end - cur_.begin) +
              " bytes, expected " + std::to_string(expected) + " for shape " +
              ShapeString(cur_.shape) + " of " + std::string(DTypeName(cur_.dtype))));
    }
    if (cur_.end > data_size_) {
      return Fail(TensorError(kSafetensorsOffsetsField,
                              "end " + std::to_string(cur_.end) + " is beyond the data buffer (" +
                                  std::to_string(data_size_) + " bytes)"));
    }
    out_->tensors.push_back(std::move(cur_));
    return true;
  }

  std::string_view source_;
  std::uint64_t data_size_;
  SafetensorsHeader* out_;
  Status status_;

  State state_ = State::kStart;
  std::string key_;       // current top-level key
  std::string meta_key_;  // current __metadata__ key
  bool seen_metadata_ = false;
  Field field_ = Field::kDType;
  unsigned fields_seen_ = 0;  // bits: 1 dtype, 2 shape, 4 data_offsets
  std::size_t offsets_count_ = 0;
  SafetensorsTensorInfo cur_;
};

// Cross-entry rules: unique names, then the tensors tile [0, data_size) exactly.
Status CheckLayout(std::string_view source, SafetensorsHeader* h) {
  const std::string prefix = std::string(source) + ": ";
  auto& ts = h->tensors;
  std::sort(ts.begin(), ts.end(),
            [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
              if (a.begin != b.begin) return a.begin < b.begin;
              if (a.end != b.end) return a.end < b.end;
              return a.name < b.name;
            });
  h->by_name.resize(ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i) h->by_name[i] = i;
  std::sort(h->by_name.begin(), h->by_name.end(),
            [&](std::size_t a, std::size_t b) { return ts[a].name < ts[b].name; });
  for (std::size_t i = 1; i < h->by_name.size(); ++i) {
    if (ts[h->by_name[i]].name == ts[h->by_name[i - 1]].name) {
      return Status::Corruption(prefix + "tensor " + Quote(ts[h->by_name[i]].name) +
                                " appears twice in the header, expected unique names");
    }
  }
  std::uint64_t cursor = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const auto& t : ts) {
    if (t.begin < cursor) {
      return Status::Corruption(
          prefix + "tensor " + Quote(t.name) + ": data_offsets: " + RangeString(t.begin, t.end) +
          " overlaps tensor " + Quote(prev->name) + " " + RangeString(prev->begin, prev->end));
    }
    if (t.begin > cursor) {
      return Status::Corruption(
          prefix + "tensor " + Quote(t.name) + ": data_offsets: begin " + std::to_string(t.begin) +
          " leaves a hole: bytes " + RangeString(cursor, t.begin) + " of the data buffer " +
          (prev ? "after tensor " + Quote(prev->name) : std::string("at its start")) +
          " belong to no tensor, expected tensors to cover the buffer without gaps");
    }
    cursor = t.end;
    prev = &t;
  }
  if (cursor != h->data_size) {
    return Status::Corruption(
        prefix + "data buffer has " + std::to_string(h->data_size - cursor) +
        " trailing bytes that belong to no tensor (tensors cover " + std::to_string(cursor) +
        " of " + std::to_string(h->data_size) + " bytes" +
        (prev ? ", last is " + Quote(prev->name) : std::string(", header lists none")) +
        "), expected the file to end where the last tensor ends");
  }
  return Status::Ok();
}

}  // namespace

std::string QuoteTensorName(std::string_view name) {
  std::string out = "'";
  std::size_t n = std::min(name.size(), kMaxNameInMessage);
  // Do not cut a UTF-8 sequence in half.
  while (n < name.size() && n > 0 && (static_cast<unsigned char>(name[n]) & 0xC0) == 0x80) --n;
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < name.size()) out += "...";
  out += "'";
  return out;
}

std::uint64_t SafetensorsTensorInfo::num_elements() const {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

const SafetensorsTensorInfo* SafetensorsHeader::Find(std::string_view name) const {
  auto it =
      std::lower_bound(by_name.begin(), by_name.end(), name,
                       [&](std::size_t i, std::string_view n) { return tensors[i].name < n; });
  if (it == by_name.end() || tensors[*it].name != name) return nullptr;
  return &tensors[*it];
}

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const std::byte> file,
                                                 std::string_view source_name) {
  const std::string prefix = std::string(source_name) + ": ";
  if (file.size() < kSafetensorsLengthPrefixBytes) {
    return Status::Corruption(prefix + "file is " + std::to_string(file.size()) +
                              " bytes, shorter than the 8-byte header length prefix");
  }
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < kSafetensorsLengthPrefixBytes; ++i) {
    n |= static_cast<std::uint64_t>(file[i]) << (8 * i);
  }
  const std::uint64_t after_prefix = file.size() - kSafetensorsLengthPrefixBytes;
  if (n > kSafetensorsMaxHeaderBytes) {
    return Status::Corruption(prefix + "header length " + std::to_string(n) +
                              " exceeds the limit of " +
                              std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  }
  if (n > after_prefix) {
    return Status::Corruption(prefix + "header length " + std::to_string(n) +
                              " is beyond the end of the file (" + std::to_string(after_prefix) +
                              " bytes after the 8-byte prefix)");
  }
  const std::string_view text(
      reinterpret_cast<const char*>(file.data()) + kSafetensorsLengthPrefixBytes,
      static_cast<std::size_t>(n));
  if (std::size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return Status::Corruption(prefix + "header is not valid UTF-8 (byte " + std::to_string(bad) +
                              " of the header)");
  }
  // A raw NUL is never valid JSON, and nlohmann's lexer would take it for the end of input
  // (silently accepting whatever follows), so reject it here.
  if (std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return Status::Corruption(prefix + "header is not valid JSON: NUL byte at byte " +
                              std::to_string(nul) + " of the header");
  }
  if (text.empty() || text.front() != '{') {
    return Status::Corruption(
        prefix + "header must start with '{' (a JSON object), got " +
        (text.empty() ? std::string("an empty header") : Quote(text.substr(0, 1))));
  }

  SafetensorsHeader header;
  header.header_size = n;
  header.data_offset = kSafetensorsLengthPrefixBytes + n;
  header.data_size = after_prefix - n;
  HeaderSax sax(source_name, header.data_size, &header);
  try {
    const bool ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &sax,
                                              nlohmann::json::input_format_t::json,
                                              /*strict=*/true, /*ignore_comments=*/false);
    if (!ok) {
      if (!sax.status().ok()) return sax.status();
      return Status::Corruption(prefix + "header is not valid JSON");
    }
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted(prefix + "out of memory while parsing the header");
  } catch (const std::exception& e) {
    return Status::Corruption(prefix + "header is not valid JSON: " + e.what());
  }
  RADLADS_RETURN_IF_ERROR(CheckLayout(source_name, &header));
  return header;
}

Result<std::vector<float>> TensorBytesToF32(const SafetensorsTensorInfo& info,
                                            std::span<const std::byte> data,
                                            std::string_view source_name) {
  const std::uint64_t n = info.num_elements();
  if (data.size() != info.num_bytes() || n * DTypeSize(info.dtype) != data.size()) {
    return Status::Internal(std::string(source_name) + ": tensor " + Quote(info.name) +
                            ": data span does not match its header entry");
  }
  std::vector<float> out(static_cast<std::size_t>(n));
  if (n == 0) return out;
  if (!ConvertToF32(info.dtype, data.data(), out.data(), out.size())) {
    return Status::InvalidArgument(std::string(source_name) + ": tensor " + Quote(info.name) +
                                   ": dtype " + std::string(DTypeName(info.dtype)) +
                                   " cannot be read as f32");
  }
  return out;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  RADLADS_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  RADLADS_ASSIGN_OR_RETURN(SafetensorsHeader header, ParseSafetensorsHeader(map.bytes(), path));
  return SafetensorsFile(std::move(map), std::move(header));
}

Result<const SafetensorsTensorInfo*> SafetensorsFile::Get(std::string_view name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) {
    return Status::NotFound(path() + ": no tensor " + Quote(name));
  }
  return info;
}

std::span<const std::byte> SafetensorsFile::Data(const SafetensorsTensorInfo& info) const {
  return map_.bytes().subspan(static_cast<std::size_t>(header_.data_offset + info.begin),
                              static_cast<std::size_t>(info.num_bytes()));
}

Result<std::vector<float>> SafetensorsFile::ReadAsF32(std::string_view name) const {
  RADLADS_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Get(name));
  return TensorBytesToF32(*info, Data(*info), path());
}

}  // namespace radlads
