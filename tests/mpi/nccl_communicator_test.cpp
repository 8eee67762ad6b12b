// The NCCL communicator (worker/nccl_communicator.h) against the MPI one, run by ctest under
// mpiexec with 2 ranks, one GPU each: sums (float and double; with two ranks the NCCL sum must be
// the MPI sum bit for bit, since a + b == b + a; with more, within a named tolerance) and the same
// bits on a rerun, maxima (exact), point to point in issue order, the calls that go through MPI,
// Split, and a caller's stream. Skips the whole binary (exit 77, every rank) when a node has
// fewer CUDA devices than ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/device.h"
#include "worker/mpi_communicator.h"
#include "worker/nccl_communicator.h"

namespace radlads {
namespace {

void Cuda(cudaError_t e, const char* what) {
  ASSERT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e);
}

// One NCCL communicator over MPI_COMM_WORLD for the whole binary (NCCL set-up is slow).
std::unique_ptr<NcclCommunicator>& World() {
  static std::unique_ptr<NcclCommunicator> world;
  return world;
}

// NCCL_ALGO and NCCL_PROTO as the user left them before Create() ("" when unset).
std::string user_algo, user_proto;

// Skips every rank together when any rank's node lacks a GPU for it; otherwise builds World().
class NcclGate : public ::testing::Environment {
 public:
  void SetUp() override {
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int local_rank = 0, local_size = 1;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    const cuda::DeviceProbe probe = cuda::ProbeDevices();
    std::string why;
    int ok = nccl_detail::ChooseDevice(local_rank, local_size, probe.count, &why) >= 0 ? 1 : 0;
    if (probe.count == 0) why = "no usable CUDA device (" + probe.reason + ")";
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (all_ok == 0) {
      if (rank == 0 || ok == 0) {
        std::printf("SKIPPED: the NCCL communicator needs one CUDA device per rank: rank %d: %s\n", rank,
                    ok == 0 ? why.c_str() : "(another rank lacks one)");
        std::fflush(stdout);
      }
      MPI_Finalize();
      std::exit(77);
    }
    const char* a = std::getenv("NCCL_ALGO");
    const char* pr = std::getenv("NCCL_PROTO");
    user_algo = a != nullptr ? a : "";
    user_proto = pr != nullptr ? pr : "";
    World() = NcclCommunicator::Create(MpiCommunicator::World());
  }
  void TearDown() override { World().reset(); }
};

const ::testing::Environment* const kGate = ::testing::AddGlobalTestEnvironment(new NcclGate);

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n_ > 0 && cudaMalloc(&p_, n_ * sizeof(T)) != cudaSuccess) p_ = nullptr;
  }
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() { return static_cast<T*>(p_); }
  void Put(const std::vector<T>& v) {
    ASSERT_EQ(v.size(), n_);
    if (n_ > 0) Cuda(cudaMemcpy(p_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> Get() {
    std::vector<T> v(n_);
    if (n_ > 0) Cuda(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return v;
  }

 private:
  std::size_t n_;
  void* p_ = nullptr;
};

// Rank r's contribution, reproducible anywhere; mixed signs and magnitudes so that the order of
// a sum shows in its last bits.
template <class T>
std::vector<T> Contribution(int r, std::size_t n, unsigned salt) {
  std::mt19937_64 rng(7919u * salt + static_cast<unsigned>(r));
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(u(rng) * std::pow(10.0, 3.0 * u(rng)));
  return v;
}

const std::vector<std::size_t> kSizes = {1, 7, 1000, 4097, (std::size_t{1} << 20) + 3};

// Relative to the sum of magnitudes: each of the p - 1 additions rounds once.
template <class T>
double SumTolerance(int p) {
  return 2.0 * p * static_cast<double>(std::numeric_limits<T>::epsilon());
}

template <class T>
void CheckSumAgainstMpi() {
  NcclCommunicator& nccl = *World();
  auto mpi = MpiCommunicator::World();
  const int p = nccl.size(), r = nccl.rank();
  for (std::size_t n : kSizes) {
    const std::vector<T> mine = Contribution<T>(r, n, 1);
    std::vector<T> want = mine;
    mpi->AllReduceSum(want.data(), n);
    DeviceBuffer<T> d(n);
    ASSERT_NE(d.get(), nullptr);
    d.Put(mine);
    nccl.AllReduceSum(d.get(), n);
    const std::vector<T> got = d.Get();
    if (p == 2) {
      ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(T)), 0) << "n " << n;
    } else {
      std::vector<double> mag(n, 0.0);
      for (int k = 0; k < p; ++k) {
        const std::vector<T> c = Contribution<T>(k, n, 1);
        for (std::size_t i = 0; i < n; ++i) mag[i] += std::fabs(static_cast<double>(c[i]));
      }
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_LE(std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i])), SumTolerance<T>(p) * mag[i])
            << "n " << n << " element " << i;
      }
    }
    // The same layout again: the same bits.
    d.Put(mine);
    nccl.AllReduceSum(d.get(), n);
    const std::vector<T> again = d.Get();
    EXPECT_EQ(std::memcmp(again.data(), got.data(), n * sizeof(T)), 0) << "rerun differs, n " << n;
  }
}

TEST(NcclCommunicator, FloatSumMatchesMpiAndRepeats) { CheckSumAgainstMpi<float>(); }
TEST(NcclCommunicator, DoubleSumMatchesMpiAndRepeats) { CheckSumAgainstMpi<double>(); }

template <class T>
void CheckMaxAgainstMpi() {
  NcclCommunicator& nccl = *World();
  auto mpi = MpiCommunicator::World();
  for (std::size_t n : kSizes) {
    const std::vector<T> mine = Contribution<T>(nccl.rank(), n, 2);
    std::vector<T> want = mine;
    mpi->AllReduceMax(want.data(), n);
    DeviceBuffer<T> d(n);
    ASSERT_NE(d.get(), nullptr);
    d.Put(mine);
    nccl.AllReduceMax(d.get(), n);
    const std::vector<T> got = d.Get();
    ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(T)), 0) << "n " << n;
  }
}

TEST(NcclCommunicator, FloatMaxMatchesMpi) { CheckMaxAgainstMpi<float>(); }
TEST(NcclCommunicator, DoubleMaxMatchesMpi) { CheckMaxAgainstMpi<double>(); }

TEST(NcclCommunicator, SendRecvPairsInIssueOrderAsMpiDoes) {
  NcclCommunicator& nccl = *World();
  auto mpi = MpiCommunicator::World();
  const int p = nccl.size(), r = nccl.rank();
  const int partner = (r % 2 == 0) ? r + 1 : r - 1;
  if (partner >= p) GTEST_SKIP() << "odd rank count: the last rank has no partner";
  const bool first = r % 2 == 0;  // the even rank sends first, the odd one receives first
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4097}, std::size_t{1} << 20}) {
    // Two messages each way with different tags: they pair in the order issued.
    const std::vector<float> a = Contribution<float>(r, n, 3), b = Contribution<float>(r, n, 4);
    std::vector<float> via_mpi_a(n), via_mpi_b(n);
    DeviceBuffer<float> da(n), db(n), ra(n), rb(n);
    da.Put(a);
    db.Put(b);
    auto exchange = [&](Communicator& c, float* send_a, float* send_b, float* recv_a, float* recv_b) {
      if (first) {
        c.Send(send_a, n, partner, 5);
        c.Send(send_b, n, partner, 6);
        c.Recv(recv_a, n, partner, 5);
        c.Recv(recv_b, n, partner, 6);
      } else {
        c.Recv(recv_a, n, partner, 5);
        c.Recv(recv_b, n, partner, 6);
        c.Send(send_a, n, partner, 5);
        c.Send(send_b, n, partner, 6);
      }
    };
    std::vector<float> ha = a, hb = b;
    exchange(*mpi, ha.data(), hb.data(), via_mpi_a.data(), via_mpi_b.data());
    exchange(nccl, da.get(), db.get(), ra.get(), rb.get());
    const std::vector<float> got_a = ra.Get(), got_b = rb.Get();
    ASSERT_EQ(got_a, via_mpi_a) << "n " << n;
    ASSERT_EQ(got_b, via_mpi_b) << "n " << n;
    EXPECT_EQ(got_a, Contribution<float>(partner, n, 3)) << "n " << n;
    EXPECT_EQ(got_b, Contribution<float>(partner, n, 4)) << "n " << n;
  }
}

TEST(NcclCommunicator, BytesBarrierAndSplitGoThroughMpi) {
  Communicator& c = *World();
  const int p = c.size(), r = c.rank();
  std::string b = r == p - 1 ? std::string("from the last\0rank", 18) : std::string();
  c.Broadcast(b, p - 1);
  EXPECT_EQ(b, std::string("from the last\0rank", 18));
  const std::vector<std::string> all = c.AllGather(std::string(static_cast<std::size_t>(r) + 1, 'y'));
  ASSERT_EQ(all.size(), static_cast<std::size_t>(p));
  for (int k = 0; k < p; ++k) EXPECT_EQ(all[static_cast<std::size_t>(k)], std::string(static_cast<std::size_t>(k) + 1, 'y'));
  if (r == 0) c.SendBytes("go", 1, 9);
  if (r == 1) {
    std::string got;
    while (!c.TryRecvBytes(&got, 0, 9)) {
    }
    EXPECT_EQ(got, "go");
  }
  c.Barrier();

  // Everyone in one group, ranks reversed by key: a new NCCL communicator with the new numbers.
  std::unique_ptr<Communicator> rev = c.Split(0, -r);
  ASSERT_EQ(rev->size(), p);
  EXPECT_EQ(rev->rank(), p - 1 - r);
  DeviceBuffer<double> d(2);
  d.Put({static_cast<double>(rev->rank()), 1.0});
  rev->AllReduceSum(d.get(), 2);
  EXPECT_EQ(d.Get(), (std::vector<double>{p * (p - 1) / 2.0, static_cast<double>(p)}));
  // Even and odd ranks apart.
  std::unique_ptr<Communicator> parity = c.Split(r % 2, r);
  const int expect = (p + (r % 2 == 0 ? 1 : 0)) / 2;
  EXPECT_EQ(parity->size(), expect);
  DeviceBuffer<float> one(1);
  one.Put({1.0f});
  parity->AllReduceSum(one.get(), 1);
  EXPECT_EQ(one.Get(), std::vector<float>{static_cast<float>(expect)});
}

TEST(NcclCommunicator, RunsOnTheCallersStreamAfterItsWork) {
  NcclCommunicator& nccl = *World();
  const std::size_t n = std::size_t{1} << 22;
  cudaStream_t s = nullptr;
  Cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const cudaStream_t before = nccl.stream();
  nccl.set_stream(s);
  // The upload is queued on `s` and not waited for: the all-reduce must come after it.
  std::vector<float> host(n, static_cast<float>(nccl.rank() + 1));
  DeviceBuffer<float> d(n);
  Cuda(cudaMemsetAsync(d.get(), 0, n * sizeof(float), s), "memset");
  Cuda(cudaMemcpyAsync(d.get(), host.data(), n * sizeof(float), cudaMemcpyHostToDevice, s), "upload");
  nccl.AllReduceSum(d.get(), n);
  nccl.set_stream(before);
  const int p = nccl.size();
  const std::vector<float> got = d.Get();
  EXPECT_EQ(got.front(), static_cast<float>(p * (p + 1) / 2));
  EXPECT_EQ(got.back(), static_cast<float>(p * (p + 1) / 2));
  Cuda(cudaStreamDestroy(s), "stream destroy");
}

TEST(NcclCommunicator, PinsRingAndSimpleUnlessTheUserChose) {
  const char* algo = std::getenv("NCCL_ALGO");
  const char* proto = std::getenv("NCCL_PROTO");
  ASSERT_NE(algo, nullptr);
  ASSERT_NE(proto, nullptr);
  EXPECT_EQ(std::string(algo), user_algo.empty() ? "Ring" : user_algo);
  EXPECT_EQ(std::string(proto), user_proto.empty() ? "Simple" : user_proto);
}

}  // namespace
}  // namespace radlads
