// The ivmc channel's wire layout: the bytes both endpoints share. Version 1.
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
// ring of ring_bytes[d] (a power of two) holding records:
//
//   +0  u64 header      bits 0..31 payload length, bits 32..63 tag(position) (never 0)
//   +8  payload         length bytes; the record ends at the next multiple of 8
//
// except that a payload of kAlignedPayloadMin bytes or more starts at the first 64-byte
// boundary after its header (payload_offset()): copies between a misaligned ring and an aligned
// user buffer run at a fraction of the speed (measured 3-4 GB/s against 24 GB/s on the
// project's machines), while a small record stays packed so that it spans as few lines as
// possible.
//
// Positions are free-running 64-bit byte counts; offset in the ring = position & (size - 1).
// A record may wrap around the end of the ring; a header never does (it is 8-aligned).
//
// The producer always leaves a zero word (the terminator) at the position where its next
// header will go, and stores it before publishing the current header. So the consumer, at
// its position, reads either 0 (nothing yet) or a complete header, and can poll the ring data
// itself instead of the producer index: one cache line crosses per message instead of two.
// This costs 8 bytes of capacity: a ring of S bytes holds at most S - 8 bytes of records.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ivmc::wire {

inline constexpr std::uint32_t kMagic = 0x434d5649; // "IVMC" in memory on little-endian hosts
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kRecordAlign = 8;
inline constexpr std::size_t kHeaderBytes = 8;
inline constexpr std::size_t kTerminatorBytes = 8;
inline constexpr std::uint32_t kMinRingBytes = 64;
inline constexpr std::uint32_t kMaxRingBytes = 1u << 30;

// An endpoint's life, stored in EndpointLine::state by the endpoint itself.
enum class EndpointState : std::uint32_t {
  absent = 0,   // nobody attached to this side yet (or the area was reset)
  live = 1,     // attached; may send and receive
  closed = 2,   // shut its sending side: no more records follow its last one; still reads
  detached = 3, // gone for good: will neither send nor read again
};

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
// The largest amount of alignment gap plus header a record can carry.
inline constexpr std::uint32_t kMaxRecordOverhead = kCacheLine + kRecordAlign;

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}
// Position of the first payload byte of the record whose header is at `position`.
constexpr std::uint64_t payload_position(std::uint64_t position, std::uint32_t length) {
  return length >= kAlignedPayloadMin ? align_up(position + kHeaderBytes, kCacheLine)
                                      : position + kHeaderBytes;
}
// Position just past the record (where the next header goes).
constexpr std::uint64_t record_end(std::uint64_t position, std::uint32_t length) {
  return align_up(payload_position(position, length) + length, kRecordAlign);
}
// The largest payload a ring of `ring_bytes` can carry: any record plus a terminator fits.
constexpr std::uint32_t max_payload_for(std::uint32_t ring_bytes) {
  return ring_bytes - kMaxRecordOverhead - kTerminatorBytes;
}

} // namespace ivmc::wire
