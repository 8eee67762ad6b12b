// Helpers shared by the safetensors / model-weights tests: owned random tensors, raw-file
// builders for malformed inputs, and access to the committed Hugging Face fixtures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/file.h"
#include "storage/safetensors_writer.h"
#include "tests/testing/test_util.h"

namespace radlads::testing {

// A tensor that owns its bytes; View() borrows them for the writer.
struct OwnedTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;

  SafetensorsWriteTensor View() const { return {name, dtype, shape, bytes}; }
};

inline OwnedTensor RandomTensor(Rng& rng, std::string name, DType dtype,
                                std::vector<std::int64_t> shape) {
  OwnedTensor t{std::move(name), dtype, std::move(shape), {}};
  std::size_t n = DTypeSize(dtype);
  for (std::int64_t d : t.shape) n *= static_cast<std::size_t>(d);
  t.bytes.resize(n);
  for (auto& b : t.bytes) b = static_cast<std::byte>(rng() & 0xff);
  return t;
}

inline std::vector<SafetensorsWriteTensor> Views(const std::vector<OwnedTensor>& ts) {
  std::vector<SafetensorsWriteTensor> out;
  for (const auto& t : ts) out.push_back(t.View());
  return out;
}

inline constexpr DType kAllDTypes[] = {
    DType::kBool, DType::kU8,   DType::kI8,  DType::kI16,    DType::kU16,
    DType::kF16,  DType::kBF16, DType::kI32, DType::kU32,    DType::kF32,
    DType::kF64,  DType::kI64,  DType::kU64, DType::kF8E4M3, DType::kF8E5M2,
};

// 8-byte little-endian length prefix + header + data, with N = header.size().
inline std::string RawSafetensors(std::string_view header, std::string_view data = "") {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.append(header);
  out.append(data);
  return out;
}

inline std::span<const std::byte> Bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

inline std::string ToHex(std::span<const std::byte> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::byte x : b) {
    out += kHex[std::to_integer<unsigned>(x) >> 4];
    out += kHex[std::to_integer<unsigned>(x) & 15];
  }
  return out;
}

inline std::string ReadAll(const std::string& path) {
  Result<std::string> r = ReadFileToString(path);
  return r.ok() ? std::move(r).value() : std::string();
}

// tests/data/safetensors/expected.json, written by tools/gen_safetensors_fixtures.py.
inline nlohmann::json ExpectedFixtures() {
  return nlohmann::json::parse(ReadAll(TestDataPath("safetensors/expected.json")));
}

}  // namespace radlads::testing
