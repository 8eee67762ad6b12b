// Checksums for durable files and network frames: XXH3-64 (xxHash), fast and stable across
// platforms and versions. Used where corruption must be detected, not where an attacker is
// (frames use HMAC-SHA256, see coordinator/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace radlads {

std::uint64_t Checksum64(std::span<const std::byte> data);
std::uint64_t Checksum64(std::string_view data);

// Incremental form for streamed writes; equal to Checksum64 of the concatenation.
class Checksum64Stream {
 public:
  Checksum64Stream();
  ~Checksum64Stream();
  Checksum64Stream(const Checksum64Stream&) = delete;
  Checksum64Stream& operator=(const Checksum64Stream&) = delete;
  void Update(std::span<const std::byte> data);
  std::uint64_t Digest() const;

 private:
  void* state_;  // XXH3_state_t*
};

// "xxh3:0123456789abcdef" (16 lowercase hex digits); the form stored in manifests and state.
std::string FormatChecksum(std::uint64_t v);
// Parses FormatChecksum's form; InvalidArgument naming the text otherwise.
Result<std::uint64_t> ParseChecksum(std::string_view text);

}  // namespace radlads
