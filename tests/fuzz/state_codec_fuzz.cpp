// libFuzzer target for the coordinator's durable state (state/events.h, state/state_rows.h,
// docs/formats/state.md): every value in RUN/state/ is read back through these decoders, and a
// damaged disk or a hostile file system hands them arbitrary bytes. The first input byte picks
// a mode; the rest is the attacker's bytes:
//   0  a raw value into DecodeEvent and every row decoder (framing, version, checksum);
//   1  [version u8][kind u8][payload...] framed with a valid checksum, so the payload decoders
//      of every event kind run; an accepted event is then applied to a small created run, whose
//      Apply must refuse it or keep the state's own invariants;
//   2  [row u8][payload...] framed as a current-version row of kind 0x40 + row % 9, so the row
//      decoders run behind a valid checksum.
// Properties: no crash or sanitizer report; an accepted current-version event or row re-encodes
// to exactly the same bytes; Apply never leaves a state that fails CheckInvariants.
// Seeds: tests/fuzz/corpus/state_codec_fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "state/events.h"
#include "state/run_state.h"
#include "state/state_rows.h"

namespace {

using namespace radlads;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "state_codec_fuzz: %s\n", what);
  std::abort();
}

void AllRows(std::string_view v) {
  RunRow run;
  TokenLedger ledger;
  TaskRecord task;
  LeaseRecord lease;
  WorkerRecord worker;
  CommittedCheckpoint ckpt;
  SegmentRecord seg;
  (void)DecodeMetaRow(v, "m/format");
  (void)DecodeRunRow(v, "r/run", &run);
  (void)DecodeLedgerRow(v, "r/ledger", &ledger);
  (void)DecodePlanRow(v, "p/x", &task);
  (void)DecodeTaskRow(v, "t/x", &task);
  (void)DecodeLeaseRow(v, "l/x", &lease);
  (void)DecodeWorkerRow(v, "w/x", &worker);
  (void)DecodeCheckpointRow(v, "c/x", &ckpt);
  (void)DecodeSegmentRow(v, "s/x", &seg);
}

// A created run of one layer and one segment (transfer, cache, align), for Apply.
RunState SmallRun() {
  TaskSpec transfer;
  transfer.id = TransferTaskId(0);
  transfer.type = TaskType::kTransfer;
  transfer.layer = 0;
  TaskSpec cache;
  cache.id = CacheTaskId(0, 0);
  cache.type = TaskType::kCache;
  cache.segment = 0;
  cache.stage = 0;
  cache.first_layer = 0;
  cache.last_layer = 1;
  TaskSpec align;
  align.id = AlignTaskId(0, 0);
  align.type = TaskType::kAlign;
  align.layer = 0;
  align.segment = 0;
  align.stage = 0;
  align.tokens = 640;
  align.sample_end = 10;
  align.optimizer_steps = 5;
  align.deps = {cache.id, transfer.id};
  RunConfig c;
  c.run_id = "fuzz";
  Event e;
  e.seq = 1;
  e.body = RunCreated{c, {transfer, cache, align}};
  RunState s;
  if (Status st = s.Apply(e); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    Die("the seed run does not apply");
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      Event e;
      (void)DecodeEvent(in, "e/raw", &e);
      AllRows(in);
      break;
    }
    case 1: {
      if (in.size() < 2) return 0;
      const int version = static_cast<std::uint8_t>(in[0]) % (kStateFormatVersion + 1);
      const std::string value = state_codec::Frame(static_cast<std::uint8_t>(in[1]), in.substr(2), version);
      Event e;
      if (!DecodeEvent(value, "e/framed", &e).ok()) return 0;
      if (version == kStateFormatVersion && EncodeEvent(e) != value) Die("an accepted event is not canonical");
      static const RunState base = SmallRun();
      RunState s = base;
      e.seq = s.last_seq() + 1;
      if (s.Apply(e).ok() && !s.CheckInvariants().ok()) Die("Apply accepted an event that breaks the invariants");
      break;
    }
    case 2: {
      if (in.empty()) return 0;
      const auto kind = static_cast<std::uint8_t>(0x40 + static_cast<std::uint8_t>(in[0]) % 9);
      AllRows(state_codec::Frame(kind, in.substr(1)));
      break;
    }
  }
  return 0;
}
