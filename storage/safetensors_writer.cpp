#include "storage/safetensors_writer.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <string_view>

#include "storage/safetensors.h"
#include "storage/safetensors_format.h"

namespace radlads {
namespace {

// JSON string literal exactly as serde_json writes it: '"' and '\' escaped, \b \t \n \f \r
// short forms, other control bytes as \u00xx (lowercase hex), everything else verbatim UTF-8.
void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\f':
        *out += "\\f";
        break;
      case '\r':
        *out += "\\r";
        break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

Status CheckUtf8(std::string_view what, std::string_view s) {
  if (std::size_t bad = FindInvalidUtf8(s); bad != std::string_view::npos) {
    return Status::InvalidArgument(std::string(what) + " is not valid UTF-8 (byte " +
                                   std::to_string(bad) + ")");
  }
  return Status::Ok();
}

// Builds the padded header (without the 8-byte prefix) for tensors in `order`.
std::string BuildHeader(std::span<const SafetensorsWriteTensor> tensors,
                        const std::vector<std::size_t>& order,
                        const SafetensorsMetadata& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    AppendJsonString(&h, kSafetensorsMetadataKey);
    h += ":{";
    bool first_kv = true;
    for (const auto& [k, v] : metadata) {
      if (!first_kv) h += ',';
      first_kv = false;
      AppendJsonString(&h, k);
      h += ':';
      AppendJsonString(&h, v);
    }
    h += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (std::size_t i : order) {
    const SafetensorsWriteTensor& t = tensors[i];
    if (!first) h += ',';
    first = false;
    AppendJsonString(&h, t.name);
    h += ":{\"dtype\":";
    AppendJsonString(&h, DTypeName(t.dtype));
    h += ",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (d > 0) h += ',';
      h += std::to_string(t.shape[d]);
    }
    h += "],\"data_offsets\":[";
    h += std::to_string(offset);
    h += ',';
    offset += t.data.size();
    h += std::to_string(offset);
    h += "]}";
  }
  h += '}';
  // 8 + N must be a multiple of 8; since the prefix is 8 bytes, pad N itself.
  const std::size_t extra =
      (kSafetensorsAlignment - h.size() % kSafetensorsAlignment) % kSafetensorsAlignment;
  h.append(extra, kSafetensorsHeaderPad);
  return h;
}

std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

}  // namespace

Status ValidateSafetensorsTensors(std::span<const SafetensorsWriteTensor> tensors,
                                  const SafetensorsMetadata& metadata) {
  std::set<std::string_view> names;
  for (const SafetensorsWriteTensor& t : tensors) {
    const std::string q = "tensor " + QuoteTensorName(t.name);
    RADLADS_RETURN_IF_ERROR(CheckUtf8(q + ": name", t.name));
    if (t.name == kSafetensorsMetadataKey) {
      return Status::InvalidArgument(q + ": name is reserved for the metadata map");
    }
    if (!names.insert(t.name).second) {
      return Status::InvalidArgument(q + ": name appears twice, expected unique names");
    }
    if (t.dtype > DType::kF8E5M2) {
      return Status::InvalidArgument(q + ": dtype: not a valid DType value");
    }
    std::uint64_t n = 1;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] < 0) {
        return Status::InvalidArgument(q + ": shape: dim " + std::to_string(d) + " is " +
                                       std::to_string(t.shape[d]) + ", expected >= 0");
      }
      if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(t.shape[d]), &n)) {
        return Status::InvalidArgument(q + ": shape: element count overflows 64 bits");
      }
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(n, DTypeSize(t.dtype), &bytes)) {
      return Status::InvalidArgument(q + ": shape: byte size overflows 64 bits");
    }
    if (bytes != t.data.size()) {
      return Status::InvalidArgument(q + ": data is " + std::to_string(t.data.size()) +
                                     " bytes, expected " + std::to_string(bytes) + " (" +
                                     std::to_string(n) + " elements of " +
                                     std::string(DTypeName(t.dtype)) + ")");
    }
    if (t.data.data() == nullptr && !t.data.empty()) {
      return Status::InvalidArgument(q + ": data span is null");
    }
  }
  for (const auto& [k, v] : metadata) {
    RADLADS_RETURN_IF_ERROR(CheckUtf8("metadata key " + QuoteTensorName(k), k));
    RADLADS_RETURN_IF_ERROR(CheckUtf8("metadata value of key " + QuoteTensorName(k), v));
  }
  return Status::Ok();
}

std::vector<std::size_t> SafetensorsWriteOrder(std::span<const SafetensorsWriteTensor> tensors) {
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int ra = SafetensorsDTypeRank(tensors[a].dtype);
    const int rb = SafetensorsDTypeRank(tensors[b].dtype);
    if (ra != rb) return ra > rb;
    return tensors[a].name < tensors[b].name;
  });
  return order;
}

Status WriteSafetensorsTo(const WriteFn& write, std::span<const SafetensorsWriteTensor> tensors,
                          const SafetensorsMetadata& metadata) {
  RADLADS_RETURN_IF_ERROR(ValidateSafetensorsTensors(tensors, metadata));
  const std::vector<std::size_t> order = SafetensorsWriteOrder(tensors);
  const std::string header = BuildHeader(tensors, order, metadata);
  if (header.size() > kSafetensorsMaxHeaderBytes) {
    return Status::InvalidArgument("header would be " + std::to_string(header.size()) +
                                   " bytes, above the limit of " +
                                   std::to_string(kSafetensorsMaxHeaderBytes));
  }
  std::byte prefix[kSafetensorsLengthPrefixBytes];
  const std::uint64_t n = header.size();
  for (std::size_t i = 0; i < kSafetensorsLengthPrefixBytes; ++i) {
    prefix[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  }
  RADLADS_RETURN_IF_ERROR(write(std::span<const std::byte>(prefix, sizeof(prefix))));
  RADLADS_RETURN_IF_ERROR(write(AsBytes(header)));
  for (std::size_t i : order) {
    if (!tensors[i].data.empty()) RADLADS_RETURN_IF_ERROR(write(tensors[i].data));
  }
  return Status::Ok();
}

Result<std::string> SerializeSafetensors(std::span<const SafetensorsWriteTensor> tensors,
                                         const SafetensorsMetadata& metadata) {
  std::string out;
  RADLADS_RETURN_IF_ERROR(WriteSafetensorsTo(
      [&](std::span<const std::byte> bytes) {
        out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return Status::Ok();
      },
      tensors, metadata));
  return out;
}

Status WriteSafetensors(const std::string& path, std::span<const SafetensorsWriteTensor> tensors,
                        const SafetensorsMetadata& metadata) {
  // Validate first so that bad input never creates a temp file.
  RADLADS_RETURN_IF_ERROR(ValidateSafetensorsTensors(tensors, metadata).WithContext(path));
  return AtomicWriteFileWith(path, [&](const WriteFn& write) {
    return WriteSafetensorsTo(write, tensors, metadata).WithContext(path);
  });
}

}  // namespace radlads
