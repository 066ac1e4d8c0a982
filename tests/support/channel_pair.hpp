// Two endpoints of one channel in heap memory, for in-process channel tests, and the helpers
// those tests share (message patterns, a configuration per policy).
#pragma once

#include "ivmc/core/channel.hpp"

#include "local_platform.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ivmc::test {

inline constexpr Nanos ms = 1'000'000;

inline std::vector<std::byte> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  return v;
}

inline std::span<const std::byte> bytes_of(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

struct Pair {
  explicit Pair(ChannelConfig cfg = {}, Clock* clock = nullptr)
      : area(Channel::area_bytes(cfg.ring_bytes, cfg.ring_bytes)), clock_(clock ? clock : &steady) {
    auto c = Channel::create(area.region(), cfg, bells.a, *clock_);
    REQUIRE(c.error == Errc::ok);
    a = std::move(c.channel);
    auto d = Channel::attach(area.region(), cfg, bells.b, *clock_);
    REQUIRE(d.error == Errc::ok);
    b = std::move(d.channel);
  }
  SteadyClock steady;
  AlignedArea area;
  Clock* clock_;
  LocalDoorbellPair bells;
  std::unique_ptr<Channel> a, b;
};

// Moves a stream (tx sends, rx receives; both at ring position `pos`) to position `target` with
// filler messages of 64 to 248 bytes: records that are neither small nor aligned, so they pack at
// 8-byte steps (a small record would round up to a line). target == pos or target >= pos + 72.
inline void advance_to(Channel& tx, Channel& rx, std::uint64_t& pos, std::uint64_t target) {
  std::vector<std::byte> buf(256);
  while (pos < target) {
    const std::uint64_t left = target - pos;
    REQUIRE(left >= 72);
    const std::uint64_t step = left <= 256 ? left : std::min<std::uint64_t>(256, left - 72);
    const auto filler = pattern(step - wire::kHeaderBytes, static_cast<std::uint32_t>(pos));
    REQUIRE(tx.send(bytes_of(filler), 0) == Errc::ok);
    std::size_t n = 0;
    REQUIRE(rx.recv(buf, n, 0) == Errc::ok);
    REQUIRE(n == filler.size());
    pos += step;
  }
}
// The first position at or after `pos` (not before pos + 72 unless pos itself) at `line_offset`
// (a multiple of 8) within its cache line: a target for advance_to.
inline std::uint64_t at_line_offset(std::uint64_t pos, std::uint64_t line_offset) {
  if (pos % wire::kCacheLine == line_offset) return pos;
  return wire::align_up(pos + 72, wire::kCacheLine) + line_offset;
}

inline ChannelConfig config(NotifyPolicy p, std::uint32_t ring = 4096) {
  ChannelConfig c;
  c.ring_bytes = ring;
  c.notify.policy = p;
  c.notify.atw_batch = 8;
  c.notify.atw_window = 2 * ms;
  c.notify.spin_budget = 20'000;
  c.liveness.wait_slice = 20 * ms;
  return c;
}

} // namespace ivmc::test
