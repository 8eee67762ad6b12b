#include "storage/window_sampler.h"

#include <cassert>
#include <cmath>
#include <string>

namespace radlads {
namespace {

__extension__ typedef unsigned __int128 u128;  // -Wpedantic: a GCC/Clang extension

std::string Str(std::uint64_t v) { return std::to_string(v); }

std::uint64_t MulMod(std::uint64_t a, std::uint64_t b, std::uint64_t m) {
  return static_cast<std::uint64_t>(static_cast<u128>(a) * b % m);
}

std::uint64_t PowMod(std::uint64_t b, std::uint64_t e, std::uint64_t m) {
  std::uint64_t r = 1 % m;
  b %= m;
  while (e > 0) {
    if (e & 1) r = MulMod(r, b, m);
    b = MulMod(b, b, m);
    e >>= 1;
  }
  return r;
}

// Largest x with x*x <= n.
u128 ISqrt(u128 n) {
  if (n == 0) return 0;
  u128 x = static_cast<u128>(std::sqrt(static_cast<long double>(n)));
  while (x * x > n) --x;
  while ((x + 1) * (x + 1) <= n) ++x;
  return x;
}

}  // namespace

std::string_view SamplingModeName(SamplingMode mode) {
  return mode == SamplingMode::kSequential ? "sequential" : "magic_prime";
}

Result<SamplingMode> ParseSamplingMode(std::string_view name) {
  if (name == "sequential") return SamplingMode::kSequential;
  if (name == "magic_prime") return SamplingMode::kMagicPrime;
  return Status::InvalidArgument("sampling mode '" + std::string(name) +
                                 "' is unknown; expected sequential or magic_prime");
}

bool IsPrime(std::uint64_t n) {
  if (n < 2) return false;
  static constexpr std::uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  for (std::uint64_t b : kBases) {
    if (n % b == 0) return n == b;
  }
  std::uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  // These bases are a deterministic witness set for all n < 3.3e24.
  for (std::uint64_t a : kBases) {
    std::uint64_t x = PowMod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = MulMod(x, x, n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

std::uint64_t RwkvGoldenFactor(std::uint64_t p) {
  // Python: factor = (math.sqrt(5) - 1) / 2; factor = int(magic_prime * factor).
  // Each operation is one correctly rounded IEEE double operation, as in CPython.
  const double factor = (std::sqrt(5.0) - 1.0) / 2.0;
  return static_cast<std::uint64_t>(static_cast<double>(p) * factor);
}

std::uint64_t ExactGoldenFactor(std::uint64_t p) {
  assert(p < (std::uint64_t{1} << 61));
  // floor((sqrt(5)*p - p) / 2) == floor((isqrt(5*p^2) - p) / 2) since sqrt(5)*p is irrational.
  const u128 s = ISqrt(static_cast<u128>(5) * p * p);
  return static_cast<std::uint64_t>((s - p) / 2);
}

Result<std::uint64_t> ComputeMagicPrime(std::uint64_t tokens, std::uint64_t ctx_len) {
  if (ctx_len == 0) return Status::InvalidArgument("magic prime: ctx_len must be >= 1");
  // p*ctx_len + ctx_len + 1 <= tokens  <=>  p <= floor((tokens - 1) / ctx_len) - 1.
  const std::uint64_t q = tokens == 0 ? 0 : (tokens - 1) / ctx_len;
  if (q >= 3) {
    std::uint64_t p = q - 1;
    p -= (p + 1) % 3;  // largest value <= q - 1 with p % 3 == 2
    for (;; p -= 3) {
      if (IsPrime(p)) return p;
      if (p < 5) break;
    }
  }
  return Status::InvalidArgument("magic prime: " + Str(tokens) + " tokens at ctx_len " + Str(ctx_len) +
                                 " leave no prime p % 3 == 2 with p*ctx_len + ctx_len + 1 <= tokens; "
                                 "need at least " + Str(3 * ctx_len + 1) + " tokens");
}

Status ValidateMagicPrime(std::uint64_t p, std::uint64_t tokens, std::uint64_t ctx_len) {
  if (ctx_len == 0) return Status::InvalidArgument("magic prime: ctx_len must be >= 1");
  if (!IsPrime(p)) return Status::InvalidArgument("magic_prime " + Str(p) + " is not prime");
  if (p % 3 != 2) {
    return Status::InvalidArgument("magic_prime " + Str(p) + " % 3 is " + Str(p % 3) +
                                   ", expected 2 (so that x -> x^3 mod p visits every slot)");
  }
  if (static_cast<u128>(p) * ctx_len + 1 > tokens) {
    return Status::InvalidArgument("magic_prime " + Str(p) + " at ctx_len " + Str(ctx_len) +
                                   " puts the last window past the data: needs p*ctx_len + 1 <= " +
                                   Str(tokens) + " tokens");
  }
  return Status::Ok();
}

Result<WindowSampler> WindowSampler::Create(std::uint64_t total_tokens,
                                            const WindowSamplerOptions& options) {
  const std::uint64_t c = options.ctx_len;
  if (c == 0) return Status::InvalidArgument("window sampler: ctx_len must be >= 1");
  if (total_tokens <= c) {
    return Status::InvalidArgument("window sampler: " + Str(total_tokens) +
                                   " tokens are fewer than one window of ctx_len + 1 = " +
                                   (c == UINT64_MAX ? std::string("2^64") : Str(c + 1)));
  }
  WindowSampler s;
  s.mode_ = options.mode;
  s.total_tokens_ = total_tokens;
  s.ctx_len_ = c;
  if (options.mode == SamplingMode::kSequential) {
    if (options.magic_prime != 0) {
      return Status::InvalidArgument("window sampler: magic_prime is set but the mode is sequential");
    }
    s.slots_ = (total_tokens - 1) / c;
    return s;
  }
  std::uint64_t p = options.magic_prime;
  if (p == 0) {
    RADLADS_ASSIGN_OR_RETURN(p, ComputeMagicPrime(total_tokens, c));
  } else {
    RADLADS_RETURN_IF_ERROR(ValidateMagicPrime(p, total_tokens, c));
  }
  s.slots_ = p;
  s.factor_ = RwkvGoldenFactor(p);
  return s;
}

std::uint64_t WindowSampler::SlotOf(std::uint64_t g) const {
  if (mode_ == SamplingMode::kSequential) return g % slots_;
  const std::uint64_t p = slots_;
  const std::uint64_t ii = (g % p + 1) % p;  // (1 + g) mod p without overflow at g = 2^64 - 1
  const std::uint64_t cube = MulMod(MulMod(ii, ii, p), ii, p);
  return MulMod(factor_ % p, cube, p);
}

template <typename T>
Status WindowSampler::ReadWindowImpl(const TokenDataset& data, std::uint64_t g, std::span<T> out) const {
  if (out.size() != window_len()) {
    return Status::InvalidArgument(data.path() + ": window buffer holds " + Str(out.size()) +
                                   " tokens, expected ctx_len + 1 = " + Str(window_len()));
  }
  if (data.size() != total_tokens_) {
    return Status::FailedPrecondition(data.path() + ": has " + Str(data.size()) +
                                      " tokens but the sampler was built for " + Str(total_tokens_));
  }
  return data.CopyTokens(WindowStart(g), out);
}

Status WindowSampler::ReadWindow(const TokenDataset& data, std::uint64_t g,
                                 std::span<std::uint32_t> out) const {
  return ReadWindowImpl(data, g, out);
}

Status WindowSampler::ReadWindow(const TokenDataset& data, std::uint64_t g,
                                 std::span<std::int32_t> out) const {
  return ReadWindowImpl(data, g, out);
}

}  // namespace radlads
