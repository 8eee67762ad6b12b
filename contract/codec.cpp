#include "contract/codec.h"

#include <bit>
#include <cstring>

namespace radlads::codec {

static_assert(std::endian::native == std::endian::little, "the varint codec assumes little-endian");

// ---- ByteReader ----

void ByteReader::Fail(std::string msg) {
  if (error_.empty()) error_ = std::move(msg);
  rest_ = {};
}

std::string ByteReader::Path(std::string_view field) const {
  std::string p = prefix_;
  if (field.empty() && !p.empty()) p.pop_back();  // the enclosing record itself
  p.append(field);
  return p;
}

bool ByteReader::Need(std::size_t n, std::string_view field) {
  if (!ok()) return false;
  if (rest_.size() < n) {
    Fail("truncated at field '" + Path(field) + "' (needs " + std::to_string(n) + " bytes, " +
         std::to_string(rest_.size()) + " left)");
    return false;
  }
  return true;
}

std::uint8_t ByteReader::U8(std::string_view field) {
  if (!Need(1, field)) return 0;
  const auto v = static_cast<std::uint8_t>(rest_[0]);
  rest_.remove_prefix(1);
  return v;
}

std::uint64_t ByteReader::Varint(std::string_view field) {
  std::uint64_t v = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (!Need(1, field)) return 0;
    const auto b = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    if (shift == 63 && b > 1) break;  // more than 64 bits
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      // One encoding per value: a last byte of 0 after others is an overlong form.
      if (b == 0 && shift > 0) {
        Fail("overlong varint at field '" + Path(field) + "'");
        return 0;
      }
      return v;
    }
  }
  Fail("varint overflow at field '" + Path(field) + "'");
  return 0;
}

std::int64_t ByteReader::ZigZag(std::string_view field) {
  const std::uint64_t u = Varint(field);
  return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

std::uint64_t ByteReader::FixedLE64(std::string_view field) {
  if (!Need(8, field)) return 0;
  std::uint64_t u = 0;
  std::memcpy(&u, rest_.data(), 8);
  rest_.remove_prefix(8);
  return u;
}

std::uint64_t ByteReader::FixedBE(std::string_view field, int bytes) {
  if (!Need(static_cast<std::size_t>(bytes), field)) return 0;
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<std::uint8_t>(rest_[static_cast<std::size_t>(i)]);
  rest_.remove_prefix(static_cast<std::size_t>(bytes));
  return v;
}

std::string ByteReader::Bytes(std::string_view field, std::size_t n) {
  if (!Need(n, field)) return {};
  std::string s(rest_.substr(0, n));
  rest_.remove_prefix(n);
  return s;
}

void ByteReader::Read(std::string_view field, std::uint8_t* out, std::size_t n) {
  if (!Need(n, field)) {
    std::memset(out, 0, n);
    return;
  }
  std::memcpy(out, rest_.data(), n);
  rest_.remove_prefix(n);
}

Status FinishRead(const ByteReader& r, std::string_view what) {
  if (!r.ok()) return Status::Corruption(std::string(what) + ": " + r.error());
  if (!r.AtEnd()) {
    return Status::Corruption(std::string(what) + ": " + std::to_string(r.remaining()) +
                              " trailing bytes");
  }
  return Status::Ok();
}

// ---- varint ----

void VarintOut::Varint(std::uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void VarintOut::FixedLE64(std::uint64_t v) {
  char buf[8];
  std::memcpy(buf, &v, 8);
  out_.append(buf, 8);
}

void VarintOut::Real(std::string_view, const double& v) { FixedLE64(std::bit_cast<std::uint64_t>(v)); }

void VarintIn::Str(std::string_view f, std::string& s, std::size_t) {
  const std::uint64_t n = r_.Varint(f);
  if (!r_.ok()) {
    s.clear();
    return;
  }
  if (n > r_.remaining()) {
    r_.Fail("truncated string at field '" + r_.Path(f) + "' (length " + std::to_string(n) + ", " +
            std::to_string(r_.remaining()) + " bytes left)");
    s.clear();
    return;
  }
  s = r_.Bytes(f, static_cast<std::size_t>(n));
}

std::int64_t VarintIn::Ranged(std::string_view f, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (r_.ok() && (v < lo || v > hi)) {
    r_.Fail("field '" + r_.Path(f) + "' out of int range (" + std::to_string(v) + ")");
    return 0;
  }
  return v;
}

void VarintIn::Real(std::string_view f, double& v) { v = std::bit_cast<double>(r_.FixedLE64(f)); }



std::size_t VarintIn::Count(std::string_view f, std::size_t, std::size_t) {
  const std::uint64_t n = r_.Varint(f);
  if (!r_.ok()) return 0;
  if (n > r_.remaining()) {
    r_.Fail("list length " + std::to_string(n) + " at field '" + r_.Path(f) + "' exceeds the " +
            std::to_string(r_.remaining()) + " bytes left");
    return 0;
  }
  return static_cast<std::size_t>(n);
}


// ---- wire ----

void WireOut::BE(std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) U8(static_cast<std::uint8_t>(v >> (8 * i)));
}

void WireOut::Real(std::string_view, const double& v) { BE(std::bit_cast<std::uint64_t>(v), 8); }

void WireIn::Str(std::string_view f, std::string& s, std::size_t max) {
  const std::uint64_t n = r_.FixedBE(f, 4);
  s.clear();
  if (!r_.ok()) return;
  if (n > max) {
    r_.Fail("field '" + r_.Path(f) + "' is " + std::to_string(n) + " bytes, more than its " +
            std::to_string(max) + "-byte limit");
    return;
  }
  s = r_.Bytes(f, static_cast<std::size_t>(n));
}

void WireIn::Real(std::string_view f, double& v) { v = std::bit_cast<double>(r_.FixedBE(f, 8)); }



std::size_t WireIn::Count(std::string_view f, std::size_t max_items, std::size_t min_item) {
  const std::uint64_t n = r_.FixedBE(f, 4);
  if (!r_.ok()) return 0;
  if (n > max_items) {
    r_.Fail("list '" + r_.Path(f) + "' has " + std::to_string(n) + " items, more than its " +
            std::to_string(max_items) + "-item limit");
    return 0;
  }
  if (n * min_item > r_.remaining()) {
    r_.Fail("list '" + r_.Path(f) + "' claims " + std::to_string(n) + " items but only " +
            std::to_string(r_.remaining()) + " bytes are left");
    return 0;
  }
  return static_cast<std::size_t>(n);
}


}  // namespace radlads::codec
