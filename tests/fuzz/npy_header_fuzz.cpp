// libFuzzer target for the .npy header parser (storage/npy.h, ParseNpyFile): the input is a
// whole .npy file. Properties checked: no crash or sanitizer report, every error names the
// file, and a successful parse describes exactly the bytes given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "storage/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  auto r = radlads::ParseNpyFile(file, "fuzz.npy");
  if (r.ok()) {
    const radlads::NpyHeader& h = *r;
    if (h.data_offset + h.data_bytes != size) std::abort();
    std::uint64_t n = 1;
    for (std::uint64_t d : h.shape) n *= d;
    if (n != h.element_count) std::abort();
    if (h.data_bytes != n * radlads::DTypeSize(h.dtype)) std::abort();
  } else if (r.status().message().rfind("fuzz.npy: ", 0) != 0) {
    std::abort();
  }
  return 0;
}
