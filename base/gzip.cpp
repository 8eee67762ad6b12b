#include "base/gzip.h"

#include <zlib.h>

#include "base/file.h"

namespace radlads {

Result<std::string> ReadMaybeGzipFile(const std::string& path) {
  Result<std::string> read = ReadFileToString(path);
  if (!read.ok()) return read.status();
  std::string& raw = read.value();
  const bool gzip = raw.size() >= 2 && static_cast<unsigned char>(raw.front()) == 0x1f &&
                    static_cast<unsigned char>(raw.data()[1]) == 0x8b;
  if (!gzip) return std::move(raw);
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Status::Internal("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string msg = zs.msg ? zs.msg : "inflate error";
      inflateEnd(&zs);
      return Status::Corruption(path + ": gzip stream is corrupt (" + msg + ")");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc != Z_STREAM_END && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return Status::Corruption(path + ": gzip stream is truncated");
    }
  }
  inflateEnd(&zs);
  return out;
}

}  // namespace radlads
