// Where a VM process lives: its connection to one host's ivshmem server (an Attachment), the
// channel instances it holds there, and the move to another host (the host backend's
// migration). Private to backends/host.
#pragma once

#include "ivmc/core/channel.hpp"
#include "ivmc/core/link.hpp"
#include "ivmc/core/membership.hpp"
#include "ivmc/kvm/host_platform.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace ivmc::host {

// One connection to one host's server. Kept alive by every instance made on it, so a
// detached host's region stays mapped while a link still drains an instance there.
struct Attachment {
  HostId host = 0;
  std::unique_ptr<kvm::HostPlatform> platform;
};

// Channel counters summed over every instance this VM held (released or not).
struct ChannelTotals {
  std::atomic<std::uint64_t> data_notifications{0}, space_notifications{0}, sleeps{0},
      wakeups{0}; // relaxed adds: counts only
};

// One channel instance (a link's local path) on an attachment.
class LocalInstance {
public:
  LocalInstance(std::shared_ptr<Attachment> at, std::unique_ptr<kvm::IvshmemEndpoint> endpoint,
                ChannelTotals& totals);
  ~LocalInstance(); // adds its channel's counters to the totals, then detaches
  Channel& channel() { return endpoint_->channel(); }
  ChannelPath& path() { return *path_; }
  const Attachment& attachment() const { return *at_; }

private:
  std::shared_ptr<Attachment> at_; // first: destroyed last, after the endpoint
  std::unique_ptr<kvm::IvshmemEndpoint> endpoint_;
  std::unique_ptr<ChannelPath> path_;
  ChannelTotals& totals_;
};

class Residence {
public:
  // `token`: this VM's enrolment on every host's server (its channel socket).
  Residence(std::vector<std::string> host_sockets, unsigned vectors, kvm::EnrolmentToken token);
  ~Residence();

  // The host this VM is on now (null while it is on none: not created, shut down).
  std::shared_ptr<Attachment> current() const;
  // Connects to `host`'s server. Throws on failure.
  void attach(HostId host);
  // Leaves the current host: its instances fail on this side with `why`, the server tells the
  // peers. Returns the bytes this VM had sent on them that were not consumed (pending data).
  std::uint64_t detach(const std::string& why);

  // Bookkeeping of live instances (for the pending-data count).
  void track(LocalInstance* instance);
  void untrack(LocalInstance* instance);

private:
  std::vector<std::string> sockets_;
  unsigned vectors_;
  kvm::EnrolmentToken token_;
  mutable std::mutex mutex_; // guards current_, retired_, live_
  std::shared_ptr<Attachment> current_;
  std::vector<std::shared_ptr<Attachment>> retired_;
  std::set<LocalInstance*> live_;
};

} // namespace ivmc::host
