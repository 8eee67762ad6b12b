#include "kernels/cuda/device_tensor.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "kernels/cuda/check.cuh"

namespace radlads::cuda {
namespace {

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "DeviceTensor: %s\n", msg.c_str());
  std::abort();
}

}  // namespace

std::size_t DeviceDTypeSize(DeviceDType t) {
  switch (t) {
    case DeviceDType::kF32: return 4;
    case DeviceDType::kBF16: return 2;
    case DeviceDType::kI32: return 4;
    case DeviceDType::kU8: return 1;
  }
  return 1;
}

CachingAllocatorCore& DeviceAllocator() {
  // Never destroyed: tensors in static storage may outlive it otherwise, and the driver frees
  // everything at exit.
  static CachingAllocatorCore* a = new CachingAllocatorCore(RawAllocBackend{
      [](std::size_t n) -> void* {
        void* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, n);
        if (e == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();  // clear the sticky-free error state
          return nullptr;
        }
        RADLADS_CUDA_CHECK(e);
        return p;
      },
      [](void* p) { RADLADS_CUDA_CHECK(cudaFree(p)); }});
  return *a;
}

DeviceTensor::DeviceTensor(std::vector<std::int64_t> shape, DeviceDType dtype, cudaStream_t stream)
    : shape_(std::move(shape)), dtype_(dtype), stream_(stream) {
  numel_ = 1;
  for (std::int64_t d : shape_) {
    if (d < 0) Fail("negative dimension");
    numel_ *= d;
  }
  ptr_ = DeviceAllocator().Allocate(nbytes(), reinterpret_cast<std::uintptr_t>(stream));
  defined_ = true;
}

DeviceTensor DeviceTensor::Zeros(std::vector<std::int64_t> shape, DeviceDType dtype, cudaStream_t stream) {
  DeviceTensor t(std::move(shape), dtype, stream);
  t.ZeroAsync(stream);
  return t;
}

DeviceTensor DeviceTensor::Bytes(std::size_t bytes, cudaStream_t stream) {
  return DeviceTensor({static_cast<std::int64_t>(bytes)}, DeviceDType::kU8, stream);
}

DeviceTensor& DeviceTensor::operator=(DeviceTensor&& o) noexcept {
  if (this != &o) {
    Reset();
    shape_ = std::move(o.shape_);
    numel_ = o.numel_;
    dtype_ = o.dtype_;
    stream_ = o.stream_;
    ptr_ = o.ptr_;
    defined_ = o.defined_;
    o.ptr_ = nullptr;
    o.defined_ = false;
    o.numel_ = 0;
    o.shape_.clear();
  }
  return *this;
}

void DeviceTensor::Reset() {
  if (ptr_ != nullptr) DeviceAllocator().Free(ptr_);
  ptr_ = nullptr;
  defined_ = false;
  numel_ = 0;
  shape_.clear();
}

std::string DeviceTensor::DebugString() const {
  std::ostringstream os;
  static const char* names[] = {"f32", "bf16", "i32", "u8"};
  os << "DeviceTensor(" << names[static_cast<int>(dtype_)] << " [";
  for (std::size_t i = 0; i < shape_.size(); ++i) os << (i ? ", " : "") << shape_[i];
  os << "]" << (defined_ ? "" : " undefined") << ")";
  return os.str();
}

float* DeviceTensor::f32() const {
  if (dtype_ != DeviceDType::kF32) Fail("f32() of " + DebugString());
  return static_cast<float*>(ptr_);
}
__nv_bfloat16* DeviceTensor::bf16() const {
  if (dtype_ != DeviceDType::kBF16) Fail("bf16() of " + DebugString());
  return static_cast<__nv_bfloat16*>(ptr_);
}
std::int32_t* DeviceTensor::i32() const {
  if (dtype_ != DeviceDType::kI32) Fail("i32() of " + DebugString());
  return static_cast<std::int32_t*>(ptr_);
}

void DeviceTensor::ZeroAsync(cudaStream_t stream) const {
  if (nbytes() > 0) RADLADS_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, nbytes(), stream));
}

void DeviceTensor::UploadAsync(const void* host, std::size_t bytes, cudaStream_t stream) const {
  if (bytes != nbytes()) Fail("upload of " + std::to_string(bytes) + " bytes into " + DebugString());
  if (bytes > 0) RADLADS_CUDA_CHECK(cudaMemcpyAsync(ptr_, host, bytes, cudaMemcpyHostToDevice, stream));
}

void DeviceTensor::DownloadAsync(void* host, std::size_t bytes, cudaStream_t stream) const {
  if (bytes != nbytes()) Fail("download of " + std::to_string(bytes) + " bytes from " + DebugString());
  if (bytes > 0) RADLADS_CUDA_CHECK(cudaMemcpyAsync(host, ptr_, bytes, cudaMemcpyDeviceToHost, stream));
}

CudaStream::CudaStream() { RADLADS_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
CudaStream::~CudaStream() {
  if (s_ != nullptr) {
    (void)cudaStreamSynchronize(s_);
    (void)cudaStreamDestroy(s_);
  }
}
void CudaStream::Synchronize() const { RADLADS_CUDA_CHECK(cudaStreamSynchronize(s_)); }

CudaEvent::CudaEvent() { RADLADS_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
CudaEvent::~CudaEvent() {
  if (e_ != nullptr) (void)cudaEventDestroy(e_);
}
void CudaEvent::Record(cudaStream_t s) const { RADLADS_CUDA_CHECK(cudaEventRecord(e_, s)); }
void CudaEvent::WaitOn(cudaStream_t s) const { RADLADS_CUDA_CHECK(cudaStreamWaitEvent(s, e_, 0)); }
void CudaEvent::Synchronize() const { RADLADS_CUDA_CHECK(cudaEventSynchronize(e_)); }

PinnedBuffer::~PinnedBuffer() {
  if (p_ != nullptr) (void)cudaFreeHost(p_);
}
void* PinnedBuffer::Reserve(std::size_t bytes) {
  if (bytes <= cap_) return p_;
  if (p_ != nullptr) RADLADS_CUDA_CHECK(cudaFreeHost(p_));
  p_ = nullptr;
  cap_ = 0;
  RADLADS_CUDA_CHECK(cudaMallocHost(&p_, bytes));
  cap_ = bytes;
  return p_;
}

}  // namespace radlads::cuda
