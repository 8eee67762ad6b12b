#include "contract/records.h"

namespace radlads {

std::string_view LeaseOutcomeName(LeaseOutcome o) {
  switch (o) {
    case LeaseOutcome::kGranted: return "granted";
    case LeaseOutcome::kNoWork: return "no_work";
    case LeaseOutcome::kDraining: return "draining";
    case LeaseOutcome::kRunOver: return "run_over";
  }
  return "unknown";
}

bool ParseLeaseOutcome(std::string_view name, LeaseOutcome* out) {
  for (LeaseOutcome o : {LeaseOutcome::kGranted, LeaseOutcome::kNoWork, LeaseOutcome::kDraining,
                         LeaseOutcome::kRunOver}) {
    if (LeaseOutcomeName(o) == name) {
      *out = o;
      return true;
    }
  }
  return false;
}

}  // namespace radlads
