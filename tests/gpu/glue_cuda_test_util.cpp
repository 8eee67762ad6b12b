#include "tests/gpu/glue_cuda_test_util.h"

#include <cstring>
#include <random>

#include "base/dtype.h"
#include "kernels/cuda/check.cuh"

namespace radlads::gluetest {

Vec Random(std::int64_t n, Rng& rng, float scale, float mean) {
  std::normal_distribution<float> nd(mean, scale);
  Vec v(static_cast<std::size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

Vec Uniform(std::int64_t n, Rng& rng, float lo, float hi) {
  std::uniform_real_distribution<float> ud(lo, hi);
  Vec v(static_cast<std::size_t>(n));
  for (float& x : v) x = ud(rng);
  return v;
}

Vec RoundBf16(const Vec& v) {
  Vec out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = Bf16ToF32(F32ToBf16(v[i]));
  return out;
}

template <typename T>
Dev<T>::Dev(std::int64_t n) : n_(n) {
  if (n > 0) RADLADS_CUDA_CHECK(cudaMalloc(&p_, static_cast<std::size_t>(n) * sizeof(T)));
}

template <typename T>
Dev<T>::Dev(const Vec& host) : Dev(static_cast<std::int64_t>(host.size())) {
  Set(host);
}

template <typename T>
Dev<T>::~Dev() {
  if (p_ != nullptr) cudaFree(p_);
}

template <typename T>
void Dev<T>::Set(const Vec& host) {
  RADLADS_CUDA_CHECK(cudaDeviceSynchronize());
  if (static_cast<std::int64_t>(host.size()) != n_) std::abort();
  if (n_ == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    RADLADS_CUDA_CHECK(cudaMemcpy(p_, host.data(), host.size() * sizeof(float),
                                  cudaMemcpyHostToDevice));
  } else {
    std::vector<std::uint16_t> bits(host.size());
    for (std::size_t i = 0; i < host.size(); ++i) bits[i] = F32ToBf16(host[i]);
    RADLADS_CUDA_CHECK(cudaMemcpy(p_, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice));
  }
}

template <typename T>
Vec Dev<T>::Get() const {
  RADLADS_CUDA_CHECK(cudaDeviceSynchronize());
  Vec out(static_cast<std::size_t>(n_));
  if (n_ == 0) return out;
  if constexpr (std::is_same_v<T, float>) {
    RADLADS_CUDA_CHECK(
        cudaMemcpy(out.data(), p_, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
  } else {
    std::vector<std::uint16_t> bits(out.size());
    RADLADS_CUDA_CHECK(cudaMemcpy(bits.data(), p_, bits.size() * 2, cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = Bf16ToF32(bits[i]);
  }
  return out;
}

template class Dev<float>;
template class Dev<bf16>;

DevBytes::DevBytes(std::size_t bytes) {
  RADLADS_CUDA_CHECK(cudaMalloc(&p_, bytes > 0 ? bytes : 1));
}
DevBytes::~DevBytes() { cudaFree(p_); }
void DevBytes::Upload(const void* src, std::size_t bytes) {
  RADLADS_CUDA_CHECK(cudaMemcpy(p_, src, bytes, cudaMemcpyHostToDevice));
}
void DevBytes::Download(void* dst, std::size_t bytes) const {
  RADLADS_CUDA_CHECK(cudaDeviceSynchronize());
  RADLADS_CUDA_CHECK(cudaMemcpy(dst, p_, bytes, cudaMemcpyDeviceToHost));
}

Tensor Cpu(const Vec& v, Shape shape) { return Tensor::FromVector(v, std::move(shape)); }

Vec Host(const Tensor& t) { return Vec(t.f32(), t.f32() + t.numel()); }

std::vector<double> D(const Vec& v) { return std::vector<double>(v.begin(), v.end()); }

void Sync() { RADLADS_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace radlads::gluetest
