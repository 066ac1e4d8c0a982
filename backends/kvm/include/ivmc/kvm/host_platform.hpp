// The host platform: host processes as ivshmem peers. One HostPlatform per process holds the
// connection to an ivshmem server (the "host"), its shared region, and one ticker thread that
// keeps every channel endpoint's heartbeat going, closes ATW windows, and turns the server's
// peer-disconnect notices into mark_peer_dead() on the affected channels.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/eventfd_doorbell.hpp"
#include "ivmc/kvm/ivshmem_peer.hpp"
#include "ivmc/kvm/posix_clock.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ivmc::kvm {

// How an endpoint is rung, packed into the channel's EndpointLine::platform_address:
// bits 0..15 ivshmem peer id, 16..23 its vector for Wake::data, 24..31 for Wake::space,
// bit 32 set (so that 0 means "no address yet").
struct IvshmemAddress {
  std::uint16_t peer_id = 0;
  WakeVectors vectors;
  std::uint64_t encode() const;
  // False if `raw` is not a valid address for a server with `vectors` vectors.
  static bool decode(std::uint64_t raw, unsigned vectors, IvshmemAddress& out);
};

// A doorbell whose remote end is learnt after the channel exists: a creator learns its peer's
// address only when the peer attaches. Before bind(), rings go nowhere and waits just sleep;
// the core re-checks the ring after every wait, so nothing is lost.
class LateBoundDoorbell final : public Doorbell {
public:
  void bind(std::unique_ptr<EventfdDoorbell> bell);
  void ring(Wake reason) override;
  WaitResult wait(Wake reason, Nanos timeout) override;
  EventfdDoorbell* bound() const { return bound_.load(std::memory_order_acquire); }

private:
  std::unique_ptr<EventfdDoorbell> owner_;
  std::atomic<EventfdDoorbell*> bound_{nullptr}; // release/acquire: the doorbell is built first
};

struct EndpointOptions {
  ChannelConfig channel;
  std::size_t offset = 0;    // where the channel's area starts in the region
  WakeVectors vectors{0, 1}; // this endpoint's own vectors (it waits on them)
};

class HostPlatform;

// One channel endpoint on the host platform.
class HostEndpoint {
public:
  ~HostEndpoint(); // unregisters from the ticker, then detaches the channel
  Channel& channel() { return *channel_; }
  // Creator: wait until the peer attached, then bind the doorbell to it.
  Errc wait_for_peer(Nanos timeout);
  std::optional<std::uint16_t> peer_id() const;

private:
  friend class HostPlatform;
  HostEndpoint(HostPlatform& platform) : platform_(platform) {}
  bool bind_to_peer(); // false while the peer's address or its eventfds are not known yet
  bool bind_locked();  // the same, with the platform's mutex held
  HostPlatform& platform_;
  LateBoundDoorbell doorbell_;
  std::unique_ptr<Channel> channel_;
  WakeVectors vectors_;
  std::atomic<int> peer_id_{-1}; // relaxed: set once by bind, read by the ticker
};

class HostPlatform {
public:
  // Connects to the ivshmem server at `socket_path` and starts the ticker. `vectors` must be
  // the server's (the protocol does not carry it). Throws on failure.
  static std::unique_ptr<HostPlatform> connect(const std::string& socket_path, Nanos timeout,
                                               unsigned vectors = IvshmemPeer::kDefaultVectors);
  // Region size a server needs for one channel with rings of `ring_bytes` (page-rounded).
  static std::size_t region_bytes_for(std::uint32_t ring_bytes);
  ~HostPlatform();

  // Creates a channel as side 0 at options.offset. Throws (naming the layout problem) on error.
  std::unique_ptr<HostEndpoint> create_channel(const EndpointOptions& options);
  // Attaches as side 1, retrying until the creator initialised the area or `timeout`.
  std::unique_ptr<HostEndpoint> attach_channel(const EndpointOptions& options, Nanos timeout);

  std::uint16_t id() const { return peer_.id(); }
  MonotonicClock& clock() { return clock_; }
  SharedRegion region() const { return peer_.region(); }

private:
  friend class HostEndpoint;
  explicit HostPlatform(IvshmemPeer peer);
  void tick_loop();
  void unregister(HostEndpoint* endpoint);
  SharedRegion area(const EndpointOptions& options) const;

  IvshmemPeer peer_;
  MonotonicClock clock_;
  std::mutex mutex_; // guards peer_'s server state and endpoints_
  std::vector<HostEndpoint*> endpoints_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread ticker_;
};

} // namespace ivmc::kvm
