// The Xen platform: a channel between two domains over granted pages, woken through
// interdomain event channels, found through XenStore.
//
// - Shared region: the offering domain allocates the channel's pages with gntshr (the kernel's
//   gntalloc) and grants them to the mapping domain, which maps them with gnttab (gntdev). One
//   more page, shared with *unmap notification* both ways, carries two liveness bytes: byte 0
//   is set by the offerer and cleared by its kernel when the offerer's mapping goes (process
//   exit included), byte 1 likewise for the mapper. The kernel also signals the data event
//   channel then, so a sleeping peer wakes up and sees it.
// - Doorbell: two interdomain event channels, one per wake reason (EventChannelDoorbell).
// - Rendezvous: the offerer publishes grant references and ports under its XenStore path
//   (offer_record.hpp), readable by the mapper only; the mapper validates them before use.
// - Liveness: a ticker thread beats every endpoint's heartbeat, watches the liveness bytes,
//   and on the offering side polls XenStore for the peer domain: a destroyed domain's
//   /local/domain/<id> disappears (its kernel never ran the unmap notification), so
//   mark_peer_dead() ends the channel's waits without waiting for the heartbeat timeout.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/posix/clock.hpp"
#include "ivmc/xen/xenstore.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ivmc::xen {

struct XenEndpointOptions {
  ChannelConfig channel;
  std::string name = "ch0"; // the channel's XenStore name (valid_channel_name)
  std::string job;          // offerer: published in the record for the mapper (may be empty)
};

class XenPlatform;
class EventChannelDoorbell;
struct GrantMapping;

// One channel endpoint between this domain and `peer()`.
class XenEndpoint {
public:
  ~XenEndpoint(); // unregisters, removes the record (offerer), detaches, unmaps, unbinds
  Channel& channel() { return *channel_; }
  std::uint32_t peer() const { return peer_; }
  bool offering() const { return offering_; }
  const std::string& job() const { return job_; } // the mapper's job from the record
  // Offerer: wait until the mapper attached.
  Errc wait_for_peer(Nanos timeout) { return channel_->wait_for_peer(timeout); }
  // Why the platform declared the peer dead (empty if it has not).
  std::string peer_gone_reason() const;

private:
  friend class XenPlatform;
  explicit XenEndpoint(XenPlatform& platform);
  void tick(Nanos now); // the ticker's per-endpoint work (platform mutex held)
  void declare_dead(const std::string& why);

  XenPlatform& platform_;
  std::uint32_t peer_ = 0;
  bool offering_ = false;
  std::string name_, record_path_, job_;
  std::unique_ptr<GrantMapping> pages_; // the channel's area
  std::unique_ptr<GrantMapping> live_;  // the liveness page
  std::unique_ptr<EventChannelDoorbell> doorbell_;
  std::unique_ptr<Channel> channel_;
  bool peer_seen_live_ = false; // ticker only
  Nanos next_domain_check_ = 0; // ticker only
  mutable std::mutex reason_mutex_;
  std::string gone_reason_;
};

class XenPlatform {
public:
  // Opens XenStore, the grant table and grant sharing devices, and starts the ticker. Throws
  // XenError naming the interface and the error (on a host without Xen: ENOENT).
  static std::unique_ptr<XenPlatform> open();
  ~XenPlatform(); // stops the ticker; endpoints must be gone by then
  XenPlatform(const XenPlatform&) = delete;
  XenPlatform& operator=(const XenPlatform&) = delete;

  // This domain's id as last read (open(), refresh_domid()).
  std::uint32_t domid() const {
    return domid_.load(std::memory_order_relaxed);
  } // relaxed: a value, orders nothing
  // Re-reads this domain's id from XenStore; true when it changed. A domain restored from a
  // save (`xl save` + `xl restore`, a move within one machine) comes back with a new id, and
  // every grant it made or mapped and every event channel it bound are gone (see abandon()).
  bool refresh_domid();
  // Forgets `endpoint` after a restore: the ticker stops visiting it, and nothing of it is
  // unmapped, unshared, unbound or closed (the old ports may have been handed out again to new
  // bindings: unbinding them would kill those; a mapping of another domain's grant would fault).
  // Its memory is leaked on purpose: a few hundred bytes and two file descriptors per restore.
  void abandon(std::unique_ptr<XenEndpoint> endpoint);
  posix::MonotonicClock& clock() { return clock_; }
  XenStore& store() { return *store_; }

  // Bytes of the channel area for rings of `ring_bytes`, rounded up to whole pages.
  static std::size_t pages_for(std::uint32_t ring_bytes);

  // Shares a channel with `peer` and publishes it; the mapper may attach at any time.
  std::unique_ptr<XenEndpoint> offer(std::uint32_t peer, const XenEndpointOptions& options);
  // Waits (until `timeout`) for `offerer`'s record for this domain named options.name,
  // validates it, maps the pages, binds the event channels and attaches as side 1.
  std::unique_ptr<XenEndpoint> map(std::uint32_t offerer, const XenEndpointOptions& options,
                                   Nanos timeout);

  // False once XenStore says /local/domain/<domid> is gone (the toolstack removes it when the
  // domain is destroyed). A domain whose path this one may not read counts as present.
  bool domain_exists(std::uint32_t domid);

private:
  friend class XenEndpoint;
  struct Handles;
  XenPlatform();
  void tick_loop();
  void unregister(XenEndpoint* endpoint);

  std::unique_ptr<Handles> handles_;
  std::unique_ptr<XenStore> store_;       // setup and records (caller's thread)
  std::unique_ptr<XenStore> probe_store_; // the ticker's own connection
  std::atomic<std::uint32_t> domid_{0};
  posix::MonotonicClock clock_;
  std::mutex mutex_; // guards endpoints_ and the grant handles
  std::vector<XenEndpoint*> endpoints_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread ticker_;
};

} // namespace ivmc::xen
