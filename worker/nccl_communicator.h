// The GPU workers' collectives (kernels/collectives.h) over NCCL, built on the MPI communicator
// of the same ranks (worker/mpi_communicator.h): rank 0 creates NCCL's unique id and the MPI
// communicator's Broadcast carries it to the others, so a gang's NCCL group is exactly its MPI
// group, with the same rank numbers.
//
// MEMORY: the float and double collectives (AllReduceSum, AllReduceMax, Send, Recv) take DEVICE
// pointers (memory of this rank's GPU, device()); a host pointer is a programming error that NCCL
// reports (or, for pageable memory, crashes on). Everything on bytes (Broadcast of strings,
// AllGather, SendBytes / TryRecvBytes), Barrier, Abort and Split go through the MPI communicator.
//
// STREAM AND COMPLETION: the collectives are enqueued on stream() (by default a non-blocking
// stream of this communicator; set_stream() puts them on the caller's compute stream so they are
// ordered after the kernels that produced the data) and every call returns only when its result
// is complete on the device, as the interface promises. While it waits it polls NCCL's
// asynchronous error, so a broken peer or network ends the call with an error instead of a hang;
// a rank that dies makes mpirun end the others, as with MPI.
//
// DETERMINISM: NCCL promises no summation order; the order follows from the algorithm (ring or
// tree, and the in-switch NVLS / CollNet reductions), the protocol, the channel count and the
// buffer size, and NCCL's tuner picks the first two by message size and topology. Create() pins
// NCCL_ALGO=Ring and NCCL_PROTO=Simple (unless the user set them: their choice is kept and is
// theirs to keep fixed), so the same rank count, buffer size, NCCL version and machine topology
// give the same bits run after run. The order is not the MPI communicator's ring order: NCCL and
// MPI sums of more than two ranks can differ in the last bits (two addends agree exactly).
// Maxima are exact under any order.
//
// Point to point: NCCL has no tags. Send and Recv between two ranks pair up in the order they are
// issued (MPI also keeps one (peer, tag)'s messages in order; callers that issue matching calls
// in the same order, as the gang trainer does, behave the same); `tag` is only checked to be
// non-negative. A Send returns once the receiver has the data, so two ranks that both Send to
// each other first deadlock (as MPI_Send of a large message does): order the pair.
//
// Errors: a failed NCCL or CUDA call aborts the process (RADLADS_CHECK) with the call, NCCL's
// error string and last-error text, the rank, the rank count and the device; an asynchronous NCCL
// error first aborts the NCCL communicator so the peers' calls fail too.
// Thread-safety: one thread per communicator (as for MPI).
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/collectives.h"
#include "worker/mpi_communicator.h"

struct ncclComm;  // nccl.h's communicator (ncclComm_t is ncclComm*); nccl.h stays private

namespace radlads {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `mpi`'s ranks; takes ownership of `mpi`. `device`: this rank's GPU, or -1
  // for DefaultDevice(*mpi). Sets the calling thread's current device.
  static std::unique_ptr<NcclCommunicator> Create(std::unique_ptr<MpiCommunicator> mpi, int device = -1);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  // Collectives from now on run on `s` (not owned; it must outlive its use here).
  void set_stream(cudaStream_t s) { stream_ = s; }
  MpiCommunicator& mpi() { return *mpi_; }

  // Device pointers (see above).
  void AllReduceSum(float* data, std::size_t n) override;
  void AllReduceSum(double* data, std::size_t n) override;
  void AllReduceMax(float* data, std::size_t n) override;
  void AllReduceMax(double* data, std::size_t n) override;
  void Send(const float* data, std::size_t n, int peer, int tag) override;
  void Recv(float* data, std::size_t n, int peer, int tag) override;
  // Through MPI (host memory).
  void Broadcast(std::string& bytes, int root) override { mpi_->Broadcast(bytes, root); }
  std::vector<std::string> AllGather(const std::string& bytes) override { return mpi_->AllGather(bytes); }
  void SendBytes(const std::string& bytes, int peer, int tag) override { mpi_->SendBytes(bytes, peer, tag); }
  bool TryRecvBytes(std::string* bytes, int peer, int tag) override { return mpi_->TryRecvBytes(bytes, peer, tag); }
  void Barrier() override { mpi_->Barrier(); }
  // Aborts the NCCL communicator (no local call stays blocked in it), then the MPI job.
  [[noreturn]] void Abort(int code) override;
  // An MPI Split, then a new NCCL communicator over it on the same device.
  std::unique_ptr<Communicator> Split(int color, int key) override;

  // The GPU of a rank: its rank among the ranks on the same node (MPI_COMM_TYPE_SHARED), which
  // must be below the node's device count (NCCL needs one GPU per rank).
  static int DefaultDevice(const MpiCommunicator& mpi);

 private:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> mpi, int device);
  void Wait(const char* what);
  std::string Where() const;

  std::unique_ptr<MpiCommunicator> mpi_;
  int device_ = 0;
  ncclComm* comm_ = nullptr;
  cudaStream_t own_stream_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// Host-side pieces, exposed for the CPU tests (tests/worker/nccl_setup_test.cpp).
namespace nccl_detail {

// Sets NCCL_ALGO=Ring and NCCL_PROTO=Simple in the environment unless already set; returns the
// values in effect afterwards as "ALGO/PROTO". Called before every NCCL initialisation.
std::string PinDeterministicAlgorithm();

// The device for local rank `local_rank` of `local_size` ranks on a node with `device_count`
// GPUs, or -1 with `*why` set when there are fewer GPUs than ranks.
int ChooseDevice(int local_rank, int local_size, int device_count, std::string* why);

// "NCCL <call> failed on rank R of N (device D): <NCCL error string>[: <detail>]".
std::string ErrorMessage(const char* call, int nccl_result, int rank, int size, int device,
                         const char* detail);

}  // namespace nccl_detail
}  // namespace radlads
