// libFuzzer target for the status document (status/status_report.h, docs/status.md):
// `radlads-coord status` parses what a live coordinator sends (StatusReportFromJson), so a
// hostile or broken peer hands it arbitrary bytes.
// Properties: no crash or sanitizer report, no exception escapes; an accepted document
// re-renders (StatusReportToJson), and the rendering parses back to the same rendering; the
// table renders at any width.
// Seeds: tests/fuzz/corpus/status_json_fuzz/ (documents from a mid-run and a Slurm run).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "status/status_report.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  radlads::Result<radlads::StatusReport> r = radlads::StatusReportFromJson(text, "fuzz");
  if (!r.ok()) return 0;
  const std::string once = radlads::StatusReportToJson(*r);
  radlads::Result<radlads::StatusReport> back = radlads::StatusReportFromJson(once, "fuzz again");
  if (!back.ok() || radlads::StatusReportToJson(*back) != once) {
    std::fprintf(stderr, "status_json_fuzz: a rendered document does not parse back to itself\n");
    std::abort();
  }
  (void)radlads::StatusTable(*r, 60 + static_cast<int>(size % 100), (size & 1) != 0);
  return 0;
}
