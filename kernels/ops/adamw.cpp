#include "kernels/ops/adamw.h"

#include <cmath>
#include <initializer_list>

#include "base/check.h"
#include "base/profile.h"
#include "kernels/cpu/parallel.h"

namespace radlads {

void AdamWStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, std::int64_t step,
               const AdamWConfig& cfg) {
  const profile::Scope profile_scope(profile::Family::kOptimizer);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &m, &v}) {
    RADLADS_CHECK(t->defined() && t->dtype() == DType::kF32 && t->device() == Device::kCpu &&
                  t->shape() == param.shape())
        << "AdamWStep: param " << param.DebugString() << " vs " << t->DebugString();
  }
  RADLADS_CHECK(step >= 1) << "AdamWStep: step is 1-based, got " << step;
  const double td = static_cast<double>(step);
  const double bc1 = cfg.bias_correction ? 1.0 - std::pow(cfg.beta1, td) : 1.0;
  const double bc2 = cfg.bias_correction ? 1.0 - std::pow(cfg.beta2, td) : 1.0;
  // torch skips the decay when wd == 0; multiplying by exactly 1.0f is the same.
  const float keep =
      cfg.weight_decay != 0.0 ? static_cast<float>(1.0 - cfg.lr * cfg.weight_decay) : 1.0f;
  const float w1 = static_cast<float>(1.0 - cfg.beta1);  // lerp weight
  const float b2 = static_cast<float>(cfg.beta2);
  const float w2 = static_cast<float>(1.0 - cfg.beta2);
  const float neg_step = static_cast<float>(-(cfg.lr / bc1));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float eps = static_cast<float>(cfg.eps);
  // torch's lerp(m, g, w): m + w*(g - m) for |w| < 0.5, else g - (g - m)*(1 - w).
  const bool lerp_from_m = std::fabs(w1) < 0.5f;
  const float w1c = 1.0f - w1;

  float* p = param.f32();
  const float* g = grad.f32();
  float* mp = m.f32();
  float* vp = v.f32();
  cpu::ParallelFor(param.numel(), 1 << 14, [&](std::int64_t b, std::int64_t e) {
#pragma omp simd
    for (std::int64_t i = b; i < e; ++i) {
      const float pi = p[i] * keep;
      const float gi = g[i];
      const float mi = lerp_from_m ? mp[i] + w1 * (gi - mp[i]) : gi - (gi - mp[i]) * w1c;
      const float vi = vp[i] * b2 + w2 * gi * gi;
      const float denom = std::sqrt(vi) / bc2_sqrt + eps;
      p[i] = pi + neg_step * mi / denom;
      mp[i] = mi;
      vp[i] = vi;
    }
  });
}

}  // namespace radlads
