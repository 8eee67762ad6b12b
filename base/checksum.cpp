#include "base/checksum.h"

#include <xxhash.h>

#include <cstdio>

namespace radlads {

std::uint64_t Checksum64(std::span<const std::byte> data) {
  return XXH3_64bits(data.data(), data.size());
}

std::uint64_t Checksum64(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

Checksum64Stream::Checksum64Stream() : state_(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Checksum64Stream::~Checksum64Stream() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Checksum64Stream::Update(std::span<const std::byte> data) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data.data(), data.size());
}

std::uint64_t Checksum64Stream::Digest() const {
  return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_));
}

std::string FormatChecksum(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "xxh3:%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace radlads

namespace radlads {

Result<std::uint64_t> ParseChecksum(std::string_view text) {
  constexpr std::string_view kPrefix = "xxh3:";
  if (text.size() != kPrefix.size() + 16 || text.substr(0, kPrefix.size()) != kPrefix) {
    return Status::InvalidArgument("checksum \"" + std::string(text) + "\": expected xxh3:<16 hex digits>");
  }
  std::uint64_t v = 0;
  for (char c : text.substr(kPrefix.size())) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return Status::InvalidArgument("checksum \"" + std::string(text) + "\": not lowercase hex");
    v = v * 16 + static_cast<std::uint64_t>(d);
  }
  return v;
}

}  // namespace radlads
