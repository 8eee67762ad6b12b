// Frozen weights that stay in their file: a teacher's parameters as views of its memory-mapped
// safetensors files, and the fp32 scratch they are converted into one layer at a time.
//
// Why: a Qwen2.5-7B teacher is ~15 GB in bf16 but ~30 GB in fp32; step 2 also holds the
// student, its gradients and two Adam moments in fp32. The teacher is frozen and only runs
// forward, so it never needs to exist in fp32 as a whole (docs/design.md §7.2):
// - F32 tensors (4-byte aligned in the file, which the safetensors writers guarantee) are
//   zero-copy read-only views of the map: their pages are the file's (page cache, evictable),
//   never anonymous memory.
// - BF16 / F16 tensors stay mapped in their own dtype. A DecoderModel converts a layer's
//   matrices into a FrozenWeightScratch right before the layer runs (pipeline/decoder.h), the
//   scratch being reused by the next layer; vectors (norms, biases) and the LM head are
//   converted once when the model is built. bf16 -> fp32 is exact, so the forward is bit for
//   bit that of a fully converted teacher.
// - Anything else (F64, an unaligned F32 tensor) is converted to an owned fp32 copy.
//
// Contract:
// - BindFrozenParams checks the weights against `specs` first (CheckModelTensors: errors name
//   the file, the tensor and what was expected), then adds one frozen parameter per spec to
//   `params` (names must be new there), in spec order, whose value is its view or copy. Nothing
//   is allocated for a viewed tensor (declaring zero-filled parameters first would hold the
//   whole model in fp32 for a moment).
//   The views borrow the ModelWeights' maps: keep it alive, and unmoved-from, as long as any
//   parameter (or a DecoderModel over them) is used.
// - FrozenWeightScratch::AsF32(slot, w) returns `w` itself when it is F32, else the slot's
//   tensor filled with w converted; the result is valid until the next AsF32 on that slot (for
//   an F32 `w`, as long as `w`).
//   Slots keep their memory between calls (the next layer reuses it); Release() frees all.
// Thread-safety: none. A scratch belongs to one model; BindFrozenParams to its caller.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "kernels/tensor.h"
#include "pipeline/param_set.h"
#include "storage/model_weights.h"

namespace radlads {

struct ParamSpec;  // pipeline/model_io.h (which includes this header through pipeline/decoder.h)

// What BindFrozenParams did, in bytes of tensor data.
struct FrozenBindStats {
  std::uint64_t mapped_f32_bytes = 0;    // zero-copy fp32 views
  std::uint64_t mapped_other_bytes = 0;  // bf16/f16 views, converted per use
  std::uint64_t copied_bytes = 0;        // owned fp32 copies (F64, unaligned F32)
};

Result<FrozenBindStats> BindFrozenParams(const ModelWeights& weights, const std::vector<ParamSpec>& specs,
                                         bool tied_embeddings, ParamSet& params);

// A converted fp32 copy of `w` when it is not F32 (owned, resident), else `w` itself.
Tensor ResidentF32(const Tensor& w);

class FrozenWeightScratch {
 public:
  const Tensor& AsF32(int slot, const Tensor& w);
  void Release() { slots_.clear(); }
  // Bytes the slots hold now.
  std::uint64_t bytes() const;

 private:
  std::vector<Tensor> slots_;
};

}  // namespace radlads
