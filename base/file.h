// Files: whole-file reads, read-only memory maps, and the one durable-write primitive every
// format in the project uses.
//
// Durability contract (docs/design.md §6): AtomicWriteFile writes to "<path>.tmp.<pid>.<n>" in the
// same directory, fsyncs it, renames it over <path> and fsyncs the directory. A crash at any
// instant leaves either the old file or the new one, never a torn one. The temp file is removed
// on every error path.
// Thread-safety: functions are thread-safe; a MappedFile may be read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace radlads {

// Reads the whole file into a string. NotFound if it does not exist.
Result<std::string> ReadFileToString(const std::string& path);

// Streams the new content into a temp file through `fill`, which receives a write callback;
// then fsync + rename + directory fsync. If `fill` or any step fails, <path> is untouched.
using WriteFn = std::function<Status(std::span<const std::byte>)>;
Status AtomicWriteFileWith(const std::string& path, const std::function<Status(const WriteFn&)>& fill,
                           unsigned mode = 0644);

// Convenience form for content already in memory.
Status AtomicWriteFile(const std::string& path, std::string_view content, unsigned mode = 0644);

// fsync a directory so a rename or create inside it is durable.
Status FsyncDirectory(const std::string& dir);

// Creates a directory and its parents (like mkdir -p). OK if it already exists.
Status CreateDirectories(const std::string& dir);

// Removes a file and fsyncs its directory, so the removal is durable. OK when it does not
// exist; IOError naming the path otherwise.
Status RemoveFile(const std::string& path);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);

// Parent directory of a path ("a/b/c" -> "a/b", "c" -> ".").
std::string DirName(const std::string& path);
// Last path component ("a/b/c.txt" -> "c.txt").
std::string BaseName(const std::string& path);
// Joins with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);

// A read-only, private memory map of a whole file. Empty files map to an empty span.
// Move-only; unmaps on destruction. The bytes stay valid while the object lives.
class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void Reset();
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::string path_;
};

}  // namespace radlads
