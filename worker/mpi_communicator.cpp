#include "worker/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>

#include "base/check.h"

namespace radlads {
namespace {

constexpr int kRingTag = 0x5244;  // "RD": the ring's own messages

// MPI counts are ints: large buffers go in pieces.
constexpr std::size_t kMaxCount = static_cast<std::size_t>(INT_MAX / 2);

void Check(int rc, const char* what) {
  RADLADS_CHECK(rc == MPI_SUCCESS) << "MPI " << what << " failed (code " << rc << ")";
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  Check(MPI_Comm_rank(comm_, &rank_), "Comm_rank");
  Check(MPI_Comm_size(comm_, &size_), "Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::World() {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
}

template <class T>
void MpiCommunicator::RingAllReduce(T* data, std::size_t n, MPI_Datatype type) {
  const int p = size_;
  if (p == 1 || n == 0) return;
  // Chunk c covers [c * n / p, (c + 1) * n / p).
  auto lo = [&](int c) { return n * static_cast<std::size_t>(c) / static_cast<std::size_t>(p); };
  auto hi = [&](int c) { return n * static_cast<std::size_t>(c + 1) / static_cast<std::size_t>(p); };
  std::vector<T> incoming((n + static_cast<std::size_t>(p) - 1) / static_cast<std::size_t>(p) + 1);
  const int right = (rank_ + 1) % p, left = (rank_ + p - 1) % p;
  auto exchange = [&](const T* send, std::size_t send_n, T* recv, std::size_t recv_n) {
    RADLADS_CHECK(send_n <= kMaxCount && recv_n <= kMaxCount) << "ring chunk too large";
    Check(MPI_Sendrecv(send, static_cast<int>(send_n), type, right, kRingTag, recv,
                       static_cast<int>(recv_n), type, left, kRingTag, comm_, MPI_STATUS_IGNORE),
          "Sendrecv");
  };
  // Reduce-scatter: at step s, rank r sends chunk (r - s) and adds the incoming chunk (r - s - 1).
  // After p - 1 steps rank r holds the full sum of chunk (r + 1) mod p, summed in the fixed
  // order r+1, r+2, ..., r (the ring from the chunk's owner).
  for (int s = 0; s < p - 1; ++s) {
    const int send_c = ((rank_ - s) % p + p) % p;
    const int recv_c = ((rank_ - s - 1) % p + p) % p;
    exchange(data + lo(send_c), hi(send_c) - lo(send_c), incoming.data(), hi(recv_c) - lo(recv_c));
    T* dst = data + lo(recv_c);
    for (std::size_t i = 0; i < hi(recv_c) - lo(recv_c); ++i) dst[i] = incoming[i] + dst[i];
  }
  // All-gather: pass the finished chunks round.
  for (int s = 0; s < p - 1; ++s) {
    const int send_c = ((rank_ + 1 - s) % p + p) % p;
    const int recv_c = ((rank_ - s) % p + p) % p;
    exchange(data + lo(send_c), hi(send_c) - lo(send_c), data + lo(recv_c), hi(recv_c) - lo(recv_c));
  }
}

void MpiCommunicator::AllReduceSum(float* data, std::size_t n) { RingAllReduce(data, n, MPI_FLOAT); }
void MpiCommunicator::AllReduceSum(double* data, std::size_t n) { RingAllReduce(data, n, MPI_DOUBLE); }

void MpiCommunicator::AllReduceMax(float* data, std::size_t n) {
  for (std::size_t i = 0; i < n; i += kMaxCount) {
    const int c = static_cast<int>(std::min(kMaxCount, n - i));
    Check(MPI_Allreduce(MPI_IN_PLACE, data + i, c, MPI_FLOAT, MPI_MAX, comm_), "Allreduce");
  }
}

void MpiCommunicator::AllReduceMax(double* data, std::size_t n) {
  for (std::size_t i = 0; i < n; i += kMaxCount) {
    const int c = static_cast<int>(std::min(kMaxCount, n - i));
    Check(MPI_Allreduce(MPI_IN_PLACE, data + i, c, MPI_DOUBLE, MPI_MAX, comm_), "Allreduce");
  }
}

void MpiCommunicator::Broadcast(std::string& bytes, int root) {
  std::uint64_t len = bytes.size();
  Check(MPI_Bcast(&len, 1, MPI_UINT64_T, root, comm_), "Bcast");
  RADLADS_CHECK(len <= kMaxCount) << "broadcast too large";
  bytes.resize(len);
  Check(MPI_Bcast(bytes.data(), static_cast<int>(len), MPI_CHAR, root, comm_), "Bcast");
}

std::vector<std::string> MpiCommunicator::AllGather(const std::string& bytes) {
  RADLADS_CHECK(bytes.size() <= kMaxCount) << "all-gather too large";
  int mine = static_cast<int>(bytes.size());
  std::vector<int> sizes(static_cast<std::size_t>(size_));
  Check(MPI_Allgather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm_), "Allgather");
  std::vector<int> offsets(sizes.size());
  std::int64_t total = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    offsets[i] = static_cast<int>(total);
    total += sizes[i];
    RADLADS_CHECK(total <= static_cast<std::int64_t>(kMaxCount)) << "all-gather too large";
  }
  std::string all(static_cast<std::size_t>(total), '\0');
  Check(MPI_Allgatherv(bytes.data(), mine, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                       comm_),
        "Allgatherv");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    out.push_back(all.substr(static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(sizes[i])));
  }
  return out;
}

void MpiCommunicator::Send(const float* data, std::size_t n, int peer, int tag) {
  for (std::size_t i = 0; i < n || i == 0; i += kMaxCount) {
    const int c = static_cast<int>(std::min(kMaxCount, n - i));
    Check(MPI_Send(data + i, c, MPI_FLOAT, peer, tag, comm_), "Send");
    if (n == 0) break;
  }
}

void MpiCommunicator::Recv(float* data, std::size_t n, int peer, int tag) {
  for (std::size_t i = 0; i < n || i == 0; i += kMaxCount) {
    const int c = static_cast<int>(std::min(kMaxCount, n - i));
    Check(MPI_Recv(data + i, c, MPI_FLOAT, peer, tag, comm_, MPI_STATUS_IGNORE), "Recv");
    if (n == 0) break;
  }
}

void MpiCommunicator::SendBytes(const std::string& bytes, int peer, int tag) {
  RADLADS_CHECK(bytes.size() <= kMaxCount) << "message too large";
  Check(MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_CHAR, peer, tag, comm_), "Send");
}

bool MpiCommunicator::TryRecvBytes(std::string* bytes, int peer, int tag) {
  int flag = 0;
  MPI_Status st;
  Check(MPI_Iprobe(peer, tag, comm_, &flag, &st), "Iprobe");
  if (flag == 0) return false;
  int count = 0;
  Check(MPI_Get_count(&st, MPI_CHAR, &count), "Get_count");
  bytes->resize(static_cast<std::size_t>(count));
  Check(MPI_Recv(bytes->data(), count, MPI_CHAR, peer, tag, comm_, MPI_STATUS_IGNORE), "Recv");
  return true;
}

void MpiCommunicator::Barrier() { Check(MPI_Barrier(comm_), "Barrier"); }

void MpiCommunicator::Abort(int code) {
  MPI_Abort(comm_, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

std::unique_ptr<Communicator> MpiCommunicator::Split(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  Check(MPI_Comm_split(comm_, color, key, &sub), "Comm_split");
  return std::make_unique<MpiCommunicator>(sub, true);
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  Check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "Init_thread");
  Check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
  Check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
}

MpiSession::~MpiSession() { MPI_Finalize(); }

}  // namespace radlads
