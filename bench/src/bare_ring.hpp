// A bare two-line ring: the floor for what a ring of the channel's format can do between the
// same two CPUs, measured so that the channel's 64 B round trip can be judged against it in the
// same run (issue 18: polled 64 B RTT <= 1.1x this ring's). Not a product: it carries exactly
// one 64-byte message in flight per direction (a ping-pong), so it needs no flow control, no
// index publication, no validation, no counters and no liveness; all the channel has and this
// lacks is what the channel may cost on top of moving the same lines. Internal to bench/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ivmc::bench {

// The records are laid out as the channel's 64 B records (wire.hpp): an 8-byte header then the
// 64-byte payload, 72 bytes at 8-byte alignment, so a record spans two cache lines and its
// start moves through every 8-byte offset of a line. The producer stores the zero terminator
// at the next record's place, the payload beyond the header's line, the payload in the
// header's line, then the header (its line written last); the consumer polls the header word
// with one PAUSE per poll and touches the line after the header's while it waits.
//
// Create before fork, like LineProbe: each side then calls its role with the same iteration
// counts in the same order.
class BareRing {
public:
  static constexpr std::size_t kPayload = 64;

  explicit BareRing(std::size_t ring_bytes); // per direction; at least 256, a multiple of 64
  ~BareRing();
  BareRing(const BareRing&) = delete;
  BareRing& operator=(const BareRing&) = delete;

  // Round trips in ns: a 64-byte message out, its echo back. Throws if an echo is not the
  // message sent (the ring carried the wrong bytes).
  std::vector<double> parent_round(int iterations);
  void child_round(int iterations);

private:
  // One direction's cursor, private to the side that moves it (copied by fork).
  struct Cursor {
    std::size_t offset = 0;  // where the next record's header goes (or is awaited)
    std::uint64_t count = 0; // records so far: the next header carries count + 1
  };
  void send(int ring, Cursor& at, const std::byte* payload);
  void recv(int ring, Cursor& at, std::byte* payload);
  std::size_t next(std::size_t offset) const;

  std::byte* base_; // two rings of ring_bytes_, ring 0 parent -> child, 1 back
  std::size_t ring_bytes_;
  Cursor parent_tx_, parent_rx_, child_tx_, child_rx_;
};

} // namespace ivmc::bench
