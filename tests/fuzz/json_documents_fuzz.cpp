// libFuzzer target for the JSON documents radlads reads from disk: the first input byte picks
// the reader, the rest is the document:
//   0  RUN/plan.json's tasks (plan/plan_report.h ParsePlanTasks), and the planning host's memory
//   1  a Hugging Face config.json (storage/hf_config.h ParseQwen2ConfigJson)
// Property: no crash, no sanitizer report, no exception escapes; an error names the source.
// Seeds: tests/fuzz/corpus/json_documents_fuzz/ (a tiny run's plan.json, the tiny teacher's and
// the Qwen2.5 presets' config.json, each behind its selector byte).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "plan/plan_report.h"
#include "storage/hf_config.h"

namespace {

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "json_documents_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckNamed(const radlads::Status& s) {
  if (!s.ok() && s.message().find("fuzz.json") == std::string::npos) Die("an error without the source", s.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    auto tasks = radlads::ParsePlanTasks(text, "fuzz.json");
    CheckNamed(tasks.status());
    CheckNamed(radlads::ParsePlannedHostMemory(text, "fuzz.json").status());
  } else {
    CheckNamed(radlads::ParseQwen2ConfigJson(text, "fuzz.json").status());
  }
  return 0;
}
