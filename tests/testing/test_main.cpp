// gtest main for every radlads test binary. Passing tests stay quiet under ctest; failures print
// the assertion with its named tolerance.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
