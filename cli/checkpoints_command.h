// `radlads-coord checkpoints RUN`: what the run's checkpoints are, from its durable state (no
// live coordinator needed; it reads a snapshot like `status`). One line per commit of a
// training task, then one per unreferenced file (cli/checkpoint_janitor.h ListCheckpoints):
//
//   commit <task> <step> <tokens> <role> <file>[,<file>...]
//   unreferenced <file>
//   # <commits> commits, <files> files present (<bytes> bytes), <unreferenced> unreferenced
//
// role: resume (where the unfinished task resumes), result (the final commit of a chain's last
// task: a step's result, kept for good), older (kept to fall back to, or already deleted),
// discarded (found unreadable). A file that is gone is
// shown as "<file>(deleted)". Paths are relative to RUN/. Whitespace never occurs inside a field,
// so scripts can split on it. Exit 0; 2 when RUN has no state (naming what is missing).
#pragma once

#include <iosfwd>
#include <string>

namespace radlads {

struct CheckpointsArgs {
  std::string run_dir;
  std::ostream* out = nullptr;  // default std::cout
  std::ostream* err = nullptr;  // default std::cerr
};

int RunCheckpointsCommand(const CheckpointsArgs& args);

}  // namespace radlads
