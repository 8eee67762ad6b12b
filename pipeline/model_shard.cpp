#include "pipeline/model_shard.h"

#include <cstdlib>
#include <cstring>

#include "base/check.h"

namespace radlads {
namespace {

Status Divides(std::int64_t value, int tp, const char* field) {
  if (tp < 1 || value % tp != 0) {
    return Status::InvalidArgument(std::string("tensor parallelism: tp ") + std::to_string(tp) + " does not divide " +
                                   field + " " + std::to_string(value));
  }
  return Status::Ok();
}

// Rows of `outer` blocks, each of `inner` contiguous floats, for a split of dimension `dim`.
struct Blocks {
  std::int64_t outer = 1;  // product of the dims before `dim`
  std::int64_t inner = 1;  // product of the dims after `dim`
};
Blocks BlocksOf(const Shape& s, int dim) {
  Blocks b;
  for (int d = 0; d < dim; ++d) b.outer *= s[static_cast<std::size_t>(d)];
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; d < s.size(); ++d) b.inner *= s[d];
  return b;
}

}  // namespace

Result<Qwen2Config> TpSliceConfig(const Qwen2Config& full, int tp) {
  RADLADS_RETURN_IF_ERROR(Divides(full.num_attention_heads, tp, "num_attention_heads"));
  RADLADS_RETURN_IF_ERROR(Divides(full.num_key_value_heads, tp, "num_key_value_heads"));
  RADLADS_RETURN_IF_ERROR(Divides(full.intermediate_size, tp, "intermediate_size"));
  RADLADS_RETURN_IF_ERROR(Divides(full.vocab_size, tp, "vocab_size"));
  Qwen2Config c = full;
  c.num_attention_heads /= tp;
  c.num_key_value_heads /= tp;
  c.intermediate_size /= tp;
  c.vocab_size /= tp;
  return c;
}

Result<StudentConfig> TpSliceStudent(const StudentConfig& full, int tp) {
  if (tp > 1 && full.attention_output_bias) {
    return Status::InvalidArgument("tensor parallelism: attention_output_bias (an o_proj bias after the "
                                   "row-parallel o_proj) is not supported with tp " +
                                   std::to_string(tp));
  }
  StudentConfig s = full;
  RADLADS_ASSIGN_OR_RETURN(s.base, TpSliceConfig(full.base, tp));
  return s;
}

int LayerOfParam(const std::string& name) {
  static constexpr char kPrefix[] = "model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  return std::atoi(name.c_str() + sizeof(kPrefix) - 1);
}

bool StageHolds(const ModelShard& s, const std::string& name) {
  const int l = LayerOfParam(name);
  if (l >= 0) return s.first_layer <= l && l < s.last_layer;
  if (name == "model.embed_tokens.weight") return s.first_stage();
  return s.last_stage();  // model.norm.weight, lm_head.weight
}

std::vector<ParamSpec> StageSpecs(const std::vector<ParamSpec>& all, const ModelShard& s) {
  std::vector<ParamSpec> out;
  for (const ParamSpec& p : all) {
    if (StageHolds(s, p.name)) out.push_back(p);
  }
  return out;
}

Result<int> TpSplitDim(const Shape& full, const Shape& local, int tp) {
  if (full.size() != local.size()) {
    return Status::InvalidArgument("shard shape " + ShapeToString(local) + " is not a slice of " + ShapeToString(full));
  }
  int dim = -1;
  for (std::size_t d = 0; d < full.size(); ++d) {
    if (full[d] == local[d]) continue;
    if (dim >= 0 || local[d] * tp != full[d]) {
      return Status::InvalidArgument("shard shape " + ShapeToString(local) + " is not a 1/" + std::to_string(tp) +
                                     " slice of " + ShapeToString(full) + " along one dimension");
    }
    dim = static_cast<int>(d);
  }
  return dim;
}

Tensor TpSlice(const Tensor& full, const Shape& local, int tp, int tp_rank) {
  Result<int> dim = TpSplitDim(full.shape(), local, tp);
  RADLADS_CHECK(dim.ok()) << dim.status().message();
  if (*dim < 0) return full;
  const Blocks b = BlocksOf(full.shape(), *dim);
  const std::int64_t n_full = full.dim(*dim), n_local = local[static_cast<std::size_t>(*dim)];
  Tensor out = Tensor::Empty(local, full.dtype());
  const std::size_t esize = DTypeSize(full.dtype());
  const std::size_t row = static_cast<std::size_t>(n_local * b.inner) * esize;
  const auto* src = static_cast<const std::byte*>(full.raw());
  auto* dst = static_cast<std::byte*>(out.raw());
  for (std::int64_t o = 0; o < b.outer; ++o) {
    std::memcpy(dst + static_cast<std::size_t>(o * n_local * b.inner) * esize,
                src + static_cast<std::size_t>((o * n_full + tp_rank * n_local) * b.inner) * esize, row);
  }
  return out;
}

void TpSliceInto(const Tensor& full, const Shape& local, int tp, int tp_rank, Tensor& dst) {
  Tensor s = TpSlice(full, local, tp, tp_rank);
  if (!dst.defined()) dst = Tensor::Empty(local);
  RADLADS_CHECK(dst.shape() == local) << "TpSliceInto: destination " << dst.DebugString();
  std::memcpy(dst.raw(), s.raw(), static_cast<std::size_t>(s.nbytes()));
}

void TpJoin(const std::vector<Tensor>& pieces, int dim, Tensor& full) {
  RADLADS_CHECK(!pieces.empty() && dim >= 0 && dim < full.rank()) << "TpJoin: dim " << dim;
  const Blocks b = BlocksOf(full.shape(), dim);
  const std::int64_t n_full = full.dim(dim), n_local = pieces[0].dim(dim);
  RADLADS_CHECK(n_local * static_cast<std::int64_t>(pieces.size()) == n_full)
      << "TpJoin: " << pieces.size() << " pieces of " << n_local << " for " << n_full;
  const std::size_t row = static_cast<std::size_t>(n_local * b.inner) * sizeof(float);
  for (std::size_t r = 0; r < pieces.size(); ++r) {
    RADLADS_CHECK(pieces[r].numel() * static_cast<std::int64_t>(pieces.size()) == full.numel())
        << "TpJoin: piece " << r << " " << pieces[r].DebugString();
    for (std::int64_t o = 0; o < b.outer; ++o) {
      std::memcpy(full.f32() + (o * n_full + static_cast<std::int64_t>(r) * n_local) * b.inner,
                  pieces[r].f32() + o * n_local * b.inner, row);
    }
  }
}

Status SliceParams(const ParamSet& full, ParamSet& local, int tp, int tp_rank) {
  for (Param* p : local.params()) {
    const Param* f = full.Find(p->name);
    if (f == nullptr) return Status::NotFound("model shard: the whole model has no parameter '" + p->name + "'");
    RADLADS_ASSIGN_OR_RETURN(int dim, TpSplitDim(f->value.shape(), p->value.shape(), tp));
    (void)dim;
    const Shape& local = p->value.shape();
    if (f->value.dtype() != DType::kF32 || f->value.is_const()) {
      // A frozen view of a mapped file (pipeline/frozen_weights.h): the slice keeps its dtype
      // (and is the view itself when nothing is split), converted per use like the whole's.
      RADLADS_CHECK(!p->trainable) << p->name << ": a trainable parameter cannot take a frozen view";
      p->value = TpSlice(f->value, local, tp, tp_rank);
      p->adam_m = p->adam_v = Tensor();
      continue;
    }
    TpSliceInto(f->value, local, tp, tp_rank, p->value);
    if (f->adam_m.defined()) {
      TpSliceInto(f->adam_m, local, tp, tp_rank, p->adam_m);
      TpSliceInto(f->adam_v, local, tp, tp_rank, p->adam_v);
    } else {
      p->adam_m = p->adam_v = Tensor();
    }
  }
  return Status::Ok();
}

bool TpPartialGradient(const std::string& name, const Shape& full, const Shape& local) {
  return full == local && name.find(".self_attn.") != std::string::npos;
}

std::map<std::string, Shape, std::less<>> ShapesByName(const std::vector<ParamSpec>& specs) {
  std::map<std::string, Shape, std::less<>> m;
  for (const ParamSpec& s : specs) m[s.name] = s.shape;
  return m;
}

}  // namespace radlads
