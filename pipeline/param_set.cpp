#include "pipeline/param_set.h"

namespace radlads {

int ParamGroupFor(std::string_view name) {
  return name.find(".self_attn.") != std::string_view::npos ? 1 : 0;
}

Tensor ParamSet::Add(const std::string& name, Tensor value) {
  RADLADS_CHECK(value.dtype() == DType::kF32 && value.device() == Device::kCpu)
      << "parameter " << name << " must be an F32 CPU tensor, got " << value.DebugString();
  return AddFrozen(name, std::move(value));
}

Tensor ParamSet::AddFrozen(const std::string& name, Tensor value) {
  RADLADS_CHECK(!index_.count(name)) << "parameter " << name << " added twice";
  RADLADS_CHECK(value.device() == Device::kCpu &&
                (value.dtype() == DType::kF32 ||
                 (value.is_const() && (value.dtype() == DType::kBF16 || value.dtype() == DType::kF16))))
      << "frozen parameter " << name << " must be an F32 CPU tensor or a read-only BF16/F16 view, got "
      << value.DebugString();
  Param p;
  p.name = name;
  p.value = value;
  p.group = ParamGroupFor(name);
  index_[name] = store_.size();
  order_.push_back(store_.size());
  store_.push_back(std::move(p));
  return value;
}

Param* ParamSet::Find(std::string_view name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &store_[it->second];
}

const Param* ParamSet::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &store_[it->second];
}

Param& ParamSet::Get(std::string_view name) {
  Param* p = Find(name);
  RADLADS_CHECK(p != nullptr) << "no parameter named " << name;
  return *p;
}

const Param& ParamSet::Get(std::string_view name) const {
  const Param* p = Find(name);
  RADLADS_CHECK(p != nullptr) << "no parameter named " << name;
  return *p;
}

std::vector<Param*> ParamSet::params() {
  std::vector<Param*> out;
  out.reserve(order_.size());
  for (std::size_t i : order_) out.push_back(&store_[i]);
  return out;
}

std::vector<const Param*> ParamSet::params() const {
  std::vector<const Param*> out;
  out.reserve(order_.size());
  for (std::size_t i : order_) out.push_back(&store_[i]);
  return out;
}

std::int64_t ParamSet::NumElements() const {
  std::int64_t n = 0;
  for (const Param& p : store_) n += p.value.numel();
  return n;
}

void ParamSet::ZeroGrads() {
  for (Param& p : store_)
    if (p.grad.defined()) p.grad.SetZero();
}

Tensor ParamSet::Grad(std::string_view name) {
  Param* p = Find(name);
  return p != nullptr && p->trainable ? p->grad : Tensor();
}

}  // namespace radlads
