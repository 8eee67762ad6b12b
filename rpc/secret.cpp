#include "rpc/secret.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "base/file.h"
#include "contract/run_layout.h"

namespace radlads {
namespace {

constexpr std::size_t kMaxSecretFileBytes = 4096;  // a valid file has 65 bytes

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0%03o", mode & 07777);
  return buf;
}

Status Errno(const std::string& what, const std::string& path, int err) {
  const std::string msg = path + ": " + what + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

}  // namespace

std::string RunSecretPath(const std::string& run_dir) { return JoinPath(run_dir, RunLayout::SecretFile()); }

Status RandomBytes(std::uint8_t* out, std::size_t n) {
  while (n > 0) {
    const int chunk = static_cast<int>(n > INT_MAX ? INT_MAX : n);
    if (RAND_bytes(out, chunk) != 1) {
      return Status::Internal("OpenSSL RAND_bytes failed: the CSPRNG is not seeded");
    }
    out += chunk;
    n -= static_cast<std::size_t>(chunk);
  }
  return Status::Ok();
}

std::string FormatRunSecret(const RunSecret& secret) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * kRunSecretBytes + 1);
  for (std::uint8_t b : secret.bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  out.push_back('\n');
  return out;
}

Result<RunSecret> ParseRunSecret(std::string_view text, std::string_view path) {
  const std::string where(path);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.size() != 2 * kRunSecretBytes) {
    return Status::Corruption(where + ": expected " + std::to_string(2 * kRunSecretBytes) +
                              " hex digits (" + std::to_string(kRunSecretBytes) +
                              " bytes) and a newline, got " + std::to_string(text.size()) +
                              " characters; delete it to have `radlads-coord serve` make a new "
                              "one (running workers must then be restarted)");
  }
  RunSecret s;
  for (std::size_t i = 0; i < kRunSecretBytes; ++i) {
    const int hi = HexValue(text[2 * i]);
    const int lo = HexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::Corruption(where + ": non-hex character at offset " +
                                std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    s.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return s;
}

Result<RunSecret> LoadRunSecret(const std::string& run_dir) {
  const std::string path = RunSecretPath(run_dir);
  // O_NOFOLLOW: a symlink could point the coordinator at a file someone else controls.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      return Status::InvalidArgument(path + ": is a symlink; the run secret must be a regular "
                                     "file with mode 0600");
    }
    return Errno("open", path, err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno("stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + ": not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status::InvalidArgument(path + ": mode " + Octal(st.st_mode) +
                                   " allows group/other access to the run secret; "
                                   "`chmod 600 " + path + "` (and consider it leaked: delete it "
                                   "and restart the coordinator and workers to make a new one)");
  }
  if (st.st_size > static_cast<off_t>(kMaxSecretFileBytes)) {
    ::close(fd);
    return Status::Corruption(path + ": " + std::to_string(st.st_size) +
                              " bytes, expected 65 (64 hex digits and a newline)");
  }
  std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Errno("read", path, err);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  return ParseRunSecret(text, path);
}

Result<RunSecret> EnsureRunSecret(const std::string& run_dir) {
  const std::string path = RunSecretPath(run_dir);
  auto loaded = LoadRunSecret(run_dir);
  if (loaded.ok() || loaded.status().code() != Status::Code::kNotFound) return loaded;

  RunSecret fresh;
  RADLADS_RETURN_IF_ERROR(RandomBytes(fresh.bytes.data(), fresh.bytes.size()));
  // Written durably under a private name, then linked into place: link() fails with EEXIST
  // instead of replacing, so two coordinators racing here agree on one secret.
  const std::string tmp = path + ".new." + std::to_string(::getpid());
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(tmp, FormatRunSecret(fresh), 0600));
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err != EEXIST) return Errno("link " + tmp + " ->", path, err);
  RADLADS_RETURN_IF_ERROR(FsyncDirectory(DirName(path)));
  return LoadRunSecret(run_dir);
}

}  // namespace radlads
