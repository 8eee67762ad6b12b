// ParamSet: the named parameters of a model (or of one layer's mixer), in a fixed order, with
// their gradients and AdamW moments.
//
// - Names are the Hugging Face tensor names ("model.layers.3.self_attn.q_proj.weight"), so a
//   ParamSet saves to and loads from the released layouts without a mapping table.
// - Values are F32 CPU tensors (or, added with AddFrozen, read-only BF16/F16 views of a frozen
//   model's file: pipeline/frozen_weights.h). Layers keep shallow Tensor handles to `value` and `grad`, so
//   updating a Param in place updates the layer.
// - Group: 1 for the student's replacement mixer (names containing ".self_attn."; docs/spec.md
//   §2.6: they follow the lr2_* schedule), 0 for everything else.
// - Gradients and moments exist only for trainable parameters (AllocateGrads()).
// Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/tensor.h"

namespace radlads {

struct Param {
  std::string name;
  Tensor value;
  Tensor grad;    // undefined unless trainable
  Tensor adam_m;  // undefined until the first optimizer step
  Tensor adam_v;
  int group = 0;
  bool trainable = false;
};

// 1 for names containing ".self_attn." (the mixer group), else 0.
int ParamGroupFor(std::string_view name);

class ParamSet {
 public:
  ParamSet() = default;
  ParamSet(ParamSet&&) = default;
  ParamSet& operator=(ParamSet&&) = default;
  ParamSet(const ParamSet&) = delete;
  ParamSet& operator=(const ParamSet&) = delete;

  // Adds a parameter (the name must be new) and returns a handle to its value tensor.
  Tensor Add(const std::string& name, Tensor value);
  // The same for a frozen parameter that may also be a read-only BF16/F16 view of a mapped
  // file (pipeline/frozen_weights.h); such a parameter must never be made trainable.
  Tensor AddFrozen(const std::string& name, Tensor value);
  Param* Find(std::string_view name);
  const Param* Find(std::string_view name) const;
  Param& Get(std::string_view name);  // RADLADS_CHECK that it exists
  const Param& Get(std::string_view name) const;

  std::vector<Param*> params();
  std::vector<const Param*> params() const;
  std::size_t size() const { return order_.size(); }
  std::int64_t NumElements() const;

  // Marks parameters trainable when `pred(name)` holds (others frozen) and allocates zeroed
  // gradients for the trainable ones.
  template <typename Pred>
  void SetTrainable(Pred pred) {
    for (auto& [name, idx] : index_) {
      Param& p = store_[idx];
      p.trainable = pred(p.name);
      RADLADS_CHECK(!p.trainable || (p.value.dtype() == DType::kF32 && !p.value.is_const()))
          << "parameter " << p.name << " cannot be trained: " << p.value.DebugString();
      if (p.trainable && !p.grad.defined()) p.grad = Tensor::Zeros(p.value.shape());
    }
  }
  void ZeroGrads();
  // Grad handle for a parameter (undefined Tensor when frozen).
  Tensor Grad(std::string_view name);

 private:
  std::vector<Param> store_;
  std::vector<std::size_t> order_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace radlads
