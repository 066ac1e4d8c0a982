// The channel's zero-copy calls in one process: reserve/commit and peek/release carry the same
// records as send/recv, at every offset and across the ring's end, interleave with them, refuse
// calls out of order, and keep the hostile-input rules (validated once; no view outlives a
// violation or close).
#include "ivmc/core/channel.hpp"

#include "../support/channel_pair.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

// Copies `msg` into the reserved space, first span then second.
void fill(const WritableRecord& space, std::span<const std::byte> msg) {
  REQUIRE(space.size() == msg.size());
  if (!space.first.empty()) std::memcpy(space.first.data(), msg.data(), space.first.size());
  if (!space.second.empty()) {
    std::memcpy(space.second.data(), msg.data() + space.first.size(), space.second.size());
  }
}

std::vector<std::byte> gather(const ReadableRecord& record) {
  std::vector<std::byte> out(record.first.begin(), record.first.end());
  out.insert(out.end(), record.second.begin(), record.second.end());
  return out;
}

Errc send_in_place(Channel& ch, std::span<const std::byte> msg, Nanos timeout = 0) {
  WritableRecord space;
  if (const Errc e = ch.reserve(msg.size(), space, timeout); e != Errc::ok) return e;
  fill(space, msg);
  return ch.commit();
}

// Offset of a span in ring 0 of the pair's area (-1 if it lies elsewhere).
std::ptrdiff_t ring0_offset(const Pair& p, const void* where, std::uint32_t ring_bytes) {
  const auto* ring0 = p.area.bytes + 4096;
  const auto* b = static_cast<const std::byte*>(where);
  return b >= ring0 && b < ring0 + ring_bytes ? b - ring0 : -1;
}

} // namespace

TEST_CASE("reserve/commit and peek/release carry the same records as send and recv",
          "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  std::vector<std::byte> buf(1024);
  std::size_t n = 0;
  const auto a = pattern(100, 1), b = pattern(300, 2);

  REQUIRE(send_in_place(*p.a, bytes_of(a)) == Errc::ok); // zero-copy in, copy out
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  REQUIRE(n == a.size());
  CHECK(std::memcmp(buf.data(), a.data(), n) == 0);

  REQUIRE(p.a->send(bytes_of(b), 0) == Errc::ok); // copy in, zero-copy out
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(gather(r) == b);
  // The view is the ring itself: the 300-byte payload starts on a cache line, as send puts it.
  const auto off = ring0_offset(p, r.first.data(), 1024);
  CHECK(off >= 0);
  CHECK(off % 64 == 0);
  REQUIRE(p.b->release() == Errc::ok);
  CHECK(p.b->peek(r, 0) == Errc::would_block);

  const auto stats_a = p.a->stats(), stats_b = p.b->stats();
  CHECK(stats_a.messages_sent == 2);
  CHECK(stats_a.bytes_sent == 400);
  CHECK(stats_b.messages_received == 2);
  CHECK(stats_b.bytes_received == 400);
}

TEST_CASE("zero-copy and copying calls interleave in one stream, in order",
          "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::polling, 512));
  std::vector<std::byte> buf(512);
  std::uint32_t seed = 0;
  for (int i = 0; i < 3000; ++i) { // many laps of a 512-byte ring
    const auto msg = pattern(static_cast<std::size_t>(i * 29) % 300, ++seed);
    const bool in_place = (i % 3) != 1, read_in_place = (i % 4) < 2;
    REQUIRE((in_place ? send_in_place(*p.a, bytes_of(msg)) : p.a->send(bytes_of(msg), 0)) ==
            Errc::ok);
    if (read_in_place) {
      ReadableRecord r;
      REQUIRE(p.b->peek(r, 0) == Errc::ok);
      REQUIRE(gather(r) == msg);
      REQUIRE(p.b->release() == Errc::ok);
    } else {
      std::size_t n = 0;
      REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
      REQUIRE(n == msg.size());
      REQUIRE(std::memcmp(buf.data(), msg.data(), n) == 0);
    }
  }
  std::size_t n = 0;
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
}

TEST_CASE("zero-copy records at every 8-byte offset, across the ring's end",
          "[channel][zero_copy]") {
  // A record whose payload crosses the ring's end comes back as two spans, in order: the
  // first ends at the ring's end and the second starts at the ring's start. A payload of 256
  // bytes or more is reserved in place (the same spans); a smaller one is staged off the ring
  // and reaches it only at commit().
  constexpr std::uint32_t kRing = 512;
  std::uint32_t seed = 0;
  for (std::size_t size : {0, 1, 8, 48, 55, 56, 57, 64, 120, 255, 256, 300}) {
    for (std::uint64_t offset = 0; offset < kRing; offset += 8) {
      Pair p(config(NotifyPolicy::polling, kRing));
      const std::byte* ring0 = p.area.bytes + 4096;
      std::vector<std::byte> buf(kRing);
      std::size_t n = 0;
      // Move both sides to `offset` (or once round the ring to it) with packed filler records.
      std::uint64_t pos = 0;
      advance_to(*p.a, *p.b, pos, offset == 0 || offset >= 72 ? offset : offset + kRing);
      const auto msg = pattern(size, ++seed);
      WritableRecord space;
      REQUIRE(p.a->reserve(size, space, 0) == Errc::ok);
      const std::uint64_t payload =
          wire::payload_position(pos, static_cast<std::uint32_t>(size)); // after a pad if any
      const auto at = static_cast<std::ptrdiff_t>(payload % kRing);
      const bool wraps = (payload % kRing) + size > kRing;
      const bool in_place = size >= wire::kAlignedPayloadMin;
      REQUIRE(space.size() == size);
      if (in_place) {
        REQUIRE(ring0_offset(p, space.first.data(), kRing) == at);
        REQUIRE(space.second.empty() == !wraps);
        if (wraps) {
          REQUIRE(ring0_offset(p, space.second.data(), kRing) == 0);
          REQUIRE(space.first.size() == kRing - payload % kRing);
        }
      } else {
        REQUIRE(ring0_offset(p, space.first.data(), kRing) == -1);
        REQUIRE(space.second.empty());
        REQUIRE(space.second.data() != nullptr); // safe to hand to memcpy with a length of 0
      }
      const std::vector<std::byte> before(ring0, ring0 + kRing);
      fill(space, bytes_of(msg));
      if (!in_place) REQUIRE(std::memcmp(ring0, before.data(), kRing) == 0); // staged
      ReadableRecord r;
      REQUIRE(p.b->peek(r, 0) == Errc::would_block); // nothing before commit
      REQUIRE(p.a->commit() == Errc::ok);
      REQUIRE(p.b->peek(r, 0) == Errc::ok);
      REQUIRE(ring0_offset(p, r.first.data(), kRing) == at); // a view is always the ring
      REQUIRE(r.second.empty() == !wraps);
      if (wraps) REQUIRE(ring0_offset(p, r.second.data(), kRing) == 0);
      REQUIRE(gather(r) == msg);
      REQUIRE(p.b->release() == Errc::ok);
      // The stream goes on normally after it.
      const auto next = pattern(40, ++seed);
      REQUIRE(p.a->send(bytes_of(next), 0) == Errc::ok);
      REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
      REQUIRE(n == next.size());
      REQUIRE(std::memcmp(buf.data(), next.data(), n) == 0);
    }
  }
}

TEST_CASE("reserve larger than max_message is refused and publishes nothing",
          "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::on_demand, 1024));
  WritableRecord space;
  CHECK(p.a->reserve(p.a->max_message() + 1, space, 0) == Errc::message_too_large);
  CHECK(p.a->stats().too_large == 1);
  CHECK(p.a->commit() == Errc::misuse); // nothing was reserved
  ReadableRecord r;
  CHECK(p.b->peek(r, 0) == Errc::would_block);
  REQUIRE(p.a->reserve(p.a->max_message(), space, 0) == Errc::ok); // the largest fits
  CHECK(space.size() == p.a->max_message());
  REQUIRE(p.a->commit() == Errc::ok);
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(r.size() == p.a->max_message());
}

TEST_CASE("calls out of order are misuse and change nothing", "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  const auto msg = pattern(20, 7);
  CHECK(p.a->commit() == Errc::misuse);  // commit without reserve
  CHECK(p.b->release() == Errc::misuse); // release without peek

  WritableRecord space;
  REQUIRE(p.a->reserve(20, space, 0) == Errc::ok);
  CHECK(p.a->send(bytes_of(msg), 0) == Errc::misuse); // the reservation holds the next place
  fill(space, bytes_of(msg));
  REQUIRE(p.a->commit() == Errc::ok);
  CHECK(p.a->commit() == Errc::misuse); // a reservation commits once

  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(p.b->recv(buf, n, 0) == Errc::misuse); // the view holds the next record
  ReadableRecord again;
  REQUIRE(p.b->peek(again, 0) == Errc::ok); // peek again: the same record
  CHECK(again.first.data() == r.first.data());
  CHECK(again.size() == 20);
  REQUIRE(p.b->release() == Errc::ok);
  CHECK(p.b->release() == Errc::misuse);
  CHECK(p.b->stats().messages_received == 1);
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
}

TEST_CASE("reserving again abandons the outstanding reservation", "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  const auto first = pattern(500, 1), second = pattern(10, 2);
  WritableRecord space;
  REQUIRE(p.a->reserve(first.size(), space, 0) == Errc::ok);
  fill(space, bytes_of(first));
  REQUIRE(p.a->reserve(second.size(), space, 0) == Errc::ok);
  fill(space, bytes_of(second));
  REQUIRE(p.a->commit() == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(gather(r) == second);
  REQUIRE(p.b->release() == Errc::ok);
  CHECK(p.b->peek(r, 0) == Errc::would_block);
  CHECK(p.a->stats().messages_sent == 1);
}

TEST_CASE("reserve waits for space like send, and a view holds its space until release",
          "[channel][zero_copy]") {
  Pair p(config(NotifyPolicy::on_demand, 1024));
  const auto msg = pattern(200, 4); // 208-byte records: four fit in 1024 - 8
  int sent = 0;
  while (send_in_place(*p.a, bytes_of(msg)) == Errc::ok) ++sent;
  CHECK(sent == 4);
  WritableRecord space;
  CHECK(p.a->reserve(200, space, 0) == Errc::would_block);
  CHECK(p.a->stats().ring_full >= 1);
  // Viewing every record frees nothing: the views' space is still the receiver's.
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(p.a->reserve(200, space, 0) == Errc::would_block);
  // A blocked reserve in another thread goes on once the receiver releases.
  std::thread sender([&] {
    WritableRecord s;
    REQUIRE(p.a->reserve(200, s, 5'000 * ms) == Errc::ok);
    fill(s, bytes_of(msg));
    REQUIRE(p.a->commit() == Errc::ok);
  });
  for (int i = 0; i < 5; ++i) {
    REQUIRE(p.b->peek(r, 5'000 * ms) == Errc::ok);
    REQUIRE(gather(r) == msg);
    REQUIRE(p.b->release() == Errc::ok);
  }
  sender.join();
  CHECK(p.b->peek(r, 0) == Errc::would_block);
}

TEST_CASE("a view keeps the header it validated when the peer rewrites it",
          "[channel][zero_copy][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  auto* ring0 = p.area.bytes + 4096;
  const auto msg = pattern(16, 1), next = pattern(24, 2);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  REQUIRE(p.a->send(bytes_of(next), 0) == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  // The peer now claims the record is 900 bytes long (a valid header for the position).
  const std::uint64_t forged = wire::make_header(0, 900);
  std::memcpy(ring0, &forged, 8);
  ReadableRecord again;
  REQUIRE(p.b->peek(again, 0) == Errc::ok);
  CHECK(again.size() == 16); // read once, at peek
  REQUIRE(p.b->release() == Errc::ok);
  REQUIRE(p.b->peek(r, 0) == Errc::ok); // the next record is where the validated length says
  CHECK(gather(r) == next);
}

TEST_CASE("a violation found mid-view ends the view", "[channel][zero_copy][hostile]") {
  Pair p(config(NotifyPolicy::polling, 256));
  const auto msg = pattern(100, 1);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  // B's own sending side meets a forged consumed index (direction[1].consumed, A's to write).
  REQUIRE(p.b->send(bytes_of(msg), 0) == Errc::ok);
  REQUIRE(p.b->send(bytes_of(msg), 0) == Errc::ok); // the 256-byte ring is full now
  const std::uint64_t forged = 999'999;
  std::memcpy(p.area.bytes + 192 + 256 + 64, &forged, 8);
  CHECK(p.b->send(bytes_of(msg), 0) == Errc::protocol_violation);
  CHECK(p.b->release() == Errc::protocol_violation); // the view ends with the endpoint
  CHECK(p.b->release() == Errc::misuse);             // and is gone
  CHECK(p.b->peek(r, 0) == Errc::protocol_violation);
  CHECK(p.b->stats().messages_received == 0);
}

TEST_CASE("a forged header met by peek is a violation, as for recv",
          "[channel][zero_copy][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  const std::uint64_t forged = wire::make_header(0, 5000); // beyond max_message
  std::memcpy(p.area.bytes + 4096, &forged, 8);
  ReadableRecord r;
  CHECK(p.b->peek(r, 0) == Errc::protocol_violation);
  CHECK(p.b->error_detail().find("exceeds max_message") != std::string::npos);
  CHECK(p.b->release() == Errc::misuse); // no view was handed out
}

TEST_CASE("close with a view outstanding ends the view and counts it discarded",
          "[channel][zero_copy][lifecycle]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  const auto msg = pattern(40, 1);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  REQUIRE(p.b->close(10 * ms) == Errc::ok); // b sent nothing: nothing to drain
  CHECK(p.b->release() == Errc::closed);
  CHECK(p.b->peek(r, 0) == Errc::closed);
  CHECK(p.b->stats().discarded_on_close == 64); // the viewed record: a small one, its line
  CHECK(p.b->stats().messages_received == 0);
}

TEST_CASE("a view outstanding when close() is called is also ended by peek",
          "[channel][zero_copy][lifecycle]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  REQUIRE(p.a->send(bytes_of(pattern(40, 1)), 0) == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  REQUIRE(p.b->close(10 * ms) == Errc::ok);
  CHECK(p.b->peek(r, 0) == Errc::closed); // not the old view again
  CHECK(p.b->release() == Errc::misuse);  // peek ended it
}

TEST_CASE("a dead peer's complete records are viewed and released to the end",
          "[channel][zero_copy][liveness]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  const auto one = pattern(30, 1), two = pattern(50, 2);
  REQUIRE(p.a->send(bytes_of(one), 0) == Errc::ok);
  REQUIRE(p.a->send(bytes_of(two), 0) == Errc::ok);
  ReadableRecord r;
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  p.b->mark_peer_dead("test: the peer's process is gone");
  CHECK(p.b->release() == Errc::ok); // its bytes were complete
  REQUIRE(p.b->peek(r, 0) == Errc::ok);
  CHECK(gather(r) == two);
  CHECK(p.b->release() == Errc::ok);
  CHECK(p.b->peek(r, 0) == Errc::peer_dead);
  // The sending side of a dead peer's channel refuses reservations.
  WritableRecord space;
  CHECK(p.b->reserve(8, space, 0) == Errc::peer_dead);
}

TEST_CASE("commit after shutdown_send or a failure publishes nothing and says why",
          "[channel][zero_copy][lifecycle]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  WritableRecord space;
  ReadableRecord r;
  SECTION("shutdown_send") {
    REQUIRE(p.a->reserve(16, space, 0) == Errc::ok);
    REQUIRE(p.a->shutdown_send() == Errc::ok);
    CHECK(p.a->commit() == Errc::closed);
    CHECK(p.a->reserve(16, space, 0) == Errc::closed);
    CHECK(p.b->peek(r, 0) == Errc::peer_closed); // the stream ended with nothing in it
  }
  SECTION("the peer died") {
    REQUIRE(p.a->reserve(16, space, 0) == Errc::ok);
    p.a->mark_peer_dead("test");
    CHECK(p.a->commit() == Errc::peer_dead);
    CHECK(p.a->commit() == Errc::misuse); // the reservation is gone
    CHECK(p.b->peek(r, 0) == Errc::would_block);
  }
}

TEST_CASE("zero-copy streams intact data between two threads under every policy",
          "[channel][zero_copy]") {
  for (auto policy : {NotifyPolicy::polling, NotifyPolicy::on_demand, NotifyPolicy::per_packet,
                      NotifyPolicy::atw, NotifyPolicy::spin_then_block}) {
    Pair p(config(policy, 4096));
    constexpr int kCount = 5000;
    std::thread sender([&] {
      for (int i = 0; i < kCount; ++i) {
        const auto msg = pattern(static_cast<std::size_t>(i * 37) % 1500, i);
        REQUIRE(send_in_place(*p.a, bytes_of(msg), 5'000 * ms) == Errc::ok);
      }
      p.a->flush();
    });
    for (int i = 0; i < kCount; ++i) {
      ReadableRecord r;
      REQUIRE(p.b->peek(r, 5'000 * ms) == Errc::ok);
      REQUIRE(gather(r) == pattern(static_cast<std::size_t>(i * 37) % 1500, i));
      REQUIRE(p.b->release() == Errc::ok);
    }
    sender.join();
  }
}
