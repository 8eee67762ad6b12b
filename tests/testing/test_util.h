// Helpers shared by every test: a scratch directory removed at the end of the test, a seeded
// random generator, access to committed fixtures under tests/data/, and running a command.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace radlads::testing {

// A fresh directory under $TMPDIR (or /tmp); removed recursively on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const;

 private:
  std::string path_;
};

// Path of a committed fixture: tests/data/<rel>.
std::string TestDataPath(std::string_view rel);

// Writes bytes to a file (plain, not atomic: for building malformed inputs in tests).
void WriteBytes(const std::string& path, std::string_view bytes);

// What a shell command printed (stdout and stderr together) and its exit code (-1 when it
// could not start or did not exit normally).
struct CommandResult {
  int code = -1;
  std::string out;
};
// Runs `cmd` through the shell (popen), waits for it, and collects its output.
CommandResult RunCommand(const std::string& cmd);

// Deterministic generator; every test seeds its own with a fixed value.
using Rng = std::mt19937_64;

}  // namespace radlads::testing
