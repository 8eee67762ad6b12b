// The table rows of RUN/state/ (docs/formats/state.md): their RocksDB keys, and the encoding of
// each row's value. Every value is framed like an event (state_codec::Frame: version, kind,
// payload, checksum); the payload is the row's fields in the varint encoding of
// contract/codec.h, declared once per row below (VisitFields and the Visit*Row functions).
//
// Decoding is strict: a wrong kind, a bad checksum, a truncated field or trailing bytes is a
// Corruption naming the key. Checks that tie a row to its key (a plan row names its own task, a
// lease row its own id) belong to the loader (state/state_store.cpp).
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "contract/codec.h"
#include "state/events.h"
#include "state/run_state.h"

namespace radlads {

// RocksDB keys (docs/formats/state.md).
namespace state_keys {
inline constexpr std::string_view kFormat = "m/format";
inline constexpr std::string_view kRun = "r/run";
inline constexpr std::string_view kLedger = "r/ledger";
inline constexpr std::string_view kEventPrefix = "e/";
std::string Event(std::uint64_t seq);          // "e/" + 16 lowercase hex digits
std::string Plan(std::string_view task);       // "p/<task id>"
std::string Task(std::string_view task);       // "t/<task id>"
std::string Lease(LeaseId id);                 // "l/" + 16 hex
std::string Worker(std::string_view worker);   // "w/<worker id>"
std::string Checkpoint(std::string_view task, std::size_t ordinal);  // "c/<task id>#" + 16 hex
std::string Segment(int stage, int segment);   // "s/P0001/S00000012"
}  // namespace state_keys

// The magic string and schema version in m/format.
inline constexpr std::string_view kStateMagic = "radlads-state";
inline constexpr std::uint32_t kStateSchemaVersion = 1;

// The run row: the config, the run's status, the log position and the next lease id, counters.
struct RunRow {
  RunConfig config;
  RunStatus status;
  std::uint64_t last_seq = 0;
  LeaseId next_lease = 0;
  RunMetrics metrics;
};

std::string EncodeMetaRow();
std::string EncodeRunRow(const RunRow& row);
std::string EncodeLedgerRow(const TokenLedger& ledger);
std::string EncodePlanRow(const TaskRecord& task);   // index and spec
std::string EncodeTaskRow(const TaskRecord& task);   // the rest of the task's record
std::string EncodeLeaseRow(const LeaseRecord& lease);
std::string EncodeWorkerRow(const WorkerRecord& worker);
std::string EncodeCheckpointRow(const CommittedCheckpoint& checkpoint);
std::string EncodeSegmentRow(const SegmentRecord& segment);

// Each refuses a value of another row kind. DecodeMetaRow also checks magic and schema version
// (a store written by another schema is refused naming both versions).
Status DecodeMetaRow(std::string_view value, std::string_view key);
Status DecodeRunRow(std::string_view value, std::string_view key, RunRow* out);
Status DecodeLedgerRow(std::string_view value, std::string_view key, TokenLedger* out);
Status DecodePlanRow(std::string_view value, std::string_view key, TaskRecord* out);
Status DecodeTaskRow(std::string_view value, std::string_view key, TaskRecord* out);
Status DecodeLeaseRow(std::string_view value, std::string_view key, LeaseRecord* out);
Status DecodeWorkerRow(std::string_view value, std::string_view key, WorkerRecord* out);
Status DecodeCheckpointRow(std::string_view value, std::string_view key, CommittedCheckpoint* out);
Status DecodeSegmentRow(std::string_view value, std::string_view key, SegmentRecord* out);

}  // namespace radlads
