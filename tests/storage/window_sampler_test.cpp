// WindowSampler: the magic-prime rule and its documented values, agreement with RWKV-LM's
// Python formula, the bijection over p samples, worker-count-independent resume, and the
// sequential mode.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "storage/token_dataset.h"
#include "storage/window_sampler.h"
#include "tests/testing/test_util.h"

namespace radlads {
namespace {

using ::testing::HasSubstr;

constexpr std::uint64_t kDclmTokens = 1'500'087'317;

bool NaivePrime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

WindowSampler Magic(std::uint64_t tokens, std::uint64_t ctx, std::uint64_t p = 0) {
  auto s = WindowSampler::Create(tokens, {.mode = SamplingMode::kMagicPrime, .ctx_len = ctx, .magic_prime = p});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return *s;
}

TEST(MagicPrime, DocumentedValuesForDclm) {
  EXPECT_EQ(*ComputeMagicPrime(kDclmTokens, 512), 2'929'793u);
  EXPECT_EQ(*ComputeMagicPrime(kDclmTokens, 16384), 91'541u);
  EXPECT_TRUE(ValidateMagicPrime(2'929'793, kDclmTokens, 512).ok());
  EXPECT_TRUE(ValidateMagicPrime(91'541, kDclmTokens, 16384).ok());
  // The next 3n+2 prime above, 2,929,859, exceeds the slot count floor(T/512) = 2,929,858.
  EXPECT_TRUE(IsPrime(2'929'859));
  EXPECT_EQ(2'929'859 % 3, 2);
  EXPECT_FALSE(ValidateMagicPrime(2'929'859, kDclmTokens, 512).ok());
}

TEST(MagicPrime, GoldenFactorMatchesRwkvAndExact) {
  // Python: int(p * ((math.sqrt(5) - 1) / 2)).
  EXPECT_EQ(RwkvGoldenFactor(2'929'793), 1'810'711u);
  EXPECT_EQ(RwkvGoldenFactor(91'541), 56'575u);
  for (std::uint64_t p : {2ull, 5ull, 11ull, 17ull, 2'929'793ull, 91'541ull, 9'999'991ull}) {
    EXPECT_EQ(RwkvGoldenFactor(p), ExactGoldenFactor(p)) << p;
  }
  testing::Rng rng(5);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t p = std::uniform_int_distribution<std::uint64_t>(2, 10'000'000)(rng);
    EXPECT_EQ(RwkvGoldenFactor(p), ExactGoldenFactor(p)) << p;
  }
}

TEST(MagicPrime, WindowStartsMatchRwkvPython) {
  // ((int(p*((sqrt(5)-1)/2)) * ii**3) % p) * ctx_len with ii = 1 + g, evaluated in Python.
  struct Case {
    std::uint64_t g, start512, start16k;
  };
  const Case cases[] = {
      {0, 927084032, 926924800},
      {1, 1416456192, 1416167424},
      {2, 1030404608, 1030045696},
      {3, 831271424, 830685184},
      {40319, 1130290176, 1180991488},
      {40320, 634404352, 639041536},
      {1000000, 1459825152, 1452785664},
      {1099511627776ull, 1078288384, 124747776},
      {18446744073709551614ull, 258582016, 204685312},
  };
  const WindowSampler s512 = Magic(kDclmTokens, 512);
  const WindowSampler s16k = Magic(kDclmTokens, 16384);
  EXPECT_EQ(s512.magic_prime(), 2'929'793u);
  EXPECT_EQ(s512.golden_factor(), 1'810'711u);
  for (const auto& c : cases) {
    EXPECT_EQ(s512.WindowStart(c.g), c.start512) << c.g;
    EXPECT_EQ(s16k.WindowStart(c.g), c.start16k) << c.g;
  }
  // g = 2^64 - 1 (ii = 2^64) is defined and in range.
  EXPECT_LT(s512.WindowStart(~std::uint64_t{0}) + 513, kDclmTokens + 1);
  // RWKV-LM's numbering: epoch 1, idx 0, rank 0 is ii = 40321, i.e. g = 40320.
  EXPECT_EQ(RwkvGlobalSampleIndex(1, 0, 0, 8), 40320u);
  EXPECT_EQ(RwkvGlobalSampleIndex(0, 3, 2, 8), 26u);
}

TEST(MagicPrime, IsPrime) {
  for (std::uint64_t n = 0; n < 5000; ++n) ASSERT_EQ(IsPrime(n), NaivePrime(n)) << n;
  EXPECT_TRUE(IsPrime(2'305'843'009'213'693'951ull));        // 2^61 - 1
  EXPECT_TRUE(IsPrime(18'446'744'073'709'551'557ull));       // largest 64-bit prime
  EXPECT_FALSE(IsPrime(3'215'031'751ull));                   // strong pseudoprime to 2,3,5,7
  EXPECT_FALSE(IsPrime(3'825'123'056'546'413'051ull));       // strong pseudoprime to bases up to 23
  EXPECT_FALSE(IsPrime(4'294'967'297ull));                   // F5 = 641 * 6700417
  EXPECT_FALSE(IsPrime(~std::uint64_t{0}));
}

TEST(MagicPrime, RuleAgainstBruteForce) {
  for (std::uint64_t ctx : {1, 2, 3, 7, 16}) {
    for (std::uint64_t tokens = 0; tokens < 1500; ++tokens) {
      std::uint64_t want = 0;
      for (std::uint64_t p = 2; p * ctx + ctx + 1 <= tokens; ++p) {
        if (p % 3 == 2 && NaivePrime(p)) want = p;
      }
      auto got = ComputeMagicPrime(tokens, ctx);
      if (want == 0) {
        ASSERT_FALSE(got.ok()) << tokens << " " << ctx;
        EXPECT_EQ(got.status().code(), Status::Code::kInvalidArgument);
      } else {
        ASSERT_TRUE(got.ok()) << tokens << " " << ctx;
        ASSERT_EQ(*got, want) << tokens << " " << ctx;
      }
    }
  }
  EXPECT_EQ(ComputeMagicPrime(100, 0).status().code(), Status::Code::kInvalidArgument);
}

TEST(MagicPrime, ValidateRejects) {
  Status st = ValidateMagicPrime(15, 1000, 10);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("magic_prime 15 is not prime"));
  st = ValidateMagicPrime(13, 1000, 10);
  EXPECT_THAT(st.message(), HasSubstr("magic_prime 13 % 3 is 1, expected 2"));
  st = ValidateMagicPrime(101, 1000, 10);
  EXPECT_THAT(st.message(), HasSubstr("puts the last window past the data"));
  EXPECT_TRUE(ValidateMagicPrime(89, 891, 10).ok()) << "89*10 + 1 = 891 tokens fit exactly";
  EXPECT_FALSE(ValidateMagicPrime(89, 890, 10).ok());
  auto s = WindowSampler::Create(1000, {.mode = SamplingMode::kMagicPrime, .ctx_len = 10, .magic_prime = 13});
  EXPECT_EQ(s.status().code(), Status::Code::kInvalidArgument);
}

TEST(WindowSampler, BijectionOverPConsecutiveSamples) {
  struct Case {
    std::uint64_t tokens, ctx;
  };
  const Case cases[] = {{100, 4}, {1000, 16}, {5000, 1}, {4097, 32}, {30000, 3}, {8, 2}};
  for (const auto& c : cases) {
    const WindowSampler s = Magic(c.tokens, c.ctx);
    const std::uint64_t p = s.magic_prime();
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " ctx " + std::to_string(c.ctx) + " p " + std::to_string(p));
    for (std::uint64_t g0 : {std::uint64_t{0}, std::uint64_t{12345}, std::uint64_t{1} << 40, ~std::uint64_t{0} - p}) {
      std::vector<int> seen(p, 0);
      for (std::uint64_t g = g0; g < g0 + p; ++g) {
        const std::uint64_t slot = s.SlotOf(g);
        ASSERT_LT(slot, p);
        ++seen[slot];
        const std::uint64_t start = s.WindowStart(g);
        ASSERT_EQ(start, slot * c.ctx);
        ASSERT_LE(start + s.window_len(), c.tokens) << "window inside the data";
      }
      for (std::uint64_t i = 0; i < p; ++i) ASSERT_EQ(seen[i], 1) << "slot " << i;
    }
  }
}

// The window for g must not depend on how many workers share the g range.
TEST(WindowSampler, SameWindowsForAnyWorkerCountAndResume) {
  const std::uint64_t tokens = 20011, ctx = 16, total = 3000;
  testing::Rng rng(11);
  std::vector<std::uint32_t> data(tokens);
  for (auto& t : data) t = std::uniform_int_distribution<std::uint32_t>(0, 320)(rng);
  const TokenDataset ds = TokenDataset::FromTokens(data);

  for (SamplingMode mode : {SamplingMode::kMagicPrime, SamplingMode::kSequential}) {
    SCOPED_TRACE(std::string(SamplingModeName(mode)));
    auto created = WindowSampler::Create(tokens, {.mode = mode, .ctx_len = ctx});
    ASSERT_TRUE(created.ok());
    const WindowSampler& s = *created;
    std::vector<std::vector<std::uint32_t>> reference(total);
    for (std::uint64_t g = 0; g < total; ++g) {
      reference[g].resize(ctx + 1);
      ASSERT_TRUE(s.ReadWindow(ds, g, reference[g]).ok());
      ASSERT_EQ(reference[g][0], data[s.WindowStart(g)]);
    }
    for (std::uint64_t workers : {1, 2, 3, 7}) {
      // Each worker gets its own sampler instance, as separate processes would.
      std::map<std::uint64_t, std::vector<std::uint32_t>> got;
      for (std::uint64_t rank = 0; rank < workers; ++rank) {
        auto mine = WindowSampler::Create(tokens, {.mode = mode, .ctx_len = ctx});
        ASSERT_TRUE(mine.ok());
        for (std::uint64_t i = 0;; ++i) {
          const std::uint64_t g = GlobalSampleIndex(0, i, rank, workers);
          if (g >= total) break;
          std::vector<std::uint32_t> w(ctx + 1);
          ASSERT_TRUE(mine->ReadWindow(ds, g, w).ok());
          got[g] = w;
        }
      }
      ASSERT_EQ(got.size(), total) << workers << " workers";
      for (std::uint64_t g = 0; g < total; ++g) ASSERT_EQ(got[g], reference[g]) << "g " << g;
    }
    // Resume: 2 workers take 400 samples each, save the first unconsumed g, then 3 workers and
    // then 7 workers continue from it. The union is the single-worker sequence.
    std::map<std::uint64_t, std::uint64_t> starts;
    std::uint64_t next_g = 0;
    const std::pair<std::uint64_t, std::uint64_t> phases[] = {{2, 400}, {3, 300}, {7, 100}};
    for (const auto& [workers, per_worker] : phases) {
      for (std::uint64_t rank = 0; rank < workers; ++rank) {
        for (std::uint64_t i = 0; i < per_worker; ++i) {
          const std::uint64_t g = GlobalSampleIndex(next_g, i, rank, workers);
          ASSERT_TRUE(starts.emplace(g, s.WindowStart(g)).second) << "g " << g << " sampled twice";
        }
      }
      next_g += workers * per_worker;  // the saved resume point
    }
    ASSERT_EQ(next_g, 2400u);
    ASSERT_EQ(starts.size(), 2400u);
    for (const auto& [g, start] : starts) ASSERT_EQ(start, s.WindowStart(g));
    ASSERT_EQ(starts.rbegin()->first, 2399u);
  }
}

TEST(WindowSampler, SequentialModeWrapsAround) {
  // 100 tokens, ctx 16: slots = floor(99 / 16) = 6; the last window [80, 97) fits.
  auto s = WindowSampler::Create(100, {.mode = SamplingMode::kSequential, .ctx_len = 16});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->slot_count(), 6u);
  EXPECT_EQ(s->magic_prime(), 0u);
  for (std::uint64_t g = 0; g < 6; ++g) EXPECT_EQ(s->WindowStart(g), g * 16);
  EXPECT_EQ(s->WindowStart(6), 0u);
  EXPECT_EQ(s->WindowStart(7), 16u);
  EXPECT_EQ(s->WindowStart(~std::uint64_t{0}), ((~std::uint64_t{0}) % 6) * 16);
  // Exactly one window: 17 tokens at ctx 16.
  auto one = WindowSampler::Create(17, {.mode = SamplingMode::kSequential, .ctx_len = 16});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->slot_count(), 1u);
  EXPECT_EQ(one->WindowStart(5), 0u);
  // 97 tokens: floor(96/16) = 6 windows, the last one [80, 97) ends exactly at the data's end.
  auto exact = WindowSampler::Create(97, {.mode = SamplingMode::kSequential, .ctx_len = 16});
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->slot_count(), 6u);
}

TEST(WindowSampler, CreateAndReadErrors) {
  EXPECT_EQ(WindowSampler::Create(100, {.mode = SamplingMode::kSequential, .ctx_len = 0}).status().code(),
            Status::Code::kInvalidArgument);
  auto few = WindowSampler::Create(16, {.mode = SamplingMode::kSequential, .ctx_len = 16});
  EXPECT_EQ(few.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(few.status().message(), HasSubstr("16 tokens are fewer than one window of ctx_len + 1 = 17"));
  EXPECT_EQ(WindowSampler::Create(100, {.mode = SamplingMode::kSequential, .ctx_len = 4, .magic_prime = 5})
                .status()
                .code(),
            Status::Code::kInvalidArgument);
  auto tiny = WindowSampler::Create(40, {.mode = SamplingMode::kMagicPrime, .ctx_len = 16});
  EXPECT_EQ(tiny.status().code(), Status::Code::kInvalidArgument) << "no 3n+2 prime fits 40 tokens at ctx 16";

  const TokenDataset ds = TokenDataset::FromTokens(std::vector<std::uint32_t>(100, 1), "mem");
  auto s = WindowSampler::Create(100, {.mode = SamplingMode::kSequential, .ctx_len = 16});
  ASSERT_TRUE(s.ok());
  std::vector<std::uint32_t> small(16);
  Status st = s->ReadWindow(ds, 0, small);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("mem: window buffer holds 16 tokens, expected ctx_len + 1 = 17"));
  const TokenDataset other = TokenDataset::FromTokens(std::vector<std::uint32_t>(99, 1), "other");
  std::vector<std::int32_t> w(17);
  EXPECT_EQ(s->ReadWindow(other, 0, w).code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(s->ReadWindow(ds, 5, w).ok());

  EXPECT_EQ(*ParseSamplingMode("magic_prime"), SamplingMode::kMagicPrime);
  EXPECT_EQ(ParseSamplingMode("random").status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace radlads
