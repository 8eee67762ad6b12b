// One declaration of a record's fields, from which every encoding of the record is derived.
//
// A record type R declares its fields, in encoding order, with a free function found by ADL:
//
//   template <class V> void VisitFields(V& v, R& r) {
//     v.Str("id", r.id, kMaxIdBytes);       // a string and its wire limit in bytes
//     v.Int("layer", r.layer);              // any std::int32_t/int64_t/uint32_t/uint64_t
//     v.Real("throughput", r.throughput);   // a double
//     v.Flag("final", r.final);             // a bool
//     v.Fixed("nonce", r.nonce);            // a std::array<std::uint8_t, N>, N raw bytes
//     v.Enum("type", r.type);               // an enum with EnumTraits (u8 code, JSON name)
//     v.Strs("deps", r.deps, kMaxListItems, kMaxIdBytes);  // a list of strings
//     v.Rec("checkpoint", r.checkpoint);    // a nested record
//     v.Recs("files", r.files, kMaxFiles);  // a list of records
//     v.Opt("resume_from", r.resume_from);  // an optional record
//     if (v.Since(2)) v.Int("rank", r.rank); // added in version 2 of the formats carrying R
//   }
//
// The visitors in contract/codec.h turn that one declaration into the three encodings:
// - varint (the state store's event log and rows, docs/formats/state.md): LEB128 varints,
//   zigzag for signed integers, doubles as their 8-byte little-endian bit pattern;
// - wire (the coordinator protocol, docs/protocol.md): big-endian fixed-width integers and
//   lengths, with the per-field limits enforced when decoding hostile input;
// - JSON (RUN/plan.json and tools): an object keyed by the field names.
// Adding a field is one line here; the property test (tests/contract/codec_test.cpp) round-trips
// randomised records through every encoding. Changing a declared record changes the bytes of
// the formats above: bump their versions (docs/formats/versions.md).
//
// Writers visit a record through a non-const reference (VisitFields is one template for both
// directions) but never modify it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace radlads {

// Per-field limits of the wire decoder (bytes of a string, items of a list). A frame that
// exceeds one is refused before anything is allocated from its claims.
inline constexpr std::size_t kMaxIdBytes = 256;       // worker and task ids, host, names, run id
inline constexpr std::size_t kMaxTextBytes = 4096;    // reasons, error messages (clipped on send)
inline constexpr std::size_t kMaxPathBytes = 4096;    // file paths
inline constexpr std::size_t kMaxChecksumBytes = 128;
inline constexpr std::size_t kMaxFiles = 1u << 16;    // files per checkpoint
inline constexpr std::size_t kMaxValues = 1024;       // named losses / metrics
inline constexpr std::size_t kMaxListItems = 1u << 20;  // members, deps, inputs

// What the codecs need to know of an enum field: its largest code (codes are 0..kMax, one byte)
// and, for JSON, its names.
//   template <> struct EnumTraits<E> {
//     static constexpr std::uint8_t kMax = ...;
//     static std::string_view Name(E e);
//     static bool Parse(std::string_view name, E* out);
//   };
template <class E>
struct EnumTraits;

template <class T>
concept FieldInt = std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t> ||
                   std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t>;

template <class E>
concept FieldEnum = std::is_enum_v<E> && requires { EnumTraits<E>::kMax; };

}  // namespace radlads
