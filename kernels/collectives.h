// Collectives among the ranks of a worker group: the interface the parallel training code
// (data, tensor and pipeline parallelism) is written against. Implementations: SelfCommunicator
// (one rank; every collective is the identity), the MPI one of the CPU workers
// (worker/mpi_communicator.h) and, on GPUs, NCCL (worker/nccl_communicator.h).
//
// Contract:
// - Collectives are called by every rank of the communicator, in the same order, with the same
//   sizes. Point-to-point Send/Recv pair up by (peer, tag).
// - Determinism: AllReduceSum adds the ranks' contributions in an order fixed by the rank count
//   and the buffer size (never by timing), so the same computation on the same layout gives the
//   same bits; a different rank count is a different computation.
// - Failure: a rank that dies ends the collective on the others by an error or an abort (MPI:
//   the job is torn down by mpirun); nothing waits forever on a dead peer.
// Thread-safety: one thread per communicator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace radlads {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: every rank ends with the element-wise sum over ranks (deterministic order).
  virtual void AllReduceSum(float* data, std::size_t n) = 0;
  virtual void AllReduceSum(double* data, std::size_t n) = 0;
  // In place: every rank ends with the element-wise maximum.
  virtual void AllReduceMax(float* data, std::size_t n) = 0;
  virtual void AllReduceMax(double* data, std::size_t n) = 0;
  // `bytes` of `root` to every rank.
  virtual void Broadcast(std::string& bytes, int root) = 0;
  // Every rank's `bytes`, in rank order, at every rank.
  virtual std::vector<std::string> AllGather(const std::string& bytes) = 0;
  // Point to point.
  virtual void Send(const float* data, std::size_t n, int peer, int tag) = 0;
  virtual void Recv(float* data, std::size_t n, int peer, int tag) = 0;
  virtual void SendBytes(const std::string& bytes, int peer, int tag) = 0;
  // Receives a message of `tag` from `peer` if one has arrived (false: none yet; no wait).
  virtual bool TryRecvBytes(std::string* bytes, int peer, int tag) = 0;
  virtual void Barrier() = 0;
  // Ends every rank of the job (a failure the group cannot recover from: no rank may be left
  // waiting in a collective).
  [[noreturn]] virtual void Abort(int code) = 0;
  // The ranks with the same `color`, ordered by (key, rank). Every rank calls it.
  virtual std::unique_ptr<Communicator> Split(int color, int key) = 0;
};

// One rank: collectives are identities.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void AllReduceSum(float*, std::size_t) override {}
  void AllReduceSum(double*, std::size_t) override {}
  void AllReduceMax(float*, std::size_t) override {}
  void AllReduceMax(double*, std::size_t) override {}
  void Broadcast(std::string&, int) override {}
  std::vector<std::string> AllGather(const std::string& bytes) override { return {bytes}; }
  void Send(const float*, std::size_t, int, int) override;
  void Recv(float*, std::size_t, int, int) override;
  void SendBytes(const std::string&, int, int) override;
  bool TryRecvBytes(std::string*, int, int) override { return false; }
  void Barrier() override {}
  [[noreturn]] void Abort(int code) override;
  std::unique_ptr<Communicator> Split(int, int) override { return std::make_unique<SelfCommunicator>(); }
};

}  // namespace radlads
