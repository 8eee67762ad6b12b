#include "base/status.h"

#include <gtest/gtest.h>

namespace radlads {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return Status::InvalidArgument("value " + std::to_string(v) + " is odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  RADLADS_ASSIGN_OR_RETURN(int h, Half(v));
  RADLADS_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckPositive(int v) {
  if (v <= 0) return Status::InvalidArgument("not positive");
  return Status::Ok();
}

Status Chain(int v) {
  RADLADS_RETURN_IF_ERROR(CheckPositive(v));
  return Status::IOError("reached the end");
}

TEST(Status, OkAndCodes) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  Status s = Status::Corruption("x.bin: bad magic");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_EQ(s.ToString(), "Corruption: x.bin: bad magic");
  EXPECT_EQ(s.WithContext("loading model").message(), "loading model: x.bin: bad magic");
  EXPECT_EQ(s.WithContext("loading model").code(), Status::Code::kCorruption);
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
}

TEST(Status, ExitCodes) {
  EXPECT_EQ(ExitCodeFor(Status::Ok()), 0);
  EXPECT_EQ(ExitCodeFor(Status::InvalidArgument("")), 2);
  EXPECT_EQ(ExitCodeFor(Status::NotFound("")), 2);
  EXPECT_EQ(ExitCodeFor(Status::Corruption("")), 2);
  EXPECT_EQ(ExitCodeFor(Status::ResourceExhausted("")), 2);
  EXPECT_EQ(ExitCodeFor(Status::IOError("")), 1);
  EXPECT_EQ(ExitCodeFor(Status::Internal("")), 1);
  EXPECT_EQ(ExitCodeFor(Status::Unavailable("")), 1);
}

TEST(Result, PropagatesValuesAndErrors) {
  Result<int> ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "value 3 is odd");
  EXPECT_EQ(Chain(-1).message(), "not positive");
  EXPECT_EQ(Chain(1).code(), Status::Code::kIOError);
}

}  // namespace
}  // namespace radlads

namespace radlads {
namespace {

// base/status.h ClassifyError: what a task's error says about trying again.
TEST(ErrorClass, InputIsNeverRetriedTheMachineIsAndBugsAreFatal) {
  for (const Status& s : {Status::InvalidArgument("x"), Status::NotFound("x"), Status::Corruption("x"),
                          Status::ResourceExhausted("x")}) {
    EXPECT_EQ(ClassifyError(s), ErrorClass::kBadInput) << s.ToString();
    EXPECT_EQ(ExitCodeFor(s), kExitInvalidInput) << s.ToString();  // the same line as the exit codes
  }
  EXPECT_EQ(ClassifyError(Status::IOError("disk full")), ErrorClass::kTransient);
  EXPECT_EQ(ClassifyError(Status::Unavailable("peer gone")), ErrorClass::kTransient);
  EXPECT_EQ(ClassifyError(Status::Internal("bug")), ErrorClass::kFatal);
  EXPECT_EQ(ClassifyError(Status::FailedPrecondition("state")), ErrorClass::kFatal);
  EXPECT_STREQ(ErrorClassName(ErrorClass::kTransient), "transient");
  EXPECT_STREQ(ErrorClassName(ErrorClass::kBadInput), "bad input");
  EXPECT_STREQ(ErrorClassName(ErrorClass::kFatal), "fatal");
}

}  // namespace
}  // namespace radlads
