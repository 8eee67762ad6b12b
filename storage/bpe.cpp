#include "storage/bpe.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <queue>
#include <tuple>

namespace radlads {

BpeMerges::BpeMerges(std::size_t count) {
  std::size_t cap = 16;
  while (cap < count * 2) cap *= 2;
  slots_.resize(cap);
  mask_ = cap - 1;
}

bool BpeMerges::Insert(std::uint32_t left, std::uint32_t right, Merge m) {
  if ((size_ + 1) * 2 > slots_.size()) {  // grow: keep the load factor at most 1/2
    std::vector<Slot> old = std::move(slots_);
    const std::size_t cap = std::max<std::size_t>(16, old.size() * 2);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.key != kEmpty) Insert(static_cast<std::uint32_t>(s.key >> 32), static_cast<std::uint32_t>(s.key), s.merge);
    }
  }
  const std::uint64_t key = Key(left, right);
  for (std::size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) return false;
    if (s.key == kEmpty) {
      s.key = key;
      s.merge = m;
      ++size_;
      return true;
    }
  }
}

namespace {

void MergeLinear(const BpeMerges& merges, std::vector<std::uint32_t>* symbols) {
  std::vector<std::uint32_t>& sym = *symbols;
  std::size_t n = sym.size();
  // ranks[i], ids[i]: the merge of the pair (sym[i], sym[i+1]).
  BpeMerges::Merge pairs[256];  // BpeMergeWord sends at most 256 symbols here
  for (std::size_t i = 0; i + 1 < n; ++i) pairs[i] = merges.Find(sym[i], sym[i + 1]);
  while (n > 1) {
    std::size_t best = 0;
    std::uint32_t best_rank = BpeMerges::kNoRank;
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (pairs[i].rank < best_rank) { best_rank = pairs[i].rank; best = i; }
    }
    if (best_rank == BpeMerges::kNoRank) break;
    sym[best] = pairs[best].id;
    for (std::size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      pairs[i] = pairs[i + 1];
    }
    --n;
    if (best + 1 < n) pairs[best] = merges.Find(sym[best], sym[best + 1]);
    if (best > 0) pairs[best - 1] = merges.Find(sym[best - 1], sym[best]);
  }
  sym.resize(n);
}

void MergeQueue(const BpeMerges& merges, std::vector<std::uint32_t>* symbols) {
  std::vector<std::uint32_t>& sym = *symbols;
  const std::size_t n = sym.size();
  constexpr std::uint32_t kDead = 0xFFFFFFFFu;
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> next(n), prev(n);
  for (std::size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : kNone;
    prev[i] = i > 0 ? i - 1 : kNone;
  }
  // (rank, left position, left id, right id); merged tokens are strictly longer than their
  // parts, so a position never holds the same id twice and the ids identify stale entries.
  using Entry = std::tuple<std::uint32_t, std::size_t, std::uint32_t, std::uint32_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  auto push = [&](std::size_t p) {
    const std::size_t q = next[p];
    if (q == kNone) return;
    const BpeMerges::Merge m = merges.Find(sym[p], sym[q]);
    if (m.rank != BpeMerges::kNoRank) queue.emplace(m.rank, p, sym[p], sym[q]);
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const auto [rank, p, left, right] = queue.top();
    queue.pop();
    const std::size_t q = next[p];
    if (sym[p] != left || q == kNone || sym[q] != right) continue;
    sym[p] = merges.Find(left, right).id;
    sym[q] = kDead;
    next[p] = next[q];
    if (next[q] != kNone) prev[next[q]] = p;
    if (prev[p] != kNone) push(prev[p]);
    push(p);
  }
  std::size_t w = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (sym[i] != kDead) sym[w++] = sym[i];
  }
  sym.resize(w);
}

}  // namespace

void BpeMergeWord(const BpeMerges& merges, std::vector<std::uint32_t>* symbols,
                  std::size_t linear_max) {
  if (symbols->size() <= std::min<std::size_t>(linear_max, 256)) {
    MergeLinear(merges, symbols);
  } else {
    MergeQueue(merges, symbols);
  }
}

BpeWordCache::BpeWordCache() { Clear(); }

void BpeWordCache::Clear() {
  slots_.assign(1024, Slot{});
  keys_.clear();
  ids_.clear();
  size_ = 0;
}

std::uint64_t BpeWordCache::HashOf(std::string_view w) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ w.size();
  std::size_t i = 0;
  for (; i + 8 <= w.size(); i += 8) {
    std::uint64_t v;
    std::memcpy(&v, w.data() + i, 8);
    h = (h ^ v) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < w.size(); ++i) h = (h ^ static_cast<unsigned char>(w[i])) * 0x100000001b3ull;
  h ^= h >> 32;
  return h * 0x9E3779B97F4A7C15ull;
}

bool BpeWordCache::Find(std::string_view word, std::vector<std::uint32_t>* out) const {
  if (word.empty() || word.size() > kMaxWordBytes) return false;
  const std::uint64_t h = HashOf(word);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = (h >> 16) & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key_len == 0) return false;
    if (s.hash == h && s.key_len == word.size() &&
        std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
      out->insert(out->end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.ids_len);
      return true;
    }
  }
}

void BpeWordCache::Insert(std::string_view word, std::span<const std::uint32_t> ids) {
  if (word.empty() || word.size() > kMaxWordBytes) return;
  if (size_ >= kMaxEntries) Clear();
  if ((size_ + 1) * 2 > slots_.size()) {  // grow: keep the load factor at most 1/2
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    const std::size_t m = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.key_len == 0) continue;
      std::size_t i = (s.hash >> 16) & m;
      while (slots_[i].key_len != 0) i = (i + 1) & m;
      slots_[i] = s;
    }
  }
  const std::uint64_t h = HashOf(word);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = (h >> 16) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.key_len == 0) {
      s.hash = h;
      s.key_off = static_cast<std::uint32_t>(keys_.size());
      s.key_len = static_cast<std::uint32_t>(word.size());
      s.ids_off = static_cast<std::uint32_t>(ids_.size());
      s.ids_len = static_cast<std::uint32_t>(ids.size());
      keys_.append(word);
      ids_.insert(ids_.end(), ids.begin(), ids.end());
      ++size_;
      return;
    }
    if (s.hash == h && s.key_len == word.size() &&
        std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
      return;
    }
  }
}

}  // namespace radlads
