#include "base/status.h"

namespace radlads {

const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kInvalidArgument: return "Invalid argument";
    case Status::Code::kNotFound: return "Not found";
    case Status::Code::kCorruption: return "Corruption";
    case Status::Code::kIOError: return "IO error";
    case Status::Code::kUnavailable: return "Unavailable";
    case Status::Code::kFailedPrecondition: return "Failed precondition";
    case Status::Code::kResourceExhausted: return "Resource exhausted";
    case Status::Code::kInternal: return "Internal error";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out = CodeName(code_);
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk: return kExitOk;
    case Status::Code::kInvalidArgument:
    case Status::Code::kNotFound:
    case Status::Code::kCorruption:
    case Status::Code::kResourceExhausted:
      return kExitInvalidInput;
    default:
      return kExitFailure;
  }
}

ErrorClass ClassifyError(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kNotFound:
    case Status::Code::kCorruption:
    case Status::Code::kResourceExhausted:
      return ErrorClass::kBadInput;
    case Status::Code::kIOError:
    case Status::Code::kUnavailable:
      return ErrorClass::kTransient;
    default:
      return ErrorClass::kFatal;
  }
}

const char* ErrorClassName(ErrorClass c) {
  switch (c) {
    case ErrorClass::kBadInput: return "bad input";
    case ErrorClass::kTransient: return "transient";
    case ErrorClass::kFatal: return "fatal";
  }
  return "fatal";
}

}  // namespace radlads
