// gtest main for the tests that ctest starts under mpiexec (label mpi): MPI is initialised
// before the tests and finalised after; ranks other than 0 print only failures.
#include <gtest/gtest.h>

#include "worker/mpi_communicator.h"

namespace {

// Silences the per-test progress lines on ranks > 0 (failures still print).
class QuietOnOtherRanks : public ::testing::EmptyTestEventListener {};

}  // namespace

int main(int argc, char** argv) {
  radlads::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.world_rank() != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new QuietOnOtherRanks);
  }
  const int failed = RUN_ALL_TESTS();
  // Every rank must agree: a failure on any rank fails the test (the max over ranks).
  int any = failed != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
