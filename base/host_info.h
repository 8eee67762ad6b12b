// What this machine offers, probed by the commands (never by the planner, which is a pure
// function of its inputs: the command passes the probed figure in and the plan records it).
#pragma once

#include <optional>

namespace radlads {

// MemTotal of /proc/meminfo in GiB (2^30 bytes); nullopt when it cannot be read.
std::optional<double> HostMemoryGib();

}  // namespace radlads
