#include "cli/cli_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace radlads::cli {

void ReexecWithThreadingDefaults(int argc, char** argv) {
  (void)argc;
  if (std::getenv("RADLADS_REEXEC") != nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr ||
      std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::setenv("RADLADS_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc): carry on with the defaults libgomp already read.
}

int ParseOrExitCode(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::printf("%s", app.help("", CLI::AppFormatMode::All).c_str());
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", e.what());
    return kExitInvalidInput;
  }
  return -1;
}

int Finish(const Status& st) {
  if (!st.ok()) std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return ExitCodeFor(st);
}

std::string JoinArgv(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    bool plain = !a.empty() && a.find_first_of(" \t\"'\\$`") == std::string::npos;
    if (i) out += ' ';
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace radlads::cli
