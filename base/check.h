// RADLADS_CHECK(cond) << "message": invariant checks for programming errors (shape mismatches
// inside the engine, broken internal state). A failed check prints file:line, the condition and
// the message to stderr and aborts. User input is never validated with this: it gets a Status.
#pragma once

#include <cstdlib>
#include <iostream>
#include <sstream>

namespace radlads::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond) {
    stream_ << file << ":" << line << ": check failed: " << cond << ": ";
  }
  [[noreturn]] ~CheckFailure() {
    std::cerr << stream_.str() << std::endl;
    std::abort();
  }
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

}  // namespace radlads::internal

#define RADLADS_CHECK(cond) \
  if (cond) {               \
  } else                    \
    ::radlads::internal::CheckFailure(__FILE__, __LINE__, #cond)
