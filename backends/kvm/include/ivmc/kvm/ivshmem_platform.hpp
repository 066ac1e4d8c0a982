// The platform every ivshmem peer runs, host process or guest: one IvshmemPlatform per process
// holds an ivshmem device (an IvshmemPort: the shared region, this peer's id, doorbells to the
// other peers), and one ticker thread that keeps every channel endpoint's heartbeat going,
// closes ATW windows, and turns peer-departure notices into mark_peer_dead() on the affected
// channels. The ticker sleeps in poll() on the port's notice fd (the server socket), so a
// departure, or the server's own death, fails the affected channels as soon as the server's
// notice arrives, and wakes their sleeping threads through their own doorbell vectors.
//
// Two ports exist: HostPlatform (host_platform.hpp) talks to the ivshmem server as a client,
// GuestPlatform (guest_platform.hpp) drives QEMU's ivshmem-doorbell PCI device from inside a
// guest. Both place channels the same way (EndpointOptions::offset into the region) and publish
// the same IvshmemAddress, so a host process and a guest share channels through one server.
//
// This file and its .cpp use nothing but the C++ library and the core: the guest agent links
// it statically.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/kvm/eventfd_doorbell.hpp" // WakeVectors
#include "ivmc/posix/clock.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ivmc::kvm {

// How an endpoint is rung, packed into the channel's EndpointLine::platform_address:
// bits 0..15 ivshmem peer id, 16..23 its vector for Wake::data, 24..31 for Wake::space,
// bit 32 set (so that 0 means "no address yet"). A guest's peer id is its IVPosition register.
struct IvshmemAddress {
  std::uint16_t peer_id = 0;
  WakeVectors vectors;
  std::uint64_t encode() const;
  // False if `raw` is not a valid address for a device with `vectors` vectors.
  static bool decode(std::uint64_t raw, unsigned vectors, IvshmemAddress& out);
};

// What an ivshmem device offers a platform. Called with the platform's mutex held, from the
// thread that creates endpoints and from the ticker.
class IvshmemPort {
public:
  virtual ~IvshmemPort() = default;
  virtual SharedRegion region() const = 0;
  virtual std::uint16_t id() const = 0; // when the port was opened
  // The id now: a guest that migrated to another host's server has a new one.
  virtual std::uint16_t current_id() const { return id(); }
  virtual unsigned vectors() const = 0;
  // A doorbell that rings peer `remote` on `remote_vectors` and waits on this peer's own
  // `own` vectors; null while `remote` is not known yet (try again later). Throws if it can
  // never work (a vector out of range, a device error).
  virtual std::unique_ptr<Doorbell> doorbell_to(std::uint16_t remote, WakeVectors remote_vectors,
                                                WakeVectors own) = 0;
  // Peers that left since the last call (the ivshmem server's notices). A guest hears of none:
  // its channels find a departed peer by its heartbeat.
  virtual std::vector<std::uint16_t> departed() = 0;
  // Leave the device's host for good (a host process that "migrates" away): the others are
  // told; the region stays mapped until the port dies. A guest's device cannot.
  virtual void disconnect() {}
  // An fd that becomes readable when the device has news (the server socket: a departure, or
  // the server's own death), for the ticker to wait on; -1 when there is none (a guest).
  virtual int notice_fd() const { return -1; }
  // Why the device's server is gone (it closed the connection: killed or stopped; or it sent
  // garbage), once it is; empty while it serves, and after this process's own disconnect().
  virtual std::string server_gone() const { return {}; }
  // Interrupts this peer's own `vectors`, so that a thread sleeping on them wakes now (the
  // doorbell contract allows the spurious wake-ups this gives other endpoints on them).
  virtual void wake_own(WakeVectors /*vectors*/) {}
};

// A doorbell whose remote end is learnt after the channel exists: a creator learns its peer's
// address only when the peer attaches. Before bind(), rings go nowhere and waits just sleep;
// the core re-checks the ring after every wait, so nothing is lost.
class LateBoundDoorbell final : public Doorbell {
public:
  void bind(std::unique_ptr<Doorbell> bell);
  void ring(Wake reason) override;
  WaitResult wait(Wake reason, Nanos timeout) override;
  WaitResult wait_uncleared(Wake reason, Nanos timeout) override;
  void clear(Wake reason) override;
  Doorbell* bound() const { return bound_.load(std::memory_order_acquire); }

private:
  std::unique_ptr<Doorbell> owner_;
  std::atomic<Doorbell*> bound_{nullptr}; // release/acquire: the doorbell is built first
};

// A channel's own region, mapped (a host process's sealed memfd from the server's channel
// socket, channel_broker_client.hpp); unmapped when the last endpoint on it is gone.
class PrivateRegion {
public:
  virtual ~PrivateRegion() = default;
  virtual SharedRegion region() const = 0;
  // The ivshmem peer id of the other member, as the server knew it when it handed the region
  // over (none if that member had not enrolled yet). The address the peer writes into the
  // channel must name this id, or its channel fails: the server says who the member is.
  virtual std::optional<std::uint16_t> member_peer_id() const { return std::nullopt; }
};

struct EndpointOptions {
  ChannelConfig channel;
  std::size_t offset = 0;    // where the channel's area starts in the region (a page multiple)
  WakeVectors vectors{0, 1}; // this endpoint's own vectors (it waits on them)
  // Set: the channel lives at `offset` in this region of its own instead of the device's
  // region, which every client of the server shares.
  std::shared_ptr<const PrivateRegion> region;
};

class IvshmemPlatform;

// One channel endpoint on an ivshmem platform.
class IvshmemEndpoint {
public:
  ~IvshmemEndpoint(); // unregisters from the ticker, then detaches the channel
  Channel& channel() { return *channel_; }
  // Creator: wait until the peer attached, then bind the doorbell to it.
  Errc wait_for_peer(Nanos timeout);
  std::optional<std::uint16_t> peer_id() const;

private:
  friend class IvshmemPlatform;
  explicit IvshmemEndpoint(IvshmemPlatform& platform) : platform_(platform) {}
  bool bind_to_peer(); // false while the peer's address or its doorbell is not known yet
  bool bind_locked();  // the same, with the platform's mutex held
  IvshmemPlatform& platform_;
  std::shared_ptr<const PrivateRegion> region_; // kept mapped while the channel lives
  LateBoundDoorbell doorbell_;
  std::unique_ptr<Channel> channel_;
  WakeVectors vectors_;
  std::atomic<int> peer_id_{-1}; // relaxed: set once by bind, read by the ticker
};

class IvshmemPlatform {
public:
  // Starts the ticker over `port`.
  explicit IvshmemPlatform(std::unique_ptr<IvshmemPort> port);
  virtual ~IvshmemPlatform(); // stops the ticker; endpoints must be gone by then
  IvshmemPlatform(const IvshmemPlatform&) = delete;
  IvshmemPlatform& operator=(const IvshmemPlatform&) = delete;

  // Region size a server needs for one channel with rings of `ring_bytes` (page-rounded).
  static std::size_t region_bytes_for(std::uint32_t ring_bytes);

  // Creates a channel as side 0 at options.offset. Throws (naming the layout problem) on error.
  std::unique_ptr<IvshmemEndpoint> create_channel(const EndpointOptions& options);
  // Attaches as side 1, retrying until the creator initialised the area or `timeout`.
  std::unique_ptr<IvshmemEndpoint> attach_channel(const EndpointOptions& options, Nanos timeout);

  // This process leaves the host (the host backend's migration away): every endpoint's
  // channel fails now with `why` on this side (what the peers wrote completely is still
  // delivered), heartbeats stop, and the port disconnects so the peers are told. Endpoints
  // stay valid (and their memory mapped) until destroyed; nothing new can be created.
  void detach(const std::string& why);
  bool detached() const;
  // Endpoints alive on this platform (a detached platform can go once this is 0).
  std::size_t endpoint_count() const;
  // Why the ivshmem server is gone (empty while it serves). Once it is, every endpoint has
  // failed with peer_dead and an error_detail() starting "the ivshmem server is gone", and no
  // new channel can be created or attached: the region is an orphan nobody arbitrates.
  std::string server_gone() const;

  std::uint16_t id() const { return port_->id(); }
  // Re-read from the device: differs from id() once a guest migrated to another host.
  std::uint16_t current_id() const { return port_->current_id(); }
  posix::MonotonicClock& clock() { return clock_; }
  SharedRegion region() const { return port_->region(); }

private:
  friend class IvshmemEndpoint;
  void tick_loop();
  // Waits up to `period` for the port's notices or a stop request, the mutex released.
  void sleep_until_notice(std::unique_lock<std::mutex>& lock, Nanos period);
  // Fails `ep`'s channel as peer_dead and wakes any thread sleeping on it at once.
  void kill_endpoint(IvshmemEndpoint* ep, const std::string& why);
  void unregister(IvshmemEndpoint* endpoint);
  SharedRegion area(const EndpointOptions& options) const;

  std::unique_ptr<IvshmemPort> port_;
  posix::MonotonicClock clock_;
  mutable std::mutex mutex_; // guards port_'s state, endpoints_ and detached_
  std::vector<IvshmemEndpoint*> endpoints_;
  std::condition_variable stop_cv_;
  int stop_fd_ = -1; // an eventfd the destructor writes to end the ticker's poll()
  bool stopping_ = false;
  bool detached_ = false;
  std::string server_gone_; // set once by the ticker
  std::thread ticker_;
};

} // namespace ivmc::kvm
