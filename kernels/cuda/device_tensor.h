// The CUDA backend's small runtime: the process-wide caching device allocator
// (kernels/cuda/caching_allocator.h over cudaMalloc / cudaFree on the current device), a
// move-only DeviceTensor owning one allocator block, and RAII wrappers for streams, events and
// pinned host staging buffers.
//
// DeviceTensor: a contiguous row-major array on the device with a shape and a dtype (fp32,
// bf16, int32, or raw bytes for workspaces). Its block comes from the caching allocator's pool
// of the stream given at construction and goes back to that pool when the tensor is destroyed
// or reset: work queued on that stream afterwards is ordered after every earlier use, so
// tensors used on one stream need no synchronisation. A tensor written or read on another
// stream must be fenced with events by the caller (CudaEvent). Contents are uninitialised
// unless made with Zeros. Upload/Download are asynchronous on the given stream; the host
// memory must stay valid (and, for overlap, be pinned) until the stream reaches the copy.
// Errors (CUDA failures) abort through RADLADS_CUDA_CHECK; running out of device memory throws
// std::runtime_error from the allocator.
// Thread-safety: the allocator is thread-safe; a DeviceTensor is not.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/caching_allocator.h"

namespace radlads::cuda {

enum class DeviceDType : int { kF32, kBF16, kI32, kU8 };
std::size_t DeviceDTypeSize(DeviceDType t);

// The process-wide allocator (created on first use, for the device current then).
CachingAllocatorCore& DeviceAllocator();

class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(std::vector<std::int64_t> shape, DeviceDType dtype, cudaStream_t stream);
  static DeviceTensor Zeros(std::vector<std::int64_t> shape, DeviceDType dtype, cudaStream_t stream);
  static DeviceTensor Bytes(std::size_t bytes, cudaStream_t stream);  // kU8 workspace
  ~DeviceTensor() { Reset(); }
  DeviceTensor(DeviceTensor&& o) noexcept { *this = std::move(o); }
  DeviceTensor& operator=(DeviceTensor&& o) noexcept;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  void Reset();  // returns the block to the allocator
  bool defined() const { return defined_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim(int i) const { return shape_[static_cast<std::size_t>(i)]; }
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * DeviceDTypeSize(dtype_); }
  DeviceDType dtype() const { return dtype_; }
  cudaStream_t stream() const { return stream_; }
  std::string DebugString() const;

  void* raw() const { return ptr_; }
  float* f32() const;
  __nv_bfloat16* bf16() const;
  std::int32_t* i32() const;

  void ZeroAsync(cudaStream_t stream) const;
  // Host <-> device copies of the whole tensor (bytes must equal nbytes()).
  void UploadAsync(const void* host, std::size_t bytes, cudaStream_t stream) const;
  void DownloadAsync(void* host, std::size_t bytes, cudaStream_t stream) const;

 private:
  std::vector<std::int64_t> shape_;
  std::int64_t numel_ = 0;
  DeviceDType dtype_ = DeviceDType::kF32;
  cudaStream_t stream_ = nullptr;
  void* ptr_ = nullptr;
  bool defined_ = false;
};

// A non-blocking stream on the current device.
class CudaStream {
 public:
  CudaStream();
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return s_; }
  void Synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

// An event without timing: Record on one stream, make another Wait for it.
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void Record(cudaStream_t s) const;
  void WaitOn(cudaStream_t s) const;  // `s` waits until the recorded work is done
  void Synchronize() const;            // the host waits

 private:
  cudaEvent_t e_ = nullptr;
};

// Page-locked host memory for asynchronous copies, grown on demand (contents not kept).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* Reserve(std::size_t bytes);
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  std::size_t cap_ = 0;
};

}  // namespace radlads::cuda
