// The MPI collectives (worker/mpi_communicator.h), run by ctest under mpiexec with 3 ranks: the
// ring all-reduce gives every rank the sum, added in its documented fixed order (the same bits
// run after run, and exactly the sum in that order computed on one rank), for sizes that do not
// divide by the rank count; maxima, broadcast, all-gather, sub-groups and byte messages.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "worker/mpi_communicator.h"

namespace radlads {
namespace {

// Every rank's contribution, reproducible on any rank: element i of rank r.
std::vector<float> Contribution(int r, std::size_t n) {
  std::mt19937 rng(1000 + static_cast<unsigned>(r));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng) * 1e3f;
  return v;
}

TEST(MpiCommunicator, RingAllReduceSumsInItsFixedOrder) {
  auto world = MpiCommunicator::World();
  const int p = world->size();
  ASSERT_GE(p, 2) << "run under mpiexec with at least 2 ranks";
  for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{1000}, std::size_t{4097}}) {
    std::vector<float> got = Contribution(world->rank(), n);
    world->AllReduceSum(got.data(), n);
    // Chunk c (of [c*n/p, (c+1)*n/p)) is summed starting at rank c, then c+1, ... round the ring.
    std::vector<std::vector<float>> all(static_cast<std::size_t>(p));
    for (int r = 0; r < p; ++r) all[static_cast<std::size_t>(r)] = Contribution(r, n);
    for (int c = 0; c < p; ++c) {
      for (std::size_t i = n * static_cast<std::size_t>(c) / static_cast<std::size_t>(p);
           i < n * static_cast<std::size_t>(c + 1) / static_cast<std::size_t>(p); ++i) {
        float want = all[static_cast<std::size_t>(c)][i];
        for (int k = 1; k < p; ++k) want = want + all[static_cast<std::size_t>((c + k) % p)][i];
        ASSERT_EQ(std::memcmp(&got[i], &want, sizeof(float)), 0) << "n " << n << " element " << i;
      }
    }
    // Again: the same bits.
    std::vector<float> again = Contribution(world->rank(), n);
    world->AllReduceSum(again.data(), n);
    EXPECT_EQ(std::memcmp(again.data(), got.data(), n * sizeof(float)), 0) << "n " << n;
  }
  std::vector<double> d = {static_cast<double>(world->rank()), 1.0};
  world->AllReduceSum(d.data(), d.size());
  EXPECT_EQ(d[0], p * (p - 1) / 2.0);
  EXPECT_EQ(d[1], static_cast<double>(p));
}

TEST(MpiCommunicator, MaxBroadcastGatherSplitAndMessages) {
  auto world = MpiCommunicator::World();
  const int p = world->size(), r = world->rank();
  double m = r == 1 ? 5.0 : -1.0;
  world->AllReduceMax(&m, 1);
  EXPECT_EQ(m, 5.0);
  std::string b = r == p - 1 ? std::string("from the last rank\0with a NUL", 29) : std::string();
  world->Broadcast(b, p - 1);
  EXPECT_EQ(b, std::string("from the last rank\0with a NUL", 29));
  std::vector<std::string> all = world->AllGather(std::string(static_cast<std::size_t>(r), 'x'));
  ASSERT_EQ(all.size(), static_cast<std::size_t>(p));
  for (int k = 0; k < p; ++k) EXPECT_EQ(all[static_cast<std::size_t>(k)], std::string(static_cast<std::size_t>(k), 'x'));
  // Split into even and odd ranks, reversed by key.
  auto sub = world->Split(r % 2, -r);
  const int expect_size = (p + (r % 2 == 0 ? 1 : 0)) / 2;
  EXPECT_EQ(sub->size(), expect_size);
  double one = 1.0;
  sub->AllReduceSum(&one, 1);
  EXPECT_EQ(one, static_cast<double>(expect_size));
  // A message from rank 0 to rank 1, picked up without blocking.
  if (r == 0) world->SendBytes("grant", 1, 42);
  if (r == 1) {
    std::string got;
    while (!world->TryRecvBytes(&got, 0, 42)) {
    }
    EXPECT_EQ(got, "grant");
  }
  std::string none;
  EXPECT_FALSE(world->TryRecvBytes(&none, 0, 43));
  world->Barrier();
}

}  // namespace
}  // namespace radlads
