// Byte-level BPE: the merge step of a Hugging Face "BPE" model (storage/qwen2_tokenizer.h
// builds one from tokenizer.json) and a per-thread cache of word -> ids.
//
// A word (one pre-tokenizer piece, raw bytes) starts as one symbol per byte, each the id of
// that byte's GPT-2 symbol. Then, repeatedly, the adjacent pair with the lowest merge rank is
// replaced by its merged token, the leftmost such pair first, until no adjacent pair has a
// merge. This is the merge order of Hugging Face's BPE::merge_word (no dropout). Short words
// keep the pair ranks in an array and scan it; words longer than kBpeLinearMaxSymbols use a
// linked list of symbols and a priority queue of (rank, position), with stale entries skipped.
// Thread-safety: BpeMerges is immutable after Build (any threads); BpeWordCache is owned by one
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace radlads {

inline constexpr std::size_t kBpeLinearMaxSymbols = 48;

// (left id, right id) -> (rank, merged id), an open-addressing hash table.
class BpeMerges {
 public:
  struct Merge {
    std::uint32_t rank;
    std::uint32_t id;
  };
  static constexpr std::uint32_t kNoRank = 0xFFFFFFFFu;

  BpeMerges() = default;
  // Reserves room for `count` merges.
  explicit BpeMerges(std::size_t count);
  // Returns false (and changes nothing) when the pair is already present. Ids < 2^31.
  bool Insert(std::uint32_t left, std::uint32_t right, Merge m);
  // {kNoRank, 0} when the pair has no merge.
  Merge Find(std::uint32_t left, std::uint32_t right) const {
    if (slots_.empty()) return {kNoRank, 0};
    const std::uint64_t key = Key(left, right);
    for (std::size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.merge;
      if (s.key == kEmpty) return {kNoRank, 0};
    }
  }
  std::size_t size() const { return size_; }

 private:
  static constexpr std::uint64_t kEmpty = ~0ull;
  struct Slot {
    std::uint64_t key = kEmpty;
    Merge merge{kNoRank, 0};
  };
  static std::uint64_t Key(std::uint32_t l, std::uint32_t r) {
    return (static_cast<std::uint64_t>(l) << 32) | r;
  }
  static std::size_t Hash(std::uint64_t k) {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20);
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

// Merges `symbols` (initial byte ids) in place by the rule above and shrinks it to the result.
// `linear_max` picks the algorithm (tests compare both); production uses the default.
void BpeMergeWord(const BpeMerges& merges, std::vector<std::uint32_t>* symbols,
                  std::size_t linear_max = kBpeLinearMaxSymbols);

// word bytes -> ids, for words up to kMaxWordBytes; cleared when it holds kMaxEntries words.
class BpeWordCache {
 public:
  static constexpr std::size_t kMaxWordBytes = 64;
  static constexpr std::size_t kMaxEntries = 1u << 18;

  BpeWordCache();
  // The cached ids of `word`, or false.
  bool Find(std::string_view word, std::vector<std::uint32_t>* out) const;
  void Insert(std::string_view word, std::span<const std::uint32_t> ids);
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t key_off = 0, key_len = 0;  // key_len 0: empty (words are never empty)
    std::uint32_t ids_off = 0, ids_len = 0;
  };
  static std::uint64_t HashOf(std::string_view w);
  void Clear();
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<std::uint32_t> ids_;
  std::size_t size_ = 0;
};

}  // namespace radlads
