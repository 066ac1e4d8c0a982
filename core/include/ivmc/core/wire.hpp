// The ivmc channel's wire layout: the bytes both endpoints share. Version 2.
//
// This header is the whole ABI between two endpoints (two processes, two guests, two domains):
// plain standard-layout structs of fixed-width integers, with every offset pinned by
// static_assert. The library API (channel.hpp) is separate from it. Both sides access the
// fields only through std::atomic_ref; whatever the peer writes here is hostile input.
//
// A channel area is laid out as:
//
//   offset 0                    ControlArea (704 bytes, 11 cache lines)
//   ring_offset[0]              ring 0 data: side 0 produces, side 1 consumes
//   ring_offset[1]              ring 1 data: side 1 produces, side 0 consumes
//
// Side 0 is the creator (it initialises the area), side 1 the attacher. Each ring is a byte
// ring of ring_bytes[d] (a power of two) holding records. A record's *prefix* is its header,
// followed, when the channel checks records (Identity::features has kFeatureRecordCrc32c), by a
// check word:
//
//   +0  u64 header      bits 0..31 payload length, bits 32..63 tag(position) (never 0)
//   +8  u64 check       only in checked channels: bits 0..31 CRC32C (Castagnoli) of the header's
//                       8 bytes (little-endian) then the payload's; bits 32..63 zero
//   +8 or +16  payload  length bytes
//
// Where a record lies (record_start, payload_position, record_end below):
// - A *small* record (prefix + payload <= 64 bytes: a payload of at most 56 bytes, 48 when
//   checked) occupies exactly one cache line: it starts at the position if it fits in the rest
//   of that position's line, otherwise at the next line start, and it ends at the end of its
//   line. When it starts at the next line, the producer writes a *pad* header at the position
//   (tag of the position, length kPadLength) to say so; the consumer accepts a pad only where
//   this rule calls for one, followed by the small record it announces.
// - A payload of kAlignedPayloadMin bytes or more starts at the first 64-byte boundary after
//   the prefix: copies between a misaligned ring and an aligned user buffer run at a fraction of
//   the speed (measured 3-4 GB/s against 24 GB/s on the project's machines).
// - Any other payload follows its prefix; the record ends at the next multiple of 8.
// So a message of up to 56 bytes crosses one line per transfer, not two (issue 18), at the cost
// of a full line of ring capacity per small message.
//
// Positions are free-running 64-bit byte counts; offset in the ring = position & (size - 1).
// A record may wrap around the end of the ring; a header never does (it is 8-aligned).
//
// The producer always leaves a zero word (the terminator) at the position where its next
// header will go, and stores it before publishing the current header. So the consumer, at
// its position, reads either 0 (nothing yet) or a complete header (or pad), and can poll the
// ring data itself instead of the producer index: one cache line crosses per message instead of
// two. This costs 8 bytes of capacity: a ring of S bytes holds at most S - 8 bytes of records.
// A record after a pad is written, header included, before the pad is published (release).
//
// What an honest producer can leave visible: it publishes a record's header (release) before it
// stores the `produced` index past it (release). So a consumer that acquires `produced` beyond
// its position and then still reads 0 there sees what no honest producer leaves: a protocol
// violation, found without waiting. Likewise a peer that says it closed (state closed or
// detached) has published every record first: `produced` must equal where its records end.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ivmc::wire {

inline constexpr std::uint32_t kMagic = 0x434d5649; // "IVMC" in memory on little-endian hosts
inline constexpr std::uint16_t kVersion =
    2; // 2: small records in one line (pads), record checks, failed
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kRecordAlign = 8;
inline constexpr std::size_t kHeaderBytes = 8;
inline constexpr std::size_t kTerminatorBytes = 8;
inline constexpr std::uint32_t kCheckBytes = 8;
inline constexpr std::uint32_t kMinRingBytes = 128; // a padded small record and its terminator fit
inline constexpr std::uint32_t kMaxRingBytes = 1u << 30;

// An endpoint's life, stored in EndpointLine::state by the endpoint itself.
enum class EndpointState : std::uint32_t {
  absent = 0,   // nobody attached to this side yet (or the area was reset)
  live = 1,     // attached; may send and receive
  closed = 2,   // shut its sending side: no more records follow its last one; still reads
  detached = 3, // gone for good: will neither send nor read again
  failed = 4,   // found the shared area broken (a protocol violation) and left: will neither
                // send nor read again; its peer ends with protocol_violation too
};
// States only move forward: absent -> live -> closed -> detached, and any of them -> failed. A
// state that moves back is a protocol violation (see Channel).

// Identity::features bits: what every record of the channel carries. Unknown bits are refused.
inline constexpr std::uint32_t kFeatureRecordCrc32c = 1u << 0; // a check word after each header
inline constexpr std::uint32_t kKnownFeatures = kFeatureRecordCrc32c;

// Line 0. Written once by the creator, then `magic` is stored last with release so that an
// attacher that acquires the magic sees every other field. Never changes afterwards.
struct alignas(kCacheLine) Identity {
  std::uint32_t magic;          // kMagic once the area is initialised, 0 before
  std::uint16_t version;        // kVersion
  std::uint16_t control_bytes;  // sizeof(ControlArea), a cross-check of the layout
  std::uint32_t ring_bytes[2];  // size of ring d's data, a power of two
  std::uint32_t max_message;    // largest payload either side may send
  std::uint32_t notify_policy;  // NotifyPolicy (channel.hpp): who sleeps, who rings
  std::uint64_t ring_offset[2]; // start of ring d's data from the start of the area
  std::uint64_t total_bytes;    // control + both rings: the extent of the area
  std::uint64_t generation;     // bumped at every (re)creation: tells a new area from an old
  std::uint32_t features;       // kFeature* bits, chosen by the creator; both ends must agree
  std::uint32_t reserved0;      // 0
};

// Lines 1-2, one per side, written only by that side: its liveness.
struct alignas(kCacheLine) EndpointLine {
  std::uint32_t state;            // EndpointState
  std::uint32_t reserved0;        // 0
  std::uint64_t heartbeat;        // incremented by the owner while alive; a stopped counter
                                  // means a dead (or wedged) peer
  std::uint64_t platform_address; // opaque to the core: how to ring this side (e.g. ivshmem
                                  // peer id and vectors, Xen domid and port)
};

// One 64-bit index alone on its line, so that the producer's and the consumer's writes never
// invalidate each other's lines (no false sharing).
struct alignas(kCacheLine) IndexLine {
  std::uint64_t value;
};

// One flag alone on its line: it is written rarely (before sleeping) but read by the other
// side on every send in blocking modes, so it must not share a line with a busy index.
struct alignas(kCacheLine) FlagLine {
  std::uint32_t value; // 1 = "ring me", 0 = not waiting
};

// Per direction d: side d produces, side 1 - d consumes.
struct Direction {
  IndexLine produced;    // producer: position after its last published record
  IndexLine consumed;    // consumer: position up to which space may be reused (published lazily)
  FlagLine data_wanted;  // consumer: set before it sleeps waiting for data
  FlagLine space_wanted; // producer: set before it sleeps waiting for space
};

struct ControlArea {
  Identity identity;        // line 0
  EndpointLine endpoint[2]; // lines 1-2
  Direction direction[2];   // lines 3-10
};

static_assert(sizeof(Identity) == kCacheLine);
static_assert(sizeof(EndpointLine) == kCacheLine);
static_assert(sizeof(IndexLine) == kCacheLine && sizeof(FlagLine) == kCacheLine);
static_assert(offsetof(Identity, ring_bytes) == 8);
static_assert(offsetof(Identity, ring_offset) == 24);
static_assert(offsetof(Identity, generation) == 48);
static_assert(offsetof(Identity, features) == 56);
static_assert(offsetof(ControlArea, endpoint) == 64);
static_assert(offsetof(ControlArea, direction) == 192);
static_assert(sizeof(Direction) == 4 * kCacheLine);
static_assert(sizeof(ControlArea) == 11 * kCacheLine);

// A record header: length in the low half, the tag of its position in the high half. The tag
// has its top bit set, so a header is never 0 (0 is the terminator: "nothing here yet"), and it
// lets the consumer reject a header written for another position (a lapped or hostile write).
constexpr std::uint32_t header_tag(std::uint64_t position) {
  return static_cast<std::uint32_t>(position >> 3) | 0x8000'0000u;
}
constexpr std::uint64_t make_header(std::uint64_t position, std::uint32_t length) {
  return (std::uint64_t{header_tag(position)} << 32) | length;
}
constexpr std::uint32_t header_length(std::uint64_t header) {
  return static_cast<std::uint32_t>(header);
}
constexpr std::uint32_t header_tag_of(std::uint64_t header) {
  return static_cast<std::uint32_t>(header >> 32);
}
inline constexpr std::uint32_t kAlignedPayloadMin = 256;
// The length field of a pad header: the small record announced starts at the next line.
inline constexpr std::uint32_t kPadLength = 0xffff'ffffu;
constexpr std::uint64_t make_pad(std::uint64_t position) {
  return make_header(position, kPadLength);
}

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}
// Bytes before a record's payload: the header, and the check word in checked channels.
constexpr std::uint32_t record_prefix(std::uint32_t features) {
  return (features & kFeatureRecordCrc32c) != 0 ? kHeaderBytes + kCheckBytes : kHeaderBytes;
}
// Small records (prefix and payload within one line) take exactly one cache line.
constexpr bool is_small(std::uint32_t length, std::uint32_t prefix) {
  return length <= kCacheLine - prefix;
}
// Where the header of a record for `position` goes: the position itself, or the next line start
// when a small record would cross a line boundary there (a pad at `position` then says so).
constexpr std::uint64_t record_start(std::uint64_t position, std::uint32_t length,
                                     std::uint32_t prefix = kHeaderBytes) {
  return is_small(length, prefix) && (position & (kCacheLine - 1)) + prefix + length > kCacheLine
             ? align_up(position, kCacheLine)
             : position;
}
// Position of the first payload byte of the record for `position`.
constexpr std::uint64_t payload_position(std::uint64_t position, std::uint32_t length,
                                         std::uint32_t prefix = kHeaderBytes) {
  const std::uint64_t start = record_start(position, length, prefix);
  return length >= kAlignedPayloadMin ? align_up(start + prefix, kCacheLine) : start + prefix;
}
// Position just past the record for `position` (where the next header goes).
constexpr std::uint64_t record_end(std::uint64_t position, std::uint32_t length,
                                   std::uint32_t prefix = kHeaderBytes) {
  const std::uint64_t end = payload_position(position, length, prefix) + length;
  return is_small(length, prefix) ? align_up(end, kCacheLine) : align_up(end, kRecordAlign);
}
// The most a record adds to its payload, from its position to its end: the prefix, the gap up
// to the next line for an aligned payload (at most 56 bytes) and the rounding to 8. (A small
// record adds at most 56 + 64 - length, less than this for any length the ring allows.)
constexpr std::uint32_t max_record_overhead(std::uint32_t prefix) {
  return prefix + (kCacheLine - kRecordAlign) + kRecordAlign;
}
inline constexpr std::uint32_t kMaxRecordOverhead = max_record_overhead(kHeaderBytes);
// The largest payload a ring of `ring_bytes` can carry: any record plus a terminator fits.
constexpr std::uint32_t max_payload_for(std::uint32_t ring_bytes,
                                        std::uint32_t prefix = kHeaderBytes) {
  return ring_bytes - max_record_overhead(prefix) - kTerminatorBytes;
}
static_assert(max_payload_for(kMinRingBytes, kHeaderBytes + kCheckBytes) > 0);
static_assert(record_end(56, 56) == 128 && record_start(56, 56) == 64); // padded: one line
static_assert(record_end(8, 48) == 64 && record_start(8, 48) == 8);     // fits: no pad
static_assert(record_end(0, 64) == 72);                                 // not small: packed

} // namespace ivmc::wire
