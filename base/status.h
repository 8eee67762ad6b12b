// Status and Result<T>: the error-handling contract of every storage, config and coordinator
// path (LevelDB style, no exceptions across module boundaries).
//
// - A Status is either OK or carries a Code and a message. Messages name the file or peer, the
//   field and what was expected ("model.safetensors: tensor 'lm_head.weight': data_offsets end
//   4096 is beyond the data buffer (2048 bytes)").
// - Result<T> holds a T or a non-OK Status.
// - Both are [[nodiscard]]. Only main() decides to exit; ExitCodeFor() maps codes to the CLI
//   contract (0 ok, 1 runtime failure, 2 invalid input or usage).
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace radlads {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,    // bad input from the user: config, flags, model files, datasets
    kNotFound,           // a named file, key or tensor does not exist
    kCorruption,         // a file or message fails its own format's rules or checksum
    kIOError,            // the OS refused a read/write/fsync/rename
    kUnavailable,        // a peer or service cannot be reached right now
    kFailedPrecondition, // the operation does not fit the current state
    kResourceExhausted,  // a budget (memory, disk, tokens) is exceeded
    kInternal,           // a bug: an invariant of ours broke
  };

  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {Code::kResourceExhausted, std::move(msg)};
  }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>" (same code). OK stays OK.
  Status WithContext(std::string_view prefix) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Status::Code code);

// The CLI exit-code contract shared by every radlads binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // runtime failure (I/O, internal, unavailable)
inline constexpr int kExitInvalidInput = 2;  // invalid input or usage
// Returned by radlads-coord after a drain (SIGUSR1/SIGTERM) so the sbatch script requeues.
inline constexpr int kExitRequeue = 3;
// Stopped at the user's request (`radlads-coord cancel`): drained like kExitRequeue, but a
// batch job must end without a requeue. Running the same command again resumes.
inline constexpr int kExitCancelled = 4;

// kInvalidArgument, kNotFound, kCorruption and kResourceExhausted are the user's input -> 2.
int ExitCodeFor(const Status& s);

// What a failed task's error says about trying again (docs/design.md §5.4):
//   kBadInput   the input is wrong (InvalidArgument, NotFound, Corruption, ResourceExhausted:
//               a config, a model or data file, a plan that does not fit): retrying cannot help;
//               the command exits 2 and nothing is retried;
//   kTransient  the machine or a peer failed now (IOError: a full disk, a failing mount;
//               Unavailable: a lost worker or coordinator, a timed-out collective): the task is
//               retried with backoff up to the run's retry limit;
//   kFatal      anything else (Internal, FailedPrecondition): a bug or an impossible state;
//               the task fails for good.
enum class ErrorClass { kBadInput, kTransient, kFatal };
ErrorClass ClassifyError(const Status& s);
const char* ErrorClassName(ErrorClass c);  // "bad input", "transient", "fatal"

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
    assert(!std::get<Status>(v_).ok() && "Result<T> needs a value or a non-OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace radlads

// Early-return helpers. RADLADS_RETURN_IF_ERROR(expr) works on a Status;
// RADLADS_ASSIGN_OR_RETURN(lhs, expr) on a Result<T>.
#define RADLADS_RETURN_IF_ERROR(expr)                 \
  do {                                                \
    ::radlads::Status _radlads_st = (expr);           \
    if (!_radlads_st.ok()) return _radlads_st;        \
  } while (0)

#define RADLADS_CONCAT_INNER(a, b) a##b
#define RADLADS_CONCAT(a, b) RADLADS_CONCAT_INNER(a, b)
#define RADLADS_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto RADLADS_CONCAT(_radlads_res_, __LINE__) = (expr);                      \
  if (!RADLADS_CONCAT(_radlads_res_, __LINE__).ok())                          \
    return RADLADS_CONCAT(_radlads_res_, __LINE__).status();                  \
  lhs = std::move(RADLADS_CONCAT(_radlads_res_, __LINE__)).value()
