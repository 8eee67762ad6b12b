// libFuzzer target for the safetensors header parser (storage/safetensors.h).
//
// Input: arbitrary bytes, treated as a whole safetensors file. The parser must never crash,
// hang or leak, whatever the bytes. When it accepts a file, the accepted header must satisfy
// the format's invariants (checked here independently), and re-serialising the tensors with
// the writer must give a file that parses back to the same tensors and bytes.
// The bytes after the 8-byte prefix are also fed to the model-index parser (the other JSON
// reader of storage/), which must likewise never crash and only accept safe shard names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "storage/model_weights.h"
#include "storage/safetensors.h"
#include "storage/safetensors_writer.h"

namespace {

void Check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace radlads;
  const std::span<const std::byte> file = std::as_bytes(std::span<const std::uint8_t>(data, size));
  if (size >= 8) {
    Result<ModelIndex> index = ParseModelIndex(
        std::string_view(reinterpret_cast<const char*>(data) + 8, size - 8), "fuzz.index.json");
    if (index.ok()) {
      for (const auto& [name, shard] : index->weight_map) {
        Check(!shard.empty() && shard.find('/') == std::string::npos &&
              shard.find("..") == std::string::npos);
      }
    }
  }

  Result<SafetensorsHeader> parsed = ParseSafetensorsHeader(file, "fuzz.safetensors");
  if (!parsed.ok()) {
    Check(!parsed.status().message().empty());
    return 0;
  }
  const SafetensorsHeader& h = *parsed;
  Check(h.data_offset == 8 + h.header_size);
  Check(h.data_offset + h.data_size == size);
  Check(h.by_name.size() == h.tensors.size());

  // The tensors tile [0, data_size) in order, and each one's size matches shape x dtype.
  std::uint64_t cursor = 0;
  std::vector<SafetensorsWriteTensor> rewrite;
  for (const SafetensorsTensorInfo& t : h.tensors) {
    Check(t.begin == cursor && t.begin <= t.end);
    Check(t.num_elements() * DTypeSize(t.dtype) == t.num_bytes());
    Check(h.Find(t.name) == &t);
    cursor = t.end;
    rewrite.push_back(
        {t.name, t.dtype, t.shape, file.subspan(h.data_offset + t.begin, t.num_bytes())});
  }
  Check(cursor == h.data_size);

  // Writer round trip.
  Result<std::string> bytes = SerializeSafetensors(rewrite, h.metadata);
  Check(bytes.ok());
  Check((bytes->size() - h.data_size) % 8 == 0);  // data start 8-aligned
  Result<SafetensorsHeader> again = ParseSafetensorsHeader(
      std::as_bytes(std::span<const char>(bytes->data(), bytes->size())), "rewritten");
  Check(again.ok());
  Check(again->tensors.size() == h.tensors.size() && again->metadata == h.metadata);
  for (const SafetensorsTensorInfo& t : h.tensors) {
    const SafetensorsTensorInfo* u = again->Find(t.name);
    Check(u != nullptr && u->dtype == t.dtype && u->shape == t.shape);
    const auto a = file.subspan(h.data_offset + t.begin, t.num_bytes());
    const auto* b =
        reinterpret_cast<const std::byte*>(bytes->data()) + again->data_offset + u->begin;
    for (std::size_t i = 0; i < a.size(); ++i) Check(a[i] == b[i]);
  }
  return 0;
}
