// The channel's behaviour in one process: framing, wrap-around, flow control, every
// notification policy, lifecycle, liveness, and what a hostile peer can and cannot do.
#include "ivmc/core/channel.hpp"
#include "ivmc/core/crc32c.hpp"
#include "ivmc/core/trust.hpp"

#include "../support/channel_pair.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

using namespace ivmc;
using namespace ivmc::test;

namespace {

// Streams `count` messages of varying size from `tx` to `rx` on two threads; checks every byte.
void stream(Channel& tx, Channel& rx, int count, std::size_t max_size) {
  std::thread sender([&] {
    for (int i = 0; i < count; ++i) {
      const auto msg = pattern(static_cast<std::size_t>(i * 37) % (max_size + 1), i);
      REQUIRE(tx.send(bytes_of(msg), 5'000 * ms) == Errc::ok);
    }
  });
  std::vector<std::byte> buf(max_size);
  for (int i = 0; i < count; ++i) {
    std::size_t n = 0;
    const Errc e = rx.recv(buf, n, 5'000 * ms);
    REQUIRE(e == Errc::ok);
    const auto want = pattern(static_cast<std::size_t>(i * 37) % (max_size + 1), i);
    REQUIRE(n == want.size());
    REQUIRE(std::memcmp(buf.data(), want.data(), n) == 0);
  }
  sender.join();
}

} // namespace

TEST_CASE("create writes the documented wire layout", "[channel][wire]") {
  Pair p(config(NotifyPolicy::on_demand, 1024));
  const auto* raw = p.area.bytes;
  std::uint32_t magic, ring0, max_message, policy;
  std::uint64_t offset1;
  std::memcpy(&magic, raw + 0, 4);
  std::memcpy(&ring0, raw + 8, 4);
  std::memcpy(&max_message, raw + 16, 4);
  std::memcpy(&policy, raw + 20, 4);
  std::memcpy(&offset1, raw + 32, 8);
  CHECK(magic == wire::kMagic);
  CHECK(std::memcmp(raw, "IVMC", 4) == 0);
  CHECK(ring0 == 1024);
  CHECK(max_message == 1024 - 80); // ring - header - widest alignment gap - terminator
  CHECK(policy == static_cast<std::uint32_t>(NotifyPolicy::on_demand));
  CHECK(offset1 == 4096 + 1024);
  // Both endpoints live: endpoint lines at 64 and 128.
  std::uint32_t s0, s1;
  std::memcpy(&s0, raw + 64, 4);
  std::memcpy(&s1, raw + 128, 4);
  CHECK(s0 == 1);
  CHECK(s1 == 1);
}

TEST_CASE("messages keep their boundaries across many wrap-arounds", "[channel]") {
  Pair p(config(NotifyPolicy::polling, 256));
  std::vector<std::byte> buf(256);
  for (int i = 0; i < 2000; ++i) {
    const auto msg = pattern(static_cast<std::size_t>(i) % 97, i);
    REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    std::size_t n = 0;
    REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
    REQUIRE(n == msg.size());
    REQUIRE(std::memcmp(buf.data(), msg.data(), n) == 0);
  }
  std::size_t n = 0;
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
  CHECK(p.b->stats().messages_received == 2000);
}

TEST_CASE("a gathered message arrives whole wherever head, body, line and ring end fall",
          "[channel]") {
  // The sender writes the part of the payload that shares the header's line last; every split
  // of head and body, at every 8-byte offset in a line (a small message there is padded to the
  // next line when it would cross one) and across the ring's end, must still deliver the bytes
  // in order.
  Pair p(config(NotifyPolicy::polling, 512));
  std::vector<std::byte> buf(512);
  std::uint32_t seed = 0;
  std::uint64_t pos = 0;
  for (std::size_t size : {0, 1, 7, 8, 48, 55, 56, 57, 63, 64, 65, 120, 200, 255, 256, 300}) {
    for (int i = 0; i < 40; ++i) {
      advance_to(*p.a, *p.b, pos, at_line_offset(pos, (static_cast<std::uint64_t>(i) % 8) * 8));
      const auto msg = pattern(size, ++seed);
      const std::size_t split = size == 0 ? 0 : (static_cast<std::size_t>(i) * 13) % (size + 1);
      const std::span<const std::byte> all = bytes_of(msg);
      REQUIRE(p.a->send(all.first(split), all.subspan(split), 0) == Errc::ok);
      std::size_t n = 0;
      REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
      REQUIRE(n == size);
      REQUIRE(std::memcmp(buf.data(), msg.data(), n) == 0);
      pos = wire::record_end(pos, static_cast<std::uint32_t>(size));
    }
  }
}

TEST_CASE("a one-buffer message of every length up to 130 arrives whole at every line offset",
          "[channel]") {
  // send() and recv() of one buffer take their own short path, with inline copies for up to 64
  // bytes (two moves that overlap in the middle): every length at every 8-byte offset in a line
  // and across the ring's end must deliver exactly its bytes, and write nothing past them.
  Pair p(config(NotifyPolicy::polling, 512));
  constexpr std::byte guard{0xa5};
  std::uint32_t seed = 0;
  std::uint64_t pos = 0;
  for (std::size_t size = 0; size <= 130; ++size) {
    for (std::uint64_t offset = 0; offset < wire::kCacheLine; offset += 8) {
      advance_to(*p.a, *p.b, pos, at_line_offset(pos, offset));
      const auto msg = pattern(size, ++seed);
      REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
      std::vector<std::byte> buf(size + 16, guard);
      std::size_t n = 0;
      REQUIRE(p.b->recv(std::span(buf).first(size), n, 0) == Errc::ok);
      REQUIRE(n == size);
      REQUIRE(std::memcmp(buf.data(), msg.data(), n) == 0);
      for (std::size_t i = size; i < buf.size(); ++i) REQUIRE(buf[i] == guard);
      pos = wire::record_end(pos, static_cast<std::uint32_t>(size));
    }
  }
  CHECK(p.b->stats().messages_received == p.a->stats().messages_sent);
}

TEST_CASE("zero-length messages are messages", "[channel]") {
  Pair p(config(NotifyPolicy::polling, 256));
  REQUIRE(p.a->send({}, 0) == Errc::ok);
  std::vector<std::byte> buf(8);
  std::size_t n = 99;
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  CHECK(n == 0);
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
}

TEST_CASE("a message larger than the ring is refused so the caller can fall back", "[channel]") {
  Pair p(config(NotifyPolicy::on_demand, 1024));
  CHECK(p.a->max_message() == 944);
  const auto big = pattern(945, 1);
  CHECK(p.a->send(bytes_of(big), 0) == Errc::message_too_large);
  CHECK(p.a->stats().too_large == 1);
  const auto fits = pattern(944, 2);
  CHECK(p.a->send(bytes_of(fits), 0) == Errc::ok);
}

TEST_CASE("a short receive buffer leaves the message queued", "[channel]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  const auto msg = pattern(100, 3);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  std::vector<std::byte> small(10), big(100);
  std::size_t n = 0;
  CHECK(p.b->recv(small, n, 0) == Errc::buffer_too_small);
  CHECK(n == 100);
  CHECK(p.b->recv(big, n, 0) == Errc::ok);
  CHECK(std::memcmp(big.data(), msg.data(), 100) == 0);
}

TEST_CASE("a full ring blocks the sender until the receiver frees space", "[channel]") {
  Pair p(config(NotifyPolicy::on_demand, 1024));
  const auto msg = pattern(200, 4); // 208-byte records: four fit in 1024 - 8
  int sent = 0;
  while (p.a->send(bytes_of(msg), 0) == Errc::ok) ++sent;
  CHECK(sent == 4);
  CHECK(p.a->send(bytes_of(msg), 0) == Errc::would_block);
  CHECK(p.a->stats().ring_full >= 1);
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  // The consumer publishes lazily; an empty-looking ring or a quarter of it forces it out.
  for (int i = 0; i < 3; ++i) REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block); // publishes everything consumed
  CHECK(p.a->send(bytes_of(msg), 0) == Errc::ok);
}

TEST_CASE("every notification policy streams intact data between two threads", "[channel]") {
  const auto policy =
      GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand, NotifyPolicy::per_packet,
               NotifyPolicy::atw, NotifyPolicy::spin_then_block);
  INFO("policy " << to_string(policy));
  Pair p(config(policy, 2048));
  std::atomic<bool> stop{false};
  std::thread ticker([&] { // stands in for the platform's ticker: ATW windows must close
    while (!stop.load()) {
      p.a->flush();
      p.b->flush();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  stream(*p.a, *p.b, 3000, 700);
  stream(*p.b, *p.a, 3000, 700);
  stop = true;
  ticker.join();
  const auto sa = p.a->stats();
  if (policy == NotifyPolicy::polling) {
    CHECK(sa.data_notifications == 0);
    CHECK(sa.sleeps == 0);
  }
  if (policy == NotifyPolicy::per_packet) CHECK(sa.data_notifications == sa.messages_sent);
  if (policy == NotifyPolicy::on_demand) CHECK(sa.data_notifications <= sa.messages_sent);
}

TEST_CASE("per-packet rings once per message, ATW(N) once per N", "[channel][notify]") {
  SECTION("per-packet") {
    Pair p(config(NotifyPolicy::per_packet, 8192));
    const auto msg = pattern(32, 1);
    for (int i = 0; i < 40; ++i) REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    CHECK(p.a->stats().data_notifications == 40);
    CHECK(p.bells.b.rings_received(Wake::data) == 40);
  }
  SECTION("ATW with a window that does not expire") {
    auto cfg = config(NotifyPolicy::atw, 8192);
    cfg.notify.atw_batch = 8;
    cfg.notify.atw_window = 1'000'000 * ms;
    Pair p(cfg);
    const auto msg = pattern(32, 1);
    for (int i = 0; i < 40; ++i) REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    CHECK(p.a->stats().data_notifications == 5);
    p.a->flush(); // the window is still open: nothing to do
    CHECK(p.a->stats().data_notifications == 5);
  }
  SECTION("ATW window expiry rings a partial batch from flush()") {
    auto cfg = config(NotifyPolicy::atw, 8192);
    ManualClock clock;
    Pair p(cfg, &clock);
    const auto msg = pattern(32, 1);
    for (int i = 0; i < 3; ++i) REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    CHECK(p.a->stats().data_notifications == 0);
    p.a->flush();
    CHECK(p.a->stats().data_notifications == 0);
    clock.advance(cfg.notify.atw_window);
    p.a->flush();
    CHECK(p.a->stats().data_notifications == 1);
    CHECK(p.bells.b.rings_received(Wake::data) == 1);
  }
  SECTION("ATW: a batch the receiver already took is closed without a ring") {
    auto cfg = config(NotifyPolicy::atw, 8192);
    ManualClock clock;
    Pair p(cfg, &clock);
    const auto msg = pattern(32, 1);
    std::vector<std::byte> buf(64);
    std::size_t n = 0;
    for (int i = 0; i < 3; ++i) REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    for (int i = 0; i < 3; ++i) REQUIRE(p.b->recv(buf, n, 0) == Errc::ok); // it was awake
    clock.advance(cfg.notify.atw_window);
    p.a->flush();
    CHECK(p.a->stats().data_notifications == 0);
    // The next record opens a window of its own: not rung early for the old batch's age.
    REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    clock.advance(cfg.notify.atw_window / 2);
    p.a->flush();
    CHECK(p.a->stats().data_notifications == 0);
    clock.advance(cfg.notify.atw_window / 2);
    p.a->flush();
    CHECK(p.a->stats().data_notifications == 1);
  }
  SECTION("on-demand rings only a receiver that asked") {
    Pair p(config(NotifyPolicy::on_demand, 8192));
    const auto msg = pattern(32, 1);
    for (int i = 0; i < 10; ++i) REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    CHECK(p.a->stats().data_notifications == 0);
  }
}

TEST_CASE("on-demand wakes a sleeping receiver without losing the wake-up", "[channel][notify]") {
  Pair p(config(NotifyPolicy::on_demand, 4096));
  std::vector<std::byte> buf(64);
  for (int round = 0; round < 200; ++round) {
    std::thread sender([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(round % 7 * 50));
      const auto msg = pattern(16, round);
      REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    });
    std::size_t n = 0;
    REQUIRE(p.b->recv(buf, n, 2'000 * ms) == Errc::ok);
    sender.join();
  }
  // A lost wake-up would have shown as a 20 ms wait-slice timeout per round.
  CHECK(p.b->stats().wait_timeouts < 10);
}

TEST_CASE("shutdown_send delivers everything, then end of stream, the other way stays open",
          "[channel][lifecycle]") {
  Pair p(config(NotifyPolicy::on_demand, 4096));
  for (int i = 0; i < 5; ++i) REQUIRE(p.a->send(bytes_of(pattern(10, i)), 0) == Errc::ok);
  REQUIRE(p.a->shutdown_send() == Errc::ok);
  CHECK(p.a->send(bytes_of(pattern(10, 9)), 0) == Errc::closed);
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  for (int i = 0; i < 5; ++i) REQUIRE(p.b->recv(buf, n, 100 * ms) == Errc::ok);
  CHECK(p.b->recv(buf, n, 100 * ms) == Errc::peer_closed);
  CHECK(p.b->recv(buf, n, 0) == Errc::peer_closed);
  // Half-close: b still answers, a still reads.
  REQUIRE(p.b->send(bytes_of(pattern(10, 7)), 0) == Errc::ok);
  REQUIRE(p.a->recv(buf, n, 100 * ms) == Errc::ok);
}

TEST_CASE("close waits until the peer consumed everything", "[channel][lifecycle]") {
  Pair p(config(NotifyPolicy::on_demand, 8192));
  for (int i = 0; i < 20; ++i) REQUIRE(p.a->send(bytes_of(pattern(100, i)), 0) == Errc::ok);
  std::thread reader([&] {
    std::vector<std::byte> buf(128);
    std::size_t n = 0;
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      REQUIRE(p.b->recv(buf, n, 1'000 * ms) == Errc::ok);
    }
    CHECK(p.b->recv(buf, n, 1'000 * ms) == Errc::peer_closed);
  });
  CHECK(p.a->close(5'000 * ms) == Errc::ok);
  CHECK(p.a->unconsumed_outgoing() == 0);
  reader.join();
  CHECK(p.a->send(bytes_of(pattern(1, 1)), 0) == Errc::closed);
}

TEST_CASE("close times out on a peer that never reads, saying how much is left",
          "[channel][lifecycle]") {
  Pair p(config(NotifyPolicy::on_demand, 8192));
  REQUIRE(p.a->send(bytes_of(pattern(100, 1)), 0) == Errc::ok);
  CHECK(p.a->close(30 * ms) == Errc::timed_out);
  CHECK(p.a->error_detail().find("112 bytes sent were never consumed") != std::string::npos);
}

TEST_CASE("a peer whose heartbeat stops is declared dead after its data is delivered",
          "[channel][liveness]") {
  auto cfg = config(NotifyPolicy::on_demand, 4096);
  cfg.liveness.peer_timeout = 50 * ms;
  cfg.liveness.heartbeat_period = 5 * ms;
  cfg.liveness.wait_slice = 5 * ms;
  Pair p(cfg);
  REQUIRE(p.a->send(bytes_of(pattern(10, 1)), 0) == Errc::ok);
  REQUIRE(p.a->send(bytes_of(pattern(10, 2)), 0) == Errc::ok);
  // `a` goes silent: nothing calls into it any more. `b` keeps its own heartbeat while waiting.
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  REQUIRE(p.b->recv(buf, n, 1'000 * ms) == Errc::ok);
  REQUIRE(p.b->recv(buf, n, 1'000 * ms) == Errc::ok);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(p.b->recv(buf, n, 5'000 * ms) == Errc::peer_dead);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  CHECK(p.b->error_detail().find("heartbeat stood at") != std::string::npos);
  CHECK(p.b->send(bytes_of(pattern(10, 3)), 0) == Errc::peer_dead);
}

TEST_CASE("a live peer calling heartbeat() is never declared dead", "[channel][liveness]") {
  auto cfg = config(NotifyPolicy::on_demand, 4096);
  cfg.liveness.peer_timeout = 30 * ms;
  cfg.liveness.wait_slice = 5 * ms;
  Pair p(cfg);
  std::atomic<bool> stop{false};
  std::thread beat([&] {
    while (!stop) {
      p.a->heartbeat();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  CHECK(p.b->recv(buf, n, 200 * ms) == Errc::timed_out);
  stop = true;
  beat.join();
}

TEST_CASE("a peer that closed and died while the receiver slept ended its stream: peer_closed",
          "[channel][lifecycle]") {
  // The platform's notice of a departure (its process exited) may reach the receiver before
  // the wait has looked at the peer's state: the receiver wakes with both the death and the
  // close there, and the stream ended properly.
  Pair p(config(NotifyPolicy::on_demand));
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  Errc got = Errc::ok;
  std::thread receiver([&] { got = p.b->recv(buf, n, 5000 * ms); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the receiver sleeps
  p.b->mark_peer_dead("the platform says so");                 // no ring: still asleep
  REQUIRE(p.a->shutdown_send() == Errc::ok);                   // the close rings
  receiver.join();
  CHECK(got == Errc::peer_closed);
  // A peer that died without closing is dead.
  Pair q(config(NotifyPolicy::on_demand));
  std::thread waiter([&] { got = q.b->recv(buf, n, 5000 * ms); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  q.b->mark_peer_dead("the platform says so");
  q.bells.a.ring(Wake::data); // wakes the receiver as a platform's notice would
  waiter.join();
  CHECK(got == Errc::peer_dead);
}

TEST_CASE("mark_peer_dead fails sends at once but still delivers what arrived",
          "[channel][liveness]") {
  Pair p(config(NotifyPolicy::on_demand, 4096));
  REQUIRE(p.a->send(bytes_of(pattern(10, 1)), 0) == Errc::ok);
  p.b->mark_peer_dead("ivshmem server reported peer 3 disconnected");
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  CHECK(p.b->recv(buf, n, 0) == Errc::ok);
  CHECK(p.b->recv(buf, n, 0) == Errc::peer_dead);
  CHECK(p.b->send(bytes_of(pattern(10, 1)), 0) == Errc::peer_dead);
  CHECK(p.b->error_detail().find("peer 3 disconnected") != std::string::npos);
}

TEST_CASE("mark_peer_dead from another thread ends a send blocked on a full ring",
          "[channel][liveness]") {
  auto policy = GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand);
  auto cfg = config(policy, 4096);
  cfg.liveness.peer_timeout = 60'000 * ms; // only the notice can end the wait in time
  Pair p(cfg);
  while (p.a->send(bytes_of(pattern(100, 1)), 0) == Errc::ok) {
  }
  std::thread notice([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    p.a->mark_peer_dead("ivshmem server reported peer 1 disconnected");
  });
  const auto t0 = std::chrono::steady_clock::now();
  const Errc e = p.a->send(bytes_of(pattern(100, 1)), 10 * 1000 * ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  notice.join();
  CHECK(e == Errc::peer_dead);
  CHECK(waited < std::chrono::seconds(5));
}

TEST_CASE("re-creating the area ends the old endpoints and admits a new peer",
          "[channel][lifecycle]") {
  auto cfg = config(NotifyPolicy::on_demand, 4096);
  Pair p(cfg);
  p.b.reset(); // the old attacher is gone
  auto again = Channel::create(p.area.region(), cfg, p.bells.a, p.steady);
  REQUIRE(again.error == Errc::ok);
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  CHECK(p.a->recv(buf, n, 0) == Errc::peer_dead);
  CHECK(p.a->error_detail().find("re-created") != std::string::npos);
  auto fresh = Channel::attach(p.area.region(), cfg, p.bells.b, p.steady);
  REQUIRE(fresh.error == Errc::ok);
  REQUIRE(again.channel->send(bytes_of(pattern(5, 5)), 0) == Errc::ok);
  CHECK(fresh.channel->recv(buf, n, 0) == Errc::ok);
}

TEST_CASE("attach refuses an uninitialised, taken or malformed area, naming the field",
          "[channel][hostile]") {
  auto cfg = config(NotifyPolicy::on_demand, 1024);
  AlignedArea area(Channel::area_bytes(1024, 1024));
  std::memset(area.bytes, 0, area.size);
  NullDoorbell bell;
  SteadyClock clock;
  auto r = Channel::attach(area.region(), cfg, bell, clock);
  CHECK(r.error == Errc::would_block);

  auto c = Channel::create(area.region(), cfg, bell, clock);
  REQUIRE(c.error == Errc::ok);
  auto first = Channel::attach(area.region(), cfg, bell, clock);
  REQUIRE(first.error == Errc::ok);
  auto second = Channel::attach(area.region(), cfg, bell, clock);
  CHECK(second.error == Errc::already_attached);
  first.channel.reset();

  struct Corruption {
    std::size_t offset;
    std::uint64_t value;
    int width;
    const char* names;
  };
  const Corruption cases[] = {
      {4, 1, 2, "version"}, // a version 1 creator (records packed, no pads)
      {56, 2, 4, "features"},
      {60, 1, 4, "features"},
      {6, 100, 2, "control_bytes"},
      {8, 1000, 4, "ring_bytes[0]"},
      {12, 1u << 31, 4, "ring_bytes[1]"},
      {16, 5000, 4, "max_message"},
      {16, 0, 4, "max_message"},
      {20, 9, 4, "notify_policy"},
      {24, 10, 8, "ring_offset[0]"},
      {32, 1ull << 40, 8, "ring_offset[1]"},
      {32, 4096, 8, "overlap"},
      {40, 1ull << 40, 8, "total_bytes"},
  };
  for (const auto& k : cases) {
    INFO("field " << k.names);
    auto fresh = Channel::create(area.region(), cfg, bell, clock);
    REQUIRE(fresh.error == Errc::ok);
    std::memcpy(area.bytes + k.offset, &k.value, k.width);
    auto bad = Channel::attach(area.region(), cfg, bell, clock);
    CHECK(bad.error == Errc::bad_layout);
    CHECK(bad.detail.find(k.names) != std::string::npos);
  }
  SharedRegion too_small{area.bytes, 2000};
  auto fresh = Channel::create(area.region(), cfg, bell, clock);
  auto bad = Channel::attach(too_small, cfg, bell, clock);
  CHECK(bad.error == Errc::bad_layout);
  CHECK(bad.detail.find("total_bytes") != std::string::npos);
}

TEST_CASE("a forged header is a protocol violation naming ring and position",
          "[channel][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  auto* ring0 = p.area.bytes + 4096;
  std::vector<std::byte> buf(2048);
  std::size_t n = 0;
  SECTION("wrong tag") {
    const std::uint64_t forged = wire::make_header(512, 4); // a header for another position
    std::memcpy(ring0, &forged, 8);
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("ring 0") != std::string::npos);
    CHECK(p.b->error_detail().find("position 0") != std::string::npos);
  }
  SECTION("length beyond max_message") {
    const std::uint64_t forged = wire::make_header(0, 5000);
    std::memcpy(ring0, &forged, 8);
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("exceeds max_message") != std::string::npos);
  }
  // After a violation the endpoint stays failed; nothing else is read.
  CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
}

TEST_CASE("a consumed index that moves backwards or past produced is a violation",
          "[channel][hostile]") {
  Pair p(config(NotifyPolicy::polling, 256));
  const auto msg = pattern(100, 1);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
  // The ring is full; the sender must read the consumed index, which the "peer" forged.
  const std::uint64_t forged = 999'999;
  std::memcpy(p.area.bytes + 192 + 64, &forged, 8); // direction[0].consumed
  CHECK(p.a->send(bytes_of(msg), 0) == Errc::protocol_violation);
  CHECK(p.a->error_detail().find("consumed index 999999") != std::string::npos);
}

TEST_CASE("end of stream with a produced index that disagrees is a violation",
          "[channel][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  REQUIRE(p.a->send(bytes_of(pattern(8, 1)), 0) == Errc::ok);
  REQUIRE(p.a->shutdown_send() == Errc::ok);
  const std::uint64_t forged = 4096;
  std::memcpy(p.area.bytes + 192, &forged, 8); // direction[0].produced
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
  CHECK(p.b->error_detail().find("produced index 4096") != std::string::npos);
}

TEST_CASE("large payloads start on a cache line, small ones right after their header",
          "[channel][wire]") {
  Pair p(config(NotifyPolicy::polling, 4096));
  auto* ring0 = p.area.bytes + 4096;
  const auto small = pattern(255, 1), large = pattern(256, 2);
  REQUIRE(p.a->send(bytes_of(small), 0) == Errc::ok); // header at 0, payload at 8, ends at 264
  REQUIRE(p.a->send(bytes_of(large), 0) == Errc::ok); // header at 264, payload at 320
  CHECK(std::memcmp(ring0 + 8, small.data(), small.size()) == 0);
  CHECK(std::memcmp(ring0 + 320, large.data(), large.size()) == 0);
  std::uint64_t second_header;
  std::memcpy(&second_header, ring0 + 264, 8);
  CHECK(second_header == wire::make_header(264, 256));
  std::vector<std::byte> buf(512);
  std::size_t n = 0;
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  CHECK(n == 256);
  CHECK(std::memcmp(buf.data(), large.data(), 256) == 0);
}

TEST_CASE("the trust list decides who may attach, refusals are errors, named and counted",
          "[channel][trust]") {
  TrustList trust;
  trust.allow(1, 2);
  trust.allow(2, 1);
  auto admit_for = [&](VmId self) {
    return [&trust, self](std::uint64_t peer) {
      return trust.may_connect(self, static_cast<VmId>(peer));
    };
  };
  auto cfg = config(NotifyPolicy::polling, 1024);
  AlignedArea area(Channel::area_bytes(1024, 1024));
  NullDoorbell bell;
  SteadyClock clock;
  auto as = [&](VmId vm) {
    ChannelConfig c = cfg;
    c.platform_address = vm; // here the address is the VM id
    c.admit = admit_for(vm);
    return c;
  };
  SECTION("a trusted pair connects") {
    auto a = Channel::create(area.region(), as(1), bell, clock);
    auto b = Channel::attach(area.region(), as(2), bell, clock);
    REQUIRE(b.error == Errc::ok);
    CHECK(a.channel->wait_for_peer(0) == Errc::ok);
    CHECK(trust.refusals() == 0);
  }
  SECTION("an attacher refuses an untrusted creator without taking its side") {
    auto a = Channel::create(area.region(), as(3), bell, clock);
    auto b = Channel::attach(area.region(), as(2), bell, clock);
    CHECK(b.error == Errc::refused);
    CHECK(b.detail.find("trust list") != std::string::npos);
    CHECK(trust.refusals() == 1);
    CHECK(trust.refusals_by(2) == 1);
    auto trusted = Channel::attach(area.region(), cfg, bell, clock); // side 1 is still free
    CHECK(trusted.error == Errc::ok);
  }
  SECTION("a creator refuses an untrusted attacher, also when it only sends") {
    auto a = Channel::create(area.region(), as(1), bell, clock);
    ChannelConfig intruder = cfg;
    intruder.platform_address = 3;
    auto b = Channel::attach(area.region(), intruder, bell, clock);
    REQUIRE(b.error == Errc::ok); // the intruder admits anyone
    std::vector<std::byte> buf(64);
    std::size_t n = 0;
    CHECK(a.channel->recv(buf, n, 50 * ms) == Errc::refused);
    CHECK(a.channel->error_detail().find("trust list") != std::string::npos);
    CHECK(a.channel->wait_for_peer(0) == Errc::refused);
    CHECK(trust.refusals() >= 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Wire version 2: small records in one line, pads, the closing and empty-header rules, forged
// states, record checks.

namespace {

std::uint64_t word_at(const Pair& p, std::uint64_t ring_offset) {
  std::uint64_t w;
  std::memcpy(&w, p.area.bytes + 4096 + ring_offset, 8);
  return w;
}
void put_word(Pair& p, std::uint64_t ring_offset, std::uint64_t w) {
  std::memcpy(p.area.bytes + 4096 + ring_offset, &w, 8);
}

} // namespace

TEST_CASE("a payload of up to 56 bytes takes one cache line, moved past a pad if need be",
          "[channel][wire]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  const auto medium = pattern(64, 1), small = pattern(56, 2), tiny = pattern(8, 3);
  REQUIRE(p.a->send(bytes_of(medium), 0) == Errc::ok); // header 0, payload 8..72: packed
  REQUIRE(p.a->send(bytes_of(tiny), 0) == Errc::ok);   // at 72: fits in its line, ends at 128
  REQUIRE(p.a->send(bytes_of(medium), 0) == Errc::ok); // 128..200
  REQUIRE(p.a->send(bytes_of(small), 0) == Errc::ok);  // at 200 it would cross 256: pad
  CHECK(word_at(p, 72) == wire::make_header(72, 8));
  CHECK(word_at(p, 128) == wire::make_header(128, 64));
  CHECK(word_at(p, 200) == wire::make_pad(200));
  CHECK(word_at(p, 256) == wire::make_header(256, 56));
  CHECK(std::memcmp(p.area.bytes + 4096 + 264, small.data(), 56) == 0); // one line: 256..320
  CHECK(word_at(p, 320) == 0);                                          // the terminator
  for (const auto* want : {&medium, &tiny, &medium, &small}) {
    REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
    REQUIRE(n == want->size());
    CHECK(std::memcmp(buf.data(), want->data(), n) == 0);
  }
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
}

TEST_CASE("a pad where none belongs, or a small record across a line, is a violation",
          "[channel][hostile][wire]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  std::uint64_t pos = 0;
  advance_to(*p.a, *p.b, pos, 200); // the reader waits at 200 (line offset 8)
  SECTION("a small record across the line boundary") {
    put_word(p, 200, wire::make_header(200, 56));
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("where a pad belongs") != std::string::npos);
  }
  SECTION("a pad before a record that fits where the pad is") {
    put_word(p, 256, wire::make_header(256, 8));
    put_word(p, 200, wire::make_pad(200));
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("a pad not followed by a small record that needs it") !=
          std::string::npos);
  }
  SECTION("a pad followed by nothing") {
    put_word(p, 200, wire::make_pad(200));
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("position 200") != std::string::npos);
  }
  SECTION("a pad before a record that is not small") {
    put_word(p, 256, wire::make_header(256, 100));
    put_word(p, 200, wire::make_pad(200));
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
  }
  CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation); // it stays failed
}

TEST_CASE("a zeroed header at a published position is a violation at once, and ends the "
          "sender's wait",
          "[channel][hostile]") {
  auto cfg = config(GENERATE(NotifyPolicy::polling, NotifyPolicy::on_demand), 1024);
  cfg.liveness.wait_slice = 5 * ms;
  Pair p(cfg);
  const auto msg = pattern(200, 1);
  while (p.a->send(bytes_of(msg), 0) == Errc::ok) {
  }                  // the ring is full
  put_word(p, 0, 0); // a third writer zeroes the header at the reader's position
  std::vector<std::byte> buf(256);
  std::size_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(p.b->recv(buf, n, kForever) == Errc::protocol_violation);
  CHECK(p.b->error_detail().find("header at position 0 (offset 0) is 0") != std::string::npos);
  CHECK(p.b->error_detail().find("produced index") != std::string::npos);
  // The reader marked itself failed: the sender, waiting for space, is told instead of waiting.
  CHECK(p.a->send(bytes_of(msg), kForever) == Errc::protocol_violation);
  CHECK(p.a->error_detail().find("side 1 found the shared area broken") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
}

TEST_CASE("an empty position the producer has not published is only 'nothing yet'",
          "[channel][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  REQUIRE(p.a->send(bytes_of(pattern(8, 1)), 0) == Errc::ok);
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
  // Nothing published past the reader: waiting is honest, for as long as the caller allows.
  CHECK(p.b->recv(buf, n, 20 * ms) == Errc::timed_out);
  // A produced index behind the reader (a store not yet seen) is not a violation either.
  const std::uint64_t behind = 0;
  std::memcpy(p.area.bytes + 192, &behind, 8); // direction[0].produced
  CHECK(p.b->recv(buf, n, 0) == Errc::would_block);
  CHECK(p.b->failure() == Errc::ok);
}

TEST_CASE("a close whose produced index disagrees is a violation, also after the peer died",
          "[channel][hostile]") {
  Pair p(config(NotifyPolicy::polling, 1024));
  REQUIRE(p.a->send(bytes_of(pattern(8, 1)), 0) == Errc::ok);
  REQUIRE(p.a->shutdown_send() == Errc::ok);
  const std::uint64_t short_of_records = 0; // the records end at 64
  std::memcpy(p.area.bytes + 192, &short_of_records, 8);
  p.b->mark_peer_dead("test: the platform says the peer exited");
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  REQUIRE(p.b->recv(buf, n, 0) == Errc::ok); // its complete record is still delivered
  CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
  CHECK(p.b->error_detail().find("peer closed with produced index 0 but its records end at 64") !=
        std::string::npos);
}

TEST_CASE("a forged state is found: by its owner, by a state that goes back, by records after "
          "a close",
          "[channel][hostile]") {
  auto cfg = config(NotifyPolicy::polling, 1024);
  Pair p(cfg);
  std::vector<std::byte> buf(64);
  std::size_t n = 0;
  const std::uint32_t detached = 3, live = 1;
  SECTION("the owner of the line finds it at its next heartbeat") {
    std::memcpy(p.area.bytes + 64, &detached, 4);     // side 0's state, forged
    CHECK(p.b->recv(buf, n, 0) == Errc::peer_closed); // what the ring alone cannot tell apart
    p.a->heartbeat();                                 // the platform's ticker
    CHECK(p.a->failure() == Errc::protocol_violation);
    CHECK(p.a->error_detail().find("own endpoint line was overwritten") != std::string::npos);
    // The victim marked itself failed: the reader's next call says the close was not real.
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("forged") != std::string::npos);
  }
  SECTION("records after a close") {
    std::memcpy(p.area.bytes + 64, &detached, 4);
    CHECK(p.b->recv(buf, n, 0) == Errc::peer_closed);
    REQUIRE(p.a->send(bytes_of(pattern(8, 1)), 0) == Errc::ok); // the real peer goes on
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("after the peer closed") != std::string::npos);
  }
  SECTION("a state that goes back") {
    REQUIRE(p.a->shutdown_send() == Errc::ok);
    CHECK(p.b->recv(buf, n, 0) == Errc::peer_closed);
    std::memcpy(p.area.bytes + 64, &live, 4);
    CHECK(p.b->send(bytes_of(pattern(8, 1)), 0) == Errc::ok);
    // The sender's next slow-path look at its peer (here: waiting for space that never comes).
    while (p.b->send(bytes_of(pattern(200, 2)), 0) == Errc::ok) {
    }
    CHECK(p.b->send(bytes_of(pattern(200, 2)), 50 * ms) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("states only move forward") != std::string::npos);
  }
}

TEST_CASE("crc32c is the Castagnoli CRC, in one call or in pieces", "[channel][crc]") {
  const char* text = "123456789";
  CHECK(crc32c(0, text, 9) == 0xE3069283u);
  CHECK(crc32c(crc32c(0, text, 4), text + 4, 5) == 0xE3069283u);
  CHECK(crc32c(0, nullptr, 0) == 0);
  std::vector<std::byte> big = pattern(1000, 7);
  const std::uint32_t whole = crc32c(0, big.data(), big.size());
  CHECK(crc32c(crc32c(0, big.data(), 333), big.data() + 333, 667) == whole);
  big[500] ^= std::byte{1};
  CHECK(crc32c(0, big.data(), big.size()) != whole);
}

TEST_CASE("a checked channel delivers intact records and refuses corrupted or forged ones",
          "[channel][hostile][crc]") {
  auto cfg = config(NotifyPolicy::polling, 1024);
  cfg.record_crc32c = true;
  Pair p(cfg);
  std::vector<std::byte> buf(1024);
  std::size_t n = 0;
  CHECK(p.a->max_message() == 1024 - 88); // one more prefix word than unchecked
  std::uint64_t pos = 0;
  for (std::size_t size : {0, 1, 48, 49, 56, 200, 256, 600}) { // 48: the small limit when checked
    const auto msg = pattern(size, static_cast<std::uint32_t>(size));
    REQUIRE(p.a->send(bytes_of(msg), 0) == Errc::ok);
    REQUIRE(p.b->recv(buf, n, 0) == Errc::ok);
    REQUIRE(n == size);
    REQUIRE(std::memcmp(buf.data(), msg.data(), n) == 0);
    pos = wire::record_end(pos, static_cast<std::uint32_t>(size), 16);
  }
  const std::uint64_t at = pos % 1024;
  SECTION("one flipped payload byte") {
    REQUIRE(p.a->send(bytes_of(pattern(40, 9)), 0) == Errc::ok);
    p.area.bytes[4096 + wire::payload_position(at, 40, 16) + 17] ^= std::byte{0x20};
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
    CHECK(p.b->error_detail().find("fails its check") != std::string::npos);
  }
  SECTION("a valid-looking forged record (right tag and length, no check)") {
    put_word(p, at + 8, 0);
    put_word(p, at, wire::make_header(pos, 16));
    CHECK(p.b->recv(buf, n, 0) == Errc::protocol_violation);
  }
  SECTION("peek checks too") {
    REQUIRE(p.a->send(bytes_of(pattern(300, 9)), 0) == Errc::ok);
    p.area.bytes[4096 + wire::payload_position(at, 300, 16)] ^= std::byte{0x01};
    ReadableRecord r;
    CHECK(p.b->peek(r, 0) == Errc::protocol_violation);
    CHECK(p.b->release() == Errc::misuse); // no view was handed out
  }
  SECTION("zero-copy records carry their check") {
    WritableRecord space;
    const auto msg = pattern(400, 5);
    REQUIRE(p.a->reserve(msg.size(), space, 0) == Errc::ok);
    std::memcpy(space.first.data(), msg.data(), space.first.size());
    std::memcpy(space.second.data(), msg.data() + space.first.size(), space.second.size());
    REQUIRE(p.a->commit() == Errc::ok);
    ReadableRecord r;
    REQUIRE(p.b->peek(r, 0) == Errc::ok);
    CHECK(r.size() == 400);
    CHECK(p.b->release() == Errc::ok);
  }
}

TEST_CASE("both ends must agree on record checks: attach refuses a different setting",
          "[channel][crc]") {
  auto cfg = config(NotifyPolicy::polling, 1024);
  AlignedArea area(Channel::area_bytes(1024, 1024));
  NullDoorbell bell;
  SteadyClock clock;
  for (bool creator_checks : {true, false}) {
    ChannelConfig c = cfg, a = cfg;
    c.record_crc32c = creator_checks;
    a.record_crc32c = !creator_checks;
    auto created = Channel::create(area.region(), c, bell, clock);
    REQUIRE(created.error == Errc::ok);
    auto refused = Channel::attach(area.region(), a, bell, clock);
    CHECK(refused.error == Errc::refused);
    CHECK(refused.detail.find("record_crc32c") != std::string::npos);
    auto agreed = Channel::attach(area.region(), c, bell, clock); // side 1 is still free
    CHECK(agreed.error == Errc::ok);
  }
}
