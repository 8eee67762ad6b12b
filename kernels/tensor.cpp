#include "kernels/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "kernels/cpu/parallel.h"

#if RADLADS_HAVE_CUDA
#include "kernels/cuda/memory.h"
#endif

namespace radlads {

struct Tensor::Storage {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  Device device = Device::kCpu;
  bool owned = false;
  ~Storage() {
    if (!owned || ptr == nullptr) return;
    if (device == Device::kCpu) {
      std::free(ptr);
    } else {
#if RADLADS_HAVE_CUDA
      cuda::DeviceFree(ptr);
#endif
    }
  }
};

std::string ShapeToString(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

std::int64_t ShapeNumel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) {
    RADLADS_CHECK(d >= 0) << "negative dim in shape " << ShapeToString(s);
    n *= d;
  }
  return n;
}

Tensor Tensor::Empty(Shape shape, DType dtype, Device device) {
  RADLADS_CHECK(shape.size() <= 8) << "rank above 8: " << ShapeToString(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = ShapeNumel(t.shape_);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->device = device;
  t.storage_->owned = true;
  std::size_t bytes = t.nbytes();
  t.storage_->bytes = bytes;
  if (device == Device::kCpu) {
    std::size_t rounded = (bytes + 63) / 64 * 64;
    t.storage_->ptr = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    RADLADS_CHECK(t.storage_->ptr != nullptr) << "out of memory allocating " << bytes << " bytes";
  } else {
#if RADLADS_HAVE_CUDA
    t.storage_->ptr = cuda::DeviceAlloc(bytes == 0 ? 256 : bytes);
#else
    RADLADS_CHECK(false) << "CUDA tensor requested but radlads was built without CUDA";
#endif
  }
  return t;
}

Tensor Tensor::Zeros(Shape shape, DType dtype, Device device) {
  Tensor t = Empty(std::move(shape), dtype, device);
  t.SetZero();
  return t;
}

Tensor Tensor::Full(Shape shape, float value) {
  Tensor t = Empty(std::move(shape), DType::kF32, Device::kCpu);
  t.Fill(value);
  return t;
}

Tensor Tensor::Borrow(void* data, Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = ShapeNumel(t.shape_);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->ptr = data;
  t.storage_->bytes = t.nbytes();
  t.storage_->device = device;
  t.storage_->owned = false;
  return t;
}

Tensor Tensor::BorrowConst(const void* data, Shape shape, DType dtype, Device device) {
  Tensor t = Borrow(const_cast<void*>(data), std::move(shape), dtype, device);
  t.read_only_ = true;
  return t;
}

Tensor Tensor::FromVector(const std::vector<float>& values, Shape shape) {
  Tensor t = Empty(std::move(shape));
  RADLADS_CHECK(static_cast<std::int64_t>(values.size()) == t.numel())
      << values.size() << " values for shape " << ShapeToString(t.shape());
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

std::int64_t Tensor::dim(int i) const {
  int r = rank();
  int k = i < 0 ? i + r : i;
  RADLADS_CHECK(k >= 0 && k < r) << "dim " << i << " of rank-" << r << " tensor";
  return shape_[static_cast<std::size_t>(k)];
}

const void* Tensor::base() const {
  RADLADS_CHECK(defined()) << "access to an undefined tensor";
  return static_cast<const char*>(storage_->ptr) + offset_bytes_;
}

void* Tensor::raw() {
  RADLADS_CHECK(!read_only_) << "write access to read-only tensor " << DebugString();
  return const_cast<void*>(base());
}

void Tensor::CheckType(std::size_t size, DType want) const {
  // 16-bit access is shared by BF16, F16, U16 and I16; the caller knows which.
  bool ok = dtype_ == want || (size == 2 && DTypeSize(dtype_) == 2) ||
            (want == DType::kU8 && DTypeSize(dtype_) == 1);
  RADLADS_CHECK(ok) << "element access as " << DTypeName(want) << " to " << DebugString();
}

Tensor Tensor::View(Shape new_shape) const {
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      RADLADS_CHECK(infer < 0) << "two -1 dims in " << ShapeToString(new_shape);
      infer = static_cast<int>(i);
    } else {
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    RADLADS_CHECK(known > 0 && numel_ % known == 0)
        << "cannot view " << DebugString() << " as " << ShapeToString(new_shape);
    new_shape[static_cast<std::size_t>(infer)] = numel_ / known;
  }
  RADLADS_CHECK(ShapeNumel(new_shape) == numel_)
      << "cannot view " << DebugString() << " as " << ShapeToString(new_shape);
  Tensor t = *this;
  t.shape_ = std::move(new_shape);
  return t;
}

Tensor Tensor::Rows(std::int64_t begin, std::int64_t end) const {
  RADLADS_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0])
      << "rows [" << begin << ", " << end << ") of " << DebugString();
  std::int64_t row = shape_[0] > 0 ? numel_ / shape_[0] : 0;
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.offset_bytes_ += static_cast<std::size_t>(begin * row) * DTypeSize(dtype_);
  return t;
}

Tensor Tensor::Clone() const {
  RADLADS_CHECK(device_ == Device::kCpu) << "Clone of a device tensor: use the CUDA copy ops";
  Tensor t = Empty(shape_, dtype_, device_);
  std::memcpy(t.raw(), base(), nbytes());
  return t;
}

Tensor Tensor::ToF32() const {
  RADLADS_CHECK(device_ == Device::kCpu) << "ToF32 of a device tensor";
  Tensor t = Empty(shape_, DType::kF32, Device::kCpu);
  RADLADS_CHECK(ConvertToF32(dtype_, base(), t.f32(), static_cast<std::size_t>(numel_)))
      << "cannot convert " << DebugString() << " to F32";
  return t;
}

Tensor Tensor::ToDType(DType dtype) const {
  RADLADS_CHECK(device_ == Device::kCpu && dtype_ == DType::kF32)
      << "ToDType converts CPU F32 tensors, got " << DebugString();
  if (dtype == DType::kF32) return Clone();
  Tensor t = Empty(shape_, dtype, Device::kCpu);
  const float* src = f32();
  if (dtype == DType::kBF16 || dtype == DType::kF16) {
    auto* dst = static_cast<std::uint16_t*>(t.raw());
    for (std::int64_t i = 0; i < numel_; ++i)
      dst[i] = dtype == DType::kBF16 ? F32ToBf16(src[i]) : F32ToF16(src[i]);
  } else if (dtype == DType::kF64) {
    auto* dst = static_cast<double*>(t.raw());
    for (std::int64_t i = 0; i < numel_; ++i) dst[i] = src[i];
  } else {
    RADLADS_CHECK(false) << "ToDType to " << DTypeName(dtype) << " is not supported";
  }
  return t;
}

void Tensor::Fill(float value) {
  float* p = f32();
  for (std::int64_t i = 0; i < numel_; ++i) p[i] = value;
}

void Tensor::SetZero() {
  RADLADS_CHECK(device_ == Device::kCpu) << "SetZero of a device tensor: use the CUDA ops";
  // Large fills (the gradient buffers of a training step, megabytes each) split over the
  // threads in 64 KiB pieces: one thread's memset leaves the others idle for its duration.
  constexpr std::int64_t kPiece = 64 * 1024, kParallelBytes = 4 * kPiece;
  auto* p = static_cast<unsigned char*>(raw());
  const auto bytes = static_cast<std::int64_t>(nbytes());
  if (bytes < kParallelBytes) {
    std::memset(p, 0, static_cast<std::size_t>(bytes));
    return;
  }
  cpu::ParallelFor((bytes + kPiece - 1) / kPiece, 2, [&](std::int64_t b, std::int64_t e) {
    const std::int64_t lo = b * kPiece, hi = std::min(bytes, e * kPiece);
    std::memset(p + lo, 0, static_cast<std::size_t>(hi - lo));
  });
}

std::string Tensor::DebugString() const {
  if (!defined()) return "Tensor(undefined)";
  return "Tensor(" + std::string(DTypeName(dtype_)) + ", " + ShapeToString(shape_) + ", " +
         (device_ == Device::kCpu ? "cpu" : "cuda") + (read_only_ ? ", read-only" : "") + ")";
}

}  // namespace radlads
