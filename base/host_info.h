// What this machine offers, probed by the commands (never by the planner, which is a pure
// function of its inputs: the command passes the probed figure in and the plan records it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace radlads {

// This machine's host name (gethostname); "" when it cannot be read.
std::string HostName();

// MemTotal of /proc/meminfo in GiB (2^30 bytes); nullopt when it cannot be read.
std::optional<double> HostMemoryGib();

// This process's peak resident set (VmHWM of /proc/self/status) in bytes; nullopt when it
// cannot be read. ResetPeakRss starts a new peak from the current resident set (Linux:
// /proc/self/clear_refs "5"), so the peak of one task can be measured.
std::optional<std::int64_t> PeakRssBytes();
void ResetPeakRss();

}  // namespace radlads
