// Deterministic training windows over a flat token stream, addressed by a global sample index.
//
// A window is ctx_len + 1 consecutive tokens (x = the first ctx_len, y = x shifted by one).
// Window g (g = 0, 1, 2, ... counts samples across all workers) starts at token
//   sequential:  (g mod slots) * ctx_len,            slots = floor((tokens - 1) / ctx_len)
//   magic prime: ((factor * ii^3) mod p) * ctx_len,  ii = 1 + g,
//                factor = int(p * ((sqrt(5) - 1) / 2)) evaluated in IEEE double exactly as
//                RWKV-LM's src/dataset.py does (Python float arithmetic; see RwkvGoldenFactor),
//                and (factor * ii^3) mod p evaluated exactly with unsigned __int128 (ii is
//                reduced mod p first, so every g in [0, 2^64) is valid and matches Python's
//                big-integer result).
// RWKV-LM numbers samples ii = 1 + epoch*40320 + idx*world_size + rank, so its sample ii is our
// g = ii - 1 (RwkvGlobalSampleIndex).
//
// Magic prime: p must be prime with p % 3 == 2. Then x -> x^3 is a bijection of Z_p and
// multiplying by factor (0 < factor < p) is too, so any p consecutive g visit every slot
// 0..p-1 exactly once. ComputeMagicPrime picks the largest such p with
// p*ctx_len + ctx_len + 1 <= tokens, i.e. p < tokens/ctx_len - 1 (RWKV-LM's README rule: "the
// largest 3n+2 prime smaller than datalen/ctxlen - 1"); for the 1,500,087,317-token DCLM file it
// gives 2,929,793 at ctx_len 512 and 91,541 at 16384, the values RADLADS used. A caller-given p
// is accepted when it is prime, p % 3 == 2 and every window lies inside the data
// (p*ctx_len + 1 <= tokens).
//
// Resume contract: WindowStart(g) depends only on (tokens, ctx_len, mode, p) and g -- never on
// the number of workers, their ranks or what was sampled before. Any partition of the g range
// over any number of workers (e.g. GlobalSampleIndex: worker r of W takes first_g + i*W + r)
// sees exactly the windows a single worker would; to resume, save the first g not yet consumed
// and restart from it with any worker count.
//
// Thread-safety: a WindowSampler is an immutable value; all methods are const and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "base/status.h"
#include "storage/token_dataset.h"

namespace radlads {

enum class SamplingMode { kSequential, kMagicPrime };

// "sequential" / "magic_prime"; and the parser for flags and configs (InvalidArgument).
std::string_view SamplingModeName(SamplingMode mode);
Result<SamplingMode> ParseSamplingMode(std::string_view name);

// RWKV-LM's fixed epoch length in samples (epoch_steps * real_bsz is asserted to be 40320).
inline constexpr std::uint64_t kRwkvSamplesPerEpoch = 40320;

// Deterministic Miller-Rabin; exact for every 64-bit n.
bool IsPrime(std::uint64_t n);

// int(p * ((sqrt(5) - 1) / 2)) in IEEE double, bit-for-bit what RWKV-LM computes.
std::uint64_t RwkvGoldenFactor(std::uint64_t p);
// The exact floor(p * (sqrt(5) - 1) / 2), by integer square root; p < 2^61. Equal to
// RwkvGoldenFactor for every p < 10^7 (checked) and the documented primes; the two can differ
// by one for very large p, where RWKV-LM's double form is the one we follow.
std::uint64_t ExactGoldenFactor(std::uint64_t p);

// The largest prime p with p % 3 == 2 and p*ctx_len + ctx_len + 1 <= tokens.
// InvalidArgument when ctx_len is 0 or no such prime exists (too few tokens).
Result<std::uint64_t> ComputeMagicPrime(std::uint64_t tokens, std::uint64_t ctx_len);

// OK when p is prime, p % 3 == 2 and p*ctx_len + 1 <= tokens; InvalidArgument naming the
// failed condition otherwise.
Status ValidateMagicPrime(std::uint64_t p, std::uint64_t tokens, std::uint64_t ctx_len);

// Worker `rank` of `world_size`, taking every world_size-th sample from first_g: its
// local_index-th sample is first_g + local_index*world_size + rank.
constexpr std::uint64_t GlobalSampleIndex(std::uint64_t first_g, std::uint64_t local_index,
                                          std::uint64_t rank, std::uint64_t world_size) {
  return first_g + local_index * world_size + rank;
}
// RWKV-LM's sample numbering: ii - 1 = epoch*40320 + idx*world_size + rank.
constexpr std::uint64_t RwkvGlobalSampleIndex(std::uint64_t epoch, std::uint64_t idx,
                                              std::uint64_t rank, std::uint64_t world_size) {
  return epoch * kRwkvSamplesPerEpoch + idx * world_size + rank;
}

struct WindowSamplerOptions {
  SamplingMode mode = SamplingMode::kMagicPrime;
  std::uint64_t ctx_len = 0;      // tokens per sample input; windows hold ctx_len + 1
  std::uint64_t magic_prime = 0;  // magic mode: 0 = ComputeMagicPrime, else validated
};

class WindowSampler {
 public:
  // InvalidArgument when ctx_len is 0, the data is shorter than one window (ctx_len + 1
  // tokens), or a given magic prime fails ValidateMagicPrime. magic_prime must be 0 in
  // sequential mode.
  static Result<WindowSampler> Create(std::uint64_t total_tokens, const WindowSamplerOptions& options);

  // First token of window g; the window is [start, start + ctx_len + 1), always inside the data.
  std::uint64_t WindowStart(std::uint64_t g) const { return SlotOf(g) * ctx_len_; }
  // The slot (start / ctx_len) of window g, in [0, slot_count()).
  std::uint64_t SlotOf(std::uint64_t g) const;

  // Copies window g (out.size() must be window_len(), else InvalidArgument). `data` must have
  // total_tokens() tokens (else FailedPrecondition). Value errors as TokenDataset::CopyTokens.
  Status ReadWindow(const TokenDataset& data, std::uint64_t g, std::span<std::uint32_t> out) const;
  Status ReadWindow(const TokenDataset& data, std::uint64_t g, std::span<std::int32_t> out) const;

  SamplingMode mode() const { return mode_; }
  std::uint64_t total_tokens() const { return total_tokens_; }
  std::uint64_t ctx_len() const { return ctx_len_; }
  std::uint64_t window_len() const { return ctx_len_ + 1; }
  // Distinct window starts: p in magic mode, floor((tokens - 1) / ctx_len) in sequential mode.
  std::uint64_t slot_count() const { return slots_; }
  // 0 in sequential mode.
  std::uint64_t magic_prime() const { return mode_ == SamplingMode::kMagicPrime ? slots_ : 0; }
  std::uint64_t golden_factor() const { return factor_; }

 private:
  template <typename T>
  Status ReadWindowImpl(const TokenDataset& data, std::uint64_t g, std::span<T> out) const;

  SamplingMode mode_ = SamplingMode::kSequential;
  std::uint64_t total_tokens_ = 0;
  std::uint64_t ctx_len_ = 0;
  std::uint64_t slots_ = 0;
  std::uint64_t factor_ = 0;
};

}  // namespace radlads
