// Assertions shared by the configs tests: an error must be InvalidArgument (or the given code),
// start with "<source>:<line>: " and contain every fragment (the key path, what was expected).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "base/status.h"

namespace radlads::testing {

inline ::testing::AssertionResult ErrorAt(const Status& st, std::string_view source, int line,
                                          std::initializer_list<std::string_view> fragments,
                                          Status::Code code = Status::Code::kInvalidArgument) {
  if (st.ok()) return ::testing::AssertionFailure() << "expected an error, got OK";
  if (st.code() != code) {
    return ::testing::AssertionFailure() << "wrong code: " << st.ToString();
  }
  const std::string prefix = std::string(source) + ":" + std::to_string(line) + ": ";
  if (st.message().rfind(prefix, 0) != 0) {
    return ::testing::AssertionFailure()
           << "message does not start with \"" << prefix << "\": " << st.message();
  }
  for (std::string_view f : fragments) {
    if (st.message().find(f) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << f << "\": " << st.message();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace radlads::testing
