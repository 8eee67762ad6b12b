// Tensor: a dense, contiguous, row-major n-d array on one device.
//
// - Shape is a list of int64 dims (rank 0..8); the last dim is contiguous. No strides: views
//   are reshapes and leading-dim row ranges of the same buffer, which is all the engine needs.
// - Storage is reference counted and shared between a tensor and its views. "Owned" storage is
//   allocated by the tensor (64-byte aligned on the CPU, zero-initialised by Zeros only);
//   "borrowed" storage wraps memory the caller keeps alive (an mmapped safetensors file, a
//   caller's buffer) and is never freed by the tensor. Borrowed memory may be read-only: writing
//   through a tensor borrowed with BorrowConst is a programming error.
// - dtype: F32 is the compute type; BF16/F16/I32 are storage types (weights, token ids).
// - Copying a Tensor copies the handle (shallow). Clone() copies the data.
// Thread-safety: distinct tensors may be used from different threads; concurrent writes to
// one buffer are the caller's business (the CPU ops partition their outputs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/dtype.h"

namespace radlads {

enum class Device : std::uint8_t { kCpu, kCuda };

using Shape = std::vector<std::int64_t>;

std::string ShapeToString(const Shape& s);  // "[2, 3, 4]"
std::int64_t ShapeNumel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false

  static Tensor Empty(Shape shape, DType dtype = DType::kF32, Device device = Device::kCpu);
  static Tensor Zeros(Shape shape, DType dtype = DType::kF32, Device device = Device::kCpu);
  static Tensor Full(Shape shape, float value);  // F32 on the CPU
  // Wraps caller memory (CPU or device pointer); the caller keeps it alive and writable.
  static Tensor Borrow(void* data, Shape shape, DType dtype, Device device = Device::kCpu);
  // Wraps read-only caller memory (e.g. an mmapped file).
  static Tensor BorrowConst(const void* data, Shape shape, DType dtype,
                            Device device = Device::kCpu);
  // F32 CPU tensor holding a copy of `values`; numel must match.
  static Tensor FromVector(const std::vector<float>& values, Shape shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // dim(i) accepts negative indices (-1 = last).
  std::int64_t dim(int i) const;
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * DTypeSize(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_const() const { return read_only_; }

  void* raw();
  const void* raw() const { return base(); }

  template <typename T>
  T* data() {
    CheckType(sizeof(T), DTypeFor<T>());
    return static_cast<T*>(raw());
  }
  template <typename T>
  const T* data() const {
    CheckType(sizeof(T), DTypeFor<T>());
    return static_cast<const T*>(raw());
  }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }

  // Same storage, new shape with the same numel. One dim may be -1 (inferred).
  Tensor View(Shape new_shape) const;
  // Rows [begin, end) of dim 0, sharing storage.
  Tensor Rows(std::int64_t begin, std::int64_t end) const;
  // Deep copy (owned, same device and dtype).
  Tensor Clone() const;
  // Deep copy converted to F32 (CPU). Works from F32, BF16, F16, I32 and the other readable types.
  Tensor ToF32() const;
  // Deep copy converted to `dtype` from F32 (round to nearest even for BF16/F16).
  Tensor ToDType(DType dtype) const;

  void Fill(float value);  // F32 only
  void SetZero();          // any dtype

  std::string DebugString() const;  // "Tensor(F32, [2, 3], cpu)"

 private:
  struct Storage;
  template <typename T>
  static constexpr DType DTypeFor();
  void CheckType(std::size_t size, DType want) const;
  const void* base() const;

  std::shared_ptr<Storage> storage_;
  std::size_t offset_bytes_ = 0;
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
  bool read_only_ = false;
};

template <typename T>
constexpr DType Tensor::DTypeFor() {
  if constexpr (std::is_same_v<T, float>) return DType::kF32;
  else if constexpr (std::is_same_v<T, double>) return DType::kF64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::kI32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::kI64;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return DType::kU32;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::kU8;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return DType::kBF16;  // or F16/U16
  else static_assert(sizeof(T) == 0, "unsupported element type");
}

}  // namespace radlads
