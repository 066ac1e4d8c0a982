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
