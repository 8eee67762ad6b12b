#include "worker/nccl_communicator.h"

#include <nccl.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "base/check.h"

namespace radlads {
namespace nccl_detail {

std::string PinDeterministicAlgorithm() {
  // overwrite = 0: a value the user set stays.
  setenv("NCCL_ALGO", "Ring", 0);
  setenv("NCCL_PROTO", "Simple", 0);
  return std::string(std::getenv("NCCL_ALGO")) + "/" + std::getenv("NCCL_PROTO");
}

int ChooseDevice(int local_rank, int local_size, int device_count, std::string* why) {
  if (device_count <= 0) {
    *why = "no CUDA device on this node";
    return -1;
  }
  if (local_size > device_count || local_rank < 0 || local_rank >= device_count) {
    std::ostringstream s;
    s << local_size << " ranks on this node but only " << device_count
      << " CUDA device(s): NCCL needs one GPU per rank";
    *why = s.str();
    return -1;
  }
  return local_rank;
}

std::string ErrorMessage(const char* call, int nccl_result, int rank, int size, int device,
                         const char* detail) {
  std::ostringstream s;
  s << "NCCL " << call << " failed on rank " << rank << " of " << size << " (device " << device
    << "): " << ncclGetErrorString(static_cast<ncclResult_t>(nccl_result));
  if (detail != nullptr && detail[0] != '\0') s << ": " << detail;
  return s.str();
}

}  // namespace nccl_detail

namespace {

// Runs `call`; on failure aborts with NCCL's error string, its last-error text and where.
#define RADLADS_NCCL_CHECK(self, comm, call)                                                        \
  do {                                                                                              \
    const ncclResult_t _r = (call);                                                                 \
    RADLADS_CHECK(_r == ncclSuccess) << nccl_detail::ErrorMessage(#call, _r, (self).rank(),         \
                                                                  (self).size(), (self).device(),   \
                                                                  ncclGetLastError(comm));          \
  } while (0)

void CudaCheck(cudaError_t e, const char* what, int rank, int device) {
  RADLADS_CHECK(e == cudaSuccess) << "CUDA " << what << " failed on rank " << rank << " (device " << device
                                  << "): " << cudaGetErrorName(e) << " (" << cudaGetErrorString(e) << ")";
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<MpiCommunicator> mpi, int device)
    : mpi_(std::move(mpi)), device_(device) {}

std::unique_ptr<NcclCommunicator> NcclCommunicator::Create(std::unique_ptr<MpiCommunicator> mpi, int device) {
  RADLADS_CHECK(mpi != nullptr) << "NcclCommunicator::Create: no MPI communicator";
  if (device < 0) device = DefaultDevice(*mpi);
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator(std::move(mpi), device));
  CudaCheck(cudaSetDevice(device), "cudaSetDevice", c->rank(), device);
  nccl_detail::PinDeterministicAlgorithm();
  // Rank 0 makes the id; MPI carries its bytes to the others.
  std::string id_bytes;
  if (c->rank() == 0) {
    ncclUniqueId id;
    RADLADS_NCCL_CHECK(*c, nullptr, ncclGetUniqueId(&id));
    id_bytes.assign(id.internal, sizeof(id.internal));
  }
  c->mpi_->Broadcast(id_bytes, 0);
  RADLADS_CHECK(id_bytes.size() == sizeof(ncclUniqueId))
      << "NCCL unique id of " << id_bytes.size() << " bytes received on rank " << c->rank();
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes.data(), sizeof(id.internal));
  ncclComm_t comm = nullptr;
  RADLADS_NCCL_CHECK(*c, nullptr, ncclCommInitRank(&comm, c->size(), id, c->rank()));
  c->comm_ = comm;
  CudaCheck(cudaStreamCreateWithFlags(&c->own_stream_, cudaStreamNonBlocking), "cudaStreamCreate",
            c->rank(), device);
  c->stream_ = c->own_stream_;
  return c;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (own_stream_ != nullptr) cudaStreamDestroy(own_stream_);
}

std::string NcclCommunicator::Where() const {
  std::ostringstream s;
  s << "rank " << rank() << " of " << size() << " (device " << device_ << ")";
  return s.str();
}

void NcclCommunicator::Wait(const char* what) {
  // Poll rather than cudaStreamSynchronize: a peer that fails leaves a blocking wait hanging,
  // while NCCL reports it as an asynchronous error on this communicator.
  for (;;) {
    const cudaError_t q = cudaStreamQuery(stream_);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
      CudaCheck(q, what, rank(), device_);
    }
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    if (r != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
      const ncclResult_t bad = r != ncclSuccess ? r : async;
      const std::string last = ncclGetLastError(comm_);
      ncclCommAbort(comm_);
      comm_ = nullptr;
      RADLADS_CHECK(false) << nccl_detail::ErrorMessage(what, bad, rank(), size(), device_, last.c_str());
    }
    std::this_thread::yield();
  }
}

void NcclCommunicator::AllReduceSum(float* data, std::size_t n) {
  if (n == 0) return;
  RADLADS_NCCL_CHECK(*this, comm_, ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, stream_));
  Wait("ncclAllReduce(sum, float)");
}

void NcclCommunicator::AllReduceSum(double* data, std::size_t n) {
  if (n == 0) return;
  RADLADS_NCCL_CHECK(*this, comm_, ncclAllReduce(data, data, n, ncclDouble, ncclSum, comm_, stream_));
  Wait("ncclAllReduce(sum, double)");
}

void NcclCommunicator::AllReduceMax(float* data, std::size_t n) {
  if (n == 0) return;
  RADLADS_NCCL_CHECK(*this, comm_, ncclAllReduce(data, data, n, ncclFloat, ncclMax, comm_, stream_));
  Wait("ncclAllReduce(max, float)");
}

void NcclCommunicator::AllReduceMax(double* data, std::size_t n) {
  if (n == 0) return;
  RADLADS_NCCL_CHECK(*this, comm_, ncclAllReduce(data, data, n, ncclDouble, ncclMax, comm_, stream_));
  Wait("ncclAllReduce(max, double)");
}

void NcclCommunicator::Send(const float* data, std::size_t n, int peer, int tag) {
  RADLADS_CHECK(peer >= 0 && peer < size() && tag >= 0) << "Send to peer " << peer << " tag " << tag << " on " << Where();
  if (n == 0) return;  // both sides skip: nothing to pair
  RADLADS_NCCL_CHECK(*this, comm_, ncclSend(data, n, ncclFloat, peer, comm_, stream_));
  Wait("ncclSend");
}

void NcclCommunicator::Recv(float* data, std::size_t n, int peer, int tag) {
  RADLADS_CHECK(peer >= 0 && peer < size() && tag >= 0) << "Recv from peer " << peer << " tag " << tag << " on " << Where();
  if (n == 0) return;
  RADLADS_NCCL_CHECK(*this, comm_, ncclRecv(data, n, ncclFloat, peer, comm_, stream_));
  Wait("ncclRecv");
}

void NcclCommunicator::Abort(int code) {
  if (comm_ != nullptr) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  mpi_->Abort(code);
}

std::unique_ptr<Communicator> NcclCommunicator::Split(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  const int rc = MPI_Comm_split(mpi_->comm(), color, key, &sub);
  RADLADS_CHECK(rc == MPI_SUCCESS) << "MPI Comm_split failed (code " << rc << ") on " << Where();
  return Create(std::make_unique<MpiCommunicator>(sub, true), device_);
}

int NcclCommunicator::DefaultDevice(const MpiCommunicator& mpi) {
  MPI_Comm node = MPI_COMM_NULL;
  int rc = MPI_Comm_split_type(mpi.comm(), MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node);
  RADLADS_CHECK(rc == MPI_SUCCESS) << "MPI Comm_split_type failed (code " << rc << ")";
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  std::string why;
  const int device = nccl_detail::ChooseDevice(local_rank, local_size, count, &why);
  RADLADS_CHECK(device >= 0) << "rank " << mpi.rank() << " of " << mpi.size() << ": " << why;
  return device;
}

}  // namespace radlads
