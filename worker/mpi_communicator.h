// The CPU workers' collectives (kernels/collectives.h) over MPI. The worker job's ranks are
// the processes of one `mpirun` (or `srun --mpi=pmix`); gangs, and inside a gang the TP, PP and
// DP groups, are Split()s of MPI_COMM_WORLD.
//
// AllReduceSum is a ring reduce-scatter then all-gather written with MPI_Sendrecv: chunk c is
// summed starting at rank c+1 and going round the ring, an order fixed by the rank count and
// the buffer size, so a rerun of the same layout gives the same bits (MPI_Allreduce promises
// no order). Maxima go through MPI_Allreduce (order does not matter for a maximum).
// Errors: MPI's default handler aborts the whole job when a peer fails (mpirun then ends every
// rank), so no collective waits forever on a dead rank.
// Thread-safety: one thread per communicator (MPI initialised with MPI_THREAD_FUNNELED).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/collectives.h"

namespace radlads {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm` (owned when `owned`: freed on destruction).
  MpiCommunicator(MPI_Comm comm, bool owned);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  // MPI_COMM_WORLD (not owned).
  static std::unique_ptr<MpiCommunicator> World();

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void AllReduceSum(float* data, std::size_t n) override;
  void AllReduceSum(double* data, std::size_t n) override;
  void AllReduceMax(float* data, std::size_t n) override;
  void AllReduceMax(double* data, std::size_t n) override;
  void Broadcast(std::string& bytes, int root) override;
  std::vector<std::string> AllGather(const std::string& bytes) override;
  void Send(const float* data, std::size_t n, int peer, int tag) override;
  void Recv(float* data, std::size_t n, int peer, int tag) override;
  void SendBytes(const std::string& bytes, int peer, int tag) override;
  bool TryRecvBytes(std::string* bytes, int peer, int tag) override;
  void Barrier() override;
  [[noreturn]] void Abort(int code) override;
  std::unique_ptr<Communicator> Split(int color, int key) override;

  MPI_Comm comm() const { return comm_; }

 private:
  template <class T>
  void RingAllReduce(T* data, std::size_t n, MPI_Datatype type);

  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0;
  int size_ = 1;
};

// MPI_Init_thread(FUNNELED) once per process and MPI_Finalize at exit; ranks of the job.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int world_rank() const { return rank_; }
  int world_size() const { return size_; }

 private:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace radlads
