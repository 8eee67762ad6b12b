// The per-run secret that authenticates the coordinator's network protocol (docs/design.md §4,
// docs/protocol.md): RUN/secret holds 32 random bytes (OpenSSL RAND_bytes) as 64 lowercase hex
// digits and a newline, mode 0600. Every frame after the handshake carries an HMAC-SHA256 keyed
// by a session key derived from it, so only processes that can read RUN/secret can talk to the
// coordinator.
//
// - EnsureRunSecret creates the file when it is missing and then loads it. Creation is atomic and
//   never overwrites: the bytes go to a temp file (fsynced, mode 0600), which is hard-linked to
//   RUN/secret; if another process won the race its secret is kept and loaded.
// - LoadRunSecret refuses, with an error naming the file and what is wrong: a file that is not a
//   regular file (or is a symlink), a mode that allows any group/other access (anything beyond
//   0600/0400: "chmod 600 it"), and content that is not exactly 64 hex digits plus an optional
//   newline.
// Thread-safety: plain functions; the secret is a value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace radlads {

inline constexpr std::size_t kRunSecretBytes = 32;

struct RunSecret {
  std::array<std::uint8_t, kRunSecretBytes> bytes{};
};

// RUN/secret.
std::string RunSecretPath(const std::string& run_dir);

// Parses the file's content; `path` names the file in errors. Corruption when malformed.
Result<RunSecret> ParseRunSecret(std::string_view text, std::string_view path);
// "<64 hex>\n".
std::string FormatRunSecret(const RunSecret& secret);

// Loads RUN/secret (see the checks above). NotFound if it does not exist; InvalidArgument for a
// bad mode or file type; Corruption for bad content.
Result<RunSecret> LoadRunSecret(const std::string& run_dir);

// Creates RUN/secret if missing (32 bytes from RAND_bytes), then loads it.
Result<RunSecret> EnsureRunSecret(const std::string& run_dir);

// 32 bytes from OpenSSL's CSPRNG; Internal if RAND_bytes fails.
Status RandomBytes(std::uint8_t* out, std::size_t n);

}  // namespace radlads
