// The binary encodings derived from a record's field declaration (contract/fields.h):
//
//   varint  LEB128 varints (signed integers zigzag-encoded), doubles as their 8-byte
//           little-endian bit pattern, strings and lists prefixed by a varint length. What the
//           state store writes (docs/formats/state.md). Decoding is bounded by the bytes given:
//           a list may not claim more items than bytes remain.
//   wire    big-endian fixed-width integers (int32 -> 4 bytes, int64 -> 8, ...), doubles as
//           their big-endian bit pattern, strings as u32 length + bytes, lists as u32 count +
//           items, optionals as a 0/1 byte + the record. What the coordinator protocol carries
//           (docs/protocol.md). Decoding enforces each field's limit and refuses a list whose
//           count times its smallest item exceeds the bytes left, so hostile input can never
//           size an allocation beyond the frame.
// Both: bools are one byte 0/1, enums one byte 0..EnumTraits::kMax; anything else is refused.
//
// Versions: a field added after a format's first version is declared inside
// `if (v.Since(N)) { ... }`, N being the version of the formats that first carry it. A writer
// or reader built for version M < N leaves it out (a reader keeps its default), so values
// written by an older version still decode; the caller takes M from the value's own header.
//
// Decoding is strict and keeps the first error: after a failure every later read returns a
// zero value and the error names the field path ("checkpoint.files[].path: truncated ...").
// DecodeVarint/DecodeWire also refuse trailing bytes, so an accepted input re-encodes to the
// same bytes. Nothing here throws or aborts on input.
// Thread-safety: plain values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/status.h"
#include "contract/fields.h"

namespace radlads::codec {

// "Every field": the latest layout of whatever format is being written or read.
inline constexpr int kLatestVersion = 1 << 30;

// ---- the error-keeping reader shared by both binary decoders ----

class ByteReader {
 public:
  // `version`: the version of the format the bytes are in (fields declared Since a later
  // version are absent and keep their defaults).
  explicit ByteReader(std::string_view bytes, int version = kLatestVersion)
      : rest_(bytes), version_(version) {}
  int version() const { return version_; }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool AtEnd() const { return rest_.empty(); }
  std::size_t remaining() const { return rest_.size(); }
  // Records the first failure (later ones are ignored) and stops reading.
  void Fail(std::string msg);
  // The field's full name: the enclosing records' and lists' names, then `field`.
  std::string Path(std::string_view field) const;

  // Enters a nested record or list item for field names; restores on destruction.
  class Scope {
   public:
    Scope(ByteReader& r, std::string_view name) : r_(r), saved_(r.prefix_.size()) {
      r_.prefix_.append(name);
      r_.prefix_.push_back('.');
    }
    ~Scope() { r_.prefix_.resize(saved_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    ByteReader& r_;
    std::size_t saved_;
  };

  // Primitives. Each checks the bytes left; the name is only for the error.
  std::uint8_t U8(std::string_view field);
  std::uint64_t Varint(std::string_view field);
  std::int64_t ZigZag(std::string_view field);
  std::uint64_t FixedLE64(std::string_view field);
  std::uint64_t FixedBE(std::string_view field, int bytes);
  std::string Bytes(std::string_view field, std::size_t n);
  // Copies n bytes into `out` (zeros after a failure).
  void Read(std::string_view field, std::uint8_t* out, std::size_t n);

 private:
  bool Need(std::size_t n, std::string_view field);

  std::string_view rest_;
  std::string error_;
  std::string prefix_;
  int version_;
};

// Corruption("<what>: <error>") when the reader failed or did not consume every byte.
Status FinishRead(const ByteReader& r, std::string_view what);

// ---- varint ----

class VarintOut {
 public:
  // Writes the layout of `version` of the format (fields declared Since a later one are left out).
  explicit VarintOut(int version = kLatestVersion) : version_(version) {}
  bool Since(int v) const { return version_ >= v; }
  void Varint(std::uint64_t v);
  void ZigZag(std::int64_t v) {
    const auto u = static_cast<std::uint64_t>(v);
    Varint((u << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void FixedLE64(std::uint64_t v);
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Raw(std::string_view s) { out_.append(s.data(), s.size()); }

  // The field visitor.
  void Str(std::string_view, const std::string& s, std::size_t /*max*/) {
    Varint(s.size());
    Raw(s);
  }
  template <FieldInt T>
  void Int(std::string_view, const T& v) {
    if constexpr (std::is_signed_v<T>) ZigZag(v); else Varint(v);
  }
  void Real(std::string_view, const double& v);
  void Flag(std::string_view, const bool& b) { U8(b ? 1 : 0); }
  template <std::size_t N>
  void Fixed(std::string_view, const std::array<std::uint8_t, N>& a) {
    out_.append(reinterpret_cast<const char*>(a.data()), N);
  }
  template <FieldEnum E>
  void Enum(std::string_view, const E& e) { U8(static_cast<std::uint8_t>(e)); }
  void Strs(std::string_view f, const std::vector<std::string>& v, std::size_t, std::size_t max) {
    Varint(v.size());
    for (const auto& s : v) Str(f, s, max);
  }
  template <class R>
  void Rec(std::string_view, const R& r) { VisitFields(*this, const_cast<R&>(r)); }
  template <class R>
  void Recs(std::string_view f, const std::vector<R>& v, std::size_t) {
    Varint(v.size());
    for (const auto& r : v) Rec(f, r);
  }
  template <class R>
  void Opt(std::string_view f, const std::optional<R>& o) {
    U8(o.has_value() ? 1 : 0);
    if (o) Rec(f, *o);
  }

  std::string& out() { return out_; }

 private:
  int version_;
  std::string out_;
};

// The parts of the two binary decoders that do not depend on the encoding: bools, fixed bytes,
// enums, nested records, lists and optionals. `Derived` supplies Str, Int, Real and
// Count(field, max_items, min_item_bytes).
template <class Derived>
class BinaryIn {
 public:
  explicit BinaryIn(ByteReader& r) : r_(r) {}
  ByteReader& reader() { return r_; }
  bool Since(int v) const { return r_.version() >= v; }

  void Flag(std::string_view f, bool& b) {
    const std::uint8_t v = r_.U8(f);
    if (r_.ok() && v > 1) r_.Fail("field '" + r_.Path(f) + "' is not a bool (" + std::to_string(v) + ")");
    b = r_.ok() && v == 1;
  }
  template <std::size_t N>
  void Fixed(std::string_view f, std::array<std::uint8_t, N>& a) {
    r_.Read(f, a.data(), N);
  }
  template <FieldEnum E>
  void Enum(std::string_view f, E& e) {
    const std::uint8_t v = r_.U8(f);
    if (r_.ok() && v > EnumTraits<E>::kMax) {
      r_.Fail("field '" + r_.Path(f) + "': unknown value " + std::to_string(v) + " (at most " +
              std::to_string(EnumTraits<E>::kMax) + ")");
    }
    e = static_cast<E>(r_.ok() ? v : 0);
  }
  void Strs(std::string_view f, std::vector<std::string>& v, std::size_t max_items, std::size_t max) {
    const std::size_t n = self().Count(f, max_items, self().kMinStringBytes);
    v.clear();
    v.reserve(n);
    const std::string item = std::string(f) + "[]";
    for (std::size_t i = 0; i < n && r_.ok(); ++i) self().Str(item, v.emplace_back(), max);
  }
  template <class R>
  void Rec(std::string_view f, R& r) {
    ByteReader::Scope s(r_, f);
    VisitFields(self(), r);
  }
  template <class R>
  void Recs(std::string_view f, std::vector<R>& v, std::size_t max_items) {
    const std::size_t n = self().Count(f, max_items, self().template MinItemBytes<R>());
    v.clear();
    v.reserve(n);
    const std::string item = std::string(f) + "[]";
    for (std::size_t i = 0; i < n && r_.ok(); ++i) Rec(item, v.emplace_back());
  }
  template <class R>
  void Opt(std::string_view f, std::optional<R>& o) {
    bool has = false;
    Flag(f, has);
    o.reset();
    if (has) Rec(f, o.emplace());
  }

 protected:
  Derived& self() { return static_cast<Derived&>(*this); }
  ByteReader& r_;
};

class VarintIn : public BinaryIn<VarintIn> {
 public:
  using BinaryIn::BinaryIn;
  static constexpr std::size_t kMinStringBytes = 1;
  template <class R>
  std::size_t MinItemBytes() const { return 1; }

  void Str(std::string_view f, std::string& s, std::size_t /*max*/);
  template <FieldInt T>
  void Int(std::string_view f, T& v) {
    if constexpr (std::is_same_v<T, std::int64_t>) {
      v = r_.ZigZag(f);
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
      v = r_.Varint(f);
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
      v = static_cast<std::int32_t>(Ranged(f, r_.ZigZag(f), INT32_MIN, INT32_MAX));
    } else {
      const std::uint64_t u = r_.Varint(f);
      if (r_.ok() && u > UINT32_MAX) r_.Fail(r_.Path(f) + ": " + std::to_string(u) + " is out of range");
      v = static_cast<std::uint32_t>(r_.ok() ? u : 0);
    }
  }
  void Real(std::string_view f, double& v);
  // A list length, bounded by the bytes left (every item takes at least one byte); the varint
  // encoding has no per-field limits.
  std::size_t Count(std::string_view f, std::size_t max_items, std::size_t min_item);

 private:
  std::int64_t Ranged(std::string_view f, std::int64_t v, std::int64_t lo, std::int64_t hi);
};

// ---- wire ----

class WireOut {
 public:
  // Writes the layout of `version` of the format (fields declared Since a later one are left out).
  explicit WireOut(int version = kLatestVersion) : version_(version) {}
  bool Since(int v) const { return version_ >= v; }
  void BE(std::uint64_t v, int bytes);
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Raw(std::string_view s) { out_.append(s.data(), s.size()); }

  // Strings and lists are written whole; the decoder enforces the limits (the client checks
  // its requests by decoding them before sending, the server its replies).
  void Str(std::string_view, const std::string& s, std::size_t /*max*/) {
    BE(s.size(), 4);
    Raw(s);
  }
  template <FieldInt T>
  void Int(std::string_view, const T& v) {
    BE(static_cast<std::uint64_t>(v), static_cast<int>(sizeof(T)));
  }
  void Real(std::string_view, const double& v);
  void Flag(std::string_view, const bool& b) { U8(b ? 1 : 0); }
  template <std::size_t N>
  void Fixed(std::string_view, const std::array<std::uint8_t, N>& a) {
    out_.append(reinterpret_cast<const char*>(a.data()), N);
  }
  template <FieldEnum E>
  void Enum(std::string_view, const E& e) { U8(static_cast<std::uint8_t>(e)); }
  void Strs(std::string_view f, const std::vector<std::string>& v, std::size_t, std::size_t max) {
    BE(v.size(), 4);
    for (const auto& s : v) Str(f, s, max);
  }
  template <class R>
  void Rec(std::string_view, const R& r) { VisitFields(*this, const_cast<R&>(r)); }
  template <class R>
  void Recs(std::string_view f, const std::vector<R>& v, std::size_t) {
    BE(v.size(), 4);
    for (const auto& r : v) Rec(f, r);
  }
  template <class R>
  void Opt(std::string_view f, const std::optional<R>& o) {
    U8(o.has_value() ? 1 : 0);
    if (o) Rec(f, *o);
  }

  std::string& out() { return out_; }

 private:
  int version_;
  std::string out_;
};

// The wire size of a default-constructed R in `version`: the smallest an encoded R can be.
template <class R>
std::size_t WireMinBytes(int version = kLatestVersion) {
  WireOut w(version);
  w.Rec("", R{});
  return w.out().size();
}

class WireIn : public BinaryIn<WireIn> {
 public:
  using BinaryIn::BinaryIn;
  static constexpr std::size_t kMinStringBytes = 4;
  template <class R>
  std::size_t MinItemBytes() const { return WireMinBytes<R>(r_.version()); }

  void Str(std::string_view f, std::string& s, std::size_t max);
  template <FieldInt T>
  void Int(std::string_view f, T& v) {
    v = static_cast<T>(r_.FixedBE(f, static_cast<int>(sizeof(T))));
  }
  void Real(std::string_view f, double& v);
  // A list count: at most `max_items`, and `min_item` bytes per item must fit in what is left.
  std::size_t Count(std::string_view f, std::size_t max_items, std::size_t min_item);
};

// ---- whole records ----

template <class R>
std::string EncodeVarint(const R& r, int version = kLatestVersion) {
  VarintOut w(version);
  w.Rec("", r);
  return std::move(w.out());
}
// Decodes all of `bytes` as one R; Corruption("<what>: ...") otherwise.
template <class R>
Status DecodeVarint(std::string_view bytes, R* out, std::string_view what, int version = kLatestVersion) {
  ByteReader r(bytes, version);
  VarintIn in(r);
  VisitFields(in, *out);
  return FinishRead(r, what);
}

template <class R>
std::string EncodeWire(const R& r, int version = kLatestVersion) {
  WireOut w(version);
  w.Rec("", r);
  return std::move(w.out());
}
template <class R>
Status DecodeWire(std::string_view bytes, R* out, std::string_view what, int version = kLatestVersion) {
  ByteReader r(bytes, version);
  WireIn in(r);
  VisitFields(in, *out);
  return FinishRead(r, what);
}

}  // namespace radlads::codec
