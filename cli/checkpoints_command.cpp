#include "cli/checkpoints_command.h"

#include <filesystem>
#include <iostream>
#include <set>

#include "base/file.h"
#include "cli/checkpoint_janitor.h"
#include "contract/run_layout.h"
#include "state/state_store.h"

namespace radlads {

int RunCheckpointsCommand(const CheckpointsArgs& args) {
  std::ostream& out = args.out ? *args.out : std::cout;
  std::ostream& err = args.err ? *args.err : std::cerr;
  auto fail = [&err](const Status& s) {
    err << "radlads-coord checkpoints: " << s.ToString() << "\n";
    return ExitCodeFor(s);
  };
  if (!IsDirectory(args.run_dir)) return fail(Status::NotFound(args.run_dir + ": no such run directory"));
  const std::string state_dir = JoinPath(args.run_dir, RunLayout::StateDir());
  if (!IsDirectory(state_dir)) {
    return fail(Status::NotFound(state_dir + ": no run state yet (no coordinator has started on this run)"));
  }
  Result<RunState> s = StateStore::ReadSnapshot(state_dir);
  if (!s.ok()) return fail(s.status().WithContext("reading " + state_dir));
  Result<CheckpointListing> l = ListCheckpoints(*s, args.run_dir);
  if (!l.ok()) return fail(l.status());
  std::set<std::string> present_files;
  std::int64_t bytes = 0;
  for (const CheckpointListing::Commit& c : l->commits) {
    out << "commit " << c.task << " " << c.step << " " << c.tokens << " " << c.role << " ";
    for (std::size_t i = 0; i < c.files.size(); ++i) {
      out << (i > 0 ? "," : "") << c.files[i] << (c.present[i] ? "" : "(deleted)");
      if (c.present[i] && present_files.insert(c.files[i]).second) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(JoinPath(args.run_dir, c.files[i]), ec);
        bytes += ec ? 0 : static_cast<std::int64_t>(size);
      }
    }
    out << "\n";
  }
  for (const std::string& f : l->unreferenced) out << "unreferenced " << f << "\n";
 out << "# " << l->commits.size() << " commits, " << present_files.size() << " files present (" << bytes << " bytes), "
      << l->unreferenced.size() << " unreferenced\n";
  return kExitOk;
}

}  // namespace radlads
