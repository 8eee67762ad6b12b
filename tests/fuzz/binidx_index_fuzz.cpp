// libFuzzer target for the binidx .idx parser (storage/binidx.h, ParseBinidxIndex).
//
// Input layout: the first 8 bytes (little-endian u64) are the size of the companion .bin; the
// rest is the .idx. Inputs shorter than 8 bytes use the whole input as the .idx and a .bin of
// 0 bytes. Seeds in tests/fuzz/corpus/binidx_index_fuzz/ follow this layout.
// Properties checked: no crash, no sanitizer report, no huge allocation (lying counts), and a
// successful parse is internally consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "storage/binidx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint64_t bin_bytes = 0;
  std::span<const std::byte> idx(reinterpret_cast<const std::byte*>(data), size);
  if (size >= 8) {
    std::memcpy(&bin_bytes, data, 8);
    idx = idx.subspan(8);
  }
  auto r = radlads::ParseBinidxIndex(idx, bin_bytes, "fuzz.idx");
  if (r.ok()) {
    const radlads::BinidxIndex& ix = *r;
    if (ix.token_count * ix.item_size != bin_bytes) std::abort();
    if (ix.pointers.size() != ix.sizes.size()) std::abort();
    const auto starts = ix.DocumentStartTokens();
    for (std::size_t i = 0; i < starts.size(); ++i) {
      if (starts[i] >= ix.token_count) std::abort();
      if (i > 0 && starts[i] <= starts[i - 1]) std::abort();
    }
  } else if (r.status().message().rfind("fuzz.idx", 0) != 0 &&
             r.status().message().rfind("fuzz.bin", 0) != 0) {
    std::abort();  // every error names the file
  }
  return 0;
}
