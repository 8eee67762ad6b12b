// `radlads-coord drain RUN` and `radlads-coord cancel RUN`: stop a run from outside, with or
// without Slurm (README "Running on a Slurm cluster").
//
// drain: asks the live coordinator (RUN/coordinator.addr, authenticated with RUN/secret) to
//   drain: the running tasks checkpoint at their next step boundary and release, and the
//   coordinator exits 3 (kExitRequeue; a Slurm job script requeues the job). Exit 0 once the
//   coordinator has exited (its address file is gone), within --wait seconds; 1 when it is still
//   draining then (the drain goes on) or when no coordinator serves RUN (nothing to drain).
// cancel: the same drain, recorded as the user's cancel (RunCancelled): the coordinator exits 4
//   (kExitCancelled) and the job script ends the job without a requeue. With no live
//   coordinator the cancel is written to the state directly (this process then holds RUN/state
//   for a moment; a coordinator starting meanwhile retries the live path). Either way, a Slurm
//   job of the run that is still queued or starting (squeue) is ended with `scancel`, and a
//   start of that job that races it finds the run cancelled and exits 4. Running the run's
//   command again (`run` or `submit`) resumes; its RunResumed clears the cancel.
//   Exit 0 when cancelled (and, with a live coordinator, it exited within --wait); 1 otherwise;
//   2 for a run that is already over or a directory that holds no run.
// The flags are parsed with CLI11 in cli/radlads_coord_main.cpp; this file keeps CLI11 out.
#pragma once

#include <iosfwd>
#include <string>

namespace radlads {

struct ControlArgs {
  std::string run_dir;
  double wait_s = 600;          // --wait SECONDS: how long to wait for the coordinator to exit
  std::ostream* out = nullptr;  // default std::cout
  std::ostream* err = nullptr;  // default std::cerr
};

int RunDrainCommand(const ControlArgs& args);
int RunCancelCommand(const ControlArgs& args);

}  // namespace radlads
