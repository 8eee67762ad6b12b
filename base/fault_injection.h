// Faults injected into the file layer, for the reliability tests and the chaos soak
// (docs/design.md §5.4). Read once per process from $RADLADS_FAULTS, a comma-separated list of
//   enospc:SUBSTRING=N   the next N AtomicWriteFileWith calls (base/file.h) whose path contains
//                        SUBSTRING fail their first write with ENOSPC, as a full disk would:
//                        the temp file is created, the write fails, the temp file is removed
// Unset or empty (always, outside tests): no fault, one relaxed check per durable write.
// A malformed $RADLADS_FAULTS is reported once on stderr and ignored.
// Thread-safety: TakeFault may be called from any thread.
#pragma once

#include <string_view>

namespace radlads {

// True when a fault of `kind` ("enospc") is due for `path`; consumes one of its count.
bool TakeFault(std::string_view kind, std::string_view path);

}  // namespace radlads
