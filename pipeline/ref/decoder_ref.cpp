#include "pipeline/ref/decoder_ref.h"

#include <cmath>
#include <functional>

#include "base/check.h"
#include "kernels/ref/attention_ref.h"
#include "kernels/ref/basic_ref.h"
#include "kernels/ref/loss_ref.h"
#include "pipeline/ref/rwkv6_mixer_ref.h"
#include "pipeline/ref/rwkv7_mixer_ref.h"

namespace radlads::ref {
namespace {

using Vec = std::vector<double>;

std::size_t Sz(std::int64_t v) { return static_cast<std::size_t>(v); }

const Vec& Need(const DecoderRefParams& p, const std::string& name, std::int64_t numel) {
  auto it = p.find(name);
  RADLADS_CHECK(it != p.end()) << "decoder reference: missing parameter " << name;
  RADLADS_CHECK(it->second.size() == Sz(numel))
      << "decoder reference: " << name << " has " << it->second.size() << " values, expected "
      << numel;
  return it->second;
}

std::string LayerName(int layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

// The parameters under "model.layers.{layer}.self_attn." keyed by their suffix, the form the
// mixer references take.
std::map<std::string, Vec> MixerParams(const DecoderRefParams& p, int layer) {
  const std::string prefix = LayerName(layer, "self_attn.");
  std::map<std::string, Vec> out;
  for (auto it = p.lower_bound(prefix); it != p.end() && it->first.starts_with(prefix); ++it)
    out.emplace(it->first.substr(prefix.size()), it->second);
  return out;
}

// The token mixer of one layer: n1 [B*T, C] -> m [B*T, C].
using MixerFn = std::function<Vec(int layer, const Vec& n1)>;

// Teacher attention (pipeline/attention_mixer.h).
Vec AttentionMixerRef(const Qwen2Config& cfg, const DecoderRefParams& params, int layer,
                      const Vec& x, std::int64_t B, std::int64_t T, std::int64_t pos0) {
  const std::int64_t C = cfg.hidden_size, H = cfg.num_attention_heads,
                     Hkv = cfg.num_key_value_heads, D = cfg.head_dim, n = B * T;
  const std::int64_t qd = H * D, kvd = Hkv * D;
  auto w = [&](const char* suffix, std::int64_t numel) -> const double* {
    return Need(params, LayerName(layer, "self_attn.") + suffix, numel).data();
  };
  Vec q(Sz(n * qd)), k(Sz(n * kvd)), v(Sz(n * kvd));
  LinearForwardRef(x.data(), w("q_proj.weight", qd * C), w("q_proj.bias", qd), n, C, qd, q.data());
  LinearForwardRef(x.data(), w("k_proj.weight", kvd * C), w("k_proj.bias", kvd), n, C, kvd,
                   k.data());
  LinearForwardRef(x.data(), w("v_proj.weight", kvd * C), w("v_proj.bias", kvd), n, C, kvd,
                   v.data());
  RopeInPlaceRef(q.data(), B, T, H, D, pos0, cfg.rope_theta);
  RopeInPlaceRef(k.data(), B, T, Hkv, D, pos0, cfg.rope_theta);
  Vec o(Sz(n * qd));
  AttentionForwardRef(AttentionRefShape{B, T, H, Hkv, D}, q.data(), k.data(), v.data(),
                      1.0 / std::sqrt(static_cast<double>(D)), o.data(), nullptr);
  Vec y(Sz(n * C));
  LinearForwardRef(o.data(), w("o_proj.weight", C * qd), nullptr, n, qd, C, y.data());
  return y;
}

// The decoder stack around `mixer` (pipeline/decoder.h).
DecoderRefOutput DecoderRef(const Qwen2Config& cfg, const DecoderRefParams& params,
                            std::span<const std::int32_t> ids, std::int64_t B, std::int64_t T,
                            const MixerFn& mixer) {
  const std::int64_t C = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size,
                     n = B * T;
  const double eps = cfg.rms_norm_eps;
  RADLADS_CHECK(ids.size() == Sz(n)) << "decoder reference: " << ids.size() << " ids for B*T = "
                                     << n;
  for (std::int32_t id : ids)
    RADLADS_CHECK(id >= 0 && id < V) << "decoder reference: token id " << id << " outside [0, "
                                     << V << ")";
  const Vec& embed = Need(params, "model.embed_tokens.weight", V * C);
  Vec x(Sz(n * C));
  EmbeddingForwardRef(ids.data(), n, embed.data(), C, x.data());

  Vec n1(Sz(n * C)), h(Sz(n * C)), n2(Sz(n * C)), g(Sz(n * F)), u(Sz(n * F)), a(Sz(n * F)),
      f(Sz(n * C));
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto w = [&](const char* suffix, std::int64_t numel) -> const double* {
      return Need(params, LayerName(l, suffix), numel).data();
    };
    RmsNormForwardRef(x.data(), w("input_layernorm.weight", C), n, C, eps, n1.data(), nullptr);
    const Vec m = mixer(l, n1);
    RADLADS_CHECK(m.size() == Sz(n * C)) << "decoder reference: layer " << l << " mixer output";
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = x[i] + m[i];
    RmsNormForwardRef(h.data(), w("post_attention_layernorm.weight", C), n, C, eps, n2.data(),
                      nullptr);
    LinearForwardRef(n2.data(), w("mlp.gate_proj.weight", F * C), nullptr, n, C, F, g.data());
    LinearForwardRef(n2.data(), w("mlp.up_proj.weight", F * C), nullptr, n, C, F, u.data());
    SwiGluForwardRef(g.data(), u.data(), n * F, a.data());
    LinearForwardRef(a.data(), w("mlp.down_proj.weight", C * F), nullptr, n, F, C, f.data());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = h[i] + f[i];
  }

  DecoderRefOutput out;
  out.hidden.resize(Sz(n * C));
  RmsNormForwardRef(x.data(), Need(params, "model.norm.weight", C).data(), n, C, eps,
                    out.hidden.data(), nullptr);
  const Vec& head =
      cfg.tie_word_embeddings ? embed : Need(params, "lm_head.weight", V * C);
  out.logits.resize(Sz(n * V));
  LinearForwardRef(out.hidden.data(), head.data(), nullptr, n, C, V, out.logits.data());
  return out;
}

}  // namespace

DecoderRefOutput Qwen2ForwardRef(const Qwen2Config& cfg, const DecoderRefParams& params,
                                 std::span<const std::int32_t> ids, std::int64_t B,
                                 std::int64_t T, std::int64_t pos0) {
  return DecoderRef(cfg, params, ids, B, T, [&](int layer, const Vec& n1) {
    return AttentionMixerRef(cfg, params, layer, n1, B, T, pos0);
  });
}

DecoderRefOutput StudentForwardRef(const StudentConfig& cfg, const DecoderRefParams& params,
                                   std::span<const std::int32_t> ids, std::int64_t B,
                                   std::int64_t T, std::int64_t pos0) {
  if (cfg.arch == StudentArch::kRwkv6) {
    return DecoderRef(cfg.base, params, ids, B, T, [&](int layer, const Vec& n1) {
      return Rwkv6MixerForwardRef(cfg, MixerParams(params, layer), n1, B, T, pos0);
    });
  }
  Vec v_first;  // layer 0's expanded value [B*T, H*N], read by every later layer
  return DecoderRef(cfg.base, params, ids, B, T, [&](int layer, const Vec& n1) {
    Rwkv7RefResult r = Rwkv7MixerRefForward(cfg, layer, MixerParams(params, layer), B, T, pos0,
                                            n1, layer == 0 ? nullptr : &v_first);
    if (layer == 0) v_first = std::move(r.v_first_out);
    return std::move(r.y);
  });
}

double DistillLossRef(std::span<const double> student_logits,
                      std::span<const double> teacher_logits, std::int64_t n, std::int64_t vc) {
  if (n == 0) return 0.0;
  const KlRefResult r = KlFromLogitsRef(student_logits, teacher_logits, n, vc, {}, 0.0, 0.0, {});
  return r.kl_sum / static_cast<double>(n);
}

double CrossEntropyLossRef(std::span<const double> logits, std::span<const std::int32_t> targets,
                           std::int64_t n, std::int64_t vc) {
  RADLADS_CHECK(targets.size() == Sz(n)) << "CrossEntropyLossRef: " << targets.size()
                                         << " targets for " << n << " rows";
  const CeRefResult r = CrossEntropyFromLogitsRef(logits, n, vc, targets, 0.0, {});
  return r.count > 0 ? r.loss_sum / static_cast<double>(r.count) : 0.0;
}

}  // namespace radlads::ref
