// One instance of a local path for link tests: a channel pair in heap memory, polling, with a
// sender-side wrapper that a test can break (the peer left; the receiver is told it is gone).
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"

#include "local_platform.hpp"
#include "queue_path.hpp"

#include <memory>

namespace ivmc::test {

struct LocalPair {
  explicit LocalPair(Clock& clock, std::uint32_t ring_bytes = 1 << 14)
      : area(Channel::area_bytes(ring_bytes, ring_bytes)), ring(ring_bytes) {
    ChannelConfig cfg;
    cfg.ring_bytes = ring_bytes;
    cfg.notify.policy = NotifyPolicy::polling;
    cfg.liveness.peer_timeout = kForever / 4; // liveness is not what these tests are about
    tx = Channel::create(area.region(), cfg, bells.a, clock).channel;
    rx = Channel::attach(area.region(), cfg, bells.b, clock).channel;
    tx_path = std::make_unique<ChannelPath>(*tx);
    rx_path = std::make_unique<ChannelPath>(*rx);
    breakable = std::make_unique<BreakablePath>(*tx_path);
  }
  // The peer left: sends on the stale channel fail, and the receiver's platform learns that the
  // peer is gone (it still drains what was written).
  void break_now() {
    breakable->break_now();
    rx->mark_peer_dead("test: the peer migrated away");
    broken = true;
  }
  AlignedArea area;
  std::uint32_t ring;
  LocalDoorbellPair bells;
  std::unique_ptr<Channel> tx, rx;
  std::unique_ptr<ChannelPath> tx_path, rx_path;
  std::unique_ptr<BreakablePath> breakable;
  bool broken = false;
};

} // namespace ivmc::test
