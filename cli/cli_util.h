// Shared command-line plumbing for the radlads binaries: CLI11 parse errors become exit 2
// with the message (help and version exit 0), a Status becomes its exit code with a one-line
// "error: ..." on stderr, and the invocation is kept for records (training.json, run logs).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "base/status.h"

namespace radlads::cli {

// Threads waiting at OpenMP barriers spin by default (libgomp), which is right on a dedicated
// node and ruinous on a shared or oversubscribed one (measured here: 2.3x slower pretraining
// with other work on the cores). libgomp reads its settings once, when it loads, so the binaries
// call this first: unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, it sets
// OMP_WAIT_POLICY=passive and re-executes the program once (RADLADS_REEXEC guards the loop).
// Set OMP_WAIT_POLICY=active on dedicated machines to get the spinning back.
void ReexecWithThreadingDefaults(int argc, char** argv);

// Parses argv; on a parse error prints CLI11's message (or help) and returns the exit code to
// use (0 for --help, 2 otherwise). Returns -1 when parsing succeeded.
int ParseOrExitCode(CLI::App& app, int argc, char** argv);

// Prints "error: <message>" for a failed status and returns its exit code (0 for OK).
int Finish(const Status& st);

// The command line as one shell-quoted string.
std::string JoinArgv(int argc, char** argv);

}  // namespace radlads::cli
