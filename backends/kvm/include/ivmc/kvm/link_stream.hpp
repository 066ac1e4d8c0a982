// A checked stream over a link (link.hpp) between two ivshmem peers, one of which may be a
// guest that live-migrates between hosts: the shared-memory channel while they share a host,
// the resumable TCP path (resumable_path.hpp) otherwise, switched by the guest's membership
// view with nothing lost, duplicated or reordered.
//
// The guest's view is its host word: a 64-bit word in the region that each host's membership
// source sets to that host's identity when a guest arrives (KvmMembership, kvm_membership.hpp).
// The peer is co-resident while the word equals `peer_host`. When the word changes the
// guest's remote connection is presumed dead too (user networking stays with the source QEMU)
// and is re-made.
//
// Each establishment of the local path is a new channel instance (an epoch) in its own slot
// of the region: after a migration back, the old slot holds the state the guest left behind
// on the other host, and the receiver must never mistake it for a fresh one.
//
// The sender is the guest (it creates the channels); the receiver a host process that follows
// the frames. Stream content and checksum are workload.hpp's.
#pragma once

#include "ivmc/core/link.hpp"
#include "ivmc/kvm/ivshmem_platform.hpp"
#include "ivmc/kvm/resumable_path.hpp"
#include "ivmc/kvm/workload.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ivmc::kvm {

// Where epoch e's channel lives: slot (e - 1) % count, each slot_bytes long from first_offset.
struct LinkSlots {
  std::size_t first_offset = 0;
  std::size_t slot_bytes = 0; // a page multiple, at least Channel::area_bytes(ring, ring)
  unsigned count = 2;
  std::size_t offset(std::uint64_t epoch) const;
};

struct LinkSendOptions {
  EndpointOptions endpoint; // the channels' configuration (the offset comes from `slots`)
  LinkSlots slots;
  std::size_t host_word = 0;   // BAR2 offset of the host word
  std::uint64_t peer_host = 0; // the receiver's host: co-resident while the word is this
  std::string remote_address;  // the receiver's resumable path, e.g. 10.0.2.2 (user networking)
  std::uint16_t remote_port = 0;
  ResumableOptions remote;
  LinkConfig link;
  std::uint64_t max_bytes = std::uint64_t{1} << 40;
  std::uint64_t after = 32u << 20; // bytes to send after the `moves`-th host change
  unsigned moves = 0;              // 0: just send max_bytes
  std::uint32_t message = 4096;
  Nanos timeout = 60'000'000'000;
};

// Guest side: streams until done, returns the report (mode=link-send): bytes, checksum, and
// the link's counters; prints `IVMC-LINK` lines on each host change and path switch.
Report link_send(IvshmemPlatform& platform, const LinkSendOptions& options);

struct LinkReceiveOptions {
  EndpointOptions endpoint; // the attach side's configuration
  LinkSlots slots;
  ResumableOptions remote;
  Nanos timeout = 60'000'000'000; // longest wait for one message
};

// When the receiver's link changed path, and how much it had by then.
struct PathChange {
  Nanos when = 0; // MonotonicClock
  PathKind to = PathKind::remote;
  std::uint64_t bytes = 0;
};

// Host side: receives until the sender finishes, checking every byte against the stream.
// The report (mode=link-recv) carries the link's counters; `changes` gets every path change.
Report link_receive(IvshmemPlatform& platform, TcpListener& listener,
                    const LinkReceiveOptions& options, std::vector<PathChange>* changes = nullptr);

// A receiver's local instances, by epoch (the current one, and at most a lagging one), for any
// platform: `open(epoch, timeout)` maps or attaches that instance's endpoint and throws while
// the sender has not set it up yet (the link then asks again). Installs find_local and
// release_local into a link environment; must outlive the link end that uses it.
template <class Endpoint>
class ReceiverInstances {
public:
  using Open = std::function<std::unique_ptr<Endpoint>(std::uint64_t epoch, Nanos timeout)>;
  explicit ReceiverInstances(Open open) : open_(std::move(open)) {}
  void install(LinkEnvironment& env) {
    env.find_local = [this](std::uint64_t epoch, Nanos timeout) -> FramePath* {
      if (auto it = instances_.find(epoch); it != instances_.end()) return it->second.path.get();
      Instance instance;
      try {
        instance.endpoint = open_(epoch, timeout);
      } catch (const std::exception&) {
        return nullptr; // not there yet: the link asks again
      }
      instance.path = std::make_unique<ChannelPath>(instance.endpoint->channel());
      current_ = epoch;
      return (instances_[epoch] = std::move(instance)).path.get();
    };
    env.release_local = [this] { instances_.erase(current_); };
  }

private:
  struct Instance {
    std::unique_ptr<Endpoint> endpoint;
    std::unique_ptr<ChannelPath> path;
  };
  Open open_;
  std::map<std::uint64_t, Instance> instances_;
  std::uint64_t current_ = 0;
};

// The checked stream over any platform's link (the Xen agent uses these too).
// Sends the stream until `limit` bytes; `before_send(bytes_so_far, limit)` runs before each
// message (a platform follows its membership view there, and may lower the limit). Prints
// `IVMC-LINK path ...` on each switch. Finishing the stream (and draining the platform's
// paths) is the caller's; the report has bytes, messages, checksum and the error if any.
Report send_link_stream(LinkSender& sender, std::uint64_t limit, std::uint32_t message,
                        Nanos timeout,
                        const std::function<void(std::uint64_t, std::uint64_t&)>& before_send);
// Receives until the sender finishes, checking every byte in place against the stream.
Report receive_link_stream(LinkReceiver& receiver, Nanos timeout,
                           std::vector<PathChange>* changes = nullptr);
// The link's counters as " key=value" pairs for a report line.
std::string link_counters(const LinkStats& stats);

} // namespace ivmc::kvm
